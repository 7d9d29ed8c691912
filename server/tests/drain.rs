//! Drain and rolling restarts (docs/CLUSTER.md "Drain"): a cluster node asked to stop — SIGTERM,
//! or the admin API's `POST /v1/drain` — hands its sessions to the other nodes and exits 0; its
//! users are not logged out, their call goes on, every cmd in flight is delivered once and in
//! order and every request is answered once. A rolling restart of all three nodes under
//! continuous cmds loses and doubles nothing. The real library on every end, a `redis-server`
//! and three nodes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::user::User;
use common::*;
use crvm::core::Event;

const TIMEOUT_MS: u64 = 2000;
/// Longest wait for everything a phase expects.
const SETTLE: Duration = Duration::from_secs(60);

/// One user of a test: its library client, the cmds it sent (task IDs, by receiver), what
/// it received (payloads, by sender), and its other events.
struct Party {
    name: String,
    u: User,
    sent: HashMap<String, String>,
    done: HashMap<String, Result<(), crvm_proto::Code>>,
    got: HashMap<String, Vec<Vec<u8>>>,
    other: Vec<Event>,
}

impl Party {
    fn login(c: &Cluster, node: usize, name: &str) -> Party {
        let u = User::login_at(c.node(node).addr, name, &c.dir.0, &[]);
        Party {
            name: name.to_owned(),
            u,
            sent: HashMap::new(),
            done: HashMap::new(),
            got: HashMap::new(),
            other: Vec::new(),
        }
    }

    /// Sends cmd `i` to `to` (payload `name>to#i`).
    fn cmd(&mut self, to: &str, i: usize) {
        let data = format!("{}>{to}#{i}", self.name).into_bytes();
        let t = self.u.c.send_cmd(to, data).unwrap();
        self.sent.insert(t, to.to_owned());
    }

    /// Takes the events that have arrived, waiting at most `wait` for the first.
    fn pump(&mut self, wait: Duration) {
        let mut first = true;
        loop {
            let e = if first {
                self.u.rx.recv_timeout(wait).ok()
            } else {
                self.u.rx.try_recv().ok()
            };
            first = false;
            let Some(e) = e else { return };
            match e {
                Event::CmdSent { task_id, result } => {
                    assert!(
                        self.done.insert(task_id.clone(), result).is_none(),
                        "{}: cmd {task_id} ended twice",
                        self.name
                    );
                }
                Event::NotifyCmdData { from, data } => self.got.entry(from).or_default().push(data),
                Event::LineOff { code } => panic!("{}: line_off({})", self.name, code.get()),
                e => self.other.push(e),
            }
        }
    }

    /// What it has seen, for a failure's message.
    fn describe(&self) -> String {
        let open: Vec<(&String, &String)> = self
            .sent
            .iter()
            .filter(|(t, _)| !self.done.contains_key(*t))
            .collect();
        let got: Vec<(&String, usize)> = self.got.iter().map(|(k, v)| (k, v.len())).collect();
        format!(
            "{}: {} cmds sent, not ended: {open:?}; received {got:?}; other events {:?}",
            self.name,
            self.sent.len(),
            self.other
        )
    }

    /// Whether every cmd it sent ended.
    fn all_done(&self) -> bool {
        self.sent.keys().all(|t| self.done.contains_key(t))
    }

    /// Checks that every cmd it sent ended well, and that it received exactly `n` cmds from
    /// each of `from`, in order.
    fn check(&self, from: &[(&str, usize)]) {
        for (t, to) in &self.sent {
            assert_eq!(
                self.done.get(t),
                Some(&Ok(())),
                "{}: cmd {t} to {to}",
                self.name
            );
        }
        for (sender, n) in from {
            let want: Vec<Vec<u8>> = (0..*n)
                .map(|i| format!("{sender}>{}#{i}", self.name).into_bytes())
                .collect();
            let got = self.got.get(*sender).cloned().unwrap_or_default();
            assert_eq!(
                got.iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<Vec<_>>(),
                want.iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<Vec<_>>(),
                "{}: cmds from {sender}",
                self.name
            );
        }
    }
}

