//! Meetings of a cluster (docs/API.md §3.3, §4.1) in the Redis the nodes share: [`RedisStore`], the
//! [`MeetingStore`] of a cluster node. Blocking, like every store (run with `run_blocking`),
//! on one connection that is made again after a failure.
//!
//! Keys: `crvm:mids` (set) holds every meeting ID of the cluster, so that IDs stay unique
//! across tenants and nodes; `crvm:m:#t:t` (hash) maps a tenant's meeting IDs to the meeting as
//! JSON. Meetings are durable only as far as Redis is: docs/CLUSTER.md asks for persistence.
//! Behind Sentinel, a change is answered only once a replica has it too ([`RedisStore::replicated`]):
//! a failover promotes a replica, and replication is asynchronous.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{MeetingDraft, MeetingRecord, MeetingStore, StoreError, ID_TRIES};
use crate::primary::Primary;
use crate::random;

const IDS: &str = "crvm:mids";

#[derive(Serialize, Deserialize)]
struct Stored {
    pswd: String,
    subject: String,
    creator: String,
    start_time: i64,
}

/// [`MeetingStore`] in Redis.
pub struct RedisStore {
    primary: Primary,
    /// How long a call keeps trying while Redis cannot be reached (the node timeout).
    patience: Duration,
    conn: Mutex<Option<redis::Connection>>,
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

fn key(tenant: &str) -> String {
    format!("crvm:m:{}:{tenant}", tenant.len())
}

fn failed(e: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// Checks a fixed URL; connects on first use (a node starts while Redis is down).
    pub fn open(primary: Primary, patience: Duration) -> Result<RedisStore, StoreError> {
        if let Primary::Url(url) = &primary {
            redis::Client::open(url.as_str()).map_err(failed)?;
        }
        Ok(RedisStore {
            primary,
            patience,
            conn: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runs `f` on the connection; a failed call drops it and, when the failure may pass (a
    /// dropped connection, a failover), runs `f` again on a new one, for up to the patience.
    /// (Every `f` here may run twice: at worst a meeting ID is never used.)
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.patience;
        let mut pause = Duration::ZERO;
        loop {
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(StoreError("storage is closed".into()));
            }
            let r = self.once(&mut f);
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.1 && Instant::now() + pause < deadline => {
                    std::thread::sleep(pause);
                    pause =
                        (pause * 2).clamp(Duration::from_millis(10), Duration::from_millis(200));
                }
                Err(e) => return Err(e.0),
            }
        }
    }

    /// Behind Sentinel, waits (`WAIT`) until a replica has every write made so far on this
    /// connection, for up to a fifth of the patience: a failover promotes the replica with the
    /// most data, so a change answered after this survives it. Without a replica in time (it is
    /// down too) the change is answered anyway, and the log says so.
    fn replicated(&self) -> Result<(), StoreError> {
        if !matches!(self.primary, Primary::Sentinel { .. }) {
            return Ok(());
        }
        let ms = (self.patience / 5).as_millis().max(1) as u64;
        let acked: i64 = self.with(|c| redis::cmd("WAIT").arg(1).arg(ms).query(c))?;
        if acked < 1 {
            tracing::warn!(
                "meetings: no replica acknowledged a change within {ms} ms; a failover before it \
                 catches up would lose the change"
            );
        }
        Ok(())
    }

    /// One attempt of [`RedisStore::with`]: the error, and whether it may pass.
    fn once<T>(
        &self,
        f: &mut impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, (StoreError, bool)> {
        let mut guard = self.conn.lock();
        if guard.is_none() {
            let client = self
                .primary
                .client_blocking()
                .map_err(|e| (StoreError(e), true))?;
            let c = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .map_err(|e| (failed(e), true))?;
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| (failed(e), true))?;
            *guard = Some(c);
        }
        let r = f(guard.as_mut().expect("connected above"));
        r.map_err(|e| {
            *guard = None;
            let passing = !matches!(e.retry_method(), redis::RetryMethod::NoRetry);
            (failed(e), passing)
        })
    }
}

impl MeetingStore for RedisStore {
    fn create(&self, tenant: &str, draft: &MeetingDraft) -> Result<MeetingRecord, StoreError> {
        let stored = Stored {
            pswd: draft.pswd.clone(),
            subject: draft.subject.clone(),
            creator: draft.creator.clone(),
            start_time: draft.start_time,
        };
        let json = serde_json::to_string(&stored).map_err(|e| StoreError(e.to_string()))?;
        for _ in 0..ID_TRIES {
            let id = random::meeting_id();
            let fresh: i64 = self.with(|c| redis::cmd("SADD").arg(IDS).arg(id).query(c))?;
            if fresh == 1 {
                self.with(|c| {
                    redis::cmd("HSET")
                        .arg(key(tenant))
                        .arg(id)
                        .arg(&json)
                        .query::<i64>(c)
                })?;
                self.replicated()?;
                return Ok(MeetingRecord {
                    id,
                    pswd: stored.pswd,
                    subject: stored.subject,
                    creator: stored.creator,
                    start_time: stored.start_time,
                });
            }
        }
        Err(StoreError("no free meeting ID".into()))
    }

    fn destroy(&self, tenant: &str, id: i32, creator: &str) -> Result<bool, StoreError> {
        let k = key(tenant);
        let json: Option<String> = self.with(|c| redis::cmd("HGET").arg(&k).arg(id).query(c))?;
        let Some(s) = json.and_then(|j| serde_json::from_str::<Stored>(&j).ok()) else {
            return Ok(false);
        };
        if s.creator != creator {
            return Ok(false);
        }
        let removed: i64 = self.with(|c| redis::cmd("HDEL").arg(&k).arg(id).query(c))?;
        if removed == 1 {
            self.with(|c| redis::cmd("SREM").arg(IDS).arg(id).query::<i64>(c))?;
            self.replicated()?;
        }
        Ok(removed == 1)
    }

    fn list(&self, tenant: &str) -> Result<Vec<MeetingRecord>, StoreError> {
        let all: Vec<(i32, String)> =
            self.with(|c| redis::cmd("HGETALL").arg(key(tenant)).query(c))?;
        let mut out: Vec<MeetingRecord> = all
            .into_iter()
            .filter_map(|(id, j)| {
                let s: Stored = serde_json::from_str(&j).ok()?;
                Some(MeetingRecord {
                    id,
                    pswd: s.pswd,
                    subject: s.subject,
                    creator: s.creator,
                    start_time: s.start_time,
                })
            })
            .collect();
        out.sort_by_key(|r| (r.start_time, r.id));
        Ok(out)
    }

    fn close(&self) -> Result<(), StoreError> {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.conn.lock().take();
        Ok(())
    }
}
