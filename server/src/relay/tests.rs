//! The relay's own tests: windows, ordering, cancels and ends, without sockets.

use crvm_proto::msg::xfer;

use super::*;
use crate::outbox::State as OutState;

fn ep(n: u64) -> Endpoint {
    Endpoint {
        gen: LoginGen(n),
        outbox: Outbox::default(),
    }
}

/// Session `n` of this node as a sender.
fn here(n: u64) -> SessionKey {
    SessionKey::Here(LoginGen(n))
}

fn chunk(sid: u64, n: usize) -> Vec<u8> {
    let mut p = sid.to_be_bytes().to_vec();
    p.resize(8 + n, 7);
    p
}

fn offer(kind: XferKind, size: u64) -> Offer {
    Offer {
        task: "t".into(),
        from: "alice".into(),
        kind,
        size,
        name: String::new(),
    }
}

/// The sids of `incoming` messages among `msgs`.
fn incoming(msgs: &[ServerMsg]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Incoming { sid, .. } => Some(*sid),
            _ => None,
        })
        .collect()
}

#[test]
fn window_size_start_and_ownership_are_enforced() {
    let r = Relay::new();
    let (a, b) = (ep(1), ep(2));
    let sid = r
        .offer(
            7,
            a.clone().into(),
            b.clone(),
            offer(XferKind::File, 4 * xfer::WINDOW),
        )
        .unwrap();
    assert_eq!(
        a.outbox.take_msgs(),
        [
            ServerMsg::Res {
                re: 7,
                result: crvm_proto::Outcome::Offer { sid }
            },
            ServerMsg::Start { sid }
        ]
    );
    assert_eq!(incoming(&b.outbox.take_msgs()), [sid]);
    let w = xfer::WINDOW as usize;
    assert!(
        r.data(here(2), sid, &chunk(sid, 10)).is_err(),
        "not the sender"
    );
    assert!(r.data(here(1), sid, &chunk(sid, w)).is_ok());
    assert!(r.data(here(1), sid, &chunk(sid, 1)).is_err(), "window full");
    r.ack(LoginGen(2), sid, 100);
    assert!(r.data(here(1), sid, &chunk(sid, 100)).is_ok());
    assert_eq!(
        a.outbox.take_msgs(),
        [ServerMsg::Progress { sid, bytes: 100 }]
    );
    // Nothing beyond the offered size.
    let small = r
        .offer(8, a.clone().into(), b.clone(), offer(XferKind::Buffer, 5))
        .unwrap();
    assert!(r.data(here(1), small, &chunk(small, 6)).is_err());
    assert!(
        r.data(here(1), 999, &chunk(999, 6)).is_ok(),
        "unknown streams are dropped"
    );
}

#[test]
fn cancel_is_decided_by_the_receiver() {
    let r = Relay::new();
    let (a, b) = (ep(1), ep(2));
    let s1 = r
        .offer(1, a.clone().into(), b.clone(), offer(XferKind::Buffer, 10))
        .unwrap();
    r.cancel(&a.clone().into(), s1);
    r.cancel_ack(LoginGen(2), s1, 0);
    let s2 = r
        .offer(2, a.clone().into(), b.clone(), offer(XferKind::Buffer, 10))
        .unwrap();
    r.cancel(&a.clone().into(), s2);
    r.fin(LoginGen(2), s2, 0); // delivered before the cancel arrived
    r.cancel_ack(LoginGen(2), s2, 1104); // ignored: already answered
    r.cancel(&a.clone().into(), 777);
    let to_a: Vec<ServerMsg> = a
        .outbox
        .take_msgs()
        .into_iter()
        .filter(|m| !matches!(m, ServerMsg::Res { .. } | ServerMsg::Start { .. }))
        .collect();
    assert_eq!(
        to_a,
        [
            ServerMsg::CancelDone { sid: s1, code: 0 },
            ServerMsg::XferEnd { sid: s2, code: 0 },
            ServerMsg::CancelDone {
                sid: s2,
                code: 1104
            },
            ServerMsg::CancelDone {
                sid: 777,
                code: 1104
            },
        ]
    );
    let to_b: Vec<ServerMsg> = b
        .outbox
        .take_msgs()
        .into_iter()
        .filter(|m| !matches!(m, ServerMsg::Incoming { .. }))
        .collect();
    assert_eq!(
        to_b,
        [
            ServerMsg::Cancelled { sid: s1 },
            ServerMsg::Cancelled { sid: s2 }
        ]
    );
    assert!(r.is_empty());
    assert_eq!(r.busy_senders(), 0, "nothing left in the books");
}