/// Pumps every party until `done` holds for all of them (bounded by [`SETTLE`]).
fn settle(parties: &mut [&mut Party], done: impl Fn(&Party) -> bool) {
    let deadline = Instant::now() + SETTLE;
    loop {
        for p in parties.iter_mut() {
            p.pump(Duration::from_millis(20));
        }
        if parties.iter().all(|p| done(p)) {
            return;
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = parties
                .iter()
                .filter(|p| !done(p))
                .map(|p| p.describe())
                .collect();
            panic!("still waiting for {waiting:#?}");
        }
    }
}

/// A call from `caller` to `callee`, accepted: its ID.
fn connect(caller: &mut Party, callee: &mut Party) -> String {
    let call_id = caller.u.c.call(&callee.name, "", "", "c").unwrap();
    assert!(matches!(
        caller.u.next(),
        Event::Call { result: Ok(()), .. }
    ));
    assert!(matches!(callee.u.next(), Event::NotifyCallIn { .. }));
    callee.u.c.accept_call(&call_id, "", "", "a").unwrap();
    assert!(matches!(
        callee.u.next(),
        Event::AcceptCall { result: Ok(()), .. }
    ));
    assert!(matches!(caller.u.next(), Event::NotifyCallAccepted { .. }));
    call_id
}

/// Users on node `victim` (alice, carol) and on the others (bob, dave), alice in a call with
/// bob, cmds flowing both ways; `stop` drains the victim (and waits for it to exit 0) while
/// half the cmds are in flight. Afterwards nobody was logged out, every cmd arrived once and
/// in order, alice's request made during the drain was answered, and the call hangs up.
fn drain_under_traffic(c: &mut Cluster, victim: usize, stop: impl FnOnce(&mut Cluster)) {
    const K: usize = 30;
    let mut alice = Party::login(c, victim, "alice");
    let mut carol = Party::login(c, victim, "carol");
    let mut bob = Party::login(c, (victim + 1) % 3, "bob");
    let mut dave = Party::login(c, (victim + 2) % 3, "dave");
    let call_id = connect(&mut alice, &mut bob);
    let send = |alice: &mut Party, bob: &mut Party, carol: &mut Party, dave: &mut Party, i| {
        alice.cmd("bob", i);
        alice.cmd("carol", i);
        bob.cmd("alice", i);
        carol.cmd("alice", i);
        dave.cmd("carol", i);
    };
    for i in 0..K / 2 {
        send(&mut alice, &mut bob, &mut carol, &mut dave, i);
    }
    stop(c);
    alice.u.c.set_dnd_status(1, "during").unwrap();
    for i in K / 2..K {
        send(&mut alice, &mut bob, &mut carol, &mut dave, i);
    }
    let received = |p: &Party, from: &[&str]| {
        from.iter()
            .all(|s| p.got.get(*s).map_or(0, |v| v.len()) >= K)
    };
    settle(&mut [&mut alice, &mut bob, &mut carol, &mut dave], |p| {
        p.all_done()
            && match p.name.as_str() {
                "alice" => {
                    received(p, &["bob", "carol"])
                        && p.other
                            .iter()
                            .any(|e| matches!(e, Event::SetDndStatus { .. }))
                }
                "bob" => received(p, &["alice"]),
                "carol" => received(p, &["alice", "dave"]),
                _ => true,
            }
    });
    alice.check(&[("bob", K), ("carol", K)]);
    bob.check(&[("alice", K)]);
    carol.check(&[("alice", K), ("dave", K)]);
    dave.check(&[]);
    let dnd: Vec<&Event> = alice
        .other
        .iter()
        .filter(|e| matches!(e, Event::SetDndStatus { .. }))
        .collect();
    assert!(
        matches!(dnd.as_slice(), [Event::SetDndStatus { result: Ok(()), .. }]),
        "{dnd:?}"
    );
    // The call went on: bob hangs up, alice hears it once.
    bob.u.c.hungup_call(&call_id, "bye", "h").unwrap();
    settle(&mut [&mut alice, &mut bob], |p| match p.name.as_str() {
        "alice" => p
            .other
            .iter()
            .any(|e| matches!(e, Event::NotifyCallHungup { .. })),
        _ => p
            .other
            .iter()
            .any(|e| matches!(e, Event::HangupCall { .. })),
    });
    assert!(
        bob.other
            .iter()
            .any(|e| matches!(e, Event::HangupCall { result: Ok(()), .. })),
        "{:?}",
        bob.other
    );
    let hungup = alice
        .other
        .iter()
        .filter(|e| matches!(e, Event::NotifyCallHungup { .. }))
        .count();
    assert_eq!(hungup, 1, "{:?}", alice.other);
}

