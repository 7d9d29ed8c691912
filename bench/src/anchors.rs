//! The anchor servers, started by the bench as child processes (killed on every exit path, like
//! `crvm-server`: see `procs.rs`):
//!
//! - `nats-server -a 127.0.0.1 -p -1`: `-1` makes it pick a free port, which the bench reads
//!   back from its log line `Listening for client connections on 127.0.0.1:PORT`.
//! - `redis-server`: `--port 0` would disable TCP, so the bench picks a free port by binding
//!   port 0 and releasing it, then starts redis on it (persistence off, no pub/sub output limit)
//!   and waits until it accepts a connection.
//! - `socat` (one process per bulk transfer): `TCP-LISTEN` on a port that socat picks
//!   (`TCP-LISTEN:0`, read back from its `-d -d` log line `listening on AF=2 127.0.0.1:PORT`), relaying
//!   to the bench's receiver.

use crate::procs::{line_reader, Proc};
use crate::Res;
use crossbeam_channel::Receiver;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `tool` is an executable on `PATH`.
pub fn installed(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Waits up to 10 s for a line of `lines` that contains `marker` and returns what follows it.
fn wait_for(lines: &Receiver<String>, marker: &str, what: &str) -> Res<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once(marker) {
                    return Ok(rest.trim().to_owned());
                }
                seen.push(line);
            }
            Err(_) => {
                return Err(format!("{what} did not start:\n{}", seen.join("\n")).into());
            }
        }
    }
}

/// A running nats-server.
pub struct Nats {
    /// Killed on drop.
    pub proc: Proc,
    pub url: String,
}

impl Nats {
    pub fn start() -> Res<Nats> {
        Nats::start_with(&[])
    }

    /// `n` nats-servers routed to each other as one NATS cluster (full mesh), their route
    /// ports picked as [`free_port`] does.
    pub fn start_cluster(n: usize) -> Res<Vec<Nats>> {
        // Bound all at once, so that they are `n` different ports.
        let held: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        drop(held);
        ports
            .iter()
            .map(|p| {
                let routes: Vec<String> = ports
                    .iter()
                    .filter(|q| *q != p)
                    .map(|q| format!("nats://127.0.0.1:{q}"))
                    .collect();
                Nats::start_with(&[
                    "--cluster_name".into(),
                    "crvm-bench".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{p}"),
                    "--routes".into(),
                    routes.join(","),
                ])
            })
            .collect()
    }

    fn start_with(extra: &[String]) -> Res<Nats> {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", "-1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd, "nats-server")?;
        // Drained until the server exits, so that its log never blocks it.
        let lines = line_reader(proc.stderr.take().expect("stderr piped"));
        let addr = wait_for(
            &lines,
            "Listening for client connections on ",
            "nats-server",
        )?;
        wait_for(&lines, "Server is ready", "nats-server")?;
        Ok(Nats {
            proc,
            url: format!("nats://{addr}"),
        })
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0, then released: another process could take it
/// in between, which would make the anchor fail to start, loudly).
fn free_port() -> Res<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running redis-server.
pub struct Redis {
    /// Killed on drop.
    _proc: Proc,
    pub url: String,
}

impl Redis {
    pub fn start() -> Res<Redis> {
        let port = free_port()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .args(["--client-output-buffer-limit", "pubsub 0 0 0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let proc = Proc::spawn(cmd, "redis-server")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("redis-server did not listen on {addr} within 10 s").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis {
            _proc: proc,
            url: format!("redis://{addr}/"),
        })
    }
}

/// One socat relay for one connection: listens on `addr` and, once a client connected, connects
/// to `to` and copies both ways until both directions ended, then exits.
pub struct Socat {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Socat {
    pub fn start(to: SocketAddr) -> Res<Socat> {
        let mut cmd = Command::new("socat");
        // 64 KiB copy buffer (socat's default is 8 KiB).
        cmd.args(["-d", "-d", "-b", "65536"])
            .arg("TCP-LISTEN:0,bind=127.0.0.1,reuseaddr")
            .arg(format!("TCP:{to},nodelay"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd, "socat")?;
        let lines = line_reader(proc.stderr.take().expect("stderr piped"));
        let addr = wait_for(&lines, "listening on AF=2 ", "socat")?;
        Ok(Socat {
            proc,
            addr: addr.parse()?,
        })
    }
}
