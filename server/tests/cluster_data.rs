//! Data between users on different nodes of a cluster where only a cluster can fail (docs/API.md
//! §4.1, §3.5): a node killed mid-transfer, a session resumed at its node's own address. The
//! real library on both ends, a `redis-server` and three nodes. (Cmds, buffers and files that
//! merely cross nodes are `e2e_data.rs`'s tests, run on a cluster too.)

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
