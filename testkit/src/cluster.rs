//! A cluster on loopback: one `redis-server` on a Unix socket in a directory of its own (no TCP
//! port at all) and `crvm-server` nodes sharing it, all killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Proc, Server, TmpDir, TENANTS};

/// A `redis-server` of the caller's own.
pub struct Redis {
    proc: Option<Proc>,
    pub sock: PathBuf,
    dir: PathBuf,
}

impl Redis {
    /// Starts Redis in `dir` and waits until it accepts connections.
    pub fn start(dir: &TmpDir) -> Redis {
        Redis::launch(&dir.0).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Redis::start`], for callers that report errors rather than panic (the benches).
    pub fn launch(dir: &Path) -> Result<Redis, String> {
        let mut r = Redis {
            proc: None,
            sock: dir.join("redis.sock"),
            dir: dir.to_owned(),
        };
        r.relaunch()?;
        Ok(r)
    }

    /// Starts the server again (after a shutdown): empty, or with what
    /// [`Redis::shutdown_saving`] saved.
    pub fn restart(&mut self) {
        self.relaunch().unwrap_or_else(|e| panic!("{e}"))
    }

    fn relaunch(&mut self) -> Result<(), String> {
        assert!(self.proc.is_none(), "redis is running");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&self.sock)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn(cmd, "redis-server")
            .map_err(|e| format!("{e} (install it: scripts/ensure-redis.sh)"))?;
        let mut out = BufReader::new(proc.stdout.take().expect("piped"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("redis-server exited before it was ready".into());
            }
            if line
                .to_ascii_lowercase()
                .contains("ready to accept connections")
            {
                break;
            }
        }
        // Keep reading its log, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        self.proc = Some(proc);
        Ok(())
    }

    /// Its process ID (while it runs).
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("redis is running").pid()
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Runs a `redis-cli` command and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops Redis with its data saved (`SHUTDOWN SAVE`, to `dump.rdb` in its directory), so
    /// that [`Redis::restart`] comes back with it.
    pub fn shutdown_saving(&mut self) {
        let mut proc = self.proc.take().expect("redis is running");
        self.cli(&["SHUTDOWN", "SAVE"]);
        let _ = proc.wait();
    }

    /// Stops Redis at once, losing everything (`SHUTDOWN NOSAVE`).
    pub fn shutdown(&mut self) {
        let mut proc = self.proc.take().expect("redis is running");
        self.cli(&["SHUTDOWN", "NOSAVE"]);
        let _ = proc.wait();
    }
}

/// Config text of a node `name` of the cluster on `redis`.
pub fn node_config(redis: &Redis, name: &str, node_timeout_ms: u64, top: &str) -> String {
    format!(
        "pub_meet_url_base = \"https://meet.test/m/\"\n{top}\n\
         [cluster]\nredis = \"{}\"\nnode_id = \"{name}\"\nnode_timeout_ms = {node_timeout_ms}\n{TENANTS}",
        redis.url()
    )
}

/// Redis and `n` nodes named n1, n2, …, each joined.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub redis: Redis,
    pub dir: TmpDir,
    timeout_ms: u64,
    top: String,
}

impl Cluster {
    pub fn start(n: usize, node_timeout_ms: u64, top: &str) -> Cluster {
        let dir = TmpDir::new();
        let redis = Redis::start(&dir);
        let mut c = Cluster {
            nodes: Vec::new(),
            redis,
            dir,
            timeout_ms: node_timeout_ms,
            top: top.to_owned(),
        };
        for i in 1..=n {
            let node = c.spawn_node(&format!("n{i}"));
            c.nodes.push(node);
        }
        c
    }

    /// Starts node `name` and waits until it has joined.
    pub fn spawn_node(&self, name: &str) -> Server {
        let text = node_config(&self.redis, name, self.timeout_ms, &self.top);
        let config = self.dir.write(&format!("{name}.toml"), &text);
        let data = self.dir.path(&format!("data-{name}"));
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ];
        let s = Server::spawn(&self.dir, &args, config.clone());
        assert!(
            s.log_says("joined"),
            "node {name} did not join:\n{}",
            s.log_text()
        );
        s
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// Replaces node `i` with a fresh process of the same name.
    pub fn restart_node(&mut self, i: usize) {
        let name = format!("n{}", i + 1);
        let _ = self.nodes[i].proc.kill();
        let _ = self.nodes[i].proc.wait();
        self.nodes[i] = self.spawn_node(&name);
    }
}