/// Stops node `i` with `sig` and waits for it to exit 0.
fn stopped(c: &mut Cluster, i: usize) {
    c.nodes[i].signal("-TERM");
    let status = c.nodes[i].wait();
    assert!(status.success(), "{status:?}\n{}", c.nodes[i].log_tail(40));
}

#[test]
fn sigterm_moves_a_node_s_sessions_with_their_call_and_cmds_in_flight() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    drain_under_traffic(&mut c, 0, |c| stopped(c, 0));
    assert!(c.nodes[0]
        .log_text()
        .contains("drain: 2 of 2 session(s) moved"));
}

#[test]
fn the_admin_drain_moves_a_node_s_sessions_and_the_node_exits() {
    let top = format!(
        "monitor_listen = \"127.0.0.1:0\"\nadmin_token = \"{}\"\n",
        http::TOKEN
    );
    let mut c = Cluster::start(3, TIMEOUT_MS, &top);
    let mon = http::monitor_addr(&mut c.nodes[1]);
    drain_under_traffic(&mut c, 1, |c| {
        let (status, body) = http::http("POST", &mon, "/v1/drain", Some(http::TOKEN));
        assert_eq!(status, 202, "{body}");
        let status = c.nodes[1].wait();
        assert!(status.success(), "{status:?}");
    });
    assert!(c.nodes[1]
        .log_text()
        .contains("drain: 2 of 2 session(s) moved"));
}

/// The next event of `u` that `want` accepts, skipping the link's own (`line_reconnecting`,
/// `line_resumed`: a session moving shows them); any other event, or `line_off`, fails.
fn call_event(u: &User, who: &str, want: impl Fn(&Event) -> bool) -> Event {
    loop {
        match u.next_within(SETTLE) {
            e if want(&e) => return e,
            Event::LineReconnecting { .. } | Event::LineResumed { .. } => {}
            e => panic!("{who}: {e:?}"),
        }
    }
}

/// One call set up from `erin` to `frank` and rejected: how long from `call` to `frank`
/// hearing it ring.
fn call_setup(erin: &User, frank: &User, n: usize) -> Duration {
    let t0 = Instant::now();
    let call_id = erin.c.call("frank", "", "", &format!("m{n}")).unwrap();
    call_event(frank, "frank", |e| matches!(e, Event::NotifyCallIn { .. }));
    let setup = t0.elapsed();
    call_event(erin, "erin", |e| {
        matches!(e, Event::Call { result: Ok(()), .. })
    });
    frank.c.reject_call(&call_id, "", "r").unwrap();
    call_event(frank, "frank", |e| {
        matches!(e, Event::RejectCall { result: Ok(()), .. })
    });
    call_event(erin, "erin", |e| {
        matches!(e, Event::NotifyCallRejected { .. })
    });
    setup
}

