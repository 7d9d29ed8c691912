//! (i) Across the nodes of a cluster (docs/API.md §4.1) vs on one node, side by side in one run: a
//! redis-server and two nodes; one pair of peers on node 1 (carol → dave), one across the two
//! nodes (alice on node 1 → bob on node 2). The same measurements as (a)–(c), alternating.

use std::path::Path;
use std::process::{Command, Stdio};

use crvm_testkit::Redis;
use std::time::{Duration, Instant};

use crate::anchors::Nats;
use crate::fanout;
use crate::procs::{start_server, Peer, Server};
use crate::{
    ab, latency_pair, latency_rows, mb_per_s, natsmsg, samples_of, transfer_patience, Cfg, Res, MIB,
};

/// Node `name` of the cluster on `redis`, once it has joined.
fn start_node(cfg: &Cfg, dir: &Path, redis: &str, name: &str, max_file: u64) -> Res<Server> {
    let dir = dir.join(name);
    // As (d)'s server: room for idle subscribers and for the changer's bursts.
    let top = format!(
        "heartbeat_ms = 3600000\nmax_requests_per_s = 100000000\n\
         [cluster]\nredis = \"{redis}\"\nnode_id = \"{name}\"\n"
    );
    let server = start_server(&cfg.server, &dir, max_file, &top)?;
    if !server.log_says_within("joined", Duration::from_secs(30)) {
        return Err(format!("node {name} did not join: {}", server.log_tail(20)).into());
    }
    Ok(server)
}

/// A sender and its receiver.
struct Pair {
    tx: Peer,
    rx: Peer,
    rx_name: &'static str,
}

impl Pair {
    fn setups(&mut self, n: u64, warmup: u64) -> Res<Vec<u64>> {
        self.tx
            .send(&format!("setups {} {}", self.rx_name, warmup + n))?;
        let line = self.tx.expect("setups", Duration::from_secs(1800))?;
        Ok(samples_of(&line).split_off(warmup as usize))
    }

    fn pings(&mut self, n: u64, warmup: u64, size: usize) -> Res<Vec<u64>> {
        self.tx
            .send(&format!("pings {} {} {size} 1", self.rx_name, warmup + n))?;
        let line = self.tx.expect("pings", Duration::from_secs(600))?;
        Ok(samples_of(&line).split_off(warmup as usize))
    }

    /// Sends `src` (`size` bytes); the time until the receiver has it and the sender its result.
    fn transfer(&mut self, src: &Path, size: u64) -> Res<Duration> {
        let t0 = Instant::now();
        self.tx
            .send(&format!("file {} {}", self.rx_name, src.display()))?;
        self.tx.expect("file_started", Duration::from_secs(30))?;
        let got = self.rx.expect("got_file ", transfer_patience(size))?;
        let code = self.tx.expect("file_rlst ", transfer_patience(size))?;
        let took = t0.elapsed();
        if code != "0" {
            return Err(format!("send_file_rlst {code}").into());
        }
        let len = std::fs::metadata(&got)?.len();
        std::fs::remove_file(&got)?;
        if len != size {
            return Err(format!("received {len} bytes of {size}").into());
        }
        Ok(took)
    }
}

