//! Child processes of the bench (the server and the two peers) and cleanup on every exit path:
//! a normal return or an error drops them (kill + wait), a panic unwinds into the same drops,
//! Ctrl-C/SIGTERM is caught by a signal thread that kills them and removes the temp dir, and if
//! the bench itself is killed outright the kernel kills them (`PR_SET_PDEATHSIG`).

use crate::Res;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// What the signal thread must clean up.
struct Registry {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Nanoseconds of `CLOCK_MONOTONIC`: one clock for every process on the machine, so a time
/// stamped in one peer can be compared with one stamped in the other.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) that process `pid` has used so far, all threads, in seconds.
pub fn cpu_secs(pid: u32) -> Res<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces): state is field 3, utime 14,
    // stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Res<u64> {
        let f = fields.get(i).ok_or("short /proc/PID/stat")?;
        Ok(f.parse::<u64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / hz)
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread and waits for them in one that kills the
/// children and removes the temp dirs. Call before any other thread is started (threads inherit
/// the mask; `Command` resets it in children).
pub fn catch_signals() {
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
        eprintln!("crvm-bench: interrupted (signal {sig}); children killed, temp files removed");
        std::process::exit(128 + sig);
    });
}

/// A temp directory, removed on drop (and by the signal thread).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(parent: &Path) -> Res<TempDir> {
        remove_stale(parent);
        let nanos = mono_ns() % 1_000_000_000;
        let dir = parent.join(format!("crvm-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        registry().dirs.push(dir.clone());
        Ok(TempDir(dir))
    }
}

/// Removes the temp dirs of earlier runs that were killed outright (SIGKILL cannot be caught):
/// `crvm-bench-PID-…` whose PID is no longer running.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("crvm-bench-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        registry().dirs.retain(|d| d != &self.0);
    }
}

/// A child process, killed and reaped on drop.
pub struct Proc {
    pub child: Child,
    name: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, name: &str) -> Res<Proc> {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
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

    pub fn cpu_secs(&self) -> Res<f64> {
        cpu_secs(self.pid())
    }

    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.child.stderr.take().expect("stderr piped")
    }

    /// Waits (up to 10 s) until the process has exited on its own, and returns the CPU time it
    /// used: it is read while the process is a zombie (not yet reaped), when `/proc` still has it.
    pub fn cpu_secs_at_exit(&self) -> Res<f64> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            if state.starts_with('Z') {
                return self.cpu_secs();
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("{} did not exit", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Res<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmHWM for {}", self.name).into())
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

/// Reads `stdout` line by line on a thread; the receiver ends when the child closes it.
pub fn line_reader(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: a closed pipe would kill a
        // process that logs on (nats-server logs its cluster routes after it is ready).
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// A running `crvm-server` with one tenant, `demo`/`demo-secret`.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
    log: PathBuf,
}

impl Server {
    /// `top`: further top-level config lines.
    pub fn start(bin: &Path, dir: &Path, max_file_bytes: u64, top: &str) -> Res<Server> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("crvm.toml");
        std::fs::write(
            &config,
            format!(
                "max_file_bytes = {max_file_bytes}\n{top}\n[[tenant]]\napp_id = \"demo\"\nsecret = \"demo-secret\"\n"
            ),
        )?;
        let log = dir.join("server.log");
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("server-data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut proc = Proc::spawn(cmd, "crvm-server")?;
        let lines = line_reader(proc.child.stdout.take().expect("piped"));
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        let Some(addr) = first.strip_prefix("crvm-server listening on ") else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("server did not start: {first:?}\n{log}").into());
        };
        Ok(Server {
            addr: addr.to_owned(),
            proc,
            log,
        })
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A peer: this executable re-run as `__peer`, one crvm client in its own process, driven by
/// lines on its stdin and answering with lines on its stdout (see `peer.rs`).
pub struct Peer {
    pub proc: Proc,
    pub user: String,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Lines read while waiting for another one.
    backlog: VecDeque<String>,
    /// Ask it to `quit` (and wait up to 5 s for `bye`) before killing it; off for a peer that
    /// is stuck and would not answer.
    pub quit_on_drop: bool,
}

impl Peer {
    pub fn start(addr: &str, user: &str, download_dir: &Path) -> Res<Peer> {
        let dir = download_dir.to_str().ok_or("download dir is not UTF-8")?;
        Peer::role(&["__peer", addr, user, dir], user)
    }

    /// This executable re-run with `args` (a hidden role), named `user` in messages; it must
    /// print `ready` once it is, answer `quit` with `bye`, and exit when its stdin closes.
    pub fn role(args: &[&str], user: &str) -> Res<Peer> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn(cmd, user)?;
        let stdin = proc.child.stdin.take().expect("piped");
        let lines = line_reader(proc.child.stdout.take().expect("piped"));
        let mut peer = Peer {
            proc,
            user: user.to_owned(),
            stdin,
            lines,
            backlog: VecDeque::new(),
            quit_on_drop: true,
        };
        peer.expect("ready", Duration::from_secs(30))?;
        Ok(peer)
    }

    pub fn send(&mut self, line: &str) -> Res<()> {
        writeln!(self.stdin, "{line}").map_err(|e| format!("{}: {e}", self.user))?;
        Ok(())
    }

    /// Waits for the next line starting with `prefix` (earlier non-matching lines are kept for
    /// later calls) and returns the rest of it. A peer's `error` or `line_off` fails at once.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> Res<String> {
        let rest = |line: &str| Some(line.strip_prefix(prefix)?.trim_start().to_owned());
        if let Some(found) = self.backlog.iter().position(|l| l.starts_with(prefix)) {
            let line = self.backlog.remove(found).expect("found");
            return Ok(rest(&line).expect("matched"));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {prefix:?} within {timeout:?}", self.user).into())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(
                        format!("{}: exited while {prefix:?} was awaited", self.user).into(),
                    )
                }
            };
            if let Some(rest) = rest(&line) {
                return Ok(rest);
            }
            if line.starts_with("error") || line.starts_with("line_off") {
                return Err(format!("{}: {line}", self.user).into());
            }
            self.backlog.push_back(line);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // A clean logout first, so the server sees an orderly end; `Proc` kills it regardless.
        if self.quit_on_drop && writeln!(self.stdin, "quit").is_ok() {
            let _ = self.expect("bye", Duration::from_secs(5));
        }
    }
}