/// The `q` quantile (0..=1) of `v`, in ms.
fn quantile_ms(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

#[test]
fn a_rolling_restart_of_every_node_under_traffic_loses_and_doubles_nothing() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    let names = ["alice", "bob", "carol", "dave"];
    let mut parties: Vec<Party> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Party::login(&c, i % 3, n))
        .collect();
    let (a, b) = parties.split_at_mut(1);
    let call_id = connect(&mut a[0], &mut b[0]);
    let erin = User::login_at(c.node(1).addr, "erin", &c.dir.0, &[]);
    let frank = User::login_at(c.node(2).addr, "frank", &c.dir.0, &[]);
    let mut idle: Vec<Duration> = (0..20).map(|n| call_setup(&erin, &frank, n)).collect();

    // Each round every user sends one cmd to the next; a call is set up between two rounds.
    let mut rounds = 0;
    let mut round = |parties: &mut Vec<Party>| {
        for i in 0..parties.len() {
            let to = names[(i + 1) % names.len()];
            parties[i].cmd(to, rounds);
        }
        for p in parties.iter_mut() {
            p.pump(Duration::ZERO);
        }
        rounds += 1;
    };
    let mut rolling = Vec::new();
    for i in 0..3 {
        let name = format!("n{}", i + 1);
        c.nodes[i].signal("-TERM");
        let deadline = Instant::now() + SETTLE;
        loop {
            round(&mut parties);
            rolling.push(call_setup(&erin, &frank, 100 + rolling.len()));
            if let Some(status) = c.nodes[i].proc.try_wait().unwrap() {
                assert!(status.success(), "{status:?}\n{}", c.nodes[i].log_tail(40));
                break;
            }
            assert!(Instant::now() < deadline, "node {name} did not stop");
        }
        assert!(
            c.nodes[i].log_text().contains("drain:"),
            "{}",
            c.nodes[i].log_tail(40)
        );
        c.nodes[i] = c.spawn_node(&name);
        for _ in 0..3 {
            round(&mut parties);
            rolling.push(call_setup(&erin, &frank, 100 + rolling.len()));
        }
    }
    let n = rounds;
    {
        let mut refs: Vec<&mut Party> = parties.iter_mut().collect();
        settle(&mut refs, |p| {
            let i = names.iter().position(|x| *x == p.name).unwrap();
            let from = names[(i + names.len() - 1) % names.len()];
            p.all_done() && p.got.get(from).map_or(0, |v| v.len()) >= n
        });
    }
    for (i, p) in parties.iter().enumerate() {
        let from = names[(i + names.len() - 1) % names.len()];
        p.check(&[(from, n)]);
    }
    // Nobody's call ended: alice's still hangs up, once.
    let (a, b) = parties.split_at_mut(1);
    b[0].u.c.hungup_call(&call_id, "bye", "h").unwrap();
    settle(&mut [&mut a[0]], |p| {
        p.other
            .iter()
            .any(|e| matches!(e, Event::NotifyCallHungup { .. }))
    });
    for p in parties.iter() {
        assert!(
            !p.other.iter().any(|e| matches!(
                e,
                Event::NotifyCallHungup { .. } | Event::NotifyCallRejected { .. }
            ) && p.name != "alice"),
            "{}: {:?}",
            p.name,
            p.other
        );
    }
    let uptime = std::process::Command::new("uptime").output().unwrap();
    println!(
        "call setup, idle: p50 {:.1} ms p99 {:.1} ms ({} calls); during a rolling restart: p50 {:.1} ms p99 {:.1} ms ({} calls); {n} cmd rounds; uptime: {}",
        quantile_ms(&mut idle, 0.5),
        quantile_ms(&mut idle, 0.99),
        idle.len(),
        quantile_ms(&mut rolling, 0.5),
        quantile_ms(&mut rolling, 0.99),
        rolling.len(),
        String::from_utf8_lossy(&uptime.stdout).trim()
    );
}

