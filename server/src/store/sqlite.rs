//! [`MeetingStore`] on SQLite: the meetings of a server of its own, in `DATA_DIR/crvm.sqlite3`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::{MeetingDraft, MeetingRecord, MeetingStore, StoreError, ID_TRIES};
use crate::random;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "crvm.sqlite3";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// [`MeetingStore`] on one SQLite connection in WAL mode.
pub struct SqliteStore {
    conn: Mutex<Option<Connection>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/crvm.sqlite3`, creating `dir` too.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path)
            .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never block the writer; synchronous=FULL keeps each commit on disk.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meetings (
                 id         INTEGER PRIMARY KEY,
                 tenant     TEXT    NOT NULL,
                 pswd       TEXT    NOT NULL,
                 subject    TEXT    NOT NULL,
                 creator    TEXT    NOT NULL,
                 start_time INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS meetings_by_tenant
                 ON meetings (tenant, start_time, id);",
        )?;
        Ok(SqliteStore {
            conn: Mutex::new(Some(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &*self.conn.lock() {
            Some(c) => f(c),
            None => Err(StoreError("storage is closed".into())),
        }
    }

    /// [`MeetingStore::create`] with the ID source given, so tests can force collisions.
    fn create_with(
        &self,
        tenant: &str,
        draft: &MeetingDraft,
        mut next_id: impl FnMut() -> i32,
    ) -> Result<MeetingRecord, StoreError> {
        self.with(|c| {
            for _ in 0..ID_TRIES {
                let id = next_id();
                let r = c.execute(
                    "INSERT INTO meetings (id, tenant, pswd, subject, creator, start_time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        tenant,
                        draft.pswd,
                        draft.subject,
                        draft.creator,
                        draft.start_time
                    ],
                );
                match r {
                    Ok(_) => {
                        return Ok(MeetingRecord {
                            id,
                            pswd: draft.pswd.clone(),
                            subject: draft.subject.clone(),
                            creator: draft.creator.clone(),
                            start_time: draft.start_time,
                        })
                    }
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == ErrorCode::ConstraintViolation =>
                    {
                        continue
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(StoreError("no free meeting ID found".into()))
        })
    }
}

impl MeetingStore for SqliteStore {
    fn create(&self, tenant: &str, draft: &MeetingDraft) -> Result<MeetingRecord, StoreError> {
        self.create_with(tenant, draft, random::meeting_id)
    }

    fn destroy(&self, tenant: &str, id: i32, creator: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "DELETE FROM meetings WHERE id = ?1 AND tenant = ?2 AND creator = ?3",
                params![id, tenant, creator],
            )?;
            Ok(n > 0)
        })
    }

    fn list(&self, tenant: &str) -> Result<Vec<MeetingRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, pswd, subject, creator, start_time FROM meetings
                 WHERE tenant = ?1 ORDER BY start_time, id",
            )?;
            let rows = st.query_map([tenant], |r| {
                Ok(MeetingRecord {
                    id: r.get(0)?,
                    pswd: r.get(1)?,
                    subject: r.get(2)?,
                    creator: r.get(3)?,
                    start_time: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn close(&self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.lock().take() else {
            return Ok(());
        };
        // Fold the WAL back into the database so the directory is tidy after a clean stop.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional()?;
        conn.close().map_err(|(_, e)| e.into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "crvm-{tag}-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                random::hex(8)
            ));
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn draft(creator: &str, start_time: i64) -> MeetingDraft {
        MeetingDraft {
            pswd: String::new(),
            subject: "s".into(),
            creator: creator.into(),
            start_time,
        }
    }

    #[test]
    fn create_list_destroy_persist() {
        let dir = TempDir::new("store");
        let s = SqliteStore::open(&dir.0.join("nested")).unwrap();
        let a = s.create("t1", &draft("alice", 20)).unwrap();
        let b = s.create("t1", &draft("bob", 10)).unwrap();
        let c = s.create("t2", &draft("carol", 5)).unwrap();
        assert!(a.id >= random::MEETING_ID_MIN);
        assert_eq!(s.list("t1").unwrap(), vec![b.clone(), a.clone()]);
        assert_eq!(s.list("t2").unwrap(), vec![c.clone()]);
        assert!(!s.destroy("t1", a.id, "bob").unwrap());
        assert!(!s.destroy("t2", a.id, "alice").unwrap());
        assert!(s.destroy("t1", a.id, "alice").unwrap());
        assert!(!s.destroy("t1", a.id, "alice").unwrap());
        s.close().unwrap();
        assert!(s.list("t1").is_err());
        let s = SqliteStore::open(&dir.0.join("nested")).unwrap();
        assert_eq!(s.list("t1").unwrap(), vec![b]);
        assert_eq!(s.list("t2").unwrap(), vec![c]);
    }

    #[test]
    fn colliding_ids_are_retried() {
        let dir = TempDir::new("store");
        let s = SqliteStore::open(&dir.0).unwrap();
        let first = s.create_with("t", &draft("a", 1), || 20_000_000).unwrap();
        let mut ids = [20_000_000, 20_000_000, 30_000_000].into_iter();
        let second = s
            .create_with("t", &draft("a", 1), || ids.next().unwrap())
            .unwrap();
        assert_eq!((first.id, second.id), (20_000_000, 30_000_000));
        assert!(s.create_with("t", &draft("a", 1), || 20_000_000).is_err());
    }

    #[test]
    fn ties_in_start_time_order_by_id() {
        let dir = TempDir::new("store");
        let s = SqliteStore::open(&dir.0).unwrap();
        let mut ids = [40_000_000, 30_000_000].into_iter();
        s.create_with("t", &draft("a", 7), || ids.next().unwrap())
            .unwrap();
        s.create_with("t", &draft("a", 7), || ids.next().unwrap())
            .unwrap();
        let got: Vec<_> = s.list("t").unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(got, [30_000_000, 40_000_000]);
    }
}
