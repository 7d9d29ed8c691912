//! The chaos test's infrastructure: a Redis primary, its replica and three Sentinels, three
//! nodes on them, a fault proxy in front of each node (its `advertise` address, where clients
//! resume), and the faults of the schedule carried out on all of it.
//!
//! A node keeps its port across restarts (the kernel gave it at the first start): the proxies
//! before it, and the sessions' resume address, stay valid, as a load balancer's would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crvm_faultproxy::Proxy;
use crvm_testkit::sentinel::{cli, free_port, Sentinels, MASTER};
use crvm_testkit::{Server, TmpDir, TENANTS};

use super::schedule::Fault;

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct Done {
    pub fault: Fault,
    pub start: Instant,
    pub end: Instant,
}

/// What the traffic needs to know of the rig, shared with the fault thread.
pub struct Shared {
    /// Nodes that take logins now (not killed, frozen or stopping).
    pub up: Mutex<Vec<bool>>,
    /// The proxy before each node, per client connection: (node, proxy).
    pub client_proxies: Mutex<Vec<(usize, Arc<Proxy>)>>,
    /// The faults so far, and the one under way (its end is not known yet).
    pub done: Mutex<Vec<Done>>,
    pub current: Mutex<Option<(Fault, Instant)>>,
    /// Set by the traffic if it gives up: the schedule stops.
    pub stop: AtomicBool,
    /// Set once the schedule is over and every node runs.
    pub over: AtomicBool,
    /// How many users the traffic has (u0, u1, ...).
    pub users: usize,
    /// Where drains moved sessions: (when Redis was read, user, node that holds it now).
    pub moves: Mutex<Vec<(Instant, usize, usize)>>,
}

impl Shared {
    pub fn new(nodes: usize, users: usize) -> Shared {
        Shared {
            up: Mutex::new(vec![true; nodes]),
            client_proxies: Mutex::new(Vec::new()),
            done: Mutex::new(Vec::new()),
            current: Mutex::new(None),
            stop: AtomicBool::new(false),
            over: AtomicBool::new(false),
            users,
            moves: Mutex::new(Vec::new()),
        }
    }

    fn set_up(&self, node: usize, up: bool) {
        self.up.lock().unwrap()[node] = up;
    }
}

pub struct Node {
    pub port: u16,
    pub server: Option<Server>,
    /// The proxy before the node, its `advertise` address.
    pub front: Proxy,
    config: PathBuf,
    data: PathBuf,
}

pub struct Rig {
    pub dir: TmpDir,
    pub ha: Sentinels,
    pub nodes: Vec<Node>,
}

impl Rig {
    pub fn start(n: usize, timeout_ms: u64) -> Rig {
        let dir = TmpDir::new();
        let ha = Sentinels::start(&dir);
        let mut rig = Rig {
            dir,
            ha,
            nodes: Vec::new(),
        };
        for i in 0..n {
            let port = free_port();
            let upstream: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let front = Proxy::start(upstream).unwrap();
            // Pings every second: a client finds a dead link quickly. Sessions held 10 s for
            // their resume.
            let text = format!(
                "heartbeat_ms = 1000\nresume_window_s = 10\n\
                 pub_meet_url_base = \"https://meet.test/m/\"\n\
                 [cluster]\n{}node_id = \"n{}\"\nadvertise = \"{}\"\nnode_timeout_ms = {timeout_ms}\n{TENANTS}",
                rig.ha.config(),
                i + 1,
                front.addr()
            );
            let config = rig.dir.write(&format!("n{}.toml", i + 1), &text);
            let data = rig.dir.path(&format!("data-n{}", i + 1));
            rig.nodes.push(Node {
                port,
                server: None,
                front,
                config,
                data,
            });
            rig.spawn(i);
        }
        rig
    }

