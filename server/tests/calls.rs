//! Calls at the protocol level (docs/API.md §3.4): the server's state machine, what each party is told,
//! in which order, and the status it shows. Each test runs on one node (the memory hub) and on
//! a three-node cluster (the Redis functions) with its parties on different nodes: the two
//! copies of the state machine must agree.

mod common;

use common::*;
use crvm_proto::{Op, ServerMsg};

crvm_testkit::both_topologies!(
    call_accept_hangup_with_status_pushes,
    refusals_and_wrong_actors,
    no_answer_times_out_and_late_accept_is_600,
    caller_cancel_and_vanishing_parties,
    glare_leaves_exactly_one_call,
);

fn subscribe(c: &mut Client) {
    assert_eq!(c.code(Op::StartStatusNotify), 0);
}

fn call(c: &mut Client, call_id: &str, callee: &str, meet_obj: &str) -> i32 {
    c.code(Op::Call {
        call_id: call_id.into(),
        callee: callee.into(),
        meet_obj: meet_obj.into(),
        ext: "ext-call".into(),
    })
}

fn accept(c: &mut Client, call_id: &str, meet_obj: &str) -> i32 {
    c.code(Op::AcceptCall {
        call_id: call_id.into(),
        meet_obj: meet_obj.into(),
        ext: "ext-accept".into(),
    })
}

fn reject(c: &mut Client, call_id: &str) -> i32 {
    c.code(Op::RejectCall {
        call_id: call_id.into(),
        ext: "ext-reject".into(),
    })
}

fn hangup(c: &mut Client, call_id: &str) -> i32 {
    c.code(Op::HangupCall {
        call_id: call_id.into(),
        ext: "ext-hangup".into(),
    })
}

/// The next message that is not a presence push.
fn note(c: &mut Client) -> ServerMsg {
    c.reply()
}

const MEET: &str = r#"{"ID":12345678,"subject":"weekly"}"#;

fn call_accept_hangup_with_status_pushes(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut watcher = s.login("demo", "carol");
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut watcher);
    assert_eq!(call(&mut alice, "c1", "bob", MEET), 0);
    assert_eq!(
        note(&mut bob),
        ServerMsg::CallIn {
            call_id: "c1".into(),
            caller: "alice".into(),
            meet_obj: MEET.into(),
            ext: "ext-call".into()
        }
    );
    assert_eq!(watcher.push(), st("alice", 2, 0));
    assert_eq!(watcher.push(), st("bob", 2, 0));
    // The callee gives no meeting: the caller's own comes back to it.
    assert_eq!(accept(&mut bob, "c1", ""), 0);
    assert_eq!(
        note(&mut alice),
        ServerMsg::CallAccepted {
            call_id: "c1".into(),
            ext: "ext-accept".into(),
            meet_obj: MEET.into()
        }
    );
    let statuses = bob.statuses();
    assert!(statuses
        .iter()
        .all(|s| s.user_status == if s.user_id == "carol" { 1 } else { 2 }));
    assert_eq!(hangup(&mut bob, "c1"), 0);
    assert_eq!(
        note(&mut alice),
        ServerMsg::CallHungup {
            call_id: "c1".into(),
            ext: "ext-hangup".into()
        }
    );
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    // The ended call is gone for everybody.
    assert_eq!(hangup(&mut alice, "c1"), 600);
    assert_eq!(accept(&mut bob, "c1", ""), 600);
}

