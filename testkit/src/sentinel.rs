//! Redis high availability on loopback: a primary, a replica and three Sentinels, each a
//! process of the caller's own (killed on drop). Replication and Sentinel speak TCP, so each
//! takes a free port of 127.0.0.1 (asked of the kernel, then handed to the server).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Proc, TmpDir, PATIENCE};

/// The name the sentinels know the primary by.
pub const MASTER: &str = "crvm";

/// A free TCP port of 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `redis-server` with `args` and waits until its log says `ready`.
fn launch(args: &[String], ready: &str) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut proc = Proc::spawn(cmd, "redis-server").unwrap();
    let mut out = BufReader::new(proc.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "redis-server {args:?} exited before {ready:?}"
        );
        if line.contains(ready) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    proc
}

/// Runs `redis-cli -p port args…` and returns what it printed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `check` until it holds (for state another process reaches on its own: replication
/// and Sentinel have no other signal).
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A primary (first), a replica, and three sentinels watching them.
pub struct Sentinels {
    /// The ports of the primary and the replica as started (the roles swap on a failover).
    pub data_ports: [u16; 2],
    pub sentinel_ports: Vec<u16>,
    /// The two data servers (in the order of `data_ports`), then the sentinels.
    procs: Vec<Proc>,
    /// Each data server's arguments, without `--replicaof` (a restart comes back as a primary).
    data_args: Vec<Vec<String>>,
    data_dirs: Vec<std::path::PathBuf>,
}

impl Sentinels {
    pub fn start(dir: &TmpDir) -> Sentinels {
        let (p1, p2) = (free_port(), free_port());
        let mut procs = Vec::new();
        let (mut data_args, mut data_dirs) = (Vec::new(), Vec::new());
        for (i, port) in [p1, p2].into_iter().enumerate() {
            let data = dir.path(&format!("redis-{i}"));
            std::fs::create_dir_all(&data).unwrap();
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                data.to_str().unwrap(),
                // Tests put a data server to sleep (`DEBUG SLEEP`) to hold replication back.
                "--enable-debug-command",
                "local",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            data_args.push(args.clone());
            data_dirs.push(data.clone());
            if i == 1 {
                args.extend(["--replicaof".into(), "127.0.0.1".into(), p1.to_string()]);
            }
            procs.push(launch(&args, "eady to accept connections"));
        }
        until("the replica in sync", || {
            cli(p2, &["INFO", "replication"]).contains("master_link_status:up")
        });
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.write(
                &format!("sentinel-{i}.conf"),
                &format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {p1} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 5000\n",
                    dir.0.display()
                ),
            );
            procs.push(launch(
                &[conf.to_str().unwrap().to_owned(), "--sentinel".into()],
                "+monitor master",
            ));
            sentinel_ports.push(port);
        }
        // A forced failover needs a replica the sentinel knows.
        for &s in &sentinel_ports {
            until("the sentinels know the replica", || {
                cli(s, &["SENTINEL", "REPLICAS", MASTER]).contains(&p2.to_string())
            });
        }
        Sentinels {
            data_ports: [p1, p2],
            sentinel_ports,
            procs,
            data_args,
            data_dirs,
        }
    }

    /// The `sentinels = […]` and `sentinel_master` lines of a node's `[cluster]`.
    pub fn config(&self) -> String {
        let list: Vec<String> = self
            .sentinel_ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!(
            "sentinels = [{}]\nsentinel_master = \"{MASTER}\"\n",
            list.join(", ")
        )
    }

    /// The port of the primary as the first sentinel says.
    pub fn primary_port(&self) -> u16 {
        let out = cli(
            self.sentinel_ports[0],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
        );
        out.lines()
            .nth(1)
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Starts a failover (`SENTINEL FAILOVER`): the replica becomes the primary.
    pub fn fail_over(&self) {
        let out = cli(self.sentinel_ports[0], &["SENTINEL", "FAILOVER", MASTER]);
        assert_eq!(out, "OK", "SENTINEL FAILOVER");
    }

    /// Waits until every sentinel names `port` as the primary and it acts as one.
    pub fn wait_primary(&self, port: u16) {
        for &s in &self.sentinel_ports {
            until("the sentinels follow the failover", || {
                cli(s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                    .ends_with(&port.to_string())
            });
        }
        until("the new primary acts as one", || {
            cli(port, &["ROLE"]).starts_with("master")
        });
    }

    /// Restarts the primary as a primary again: with its data (`SHUTDOWN SAVE`, loaded at the
    /// start) or empty (`SHUTDOWN NOSAVE`, and any earlier dump removed). Usually quick enough
    /// (under the sentinels' `down-after-milliseconds`) that they see a reboot, not a failure,
    /// and the replica resynchronises from it; on a loaded machine they may fail over meanwhile
    /// and make the restarted server the replica. Returns its port.
    pub fn restart_primary(&mut self, keep_data: bool) -> u16 {
        let port = self.primary_port();
        let i = self
            .data_ports
            .iter()
            .position(|&p| p == port)
            .expect("the primary is one of ours");
        let how = if keep_data { "SAVE" } else { "NOSAVE" };
        cli(port, &["SHUTDOWN", how]);
        let _ = self.procs[i].wait();
        let dump = self.data_dirs[i].join("dump.rdb");
        if !keep_data {
            let _ = std::fs::remove_file(&dump);
        }
        self.procs[i] = launch(&self.data_args[i], "eady to accept connections");
        port
    }
}
