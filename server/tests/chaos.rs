//! The chaos test (issue 22): a Redis primary, its replica and three Sentinels, three nodes on
//! them, and 30 clients of the library, each behind a fault proxy of its own, making calls,
//! cmds, DND changes, presence subscriptions and small files continuously while a seeded random
//! schedule of faults runs: nodes killed with -9 and restarted, frozen (SIGSTOP) shorter and
//! longer than `node_timeout_ms`, the nodes' Redis connections dropped, Redis restarted with
//! and without its data, a Sentinel failover, the node links cut, the clients' network blips
//! (they resume), and a rolling restart (SIGTERM each node in turn; `CRVM_CHAOS_ROLLING=0`
//! leaves it out). Then the ledger (chaos/ledger.rs) is checked, once everything has settled: every
//! request got exactly one result, every cmd acknowledged 0 was delivered once and in order,
//! every call ended once for each party, every user can be called (nobody stuck busy), every
//! subscriber's view equals the truth, and the only losses are the sessions of a node killed
//! with -9 or frozen past the node timeout.
//!
//! `#[ignore]`d: `.ci/run` runs it. `CRVM_CHAOS_SECS` (default 120) is how long faults are
//! scheduled; `CRVM_CHAOS_SEED` replays a schedule (the seed is printed, with the schedule).

mod common;

#[path = "chaos/events.rs"]
mod events;
#[path = "chaos/ledger.rs"]
mod ledger;
#[path = "chaos/rig.rs"]
mod rig;
#[path = "chaos/schedule.rs"]
mod schedule;
#[path = "chaos/traffic.rs"]
mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{Allow, Ledger};
use rig::{Rig, Shared};
use traffic::Traffic;

/// Node timeout of the cluster (a long freeze is 1.5 to 2 times it).
const TIMEOUT_MS: u64 = 3000;
const NODES: usize = 3;
const USERS: usize = 30;

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// Handles events until `done` holds or `within` passes; whether it held.
fn until(t: &mut Traffic, within: Duration, done: impl Fn(&Traffic) -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done(t) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        t.pump(Duration::from_millis(10));
    }
}

/// Why the users have not settled yet (empty once they have).
fn unsettled(t: &Traffic) -> Vec<String> {
    let mut why = Vec::new();
    if t.sh.up.lock().unwrap().iter().any(|u| !u) {
        why.push("a node is down".into());
    }
    for (s, slot) in t.slots.iter().enumerate() {
        match slot.insts.last() {
            Some(i) if i.alive() => {
                if !i.pending.is_empty() {
                    let keys: Vec<&String> = i.pending.keys().collect();
                    why.push(format!("u{s} waits for {keys:?}"));
                }
                if let Some(c) = &i.call {
                    let how = t.calls.get(c).map(|r| r.how.join("\n    "));
                    why.push(format!(
                        "u{s} in call {c}:\n    {}",
                        how.unwrap_or_default()
                    ));
                }
            }
            _ => why.push(format!("u{s} not logged in")),
        }
    }
    if !t.later.is_empty() {
        why.push(format!("{} answers or hang-ups to come", t.later.len()));
    }
    why
}

/// The traffic, then the checks: the failures found.
fn drive(t: &mut Traffic) -> Vec<String> {
    let mut extra = Vec::new();
    while !t.sh.over.load(Ordering::SeqCst) {
        t.pump(Duration::from_millis(10));
        let now = Instant::now();
        for s in 0..t.slots.len() {
            if t.slots[s].next <= now {
                t.act(s);
            }
        }
    }
    println!("chaos: faults over; settling");
    if !until(t, Duration::from_secs(90), |t| unsettled(t).is_empty()) {
        extra.push(format!("did not settle: {}", unsettled(t).join("\n  ")));
        let done = t.sh.done.lock().unwrap().clone();
        let allow = allow(&done);
        let mut bad = ledger::check(t, &allow);
        bad.extend(extra);
        return bad;
    }
    // Nobody stuck busy: DND off, then every user is called (and rejects).
    for s in 0..t.slots.len() {
        if t.cur(s).unwrap().dnd != 0 {
            t.set_dnd(s, 0);
        }
    }
    until(t, Duration::from_secs(30), |t| unsettled(t).is_empty());
    for s in 0..t.slots.len() {
        let caller = (s + 1) % t.slots.len();
        t.call(caller, s, true);
        let id = t.cur(caller).unwrap().call.clone().unwrap();
        let ended = until(t, Duration::from_secs(20), |t| {
            let c = &t.calls[&id];
            c.caller_ends > 0 && (c.callee_gen.is_none() || c.callee_ends > 0)
        });
        if !ended || t.calls[&id].callee_gen.is_none() {
            extra.push(format!(
                "u{s} cannot be called (stuck busy?): {:?}",
                t.calls[&id].how
            ));
        }
    }
    until(t, Duration::from_secs(30), |t| unsettled(t).is_empty());
    // Every subscriber's view equals the truth, which is every user online, free, DND off.
    let subs: Vec<usize> = (0..t.slots.len())
        .filter(|&s| t.cur(s).unwrap().subscribed)
        .collect();
    for &s in &subs {
        t.get_statuses(s);
    }
    if !until(t, Duration::from_secs(30), |t| unsettled(t).is_empty()) {
        extra.push(format!("no final statuses: {:?}", unsettled(t)));
    }
    let expect: BTreeMap<String, (i32, i32)> = (0..t.slots.len())
        .map(|s| (format!("u{s}"), (1, 0)))
        .collect();
    for (s, g, list) in &t.ledger.truths {
        let truth: BTreeMap<String, (i32, i32)> = list
            .iter()
            .map(|u| (u.user_id.clone(), (u.user_status, u.dnd_type)))
            .collect();
        if truth != expect {
            extra.push(format!("u{s}#{g}: the statuses are {truth:?}"));
        }
        for (u, &(st, dnd)) in &t.slots[*s].insts[*g].view {
            let want = truth.get(u).copied().unwrap_or((0, 0));
            if st != want.0 || (st != 0 && dnd != want.1) {
                extra.push(format!(
                    "u{s}#{g}: its view of {u} is {:?}, the truth {want:?}",
                    (st, dnd)
                ));
            }
        }
    }
    if subs.is_empty() {
        extra.push("no subscriber left".into());
    }
    let done = t.sh.done.lock().unwrap().clone();
    let allow = allow(&done);
    let mut bad = ledger::check(t, &allow);
    bad.extend(extra);
    bad
}

