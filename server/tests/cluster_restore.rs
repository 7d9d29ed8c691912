//! A node that rejoins after it was declared dead (frozen past `node_timeout_ms`) has no
//! sessions to restore: the others must not wait for it to restore any (found by the chaos
//! test, seed 1: every call to an offline user then waited the node timeout and got 8).

mod common;

use common::cluster::Cluster;
use crvm_proto::ServerMsg;

const TIMEOUT_MS: u64 = 1000;

#[test]
fn a_node_back_from_a_long_freeze_does_not_hold_up_lookups() {
    let c = Cluster::start(2, TIMEOUT_MS, "heartbeat_ms = 60000");
    let mut alice = c.node(0).login("demo", "alice");
    assert_eq!(alice.code(crvm_proto::Op::StartStatusNotify), 0);
    let mut bob = c.node(1).login("demo", "bob");
    c.nodes[1].signal("-STOP");
    // Declared dead by n1 (bob goes offline), then woken: n2 closes bob's session and joins
    // again with none.
    loop {
        match alice.msg() {
            ServerMsg::UserStatus(s) if s.user_id == "bob" && s.user_status == 0 => break,
            ServerMsg::UserStatus(_) => {}
            other => panic!("alice: {other:?}"),
        }
    }
    c.nodes[1].signal("-CONT");
    loop {
        match bob.msg() {
            ServerMsg::Close { code, .. } => break assert_eq!(code, 207),
            ServerMsg::UserStatus(_) => {}
            other => panic!("bob: {other:?}"),
        }
    }
    assert!(
        c.nodes[1].log_says("joining again"),
        "{}",
        c.nodes[1].log_text()
    );
    let joined = || {
        let log = c.nodes[1].log_text();
        let at = log.find("joining again").unwrap();
        log[at..].contains("serving again")
    };
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while !joined() {
        assert!(std::time::Instant::now() < deadline, "n2 did not rejoin");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A call to a user who is offline is answered so at once: nobody is restoring.
    let started = std::time::Instant::now();
    let call = crvm_proto::Op::Call {
        call_id: "ac".into(),
        callee: "carol".into(),
        meet_obj: String::new(),
        ext: String::new(),
    };
    assert_eq!(alice.code(call), 603);
    println!("answered in {:?}", started.elapsed());
}