/// Transfers in flight while their sender's or receiver's node drains end once each way:
/// delivered (the sender's result 0, the receiver has the file), or ended with 1102 for the
/// sender and as cancelled for the receiver. alice (on the drained node) sends to bob and to
/// carol, on the two other nodes: wherever her session moves, the relay of one of her streams
/// is on the third node, neither hers nor her receiver's, and her chunks go on through her new
/// node's link to it.
#[test]
fn transfers_in_flight_during_a_drain_complete_or_end_once_with_1102() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    let login = |i: usize, name: &str| {
        let down = c.dir.path(name);
        std::fs::create_dir(&down).unwrap();
        User::login_at(c.node(i).addr, name, &down, &[])
    };
    let (alice, bob, carol) = (login(0, "alice"), login(1, "bob"), login(2, "carol"));
    let big = c.dir.path("big.bin");
    std::fs::write(&big, common::user::pattern(64 * 1024 * 1024)).unwrap();
    let big = big.to_str().unwrap();
    let to_bob = alice.c.send_file("bob", big).unwrap();
    let to_carol = alice.c.send_file("carol", big).unwrap();
    let from_bob = bob.c.send_file("alice", big).unwrap();
    // Every stream under way before the drain.
    let started = |u: &User, tasks: &[&str]| {
        let mut waiting: Vec<&str> = tasks.to_vec();
        while !waiting.is_empty() {
            if let Event::SendProgress { task_id, .. } = u.next() {
                waiting.retain(|t| *t != task_id);
            }
        }
    };
    started(&alice, &[&to_bob, &to_carol]);
    started(&bob, &[&from_bob]);
    stopped(&mut c, 0);
    // Each side: each of its own transfers' results once, and each file sent to it, or its
    // cancel, once.
    let settle = |u: &User, who: &str, results: usize, incoming: usize| {
        let (mut done, mut came, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        let deadline = Instant::now() + SETTLE;
        while done.len() < results || came.len() < incoming {
            let left = deadline.saturating_duration_since(Instant::now());
            // On failure, what it saw last (its progress, its line) says where it stopped.
            let Ok(e) = u.rx.recv_timeout(left) else {
                panic!("{who}: {done:?} {came:?}; last seen: {seen:?}");
            };
            match e {
                Event::FileSent {
                    task_id, result, ..
                } => done.push((task_id, result)),
                e @ (Event::NotifyFileData { .. } | Event::NotifyCancelSend { .. }) => came.push(e),
                e @ (Event::SendProgress { .. }
                | Event::LineReconnecting { .. }
                | Event::LineResumed { .. }) => {
                    seen.push(e);
                    if seen.len() > 6 {
                        seen.remove(0);
                    }
                }
                e => panic!("{who}: {e:?}"),
            }
        }
        (done, came)
    };
    let (alice_done, alice_in) = settle(&alice, "alice", 2, 1);
    let (bob_done, bob_in) = settle(&bob, "bob", 1, 1);
    let (_, carol_in) = settle(&carol, "carol", 0, 1);
    let result_of = |done: &[(String, Result<(), crvm_proto::Code>)], task: &str| {
        let r: Vec<_> = done
            .iter()
            .filter(|(t, _)| t == task)
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(r.len(), 1, "{task}: {done:?}");
        r[0]
    };
    let ended = |r: Result<(), crvm_proto::Code>, incoming: &[Event]| match (r, incoming) {
        (Ok(()), [Event::NotifyFileData { .. }]) => {}
        (Err(e), [Event::NotifyCancelSend { .. }]) if e.get() == 1102 => {}
        other => panic!("{other:?}"),
    };
    let (a_b, a_c) = (
        result_of(&alice_done, &to_bob),
        result_of(&alice_done, &to_carol),
    );
    ended(a_b, &bob_in);
    ended(a_c, &carol_in);
    let b_a = result_of(&bob_done, &from_bob);
    ended(b_a, &alice_in);
    println!("from the drained node: to bob {a_b:?}, to carol {a_c:?}; to it: {b_a:?}");
    // Nothing more: one more round trip each way, then nothing else for any of them.
    for (to, u) in [("bob", &bob), ("carol", &carol)] {
        alice.c.send_cmd(to, b"end".to_vec()).unwrap();
        assert!(matches!(
            call_event(u, to, |e| matches!(e, Event::NotifyCmdData { .. })),
            Event::NotifyCmdData { .. }
        ));
        assert!(matches!(
            call_event(&alice, "alice", |e| matches!(e, Event::CmdSent { .. })),
            Event::CmdSent { result: Ok(()), .. }
        ));
    }
}

