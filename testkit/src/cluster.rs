//! A cluster on loopback for the tests: one `redis-server` on a Unix socket in the test's
//! directory (no TCP port at all) and `crvm-server` nodes sharing it, all killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{Server, TmpDir, TENANTS};

/// A `redis-server` of the test's own.
pub struct Redis {
    child: Option<Child>,
    pub sock: PathBuf,
    dir: PathBuf,
}

impl Redis {
    /// Starts Redis in `dir` and waits until it accepts connections.
    pub fn start(dir: &TmpDir) -> Redis {
        let mut r = Redis {
            child: None,
            sock: dir.path("redis.sock"),
            dir: dir.0.clone(),
        };
        r.restart();
        r
    }

    /// Starts the server again (after a shutdown): empty, or with what
    /// [`Redis::shutdown_saving`] saved.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is running");
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.sock)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it: apt-get install redis-server)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "redis-server exited before it was ready");
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
        self.child = Some(child);
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
        let mut child = self.child.take().expect("redis is running");
        self.cli(&["SHUTDOWN", "SAVE"]);
        let _ = child.wait();
    }

    /// Stops Redis at once, losing everything (`SHUTDOWN NOSAVE`).
    pub fn shutdown(&mut self) {
        let mut child = self.child.take().expect("redis is running");
        self.cli(&["SHUTDOWN", "NOSAVE"]);
        let _ = child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
        self.nodes[i] = self.spawn_node(&name);
    }
}
