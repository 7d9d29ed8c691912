//! The links' part in a drain, without a cluster: one node's [`Links`], a session of it, and a
//! socket standing for the link to the node the session moves to.

use std::sync::Arc;
use std::time::Duration;

use crvm_proto::ServerMsg;
use tokio::net::{TcpListener, TcpStream};

use super::{frame, Links, Msg, NodeLink, MAX_FRAME};
use crate::hub::local::Local;
use crate::hub::LocalSessions;
use crate::ids::LoginGen;
use crate::outbox::Outbox;
use crate::relay::Relay;

/// Node n0's links, and alice's session on it (login 5, tenant "t") with its outbox.
async fn node_with_alice() -> (Arc<Links>, LoginGen, Outbox) {
    let local = Arc::new(LocalSessions::new(0));
    let relay = Arc::new(Relay::new());
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    let links = Links::start("n0".into(), ip, Arc::clone(&local), relay)
        .await
        .unwrap();
    let gen = LoginGen(5);
    let outbox = Outbox::default();
    let alice = Local {
        tenant: "t".into(),
        user_id: "alice".into(),
        outbox: outbox.clone(),
        dnd: 0,
    };
    local.add(gen, alice);
    local.open(gen);
    (links, gen, outbox)
}

/// What reaches a moving session after its frames were taken for the move (the link's reader
/// found it here just before) goes on to its new node, not into its closed outbox.
#[tokio::test]
async fn what_reaches_a_session_once_its_frames_left_goes_on_to_its_new_node() {
    let (links, gen, outbox) = node_with_alice().await;
    // The link to the node alice moves to, read here.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dialled = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut there, _) = listener.accept().await.unwrap();
    let to = NodeLink::new("n2", dialled);
    tokio::spawn(to.writer());

    // Before the move: into her outbox, and so into the frames that travel with her.
    links.delivered("n1", gen, &ServerMsg::Start { sid: 1 });
    links.forward_to(gen, "t", "alice", &to);
    let moving = outbox.take_for_move();
    assert_eq!(moving.queued.len(), 1, "{moving:?}");
    // After: on to the new node, over the link.
    let end = ServerMsg::XferEnd { sid: 1, code: 0 };
    links.delivered("n1", gen, &end);
    let read = frame::read(&mut there, MAX_FRAME);
    let (msg, _) = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("nothing was passed on")
        .unwrap();
    match msg {
        Msg::Deliver { gen: g, msg } => {
            assert_eq!(g, gen);
            assert!(
                matches!(msg, ServerMsg::XferEnd { sid: 1, code: 0 }),
                "{msg:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The server's messages in `outbox`, in order (its frames taken as a move would take them).
fn told(outbox: &Outbox) -> Vec<ServerMsg> {
    let moving = outbox.take_for_move();
    let frames = moving.kept.into_iter().map(|(_, out)| out);
    frames
        .chain(moving.queued)
        .filter_map(|out| match out {
            crvm_proto::Out::Control(json) => Some(serde_json::from_slice(&json).unwrap()),
            _ => None,
        })
        .collect()
}

/// A stream booked towards a node this node has no link to (out of reach when its session
/// arrived, or its link being torn down): the next message of it ends the stream with 8 for
/// the sender, once — not dropped in silence, which left the sender waiting for ever.
#[tokio::test]
async fn a_stream_towards_a_node_without_a_link_ends_with_8_once() {
    let (links, gen, outbox) = node_with_alice().await;
    // alice arrives with stream 7 towards n2, which cannot be dialled (no cluster to look it
    // up in).
    links
        .arrived(gen, vec![("n2".into(), vec![], vec![7])])
        .await;
    let chunk = || Msg::Data { from: gen, sid: 7 };
    assert!(links.forward(gen, 7, chunk, &[0; 8]), "n2's stream");
    // Off the books: the next chunk is not n2's any more, and n2's loss ends nothing again.
    assert!(!links.forward(gen, 7, chunk, &[0; 8]));
    links.lost("n2");
    let code = crvm_proto::error::CRVIDEOSDK_SENDDATA_TARGETINVALID;
    assert_eq!(told(&outbox), [ServerMsg::XferEnd { sid: 7, code }]);
}
