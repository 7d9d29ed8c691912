//! Cmds, buffers and files between users on different nodes of a cluster (SPEC §4.1, §3.5):
//! the real library on both ends, a `redis-server` and three nodes, data straight from node to
//! node over their links — and a node killed mid-transfer.

mod common;

use common::cluster::Cluster;
use common::user::{pattern, User, WAIT};
use common::*;
use crvm::core::{Client, Event, LoginParams};
use crvm_proto::error::code;

const TIMEOUT_MS: u64 = 1000;

/// A library client on `s`; a node killed under these tests must end its sessions, not have
/// them resumed.
fn login(s: &Server, name: &str, dir: &std::path::Path) -> User {
    User::login_with(s, name, dir, &[("reconnect", "off")])
}

#[test]
fn cmds_buffers_and_files_cross_nodes_intact_and_in_order() {
    let c = Cluster::start(3, TIMEOUT_MS, "");
    let down = c.dir.path("bob-downloads");
    std::fs::create_dir(&down).unwrap();
    let alice = login(c.node(0), "alice", &c.dir.0);
    let bob = login(c.node(1), "bob", &down);

    // Many cmds: every one arrives once, in order, and each sender hears of each.
    let n = 3000;
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(
            alice
                .c
                .send_cmd("bob", format!("cmd {i}").as_bytes())
                .unwrap(),
        );
    }
    for i in 0..n {
        match bob.next() {
            Event::NotifyCmdData { from, data } => {
                assert_eq!(from, "alice");
                assert_eq!(data, format!("cmd {i}").as_bytes());
            }
            other => panic!("{other:?}"),
        }
    }
    let mut done = std::collections::HashSet::new();
    while done.len() < n {
        match alice.next() {
            Event::CmdSent { task_id, result } => {
                assert_eq!(result, Ok(()));
                assert!(done.insert(task_id));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(tasks.iter().all(|t| done.contains(t)));

    // A buffer and a file, with progress, the other way round too.
    let buf = pattern(3 * 1024 * 1024 + 17);
    let t = alice.c.send_buffer("bob", buf.clone()).unwrap();
    match bob.next() {
        Event::NotifyBufferData { from, data } => {
            assert_eq!(from, "alice");
            assert!(data == buf, "buffer differs");
        }
        other => panic!("{other:?}"),
    }
    let evs = alice.until(|e| matches!(e, Event::BufferSent { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::BufferSent {
            task_id: t,
            result: Ok(())
        })
    );
    assert!(evs.iter().any(|e| matches!(e, Event::SendProgress { .. })));
    let src = c.dir.path("f.bin");
    let data = pattern(20 * 1024 * 1024 + 5);
    std::fs::write(&src, &data).unwrap();
    let t = alice.c.send_file("bob", src.to_str().unwrap()).unwrap();
    let path = match bob.next() {
        Event::NotifyFileData { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert!(std::fs::read(&path).unwrap() == data, "file differs");
    let evs = alice.until(|e| matches!(e, Event::FileSent { .. }));
    assert!(
        matches!(evs.last(), Some(Event::FileSent { result: Ok(()), task_id, .. }) if *task_id == t)
    );
    let back = pattern(100_000);
    bob.c.send_buffer("alice", back.clone()).unwrap();
    assert!(matches!(alice.next(), Event::NotifyBufferData { data, .. } if data == back));

    // A cancel of a stream in flight between nodes.
    let big = c.dir.path("big.bin");
    std::fs::write(&big, pattern(64 * 1024 * 1024)).unwrap();
    let t = alice.c.send_file("bob", big.to_str().unwrap()).unwrap();
    assert!(matches!(alice.next(), Event::SendProgress { .. }));
    alice.c.cancel_send(&t).unwrap();
    let evs = alice.until(|e| matches!(e, Event::CancelSend { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::CancelSend {
            task_id: t.clone(),
            result: Ok(())
        })
    );
    assert!(
        matches!(bob.until(|e| matches!(e, Event::NotifyCancelSend { .. })).last(),
        Some(Event::NotifyCancelSend { task_id }) if *task_id == t)
    );
    // To nobody, through the cluster: refused as on one node.
    let t = alice.c.send_cmd("nobody", b"x").unwrap();
    assert_eq!(
        alice.next(),
        Event::CmdSent {
            task_id: t,
            result: Err(code(1102))
        }
    );
}

#[test]
fn a_node_killed_mid_transfer_fails_its_transfers_once() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "");
    let down = c.dir.path("down");
    std::fs::create_dir(&down).unwrap();
    let alice = login(c.node(0), "alice", &c.dir.0);
    let bob = login(c.node(1), "bob", &down);
    let carol = login(c.node(2), "carol", &down);
    let big = c.dir.path("big.bin");
    std::fs::write(&big, pattern(256 * 1024 * 1024)).unwrap();

    // The receiver's node dies: the sender's transfer ends with 1102, once.
    let t = alice.c.send_file("bob", big.to_str().unwrap()).unwrap();
    assert!(matches!(alice.next(), Event::SendProgress { .. }));
    c.nodes[1].signal("-KILL");
    let _ = c.nodes[1].wait();
    let evs = alice.until(|e| matches!(e, Event::FileSent { .. }));
    assert!(
        matches!(evs.last(), Some(Event::FileSent { task_id, result: Err(e), .. }) if *task_id == t && *e == code(1102)),
        "{evs:?}"
    );
    drop(bob);

    // The sender's node dies: the receiver is told the transfer was cancelled, once — by
    // whichever comes first of the broken link and the node's reaping (which shows carol
    // offline to alice; both have happened once that push arrives).
    alice.c.start_user_status_notify("").unwrap();
    assert!(matches!(
        alice.next(),
        Event::StartUserStatusNotify { result: Ok(()), .. }
    ));
    let t = carol.c.send_file("alice", big.to_str().unwrap()).unwrap();
    assert!(matches!(carol.next(), Event::SendProgress { .. }));
    c.nodes[2].signal("-KILL");
    let _ = c.nodes[2].wait();
    let evs = alice.until(|e| {
        matches!(e, Event::NotifyUserStatus { status, .. } if status.user_id == "carol" && status.user_status == 0)
    });
    let cancels: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, Event::NotifyCancelSend { .. }))
        .collect();
    assert_eq!(
        cancels,
        [&Event::NotifyCancelSend { task_id: t }],
        "{evs:?}"
    );
    drop(carol);
    let _ = alice.c.logout();
}

#[test]
fn a_session_resumes_at_its_node_s_advertised_address_not_through_the_balancer() {
    let c = Cluster::start(2, TIMEOUT_MS, "");
    // A "load balancer" in front of node 1, through which alice logs in.
    let lb = crvm_faultproxy::Proxy::start(c.node(0).addr).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded::<Event>();
    let alice = Client::new(
        &lb.addr().to_string(),
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    alice
        .login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: "alice",
            ..Default::default()
        })
        .unwrap();
    let next = || rx.recv_timeout(WAIT).expect("an event");
    assert!(matches!(next(), Event::Login { result: Ok(_), .. }));
    let bob = login(c.node(1), "bob", &c.dir.0);
    // The balancer goes away (or would send her to another node), cutting alice's link.
    drop(lb);
    assert!(matches!(next(), Event::LineReconnecting { .. }));
    assert!(matches!(next(), Event::LineResumed { .. }));
    // The same session, across nodes, both ways.
    let t = alice.send_cmd("bob", b"after").unwrap();
    assert!(matches!(bob.next(), Event::NotifyCmdData { data, .. } if data == b"after"));
    assert_eq!(
        next(),
        Event::CmdSent {
            task_id: t,
            result: Ok(())
        }
    );
    bob.c.send_cmd("alice", b"back").unwrap();
    assert!(matches!(next(), Event::NotifyCmdData { data, .. } if data == b"back"));
}