/// What the faults allow: sessions of a lost node are told within their resume window (10 s)
/// after the node timeout.
fn allow(done: &[rig::Done]) -> Allow<'_> {
    Allow {
        done,
        timeout_ms: TIMEOUT_MS,
        grace: Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(15),
    }
}

/// Stops the schedule if the traffic thread ends early (a panic included).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
#[ignore]
fn chaos_under_traffic_loses_only_what_the_spec_allows() {
    let secs = env_u64("CRVM_CHAOS_SECS").unwrap_or(120);
    let seed = env_u64("CRVM_CHAOS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 & 0xffff_ffff
    });
    let rolling = std::env::var("CRVM_CHAOS_ROLLING").map_or(true, |v| v != "0");
    let replay = format!(
        "CRVM_CHAOS_SEED={seed} CRVM_CHAOS_SECS={secs}{} \
         cargo test -p crvm-server --test chaos -- --ignored --nocapture",
        if rolling { "" } else { " CRVM_CHAOS_ROLLING=0" }
    );
    println!("chaos: seed {seed} (replay: {replay})");
    let plan = schedule::plan(seed, secs, NODES, TIMEOUT_MS, rolling);
    println!("chaos: the schedule ({} faults):", plan.len());
    for p in &plan {
        println!("chaos:   at {:>6} ms  {}", p.at_ms, p.fault);
    }
    let mut rig = Rig::start(NODES, TIMEOUT_MS);
    let sh = Arc::new(Shared::new(NODES, USERS));
    let addrs = (0..NODES).map(|i| rig.addr(i)).collect();
    let dir = rig.dir.path("users");
    let sh2 = Arc::clone(&sh);
    let traffic = std::thread::spawn(move || {
        let _stop = StopOnDrop(Arc::clone(&sh2));
        let mut t = Traffic::new(USERS, addrs, sh2, &dir, seed, Ledger::default(), TIMEOUT_MS);
        drive(&mut t)
    });
    // The faults run on this thread: the processes it restarts live as long as it does.
    let t0 = Instant::now();
    rig.run(&plan, t0, &sh);
    sh.over.store(true, Ordering::SeqCst);
    let bad = traffic.join();
    let done = sh.done.lock().unwrap().clone();
    let mut by_kind: BTreeMap<&str, u32> = BTreeMap::new();
    for d in &done {
        *by_kind.entry(d.fault.kind(TIMEOUT_MS)).or_default() += 1;
    }
    println!(
        "chaos: {} faults in {:.0} s: {by_kind:?}",
        done.len(),
        t0.elapsed().as_secs_f64()
    );
    let bad = match bad {
        Ok(b) => b,
        Err(_) => vec!["the traffic thread panicked".into()],
    };
    if !bad.is_empty() {
        for b in &bad {
            println!("chaos: FAILED {b}");
        }
        for log in rig.logs() {
            let keep = rig.dir.0.parent().unwrap().join(format!(
                "chaos-{seed}-{}",
                log.file_name().unwrap().to_string_lossy()
            ));
            let _ = std::fs::copy(&log, &keep);
            println!("chaos: node log kept at {}", keep.display());
        }
        panic!("{} failures; seed {seed}; replay with: {replay}", bad.len());
    }
    println!("chaos: passed (seed {seed})");
}
