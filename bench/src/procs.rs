//! Child processes of the bench (the server and the two peers). Their cleanup on every exit path
//! is `crvm-testkit`'s: a normal return or an error drops them (kill + wait), a panic unwinds
//! into the same drops, Ctrl-C/SIGTERM is caught by a signal thread that kills them and removes
//! the temp dir ([`catch_signals`]), and if the bench itself is killed outright the kernel kills
//! them (`PR_SET_PDEATHSIG`). What is here is the bench's own: CPU and memory figures of a
//! process, the server's config, and the peers.

use crate::Res;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

pub use crvm_testkit::proc::catch_signals;
pub use crvm_testkit::{Proc, Server, TmpDir};

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

/// What the bench measures of a child process.
pub trait Stats {
    fn cpu_secs(&self) -> Res<f64>;
    fn cpu_secs_at_exit(&self) -> Res<f64>;
    fn peak_rss_kib(&self) -> Res<u64>;
}

impl Stats for Proc {
    fn cpu_secs(&self) -> Res<f64> {
        cpu_secs(self.pid())
    }

    /// Waits (up to 10 s) until the process has exited on its own, and returns the CPU time it
    /// used: it is read while the process is a zombie (not yet reaped), when `/proc` still has it.
    fn cpu_secs_at_exit(&self) -> Res<f64> {
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
                return Err(format!("{} did not exit", self.name()).into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    fn peak_rss_kib(&self) -> Res<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmHWM for {}", self.name()).into())
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

/// Starts a `crvm-server` in `dir` with one tenant, `demo`/`demo-secret`; `top`: further
/// top-level config lines.
pub fn start_server(bin: &Path, dir: &Path, max_file_bytes: u64, top: &str) -> Res<Server> {
    start_server_with(bin, dir, max_file_bytes, top, "")
}

/// [`start_server`] with further lines in the tenant's table (`tenant`).
pub fn start_server_with(
    bin: &Path,
    dir: &Path,
    max_file_bytes: u64,
    top: &str,
    tenant: &str,
) -> Res<Server> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("crvm.toml");
    std::fs::write(
        &config,
        format!(
            "max_file_bytes = {max_file_bytes}\n{top}\n[[tenant]]\napp_id = \"demo\"\nsecret = \"demo-secret\"\n{tenant}\n"
        ),
    )?;
    let data = dir.join("server-data");
    let args: [&std::ffi::OsStr; 6] = [
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ];
    Ok(Server::launch(
        bin,
        &args,
        &[],
        dir.join("server.log"),
        config.clone(),
    )?)
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
        cmd.args(args);
        Peer::command(cmd, user)
    }

    /// [`Peer::role`] for another program that speaks the same lines (`ready`, `quit` → `bye`).
    pub fn command(mut cmd: Command, user: &str) -> Res<Peer> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn(cmd, user)?;
        let stdin = proc.stdin.take().expect("piped");
        let lines = line_reader(proc.stdout.take().expect("piped"));
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
