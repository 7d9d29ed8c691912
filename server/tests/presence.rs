//! Presence, DND, subscriptions, kicks and slow consumers (docs/API.md §3.1–§3.2). Each test but the
//! slow consumer's (a matter of one connection's queue) runs on one node and on a three-node
//! cluster with its users on different nodes.

mod common;

use std::io::Write;

use common::*;
use crvm_proto::Op;

crvm_testkit::both_topologies!(
    login_dnd_logout_reach_subscribers_in_order,
    status_list_is_sorted_includes_the_caller_and_stays_in_the_tenant,
    stop_notify_stops_pushes,
    disconnect_pushes_offline,
    relogin_kicks_the_old_session_and_stays_online,
);

fn subscribe(c: &mut Client) {
    assert_eq!(c.code(Op::StartStatusNotify), 0);
}

fn login_dnd_logout_reach_subscribers_in_order(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    // Idempotent.
    subscribe(&mut bob);
    let mut alice = s.login("demo", "alice");
    assert_eq!(alice.code(Op::SetDnd { dnd: 3 }), 0);
    assert_eq!(alice.code(Op::SetDnd { dnd: 0 }), 0);
    assert_eq!(alice.code(Op::Logout), 0);
    alice.expect_eof();
    assert_eq!(bob.push(), st("alice", 1, 0));
    assert_eq!(bob.push(), st("alice", 1, 3));
    assert_eq!(bob.push(), st("alice", 1, 0));
    assert_eq!(bob.push(), st("alice", 0, 0));
    // A subscriber sees its own changes too.
    assert_eq!(bob.code(Op::SetDnd { dnd: 9 }), 0);
    assert_eq!(bob.push(), st("bob", 1, 9));
}

fn status_list_is_sorted_includes_the_caller_and_stays_in_the_tenant(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut carol = s.login("acme", "carol");
    subscribe(&mut carol);
    let mut zed = s.login("demo", "zed");
    let mut amy = s.login("demo", "amy");
    assert_eq!(amy.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(zed.statuses(), vec![st("amy", 1, 1), st("zed", 1, 0)]);
    // Same user ID in another tenant is another user.
    let mut amy2 = s.login("acme", "amy");
    assert_eq!(amy2.statuses(), vec![st("amy", 1, 0), st("carol", 1, 0)]);
    // carol saw only her own tenant's change, before the answer to her next request.
    assert_eq!(carol.statuses().len(), 2);
    assert_eq!(carol.push(), st("amy", 1, 0));
    assert_eq!(carol.pending_pushes(), 0);
    drop(amy);
}

fn stop_notify_stops_pushes(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    assert_eq!(bob.code(Op::StopStatusNotify), 0);
    assert_eq!(bob.code(Op::StopStatusNotify), 0);
    let mut alice = s.login("demo", "alice");
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    // Any push would have been queued before this answer.
    assert_eq!(bob.statuses().len(), 2);
    assert_eq!(bob.pending_pushes(), 0);
}

fn disconnect_pushes_offline(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    let alice = s.login("demo", "alice");
    assert_eq!(bob.push(), st("alice", 1, 0));
    drop(alice);
    assert_eq!(bob.push(), st("alice", 0, 0));
    assert_eq!(bob.statuses(), vec![st("bob", 1, 0)]);
}

fn relogin_kicks_the_old_session_and_stays_online(kind: Topo) {
    let s = Topology::start(kind, "");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    let mut old = s.login("demo", "alice");
    assert_eq!(old.code(Op::SetDnd { dnd: 5 }), 0);
    let mut new = s.login("demo", "alice");
    old.expect_close(10);
    // The old connection is fully torn down now; its teardown must not log alice out.
    assert_eq!(bob.statuses(), vec![st("alice", 1, 0), st("bob", 1, 0)]);
    assert_eq!(bob.push(), st("alice", 1, 0));
    assert_eq!(bob.push(), st("alice", 1, 5));
    assert_eq!(bob.push(), st("alice", 1, 0));
    assert_eq!(bob.pending_pushes(), 0);
    // The new session works and owns the user.
    assert_eq!(new.code(Op::SetDnd { dnd: 2 }), 0);
    assert_eq!(bob.push(), st("alice", 1, 2));
}

#[test]
fn a_client_that_never_reads_is_dropped_and_others_carry_on() {
    let dir = TmpDir::new();
    // The loud client is legitimately fast here: lift the request-rate limit.
    let s = Server::start(&dir, &config("max_requests_per_s = 100000000"));
    let mut slow = s.login("demo", "slow");
    subscribe(&mut slow);
    // Long user ID: big pushes fill the slow client's queue sooner.
    let loud_id = "L".repeat(128);
    let mut loud = s.login("demo", &loud_id);
    let mut writer = loud.stream.try_clone().unwrap();
    const ROUND: usize = 20_000;
    let mut sent = 0;
    let mut gone = false;
    for _round in 0..40 {
        let mut bytes = Vec::new();
        for i in 0..ROUND {
            bytes.extend(loud.codec.request(Op::SetDnd { dnd: i as i32 }).1);
        }
        // Write from another thread while this one reads the replies, so neither side of the
        // loud connection ever stalls.
        let w = std::thread::spawn(move || {
            writer.write_all(&bytes).unwrap();
            writer
        });
        for _ in 0..ROUND {
            assert!(matches!(
                loud.reply(),
                crvm_proto::ServerMsg::Res {
                    result: crvm_proto::Outcome::Ok,
                    ..
                }
            ));
        }
        writer = w.join().unwrap();
        sent += ROUND;
        if !loud.statuses().iter().any(|u| u.user_id == "slow") {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the slow client was never dropped after {sent} pushes"
    );
    // What it still gets is cut short, then the stream ends.
    let mut got = 0;
    while let Some(f) = slow.frame() {
        if f.kind == crvm_proto::Kind::Control {
            got += 1;
        }
    }
    assert!(got < sent, "got {got} of {sent}");
    assert!(s.log_text().contains("slow consumer"), "{}", s.log_text());
    // Others are unaffected.
    let mut other = s.login("demo", "other");
    assert_eq!(other.statuses().len(), 2);
}