    /// The address a client logs in at to reach node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.nodes[i].port).parse().unwrap()
    }

    /// Starts node `i` on its port; back once it has joined (it announces itself only then).
    fn spawn(&mut self, i: usize) {
        let n = &self.nodes[i];
        let listen = format!("127.0.0.1:{}", n.port);
        let args = [
            "--listen",
            &listen,
            "--config",
            n.config.to_str().unwrap(),
            "--data-dir",
            n.data.to_str().unwrap(),
        ];
        let s = Server::spawn(&self.dir, &args, n.config.clone());
        self.nodes[i].server = Some(s);
    }

    fn server(&self, i: usize) -> &Server {
        self.nodes[i].server.as_ref().expect("node running")
    }

    /// Stops node `i` with `sig` and waits for it to exit.
    fn stop(&mut self, i: usize, sig: i32) {
        let mut s = self.nodes[i].server.take().expect("node running");
        s.proc.signal(sig);
        s.wait();
    }

    /// After a drain: which node each user's session lives on now (Redis's `node` of the user),
    /// so that the ledger judges a later fault of that node by where the session is, not by
    /// where its client logged in.
    fn read_moves(&self, sh: &Shared) {
        let primary = self.ha.primary_port();
        let at = Instant::now();
        let mut moves = sh.moves.lock().unwrap();
        for s in 0..sh.users {
            let node = cli(primary, &["HGET", &format!("crvm:u:4:demo:u{s}"), "node"]);
            let n = node
                .trim()
                .strip_prefix('n')
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(n) = n.filter(|&n| n >= 1 && n <= self.nodes.len()) {
                moves.push((at, s, n - 1));
            }
        }
    }

    /// The logs of every node, for a failure's report.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.nodes
            .iter()
            .filter_map(|n| n.server.as_ref().map(|s| s.log.clone()))
            .collect()
    }

    /// The data server that is not on `port`.
    fn other_port(&self, port: u16) -> u16 {
        if port == self.ha.data_ports[0] {
            self.ha.data_ports[1]
        } else {
            self.ha.data_ports[0]
        }
    }

    /// Waits (bounded) until the data server the sentinels do not name as the primary is a
    /// replica of the one they do, in sync with it. Which one is the primary is read each time:
    /// a primary restart that outlasts the sentinels' `down-after-milliseconds` on a loaded
    /// machine makes them fail over meanwhile (the restarted server then comes back as the
    /// replica), and waiting on the old replica, now the primary, would wait for ever.
    fn replica_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let primary = self.ha.primary_port();
            let replica = self.other_port(primary);
            let info = cli(replica, &["INFO", "replication"]);
            if info.contains("master_link_status:up")
                && info.contains(&format!("master_port:{primary}"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {replica} not in sync with the primary {primary} within 60 s:\n{info}"
            );
            // Replication has no other signal.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Carries out `f` (returns once it is over and the rig is whole again).
    pub fn inflict(&mut self, f: Fault, sh: &Shared) {
        match f {
            Fault::Kill { node, down_ms } => {
                sh.set_up(node, false);
                self.stop(node, libc::SIGKILL);
                std::thread::sleep(Duration::from_millis(down_ms));
                self.spawn(node);
                sh.set_up(node, true);
            }
            Fault::Freeze { node, ms } => {
                sh.set_up(node, false);
                let s = self.server(node);
                s.proc.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(ms));
                s.proc.signal(libc::SIGCONT);
                sh.set_up(node, true);
            }
            Fault::RedisDrops { times } => {
                for k in 0..times {
                    if k > 0 {
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    let port = self.ha.primary_port();
                    cli(port, &["CLIENT", "KILL", "TYPE", "normal"]);
                }
            }
            Fault::RedisRestart { keep_data } => {
                let port = self.ha.restart_primary(keep_data);
                // The replica back in sync before the next fault (a failover needs it).
                self.replica_synced();
                if self.ha.primary_port() != port {
                    eprintln!("chaos:   (the sentinels failed over during the restart)");
                }
            }
            Fault::Failover => {
                let before = self.ha.primary_port();
                let other = self.other_port(before);
                // A sentinel may refuse or abandon a forced failover (its replica just
                // resynchronised after a restart): asked again until the replica is promoted.
                let deadline = Instant::now() + Duration::from_secs(60);
                while self.ha.primary_port() != other {
                    assert!(Instant::now() < deadline, "no failover within 60 s");
                    self.replica_synced();
                    cli(self.ha.sentinel_ports[0], &["SENTINEL", "FAILOVER", MASTER]);
                    let asked = Instant::now();
                    while self.ha.primary_port() != other
                        && asked.elapsed() < Duration::from_secs(10)
                    {
                        // Sentinel has no other signal.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                self.ha.wait_primary(other);
                self.replica_synced();
            }
            Fault::LinksCut => {
                let primary = self.ha.primary_port();
                for i in 0..self.nodes.len() {
                    let link = cli(primary, &["GET", &format!("crvm:link:n{}", i + 1)]);
                    let Some(port) = link
                        .split_whitespace()
                        .next()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                        .map(|a| a.port())
                    else {
                        continue;
                    };
                    // Both ends of every connection to the node's link port are reset.
                    let filter = format!("( sport = :{port} or dport = :{port} )");
                    let ok = Command::new("ss")
                        .args(["-K", "-t", "state", "established"])
                        .args(filter.split(' '))
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false);
                    assert!(ok, "ss -K (needs root and CONFIG_INET_DIAG_DESTROY)");
                }
            }
            Fault::Blip { node } => {
                self.nodes[node].front.reset();
                for (n, p) in sh.client_proxies.lock().unwrap().iter() {
                    if *n == node {
                        p.reset();
                    }
                }
            }
            Fault::Rolling => {
                for node in 0..self.nodes.len() {
                    sh.set_up(node, false);
                    self.stop(node, libc::SIGTERM);
                    self.read_moves(sh);
                    self.spawn(node);
                    sh.set_up(node, true);
                }
            }
        }
    }

    /// Runs the schedule from `t0` (faults one at a time, each from its planned start or when
    /// the one before is over), recording each in `sh`.
    pub fn run(&mut self, plan: &[super::schedule::Planned], t0: Instant, sh: &Shared) {
        for p in plan {
            let at = t0 + Duration::from_millis(p.at_ms);
            while Instant::now() < at {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                // The schedule's clock, not a synchronisation.
                std::thread::sleep(Duration::from_millis(20).min(at - Instant::now()));
            }
            let start = Instant::now();
            *sh.current.lock().unwrap() = Some((p.fault, start));
            println!(
                "chaos: {:>7.1} s  {}",
                start.duration_since(t0).as_secs_f64(),
                p.fault
            );
            self.inflict(p.fault, sh);
            let end = Instant::now();
            *sh.current.lock().unwrap() = None;
            sh.done.lock().unwrap().push(Done {
                fault: p.fault,
                start,
                end,
            });
        }
    }
}