/// A node that is frozen (SIGSTOP) while another drains is asked once, then passed over: the
/// sessions go to the node that answers, and the drain ends in bounded time.
#[test]
fn a_drain_passes_over_a_frozen_node() {
    let mut c = Cluster::start(3, 5000, "");
    let mut alice = Party::login(&c, 0, "alice");
    let mut bob = Party::login(&c, 2, "bob");
    c.nodes[1].signal("-STOP");
    alice.cmd("bob", 0);
    stopped(&mut c, 0);
    alice.cmd("bob", 1);
    settle(&mut [&mut alice, &mut bob], |p| {
        p.all_done() && (p.name != "bob" || p.got.get("alice").map_or(0, |v| v.len()) >= 2)
    });
    alice.check(&[]);
    bob.check(&[("alice", 2)]);
    c.nodes[1].signal("-CONT");
    assert!(c.nodes[0]
        .log_text()
        .contains("drain: 1 of 1 session(s) moved"));
}

/// Which node (0-based) holds `user`'s session, by Redis; `None` once it has none.
fn home(c: &Cluster, user: &str) -> Option<usize> {
    let node = c
        .redis
        .cli(&["HGET", &format!("crvm:u:4:demo:{user}"), "node"]);
    let n = node.trim().strip_prefix('n')?.parse::<usize>().ok()?;
    Some(n - 1)
}

/// Sessions drains moved live on wherever they are when a node they passed through is lost:
/// users of node 0 are drained (round-robin to nodes 1 and 2), node 0 comes back, node 1 is
/// drained (its share goes to nodes 0 and 2) and comes back, then `lose` freezes or kills node
/// 1 past the node timeout. Every moved user stays logged in, and they reach one another (cmds,
/// a call) while node 1 is gone and after it is back (`revive`), and never get `line_off`
/// (their [`Party::pump`] would fail).
fn moved_sessions_outlive(lose: &str, revive: impl FnOnce(&mut Cluster)) {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    let names = ["m0", "m1", "m2", "m3"];
    let mut live: Vec<Party> = names.iter().map(|n| Party::login(&c, 0, n)).collect();
    live.push(Party::login(&c, 2, "dave"));
    stopped(&mut c, 0);
    c.restart_node(0);
    let homes: Vec<Option<usize>> = names.iter().map(|n| home(&c, n)).collect();
    assert!(
        homes.contains(&Some(1)) && homes.contains(&Some(2)),
        "{homes:?}"
    );
    // Each moved user resumed at its new node before that one drains in turn.
    let resumes = |p: &Party| {
        let resumed = |e: &&Event| matches!(e, Event::LineResumed { .. });
        p.other.iter().filter(resumed).count()
    };
    // A moved user's home after the first drain (None: not one of them).
    let home_of = |p: &Party| {
        let moved = names.iter().zip(&homes).find(|(m, _)| **m == p.name);
        moved.map(|(_, h)| *h)
    };
    let resumed = |p: &Party| resumes(p) >= home_of(p).map_or(0, |_| 1);
    settle(&mut live.iter_mut().collect::<Vec<_>>(), resumed);
    stopped(&mut c, 1);
    c.restart_node(1);
    let twice =
        |p: &Party| resumes(p) >= home_of(p).map_or(0, |h| if h == Some(1) { 2 } else { 1 });
    settle(&mut live.iter_mut().collect::<Vec<_>>(), twice);
    for n in names {
        assert!(matches!(home(&c, n), Some(0 | 2)), "{n}: {:?}", home(&c, n));
    }
    // Bob at node 1: his session leaving Redis tells that node 1 was declared dead.
    let _bob = Party::login(&c, 1, "bob");
    // The lost node: its end of things is not watched (its users go, as they may).
    match lose {
        "freeze" => c.nodes[1].signal("-STOP"),
        _ => {
            let _ = c.nodes[1].proc.kill();
            let _ = c.nodes[1].proc.wait();
        }
    }
    // Node 1 is declared dead once bob's session is gone from Redis.
    let deadline = Instant::now() + SETTLE;
    while home(&c, "bob").is_some() {
        assert!(Instant::now() < deadline, "node 1 never declared dead");
        for p in live.iter_mut() {
            p.pump(Duration::from_millis(20));
        }
    }
    for n in names {
        assert!(matches!(home(&c, n), Some(0 | 2)), "{n} lost with node 1");
    }
    let round = |live: &mut Vec<Party>, i: usize| {
        let all: Vec<String> = live.iter().map(|p| p.name.clone()).collect();
        for p in live.iter_mut() {
            let me = p.name.clone();
            for to in all.iter().filter(|t| **t != me) {
                p.cmd(to, i);
            }
        }
        let mut refs: Vec<&mut Party> = live.iter_mut().collect();
        settle(&mut refs, |p| {
            p.all_done()
                && all
                    .iter()
                    .filter(|s| **s != p.name)
                    .all(|s| p.got.get(s).map_or(0, |v| v.len()) > i)
        });
        for p in live.iter() {
            let from: Vec<(&str, usize)> = all
                .iter()
                .filter(|s| **s != p.name)
                .map(|s| (s.as_str(), i + 1))
                .collect();
            p.check(&from);
        }
        // A call between two of them, set up and hung up.
        let (a, b) = live.split_at_mut(1);
        let call_id = connect(&mut a[0], &mut b[b.len() - 1]);
        a[0].u.c.hungup_call(&call_id, "bye", "h").unwrap();
        call_event(&a[0].u, &a[0].name, |e| {
            matches!(e, Event::HangupCall { result: Ok(()), .. })
        });
        let callee = &b[b.len() - 1];
        call_event(&callee.u, &callee.name, |e| {
            matches!(e, Event::NotifyCallHungup { .. })
        });
    };
    round(&mut live, 0);
    revive(&mut c);
    round(&mut live, 1);
}