#[test]
fn ended_sessions_end_their_transfers() {
    let r = Relay::new();
    let (a, b, c) = (ep(1), ep(2), ep(3));
    let out = r
        .offer(1, a.clone().into(), b.clone(), offer(XferKind::File, 10))
        .unwrap();
    let inc = r
        .offer(2, c.clone().into(), a.clone(), offer(XferKind::File, 10))
        .unwrap();
    let other = r
        .offer(3, c.clone().into(), b.clone(), offer(XferKind::File, 10))
        .unwrap();
    b.outbox.take_msgs();
    c.outbox.take_msgs();
    r.session_ended(here(1));
    assert_eq!(b.outbox.take_msgs(), [ServerMsg::Cancelled { sid: out }]);
    assert_eq!(
        c.outbox.take_msgs(),
        [ServerMsg::XferEnd {
            sid: inc,
            code: 1102
        }]
    );
    assert_eq!(r.len(), 1);
    r.fin(LoginGen(2), other, 0);
    assert!(r.is_empty());
    assert_eq!(r.busy_senders(), 0);
    assert_eq!(a.outbox.state(), OutState::Open);
}

#[test]
fn streams_beyond_the_receivers_limit_wait_their_turn() {
    let r = Relay::new();
    let b = ep(100);
    let senders: Vec<Endpoint> = (1..=5).map(ep).collect();
    // 5 senders × MAX_OUTGOING streams: more than the receiver takes at once.
    let mut sids = Vec::new();
    for s in &senders {
        for _ in 0..xfer::MAX_OUTGOING {
            sids.push(
                r.offer(1, s.clone().into(), b.clone(), offer(XferKind::Buffer, 1))
                    .unwrap(),
            );
        }
    }
    assert!(sids.len() > xfer::MAX_INCOMING);
    let started = incoming(&b.outbox.take_msgs());
    assert_eq!(started, sids[..xfer::MAX_INCOMING]);
    // A sender's next offer beyond its own limit is refused.
    assert_eq!(
        r.offer(
            1,
            senders[0].clone().into(),
            b.clone(),
            offer(XferKind::Buffer, 1)
        ),
        Err(1000)
    );
    // Data before `start` is a violation.
    let waiting = sids[xfer::MAX_INCOMING];
    let owner = (waiting - 1) / xfer::MAX_OUTGOING as u64 + 1;
    assert!(r.data(here(owner), waiting, &chunk(waiting, 1)).is_err());
    // Each stream that ends lets the next one start, in order.
    for (i, sid) in sids.iter().enumerate() {
        r.fin(LoginGen(100), *sid, 0);
        let next = incoming(&b.outbox.take_msgs());
        match sids.get(i + xfer::MAX_INCOMING) {
            Some(n) => assert_eq!(next, [*n]),
            None => assert!(next.is_empty()),
        }
    }
    assert!(r.is_empty());
    assert_eq!(r.busy_senders(), 0);
    // A waiting stream cancelled by its sender ends at once; its receiver never hears.
    let first = r.offer(
        1,
        senders[0].clone().into(),
        b.clone(),
        offer(XferKind::Buffer, 1),
    );
    let _ = first.unwrap();
    for _ in 1..xfer::MAX_INCOMING {
        let s = senders[(1 + r.len()) % 5].clone();
        r.offer(1, s.into(), b.clone(), offer(XferKind::Buffer, 1))
            .unwrap();
    }
    let last = r
        .offer(
            1,
            senders[4].clone().into(),
            b.clone(),
            offer(XferKind::Buffer, 1),
        )
        .unwrap();
    b.outbox.take_msgs();
    senders[4].outbox.take_msgs();
    r.cancel(&senders[4].clone().into(), last);
    assert_eq!(
        senders[4].outbox.take_msgs(),
        [ServerMsg::CancelDone { sid: last, code: 0 }]
    );
    assert!(b.outbox.take_msgs().is_empty());
}

