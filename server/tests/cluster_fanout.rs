//! Presence pushes go only to the nodes that have a subscriber in the tenant: the
//! test reads every effect the Redis functions append for the nodes and checks where status
//! changes went.

mod common;

use std::collections::BTreeSet;

use common::cluster::Cluster;
use common::effects::{self, END};
use common::*;
use crvm_proto::Op;
use serde_json::Value;

#[test]
fn status_changes_reach_only_the_nodes_with_a_subscriber_in_the_tenant() {
    let c = Cluster::start(3, 1000, "");
    // demo has a subscriber on n1, either one on n2; n3 has none.
    let mut carol = c.node(0).login("demo", "carol");
    assert_eq!(carol.code(Op::StartStatusNotify), 0);
    let mut xavier = c.node(1).login("either", "xavier");
    assert_eq!(xavier.code(Op::StartStatusNotify), 0);
    let rx = effects::record(&c.redis.url(), &["n1", "n2", "n3"]);

    let mut alice = c.node(2).login("demo", "alice");
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    let _yann = c.node(2).login("either", "yann");
    // The subscribers still hear everything of their tenant.
    let st = |u: &str, s: i32, d: i32| (u.to_owned(), s, d);
    let got = |c: &mut Client| {
        let s = c.push();
        (s.user_id, s.user_status, s.dnd_type)
    };
    assert_eq!(got(&mut carol), st("alice", 1, 0));
    assert_eq!(got(&mut carol), st("alice", 1, 1));
    assert_eq!(got(&mut xavier), st("yann", 1, 0));
    // Once demo's only subscriber stops, demo's changes go nowhere.
    assert_eq!(carol.code(Op::StopStatusNotify), 0);
    let _bob = c.node(1).login("demo", "bob");
    // A subscriber that logs out takes its node off the list too (its own going offline is
    // then nobody's business).
    assert_eq!(xavier.code(Op::Logout), 0);
    let _zoe = c.node(0).login("either", "zoe");

    effects::end(&c.redis.url());
    let mut sent = BTreeSet::new();
    while let Ok((ch, payload)) = rx.recv_timeout(PATIENCE) {
        if ch == END {
            break;
        }
        let effects: Vec<Value> = serde_json::from_slice(&payload).unwrap();
        for e in effects.iter().filter(|e| e["k"] == "status") {
            let user = e["status"]["userID"].as_str().unwrap().to_owned();
            sent.insert((ch.clone(), e["tenant"].as_str().unwrap().to_owned(), user));
        }
    }
    let want: BTreeSet<(String, String, String)> = [
        ("crvm:fx:n1", "demo", "alice"),
        ("crvm:fx:n2", "either", "yann"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(sent, want);
}