fn refusals_and_wrong_actors(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    let mut carol = s.login("demo", "carol");
    let mut other = s.login("acme", "dave");
    assert_eq!(call(&mut alice, "self", "alice", ""), 5);
    assert_eq!(call(&mut alice, "x", "nobody", ""), 603);
    assert_eq!(
        call(&mut alice, "x", "dave", ""),
        603,
        "another tenant reads as offline"
    );
    assert_eq!(call(&mut other, "x", "alice", ""), 603);
    assert_eq!(call(&mut alice, "x", "bob", "[1]"), 5);
    assert_eq!(call(&mut alice, "", "bob", ""), 5);
    assert_eq!(call(&mut alice, &"x".repeat(64), "bob", ""), 5);
    // DND: refused with 602 and the callee is not disturbed.
    assert_eq!(bob.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(call(&mut alice, "dnd", "bob", ""), 602);
    assert_eq!(bob.code(Op::SetDnd { dnd: 0 }), 0);
    assert_eq!(call(&mut alice, "c1", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(call(&mut carol, "c2", "bob", ""), 602, "callee busy");
    assert_eq!(call(&mut carol, "c2", "alice", ""), 602, "caller busy too");
    assert_eq!(call(&mut alice, "c3", "carol", ""), 601, "caller in a call");
    assert_eq!(call(&mut bob, "c3", "carol", ""), 601, "callee being rung");
    assert_eq!(call(&mut carol, "c1", "dave", ""), 5, "call ID in use");
    assert_eq!(accept(&mut alice, "c1", ""), 600, "only the callee accepts");
    assert_eq!(reject(&mut alice, "c1"), 600, "only the callee rejects");
    assert_eq!(accept(&mut carol, "c1", ""), 600);
    assert_eq!(hangup(&mut carol, "c1"), 600, "not a party");
    assert_eq!(hangup(&mut bob, "nope"), 600);
    // A call ID that no call can have (empty, or longer than 63 bytes) is a malformed request
    // (5), refused by the protocol's validation before any call is looked up; an unknown but
    // well-formed one is 600 (above). Version 1 of the server answered 600 for both.
    let long = "c".repeat(64);
    for bad in ["", long.as_str()] {
        assert_eq!(accept(&mut bob, bad, ""), 5, "{bad:?}");
        assert_eq!(reject(&mut bob, bad), 5, "{bad:?}");
        assert_eq!(hangup(&mut bob, bad), 5, "{bad:?}");
        assert_eq!(hangup(&mut alice, bad), 5, "{bad:?}");
    }
    assert_eq!(
        accept(&mut bob, &"c".repeat(63), ""),
        600,
        "63 bytes is well-formed"
    );
    assert_eq!(accept(&mut bob, "c1", "[]"), 5);
    assert_eq!(reject(&mut bob, "c1"), 0);
    assert_eq!(
        note(&mut alice),
        ServerMsg::CallRejected {
            call_id: "c1".into(),
            reason: 606,
            ext: "ext-reject".into()
        }
    );
    assert_eq!(reject(&mut bob, "c1"), 600);
}

fn no_answer_times_out_and_late_accept_is_600(kind: Topo) {
    let s = Topology::start(kind, "call_timeout_s = 1");
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    assert_eq!(call(&mut alice, "c1", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(
        note(&mut alice),
        ServerMsg::CallRejected {
            call_id: "c1".into(),
            reason: 604,
            ext: "".into()
        }
    );
    assert_eq!(
        note(&mut bob),
        ServerMsg::CallHungup {
            call_id: "c1".into(),
            ext: "".into()
        }
    );
    assert_eq!(accept(&mut bob, "c1", ""), 600);
    // A connected call never times out; the next one works normally.
    assert_eq!(call(&mut alice, "c2", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(accept(&mut bob, "c2", MEET), 0);
    assert!(
        matches!(note(&mut alice), ServerMsg::CallAccepted { meet_obj, .. } if meet_obj == MEET)
    );
    // Outlive the timeout with a round trip after it: still connected.
    assert_eq!(call(&mut alice, "c3", "bob", ""), 601);
    assert_eq!(hangup(&mut alice, "c2"), 0);
}

fn caller_cancel_and_vanishing_parties(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    // The caller hangs up while ringing: a cancel.
    assert_eq!(call(&mut alice, "c1", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(hangup(&mut alice, "c1"), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallHungup { call_id, .. } if call_id == "c1"));
    // The callee logs out while ringing: the caller hears 603.
    assert_eq!(call(&mut alice, "c2", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(bob.code(Op::Logout), 0);
    assert_eq!(
        note(&mut alice),
        ServerMsg::CallRejected {
            call_id: "c2".into(),
            reason: 603,
            ext: "".into()
        }
    );
    // A connected callee that is kicked by its own new login: the caller hears a hang-up, and
    // the new session is idle.
    let mut bob = s.login("demo", "bob");
    assert_eq!(call(&mut alice, "c3", "bob", ""), 0);
    assert!(matches!(note(&mut bob), ServerMsg::CallIn { .. }));
    assert_eq!(accept(&mut bob, "c3", ""), 0);
    assert!(matches!(note(&mut alice), ServerMsg::CallAccepted { .. }));
    let mut bob2 = s.login("demo", "bob");
    bob.expect_close(10);
    assert!(matches!(note(&mut alice), ServerMsg::CallHungup { call_id, .. } if call_id == "c3"));
    assert!(bob2.statuses().iter().all(|s| s.user_status == 1));
    // A caller whose connection drops mid-call.
    assert_eq!(call(&mut alice, "c4", "bob", ""), 0);
    assert!(matches!(note(&mut bob2), ServerMsg::CallIn { .. }));
    drop(alice);
    assert!(matches!(note(&mut bob2), ServerMsg::CallHungup { call_id, .. } if call_id == "c4"));
    assert!(bob2.statuses().iter().all(|s| s.user_status == 1));
}

fn glare_leaves_exactly_one_call(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    // Both send before reading anything: the server orders them.
    let a = alice.id();
    alice.send_req(
        a,
        Op::Call {
            call_id: "from-alice".into(),
            callee: "bob".into(),
            meet_obj: String::new(),
            ext: String::new(),
        },
    );
    let b = bob.id();
    bob.send_req(
        b,
        Op::Call {
            call_id: "from-bob".into(),
            callee: "alice".into(),
            meet_obj: String::new(),
            ext: String::new(),
        },
    );
    let outcome = |c: &mut Client, re: u64| {
        let mut code = None;
        let mut rung = None;
        while code.is_none() || (code == Some(601) && rung.is_none()) {
            match c.reply() {
                ServerMsg::Res { re: r, result } if r == re => code = Some(result.code()),
                ServerMsg::CallIn { call_id, .. } => rung = Some(call_id),
                other => panic!("{other:?}"),
            }
        }
        (code.unwrap(), rung)
    };
    let (ca, ra) = outcome(&mut alice, a);
    let (cb, rb) = outcome(&mut bob, b);
    let mut codes = [ca, cb];
    codes.sort();
    assert_eq!(codes, [0, 601], "exactly one call survives");
    let (winner, loser) = if ca == 0 {
        ("from-alice", &mut bob)
    } else {
        ("from-bob", &mut alice)
    };
    assert_eq!(if ca == 0 { rb } else { ra }.as_deref(), Some(winner));
    assert_eq!(hangup(loser, winner), 0);
}
