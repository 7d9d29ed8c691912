//! Child processes and their cleanup on every way out: a return or an error drops them (kill +
//! wait), a panic unwinds into the same drops, Ctrl-C/SIGTERM is caught by
//! [`catch_signals`]'s thread (which kills them and removes the temp dirs), and if this process
//! is killed outright the kernel kills them (`PR_SET_PDEATHSIG`).

use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

/// What the signal thread must clean up.
pub(crate) struct Registry {
    pids: Vec<u32>,
    pub(crate) dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
});

pub(crate) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process, killed and reaped on drop. Derefs to its [`Child`].
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child ends, not only the
/// process: start children from a thread that outlives them (a test's own thread does).
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    /// Spawns `cmd`, named `name` in messages.
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Proc, String> {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        // Registered under the lock, so that the signal thread never misses a child.
        let mut reg = registry();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        reg.pids.push(child.id());
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `sig` (a `libc::SIG*`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }
}

impl Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        registry().pids.retain(|&p| p != pid);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread and waits for them in one that kills the
/// children, removes the temp dirs and exits, saying so as `prog`. Call before any other thread
/// is started (threads inherit the mask; `Command` resets it in children).
pub fn catch_signals(prog: &'static str) {
    // SAFETY: plain signal-set manipulation on a local set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` and `sig` are valid for the call.
        unsafe { libc::sigwait(&set, &mut sig) };
        let reg = registry();
        for &pid in &reg.pids {
            // SAFETY: signalling and reaping our own children.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
        }
        for dir in &reg.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("{prog}: interrupted (signal {sig}); children killed, temp files removed");
        std::process::exit(128 + sig);
    });
}
