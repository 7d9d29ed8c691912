//! The router on one node: cmds, offers and stream messages of local sessions reach the relay
//! and their receivers; a user who is nowhere is answered 1102. No sockets.

use std::time::Duration;

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID};
use crvm_proto::{Kind, ServerMsg, XferKind};

use super::*;
use crate::hub::local::Local;
use crate::hub::memory::MemoryHub;
use crate::outbox::Outbox;

/// A node of its own with sessions `alice` (1) and `bob` (2) of tenant `t`.
fn node() -> (Router, MemoryHub, LocalEnd, LocalEnd) {
    let local = Arc::new(LocalSessions::new(0));
    let mut ends = Vec::new();
    for (gen, user) in [(1, "alice"), (2, "bob")] {
        let end = LocalEnd {
            gen: LoginGen(gen),
            outbox: Outbox::default(),
        };
        let session = Local {
            tenant: "t".into(),
            user_id: user.into(),
            outbox: end.outbox.clone(),
            dnd: 0,
        };
        local.add(end.gen, session);
        local.open(end.gen);
        ends.push(end);
    }
    let dir = MemoryHub::new(Arc::clone(&local), Duration::from_secs(60));
    let router = Router::new(local, Arc::new(Relay::new()), None);
    let bob = ends.pop().unwrap();
    (router, dir, ends.pop().unwrap(), bob)
}

fn from(end: &LocalEnd, user: &'static str) -> Sending<'static> {
    Sending {
        end: end.clone(),
        tenant: "t",
        user,
    }
}

#[tokio::test]
async fn a_cmd_reaches_a_session_here_or_is_answered_1102() {
    let (router, dir, alice, bob) = node();
    router
        .cmd(&dir, from(&alice, "alice"), 1, "bob", b"hi")
        .await
        .unwrap();
    let from_alice = "alice".to_owned();
    assert_eq!(
        bob.outbox.take_msgs(),
        [ServerMsg::CmdIn {
            n: 1,
            from: from_alice
        }]
    );
    router
        .cmd(&dir, from(&alice, "alice"), 2, "carol", b"hi")
        .await
        .unwrap();
    let gone = CRVIDEOSDK_SENDDATA_TARGETINVALID;
    assert_eq!(
        alice.outbox.take_msgs(),
        [ServerMsg::CmdDone {
            ns: vec![2],
            code: gone
        }]
    );
    router.relay().cmd_ack(bob.gen, 1);
    assert_eq!(
        alice.outbox.take_msgs(),
        [ServerMsg::CmdDone {
            ns: vec![1],
            code: CRVIDEOSDK_NOERR
        }]
    );
}

#[tokio::test]
async fn a_stream_here_runs_in_this_nodes_relay_to_its_end() {
    let (router, dir, alice, bob) = node();
    let offer = Offer {
        task: "f".into(),
        from: "alice".into(),
        kind: XferKind::File,
        size: 4,
        name: "x".into(),
    };
    router
        .offer(&dir, from(&alice, "alice"), 9, "bob", offer.clone())
        .await;
    let msgs = alice.outbox.take_msgs();
    let ServerMsg::Res {
        re: 9,
        result: crvm_proto::Outcome::Offer { sid },
    } = msgs[0]
    else {
        panic!("no offer answer: {msgs:?}");
    };
    assert_eq!(msgs[1..], [ServerMsg::Start { sid }]);
    let mut chunk = sid.to_be_bytes().to_vec();
    chunk.extend_from_slice(b"abcd");
    router.data(alice.gen, sid, &chunk).unwrap();
    let kinds: Vec<Kind> = bob.outbox.take_frames().iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [Kind::Control, Kind::Data],
        "incoming, then the chunk"
    );
    router.data_end(alice.gen, sid, "h".into());
    let hash = "h".to_owned();
    assert_eq!(bob.outbox.take_msgs(), [ServerMsg::DataEnd { sid, hash }]);
    // Nobody there: answered at once, and nothing is left in the relay.
    router
        .offer(&dir, from(&alice, "alice"), 10, "carol", offer)
        .await;
    let gone = CRVIDEOSDK_SENDDATA_TARGETINVALID;
    assert_eq!(alice.outbox.take_msgs(), [ServerMsg::reply(10, gone)]);
    // The receiver goes away: the sender hears 1102 for the stream.
    router.session_ended(bob.gen);
    assert_eq!(
        alice.outbox.take_msgs(),
        [ServerMsg::XferEnd { sid, code: gone }]
    );
    assert!(router.relay().is_empty());
    assert_eq!(router.relay().busy_senders(), 0);
}
