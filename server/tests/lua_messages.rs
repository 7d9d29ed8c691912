//! The cluster's Redis functions (`server/src/hub/crvm.lua`) write the messages they push to
//! clients as JSON by hand; the node passes them on as they are. This test drives a cluster
//! through every kind of effect the functions publish, reads each entry they append to the
//! nodes' streams straight from Redis, and checks that it parses as the node parses it (`hub::Effect`), that every message
//! for a client is a `ServerMsg` (and every status a `UserStatus`) with nothing left over, and
//! that no kind of effect or message named in the functions went unexercised.

mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;

use common::cluster::Cluster;
use common::effects::{self, END};
use common::*;
use crvm_proto::msg::to_json;
use crvm_proto::{Op, ServerMsg, UserStatus};
use crvm_server::hub::Effect;
use serde_json::Value;

const LIBRARY: &str = include_str!("../src/hub/crvm.lua");

/// The quoted names after `field = '` in the functions' source: every effect kind (`k`) or
/// message type (`t`) they can emit.
fn named_in_library(field: &str) -> BTreeSet<String> {
    let pat = format!("{field} = '");
    LIBRARY
        .match_indices(&pat)
        .map(|(i, _)| {
            let rest = &LIBRARY[i + pat.len()..];
            rest[..rest.find('\'').unwrap()].to_owned()
        })
        .collect()
}

/// Reads entries into `seen` until one holds an effect of kind `k`.
fn until_kind(rx: &mpsc::Receiver<(String, Vec<u8>)>, seen: &mut Vec<(String, Vec<u8>)>, k: &str) {
    loop {
        let (ch, payload) = rx.recv_timeout(PATIENCE).expect("an entry");
        let has = serde_json::from_slice::<Vec<Value>>(&payload)
            .is_ok_and(|v| v.iter().any(|e| e["k"] == k));
        seen.push((ch, payload));
        if has {
            return;
        }
    }
}

fn call(c: &mut Client, call_id: &str, callee: &str) -> i32 {
    c.code(Op::Call {
        call_id: call_id.into(),
        callee: callee.into(),
        meet_obj: r#"{"ID":7}"#.into(),
        ext: "x".into(),
    })
}

/// Asserts that `json` is what `T` reads and writes back, field for field.
fn round_trips<T>(json: &Value, what: &str) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let parsed: T =
        serde_json::from_value(json.clone()).unwrap_or_else(|e| panic!("{what} {json}: {e}"));
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        &back, json,
        "{what}: a field the Lua writes is not the message's"
    );
    parsed
}

