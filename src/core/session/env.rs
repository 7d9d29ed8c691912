//! What the session takes from the world besides the time it is handed with every call:
//! random numbers (reconnect jitter) and the log of a login. [`SystemEnv`] is the real world;
//! the session's tests pass a seeded generator and a log in memory.

use super::super::events::LogSink;
use super::super::ids;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) trait Env: Send {
    /// A uniformly distributed 64-bit value.
    fn random_u64(&mut self) -> u64;
    /// The log of a login that names `path` as its `log_file`; `None` if it cannot be opened
    /// (a log is never a reason to refuse a login).
    fn open_log(&mut self, path: &Path) -> Option<Box<dyn LogSink>>;
}

/// The process's randomness and the file system.
pub(crate) struct SystemEnv;

impl Env for SystemEnv {
    fn random_u64(&mut self) -> u64 {
        ids::random_u64()
    }

    fn open_log(&mut self, path: &Path) -> Option<Box<dyn LogSink>> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        Some(Box::new(FileLog(f)))
    }
}

/// A log file: one line per entry, stamped with the wall-clock time.
struct FileLog(File);

impl LogSink for FileLog {
    fn line(&mut self, what: &str) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!("{}.{:03} crvm: {what}\n", t.as_secs(), t.subsec_millis());
        // A failed write is not the app's problem.
        let _ = self.0.write_all(line.as_bytes());
    }
}