pub fn section_i(
    cfg: &Cfg,
    tmp: &Path,
    file: &Path,
    file_size: u64,
    rt: &tokio::runtime::Runtime,
) -> Res<()> {
    let dir = tmp.join("cluster");
    std::fs::create_dir_all(&dir)?;
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        if cfg.quick {
            println!("(i) across cluster nodes: skipped (redis-server is not installed)");
            return Ok(());
        }
        return Err("(i) needs redis-server (apt-get install redis-server)".into());
    }
    println!(
        "(i) across the nodes of a cluster (a redis-server, two nodes) vs on one node of it: \
         alice on node 1 → bob on node 2, carol → dave both on node 1; {} alternating rounds",
        cfg.reps
    );
    // A redis-server on a Unix socket in `dir`, nothing on disk.
    let redis = Redis::launch(&dir)?;
    let url = redis.url();
    let max_file = (4 * 1024 * MIB).max(file_size + 1);
    let n1 = start_node(cfg, &dir, &url, "n1", max_file)?;
    let n2 = start_node(cfg, &dir, &url, "n2", max_file)?;
    let down = |who: &str| -> Res<std::path::PathBuf> {
        let d = dir.join(format!("down-{who}"));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    let mut cross = Pair {
        tx: Peer::start(&n1.addr.to_string(), "alice", &down("alice")?)?,
        rx: Peer::start(&n2.addr.to_string(), "bob", &down("bob")?)?,
        rx_name: "bob",
    };
    let mut local = Pair {
        tx: Peer::start(&n1.addr.to_string(), "carol", &down("carol")?)?,
        rx: Peer::start(&n1.addr.to_string(), "dave", &down("dave")?)?,
        rx_name: "dave",
    };

    // Call setup.
    for p in [&mut cross, &mut local] {
        p.rx.send("autoaccept 1")?;
        p.rx.expect("autoaccept", Duration::from_secs(30))?;
    }
    let per_round = cfg.setups.div_ceil(cfg.reps as u64).div_ceil(4).max(5);
    let warmup = (per_round / 10).clamp(5, 200);
    let (mut c, mut l) = (Vec::new(), Vec::new());
    for round in 0..cfg.reps {
        let (a, b) = ab(
            round,
            || cross.setups(per_round, warmup),
            || local.setups(per_round, warmup),
        )?;
        c.extend(a);
        l.extend(b);
    }
    println!(
        "    call setup, {} per side (targets: cross-node / one node <= 1.5):",
        per_round * cfg.reps as u64
    );
    latency_rows("setup", &c, "one node", &l, (1.5, 1.5));

    // Cmd round trips.
    let per_round = cfg.pings.div_ceil(cfg.reps as u64).max(5);
    let warmup = (per_round / 10).clamp(5, 200);
    println!(
        "    cmd round trip (send_cmd → send_cmd_rlst), {} per size and side (targets <= 1.5):",
        per_round * cfg.reps as u64
    );
    for size in [100usize, 4096] {
        let (mut c, mut l) = (Vec::new(), Vec::new());
        for round in 0..cfg.reps {
            let (a, b) = ab(
                round,
                || cross.pings(per_round, warmup, size),
                || local.pings(per_round, warmup, size),
            )?;
            c.extend(a);
            l.extend(b);
        }
        latency_rows(&format!("{size} B"), &c, "one node", &l, (1.5, 1.5));
    }

    // The anchor: what crossing servers costs NATS, its requester on server 1 of a two-server
    // NATS cluster and its responder on server 2, vs both on server 1.
    let nats = nats_cluster(rt)?;
    if let Some(n) = &nats {
        for size in [100usize, 4096] {
            let (mut c, mut l) = (Vec::new(), Vec::new());
            for round in 0..cfg.reps {
                let (a, b) = ab(
                    round,
                    || n.requests("far.ack", warmup + per_round, size, warmup),
                    || n.requests("near.ack", warmup + per_round, size, warmup),
                )?;
                c.extend(a);
                l.extend(b);
            }
            latency_pair(
                &format!("{size} B"),
                "NATS across its cluster",
                &c,
                "one NATS server",
                &l,
                None,
            );
        }
    }

    // Acked cmd throughput: SENDERS peers on node 1 to the receiver across nodes (bob) vs on
    // node 1 (dave), each sender as fast as the API accepts.
    let down_s = down("senders")?;
    let mut senders: Vec<Peer> = (0..crate::SENDERS)
        .map(|i| Peer::start(&n1.addr.to_string(), &format!("s{i}"), &down_s))
        .collect::<Res<_>>()?;
    println!(
        "    acked cmd throughput, {} senders on node 1 → 1 receiver (as (c)), median msgs/s over {} rounds (target: cross-node / one node >= 0.7):",
        crate::SENDERS,
        cfg.reps
    );
    for size in [100usize, 4096] {
        let n = cfg.per_sender.min(crate::PENDING_BUDGET / size as u64);
        let mut burst = |to: &str| -> Res<f64> {
            let t0 = Instant::now();
            for p in senders.iter_mut() {
                p.send(&format!("pings {to} {n} {size} {n}"))?;
            }
            for p in senders.iter_mut() {
                p.expect("pings", Duration::from_secs(600))?;
            }
            Ok((crate::SENDERS as u64 * n) as f64 / t0.elapsed().as_secs_f64())
        };
        let (mut c, mut l) = (Vec::new(), Vec::new());
        for round in 0..cfg.reps {
            if round % 2 == 0 {
                c.push(burst("bob")?);
                l.push(burst("dave")?);
            } else {
                l.push(burst("dave")?);
                c.push(burst("bob")?);
            }
        }
        let (c, l) = (crate::median(c), crate::median(l));
        println!(
            "      {size:>5} B × {n}: across nodes {c:.0}/s, one node {l:.0}/s: ratio {:.2}",
            c / l
        );
        if let Some(nats) = &nats {
            let (mut c, mut l) = (Vec::new(), Vec::new());
            for round in 0..cfg.reps {
                let (a, b) = ab(
                    round,
                    || nats.burst("far.ack", n, size),
                    || nats.burst("near.ack", n, size),
                )?;
                c.push(a);
                l.push(b);
            }
            let (c, l) = (crate::median(c), crate::median(l));
            println!(
                "      {size:>5} B × {n}: NATS across its cluster {c:.0}/s, one NATS server {l:.0}/s: ratio {:.2} (the anchor)",
                c / l
            );
        }
    }
    drop(senders);
    drop(nats);

    // Bulk relay: one untimed transfer each first (fresh memory in a VM costs at first touch).
    cross.transfer(file, file_size)?;
    local.transfer(file, file_size)?;
    let (mut c, mut l) = (Vec::new(), Vec::new());
    for round in 0..cfg.reps {
        let (a, b) = ab(
            round,
            || cross.transfer(file, file_size),
            || local.transfer(file, file_size),
        )?;
        c.push(mb_per_s(file_size, a));
        l.push(mb_per_s(file_size, b));
    }
    let (cm, lm) = (crate::median(c), crate::median(l));
    println!(
        "    bulk relay, a {} MiB file: across nodes {cm:.0} MB/s, one node {lm:.0} MB/s (median of {}): ratio {:.2} (target >= 0.8)",
        file_size / MIB,
        cfg.reps,
        cm / lm
    );
    drop((cross, local));

    // Presence fan-out with the subscribers on three nodes vs Redis PUBLISH (the same Redis)
    // to as many subscribers.
    let n3 = start_node(cfg, &dir, &url, "n3", max_file)?;
    let nodes = [
        n1.addr.to_string(),
        n2.addr.to_string(),
        n3.addr.to_string(),
    ];
    let n = *cfg.fanout.iter().max().unwrap_or(&1000);
    // Ten times (d)'s rounds: a round of 200 changes lasts a third of a second, too short to
    // measure apart from the machine's noise (ratios from 0.6 to 1.6 over runs).
    let k = (10 * cfg.fan_deliveries / n as u64).max(10);
    let (c, r) = rt.block_on(async {
        let mut crvm = fanout::Setup::start(fanout::Target::CrvmNodes(&nodes), n).await?;
        let mut redis = fanout::Setup::start(fanout::Target::Redis(&url), n).await?;
        crvm.rate((k / 10).max(1)).await?;
        redis.rate((k / 10).max(1)).await?;
        let (mut c, mut r) = (Vec::new(), Vec::new());
        for round in 0..cfg.reps {
            if round % 2 == 0 {
                c.push(crvm.rate(k).await?);
                r.push(redis.rate(k).await?);
            } else {
                r.push(redis.rate(k).await?);
                c.push(crvm.rate(k).await?);
            }
        }
        Res::Ok((crate::median(c), crate::median(r)))
    })?;
    println!(
        "    presence fan-out, {n} subscribers spread over 3 nodes, {k} changes back to back: \
         crvm {c:.0} changes/s, Redis PUBLISH to {n} subscribers {r:.0}/s (median of {}): \
         ratio {:.2} (target >= 1.0)",
        cfg.reps,
        c / r
    );
    drop((n1, n2, n3));
    Ok(())
}

