//! Temporary directories, removed on drop (and by [`crate::proc::catch_signals`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::proc::registry;

/// A fresh directory, removed on drop unless [`TmpDir::keep`] was called or the thread is
/// panicking (a failed test: kept for its logs until the next run's clean-up).
pub struct TmpDir(pub PathBuf, bool);

impl TmpDir {
    /// A fresh directory under the system temp dir.
    pub fn new() -> TmpDir {
        TmpDir::under(&std::env::temp_dir(), "crvm-it").expect("a temp dir")
    }

    /// A fresh directory `PREFIX-PID-N-NANOS` under `parent`. Those of earlier processes that
    /// no longer run (killed outright: SIGKILL cannot be caught) are removed first.
    pub fn under(parent: &Path, prefix: &str) -> std::io::Result<TmpDir> {
        static N: AtomicUsize = AtomicUsize::new(0);
        remove_stale(parent, prefix);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let p = parent.join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p)?;
        registry().dirs.push(p.clone());
        Ok(TmpDir(p, false))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Leaves the directory in place when dropped (to read the logs of a run).
    pub fn keep(&mut self) {
        self.1 = true;
        registry().dirs.retain(|d| d != &self.0);
    }
}

impl Default for TmpDir {
    fn default() -> Self {
        TmpDir::new()
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if self.1 {
            return;
        }
        // A failing test's directory stays, for its logs (the next run removes it).
        if std::thread::panicking() {
            eprintln!("kept for its logs: {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
        registry().dirs.retain(|d| d != &self.0);
    }
}

/// Removes `PREFIX-PID-…` under `parent` whose PID is no longer running.
fn remove_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix)?.strip_prefix('-'))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