#[test]
fn cmds_flow_in_order_within_the_windows() {
    let r = Relay::new();
    let b = ep(100);
    let senders = [ep(1), ep(2), ep(3)];
    // Three senders, each a full window: more cmds than the receiver's window.
    let per = xfer::CMD_WINDOW;
    assert!(senders.len() * per > xfer::CMD_RECV_WINDOW);
    for i in 0..per {
        for (k, s) in senders.iter().enumerate() {
            let from = format!("u{k}");
            r.cmd(
                &s.clone().into(),
                &from,
                i as u64 + 1,
                &b,
                vec![k as u8; 10],
            )
            .unwrap()
            .unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut acked = 0;
    loop {
        let got: Vec<(u64, String)> = b
            .outbox
            .take_msgs()
            .into_iter()
            .filter_map(|m| match m {
                ServerMsg::CmdIn { n, from } => Some((n, from)),
                _ => None,
            })
            .collect();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= xfer::CMD_RECV_WINDOW, "window respected");
        for (n, from) in got {
            assert_eq!(n, acked + 1, "numbered without gaps");
            acked = n;
            seen.push(from);
        }
        r.cmd_ack(LoginGen(100), acked);
    }
    assert_eq!(seen.len(), senders.len() * per);
    // Each sender's cmds reach the receiver in its own order, and each sender hears every
    // one of its cmds done, in order.
    for (k, s) in senders.iter().enumerate() {
        let from = format!("u{k}");
        assert_eq!(seen.iter().filter(|f| **f == from).count(), per);
        let done: Vec<u64> = s
            .outbox
            .take_msgs()
            .into_iter()
            .flat_map(|m| match m {
                ServerMsg::CmdDone { ns, code: 0 } => ns,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(done, (1..=per as u64).collect::<Vec<_>>());
    }
    assert_eq!(r.busy_senders(), 0);
    // An idle receiver's numbering goes on where it was.
    r.cmd(&senders[0].clone().into(), "u0", 999, &b, vec![1])
        .unwrap()
        .unwrap();
    assert_eq!(
        b.outbox.take_msgs(),
        [ServerMsg::CmdIn {
            n: acked + 1,
            from: "u0".into()
        }]
    );
}

#[test]
fn sender_window_and_receiver_end() {
    let r = Relay::new();
    let (a, b) = (ep(1), ep(2));
    for n in 1..=xfer::CMD_WINDOW as u64 {
        r.cmd(&a.clone().into(), "alice", n, &b, vec![1])
            .unwrap()
            .unwrap();
    }
    assert!(
        r.cmd(&a.clone().into(), "alice", 9999, &b, vec![1])
            .is_err(),
        "over the window"
    );
    // The receiver goes: every cmd it had fails towards its sender, in one message.
    b.outbox.close();
    assert_eq!(r.cmd(&ep(3).into(), "carol", 1, &b, vec![1]), Ok(Err(1102)));
    r.session_ended(here(2));
    let msgs = a.outbox.take_msgs();
    assert_eq!(msgs.len(), 1);
    let ServerMsg::CmdDone { ns, code: 1102 } = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!(ns.len(), xfer::CMD_WINDOW);
    assert_eq!(r.busy_senders(), 0);
}

#[tokio::test]
async fn a_remote_sender_is_never_taken_for_a_local_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Session 1 of another node: the same number as local session 1.
    let remote = Sender::Remote {
        gen: LoginGen(1),
        link: NodeLink::new("n2", stream),
    };
    let r = Relay::new();
    let (a, b) = (ep(1), ep(2));
    let sid = r
        .offer(1, a.clone().into(), b.clone(), offer(XferKind::File, 100))
        .unwrap();
    assert!(
        r.data(remote.key(), sid, &chunk(sid, 10)).is_err(),
        "not its stream"
    );
    r.session_ended(remote.key());
    assert_eq!(r.len(), 1, "the local session's stream lives on");
    assert!(r.data(here(1), sid, &chunk(sid, 10)).is_ok());
    assert_eq!(b.outbox.state(), OutState::Open);
}