#[test]
fn every_effect_and_message_of_the_redis_functions_parses() {
    let mut c = Cluster::start(3, 1000, "call_timeout_s = 1");
    let rx = effects::record(&c.redis.url(), &["n1", "n2", "n3"]);
    let mut seen = Vec::new();

    // Presence: a subscription (notify, through the node's channel), logins (status), DND
    // (reply).
    let mut carol = c.node(0).login("demo", "carol");
    assert_eq!(carol.code(Op::StartStatusNotify), 0);
    let mut alice = c.node(1).login("demo", "alice");
    let mut bob = c.node(2).login("demo", "bob");
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(alice.code(Op::SetDnd { dnd: 0 }), 0);

    // A session held for a resume (the node's call, made here by hand): bob is marked as
    // reconnecting; a second mark changes nothing.
    let bob_gen = c.redis.cli(&["HGET", "crvm:u:4:demo:bob", "gen"]);
    let marks = std::cell::Cell::new(0);
    let mark = |c: &Cluster, on: &str| {
        // A state change: under an operation ID of its own, remembered for a second.
        marks.set(marks.get() + 1);
        let op = format!("test-mark-{}", marks.get());
        let args = [
            "FCALL",
            "crvm_reconnecting",
            "0",
            &op,
            "1000",
            "",
            "demo",
            "bob",
            &bob_gen,
            on,
        ];
        c.redis.cli(&args)
    };
    assert_eq!(mark(&c, "1"), "1");
    assert_eq!(mark(&c, "1"), "0");

    // Calls across nodes: accepted then hung up, rejected, and unanswered (the timer). The
    // first rings bob while he is marked: alice is told so after her answer; then he is back.
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert_eq!(
        alice.push(),
        UserStatus {
            reconnecting: true,
            ..st("bob", 2, 0)
        }
    );
    assert_eq!(mark(&c, "0"), "1");
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        bob.code(Op::AcceptCall {
            call_id: "c1".into(),
            meet_obj: String::new(),
            ext: "y".into()
        }),
        0
    );
    assert!(matches!(alice.reply(), ServerMsg::CallAccepted { .. }));
    assert_eq!(
        bob.code(Op::HangupCall {
            call_id: "c1".into(),
            ext: "z".into()
        }),
        0
    );
    assert!(matches!(alice.reply(), ServerMsg::CallHungup { .. }));
    assert_eq!(call(&mut alice, "c2", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        bob.code(Op::RejectCall {
            call_id: "c2".into(),
            ext: String::new()
        }),
        0
    );
    assert!(matches!(
        alice.reply(),
        ServerMsg::CallRejected { reason: 606, .. }
    ));
    assert_eq!(call(&mut alice, "c3", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert!(matches!(
        alice.reply(),
        ServerMsg::CallRejected { reason: 604, .. }
    ));
    assert!(matches!(bob.reply(), ServerMsg::CallHungup { .. }));

    // Kicks: by a newer login on another node, and by an operator (the admin API's function).
    let _bob2 = c.node(0).login("demo", "bob");
    bob.expect_close(10);
    assert_eq!(
        // (A state change's first three arguments: its operation ID, how long its result is kept,
        // the epoch of the data set, or empty for none.)
        c.redis.cli(&[
            "FCALL",
            "crvm_kick",
            "0",
            "test-kick",
            "1000",
            "",
            "demo",
            "alice"
        ]),
        "1"
    );
    alice.expect_close(206);

    // A drain's move of a session that is not the node's (so nothing moves): the node still
    // gets its marker after its earlier effects.
    let epoch = c.redis.cli(&["GET", "crvm:epoch"]);
    let moved = c.redis.cli(&[
        "FCALL",
        "crvm_move",
        "0",
        "test-move",
        "1000",
        &epoch,
        "n1",
        &epoch,
        "n2",
        "demo",
        "bob",
        "0",
    ]);
    assert_eq!(moved, "0");
    until_kind(&rx, &mut seen, "moved");

    // A node that dies (now without users): the others are told it is gone.
    c.nodes[2].signal("-KILL");
    let _ = c.nodes[2].wait();
    until_kind(&rx, &mut seen, "node_gone");

    // Everything published before this has been read once this arrives.
    effects::end(&c.redis.url());
    while let Ok(p) = rx.recv_timeout(PATIENCE) {
        let end = p.0 == END;
        seen.push(p);
        if end {
            break;
        }
    }
    assert_eq!(seen.last().map(|p| p.0.as_str()), Some(END));
    seen.pop();

    let (mut kinds, mut types) = (BTreeSet::new(), BTreeSet::new());
    for (ch, payload) in &seen {
        let what = format!("{ch} {}", String::from_utf8_lossy(payload));
        serde_json::from_slice::<Vec<Effect>>(payload)
            .unwrap_or_else(|e| panic!("the node cannot read {what}: {e}"));
        let effects: Vec<Value> = serde_json::from_slice(payload).unwrap();
        for e in effects {
            let k = e["k"]
                .as_str()
                .unwrap_or_else(|| panic!("no kind in {what}"));
            kinds.insert(k.to_owned());
            match k {
                "deliver" => {
                    let msg: ServerMsg = round_trips(&e["msg"], &what);
                    // And on the wire as the client reads it.
                    let wire: ServerMsg = serde_json::from_slice(&to_json(&msg)).unwrap();
                    assert_eq!(wire, msg);
                    types.insert(e["msg"]["t"].as_str().unwrap().to_owned());
                }
                "status" => {
                    round_trips::<UserStatus>(&e["status"], &what);
                }
                _ => {}
            }
        }
    }
    assert_eq!(kinds, named_in_library("k"), "effect kinds exercised");
    assert_eq!(types, named_in_library("t"), "client messages exercised");
    drop(c);
}