/// A two-server NATS cluster with a responder on each server (answering on `near.*` on server
/// 1 and `far.*` on server 2) and a requester on server 1. `None` without nats-server.
struct NatsPair<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: async_nats::Client,
    url: String,
    _echoes: [Peer; 2],
    _servers: Vec<Nats>,
}

fn nats_cluster(rt: &tokio::runtime::Runtime) -> Res<Option<NatsPair<'_>>> {
    if Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("    (the NATS cluster anchor is skipped: nats-server is not installed)");
        return Ok(None);
    }
    let servers = Nats::start_cluster(2)?;
    let near = Peer::role(&["__nats_echo", &servers[0].url, "near"], "nats-echo")?;
    let far = Peer::role(&["__nats_echo", &servers[1].url, "far"], "nats-echo")?;
    let url = servers[0].url.clone();
    let client = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        natsmsg::until_answered(&client, "near.ack").await?;
        natsmsg::until_answered(&client, "far.ack").await?;
        Res::Ok(client)
    })?;
    Ok(Some(NatsPair {
        rt,
        client,
        url,
        _echoes: [near, far],
        _servers: servers,
    }))
}

impl NatsPair<'_> {
    /// `n` requests of `size` bytes on `subject` one at a time, the first `warmup` left out.
    fn requests(&self, subject: &str, n: u64, size: usize, warmup: u64) -> Res<Vec<u64>> {
        let v = self
            .rt
            .block_on(natsmsg::requests(&self.client, subject, n, size))?;
        Ok(v[warmup as usize..].to_vec())
    }

    /// Messages per second of [`crate::SENDERS`] requesters sending `n` each, acked.
    fn burst(&self, subject: &str, n: u64, size: usize) -> Res<f64> {
        let d = self.rt.block_on(natsmsg::pipelined_requests(
            &self.url,
            subject,
            crate::SENDERS,
            n,
            size,
        ))?;
        Ok((crate::SENDERS as u64 * n) as f64 / d.as_secs_f64())
    }
}