#[test]
fn moved_sessions_outlive_a_node_that_freezes_past_the_timeout() {
    moved_sessions_outlive("freeze", |c| {
        c.nodes[1].signal("-CONT");
        // It finds itself declared dead, ends its sessions and joins again.
        assert!(
            c.nodes[1].log_says("joining again"),
            "{}",
            c.nodes[1].log_tail(40)
        );
    });
}

#[test]
fn moved_sessions_outlive_a_node_that_is_killed() {
    moved_sessions_outlive("kill", |c| c.restart_node(1));
}

/// A client that picks a node just as it starts to drain is not refused: its login succeeds
/// there and its session moves with the others. The drain is kept from ending by a raw client
/// that does not come by for its moved session until the late login is in.
#[test]
fn a_login_reaching_a_draining_node_succeeds_and_its_session_moves() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    let mut raw = c.node(1).connect();
    let (session, secret) = login_resumable(&mut raw, "slow");
    c.nodes[1].signal("-TERM");
    assert!(
        c.nodes[1].log_says("drain: session of conn"),
        "{}",
        c.nodes[1].log_tail(40)
    );
    // The drain now waits for the raw client to ask where its session went.
    let late = Party::login(&c, 1, "late");
    let deadline = Instant::now() + SETTLE;
    while !matches!(home(&c, "late"), Some(0 | 2)) {
        assert!(
            Instant::now() < deadline,
            "late never moved: {:?}",
            home(&c, "late")
        );
        late.u.rx.recv_timeout(Duration::from_millis(20)).ok();
    }
    let mut r = c.node(1).connect();
    r.hello();
    r.send(&crvm_proto::ClientMsg::Resume {
        app_id: "demo".into(),
        session,
        secret,
        last: 0,
    });
    assert!(matches!(r.msg(), crvm_proto::ServerMsg::Moved { .. }));
    drop(raw);
    stopped(&mut c, 1);
    assert!(
        c.nodes[1]
            .log_text()
            .contains("drain: 2 of 2 session(s) moved"),
        "{}",
        c.nodes[1].log_tail(40)
    );
    // The late user lives on at its new node: a cmd from dave reaches it.
    let mut dave = Party::login(&c, 0, "dave");
    let mut late = late;
    dave.cmd("late", 0);
    settle(&mut [&mut dave, &mut late], |p| {
        p.all_done() && (p.name != "late" || p.got.contains_key("dave"))
    });
    late.check(&[("dave", 1)]);
}
