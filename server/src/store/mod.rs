//! Durable meetings (docs/API.md §3.3) behind [`MeetingStore`], one back end per deployment:
//! [`sqlite::SqliteStore`] on a server of its own (file `DATA_DIR/crvm.sqlite3`), and
//! [`redis::RedisStore`] in a cluster, where every node sees the same meetings.
//!
//! Store calls block; connections run them with [`run_blocking`] so the async worker threads
//! never wait on the disk.

use std::fmt;
use std::sync::Arc;

pub mod redis;
pub mod sqlite;

pub use self::redis::RedisStore;
pub use sqlite::SqliteStore;

/// A stored meeting. `pubMeetUrl` and `memberCount` are not stored: the first follows the
/// configured base URL, the second is live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingRecord {
    pub id: i32,
    pub pswd: String,
    pub subject: String,
    pub creator: String,
    /// Unix seconds.
    pub start_time: i64,
}

/// A meeting about to be created; the store picks the ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingDraft {
    pub pswd: String,
    pub subject: String,
    pub creator: String,
    pub start_time: i64,
}

/// A storage failure; the request gets code 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Meetings of every tenant. IDs are unique across the server.
pub trait MeetingStore: Send + Sync {
    /// Stores `draft` for `tenant` under a fresh random ID (see [`crate::random::meeting_id`]).
    fn create(&self, tenant: &str, draft: &MeetingDraft) -> Result<MeetingRecord, StoreError>;

    /// Deletes meeting `id` if it belongs to `tenant` and was created by `creator`.
    /// `Ok(false)` when there is no such meeting (missing and not-yours look the same).
    fn destroy(&self, tenant: &str, id: i32, creator: &str) -> Result<bool, StoreError>;

    /// The tenant's meetings ordered by (start time, ID).
    fn list(&self, tenant: &str) -> Result<Vec<MeetingRecord>, StoreError>;

    /// Flushes and releases the storage; later calls fail.
    fn close(&self) -> Result<(), StoreError>;
}

/// Runs a blocking store call on tokio's blocking pool. A panic inside becomes a `StoreError`.
pub async fn run_blocking<T, F>(store: &Arc<dyn MeetingStore>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn MeetingStore) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .unwrap_or_else(|e| Err(StoreError(format!("storage task failed: {e}"))))
}

/// How often a random ID may collide before creation gives up (each try has a chance of
/// about count/2^31 to collide, so reaching this means something else is wrong).
pub(crate) const ID_TRIES: usize = 16;
