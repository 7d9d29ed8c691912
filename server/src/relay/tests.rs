//! The relay's own tests: windows, ordering, cancels and ends, without sockets.

use crvm_proto::msg::xfer;

use super::*;
use crate::outbox::{Outbox, State as OutState};

fn ep(n: u64) -> LocalEnd {
    LocalEnd {
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
        r.data(here(2), sid, chunk(sid, 10)).is_err(),
        "not the sender"
    );
    assert!(r.data(here(1), sid, chunk(sid, w)).is_ok());
    assert!(r.data(here(1), sid, chunk(sid, 1)).is_err(), "window full");
    r.ack(LoginGen(2), sid, 100);
    assert!(r.data(here(1), sid, chunk(sid, 100)).is_ok());
    assert_eq!(
        a.outbox.take_msgs(),
        [ServerMsg::Progress { sid, bytes: 100 }]
    );
    // Nothing beyond the offered size.
    let small = r
        .offer(8, a.clone().into(), b.clone(), offer(XferKind::Buffer, 5))
        .unwrap();
    assert!(r.data(here(1), small, chunk(small, 6)).is_err());
    assert!(
        r.data(here(1), 999, chunk(999, 6)).is_ok(),
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
    let senders: Vec<LocalEnd> = (1..=5).map(ep).collect();
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
    assert!(r.data(here(owner), waiting, chunk(waiting, 1)).is_err());
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

#[test]
fn a_remote_sender_is_never_taken_for_a_local_one() {
    // Session 1 of another node: the same number as local session 1.
    let remote = SessionKey::There(LoginGen(1));
    let r = Relay::new();
    let (a, b) = (ep(1), ep(2));
    let sid = r
        .offer(1, a.clone().into(), b.clone(), offer(XferKind::File, 100))
        .unwrap();
    assert!(
        r.data(remote, sid, chunk(sid, 10)).is_err(),
        "not its stream"
    );
    r.session_ended(remote);
    assert_eq!(r.len(), 1, "the local session's stream lives on");
    assert!(r.data(here(1), sid, chunk(sid, 10)).is_ok());
    assert_eq!(b.outbox.state(), OutState::Open);
}

// The transitions alone: what each emits, to whom, in which order (no outbox involved).

/// An effect as the tests see it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Msg(SessionKey, ServerMsg),
    /// `CmdIn`'s bytes, or a chunk's (without its stream ID).
    Bytes(LoginGen, usize),
}

/// Records the effects of transitions.
#[derive(Default)]
struct Rec(Vec<Seen>);

impl Sink for Rec {
    fn effect(&mut self, e: Effect<'_>) {
        match e {
            Effect::ToSender(to, msg) => self.0.push(Seen::Msg(to.key(), msg)),
            Effect::ToReceiver(to, msg) => self.0.push(Seen::Msg(here(to.gen.0), msg)),
            Effect::CmdIn { to, n, from, data } => {
                let from = from.to_owned();
                self.0
                    .push(Seen::Msg(here(to.gen.0), ServerMsg::CmdIn { n, from }));
                self.0.push(Seen::Bytes(to.gen, data.len()));
            }
            Effect::Data { to, payload } => self.0.push(Seen::Bytes(to.gen, payload.len() - 8)),
        }
    }
}

impl Rec {
    fn take(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.0)
    }
}

fn said(to: u64, msg: ServerMsg) -> Seen {
    Seen::Msg(here(to), msg)
}

fn incoming_msg(sid: u64, size: u64) -> ServerMsg {
    ServerMsg::Incoming {
        sid,
        task: "t".into(),
        from: "alice".into(),
        kind: XferKind::File,
        size,
        name: String::new(),
    }
}

#[test]
fn an_offer_answers_before_it_starts_and_the_receiver_hears_first() {
    let mut st = State::default();
    let mut fx = Rec::default();
    let (a, b) = (ep(1), ep(2));
    let sid = st
        .offer(7, a.into(), b, offer(XferKind::File, 10), &mut fx)
        .unwrap();
    let res = ServerMsg::Res {
        re: 7,
        result: crvm_proto::Outcome::Offer { sid },
    };
    assert_eq!(
        fx.take(),
        [
            said(1, res),
            said(2, incoming_msg(sid, 10)),
            said(1, ServerMsg::Start { sid }),
        ]
    );
    st.data(here(1), sid, chunk(sid, 10), &mut fx).unwrap();
    st.data_end(here(1), sid, "h".into(), &mut fx);
    st.ack(LoginGen(2), sid, 10, &mut fx);
    st.fin(LoginGen(2), sid, CRVIDEOSDK_NOERR, &mut fx);
    assert_eq!(
        fx.take(),
        [
            Seen::Bytes(LoginGen(2), 10),
            said(
                2,
                ServerMsg::DataEnd {
                    sid,
                    hash: "h".into()
                }
            ),
            said(1, ServerMsg::Progress { sid, bytes: 10 }),
            said(
                1,
                ServerMsg::XferEnd {
                    sid,
                    code: CRVIDEOSDK_NOERR
                }
            ),
        ]
    );
    assert!(st.streams.is_empty() && st.outgoing.is_empty());
}

#[test]
fn a_waiting_stream_starts_when_one_ends_before_that_ones_end_is_told() {
    let mut st = State::default();
    let mut fx = Rec::default();
    let b = ep(100);
    let sids: Vec<u64> = (1..=xfer::MAX_INCOMING as u64 + 1)
        .map(|n| {
            st.offer(
                n,
                ep(n).into(),
                b.clone(),
                offer(XferKind::File, 1),
                &mut fx,
            )
            .unwrap()
        })
        .collect();
    let last = *sids.last().unwrap();
    let waiting = xfer::MAX_INCOMING as u64 + 1;
    // The last one is only answered: it waits for room.
    assert_eq!(
        fx.take().last(),
        Some(&said(
            waiting,
            ServerMsg::Res {
                re: waiting,
                result: crvm_proto::Outcome::Offer { sid: last }
            }
        ))
    );
    st.fin(LoginGen(100), sids[0], CRVIDEOSDK_NOERR, &mut fx);
    assert_eq!(
        fx.take(),
        [
            said(100, incoming_msg(last, 1)),
            said(waiting, ServerMsg::Start { sid: last }),
            said(
                1,
                ServerMsg::XferEnd {
                    sid: sids[0],
                    code: CRVIDEOSDK_NOERR
                }
            ),
        ]
    );
}

#[test]
fn cmds_wait_for_the_receivers_window_and_are_done_per_sender() {
    let mut st = State::default();
    let mut fx = Rec::default();
    let (a, c, b) = (Endpoint::from(ep(1)), Endpoint::from(ep(3)), ep(2));
    for n in 1..=xfer::CMD_RECV_WINDOW as u64 {
        let sender = if n % 2 == 1 { &a } else { &c };
        assert_eq!(st.cmd(sender, "u", n, &b, vec![0; 4], &mut fx), Ok(Ok(())));
    }
    assert_eq!(fx.take().len(), 2 * xfer::CMD_RECV_WINDOW, "all delivered");
    // The window is full: a third sender's cmd waits, and goes when the first two are
    // acknowledged.
    let d = Endpoint::from(ep(4));
    assert_eq!(st.cmd(&d, "u", 99, &b, vec![0; 5], &mut fx), Ok(Ok(())));
    assert_eq!(fx.take(), []);
    st.cmd_ack(LoginGen(2), 2, &mut fx);
    let n = xfer::CMD_RECV_WINDOW as u64 + 1;
    let from = "u".to_owned();
    assert_eq!(
        fx.take(),
        [
            said(2, ServerMsg::CmdIn { n, from }),
            Seen::Bytes(LoginGen(2), 5),
            said(
                1,
                ServerMsg::CmdDone {
                    ns: vec![1],
                    code: CRVIDEOSDK_NOERR
                }
            ),
            said(
                3,
                ServerMsg::CmdDone {
                    ns: vec![2],
                    code: CRVIDEOSDK_NOERR
                }
            ),
        ]
    );
}

#[test]
fn a_receiver_that_ends_fails_what_it_had_coming_towards_each_sender() {
    let mut st = State::default();
    let mut fx = Rec::default();
    let (a, b) = (ep(1), ep(2));
    let sender = Endpoint::from(a.clone());
    st.cmd(&sender, "u", 5, &b, vec![1], &mut fx)
        .unwrap()
        .unwrap();
    let sid = st
        .offer(1, a.into(), b, offer(XferKind::File, 10), &mut fx)
        .unwrap();
    fx.take();
    st.session_ended(here(2), &mut fx);
    let gone = crvm_proto::error::CRVIDEOSDK_SENDDATA_TARGETINVALID;
    assert_eq!(
        fx.take(),
        [
            said(
                1,
                ServerMsg::CmdDone {
                    ns: vec![5],
                    code: gone
                }
            ),
            said(1, ServerMsg::XferEnd { sid, code: gone }),
        ]
    );
    assert!(st.streams.is_empty() && st.outgoing.is_empty());
}

#[test]
fn a_cancel_is_the_receivers_to_answer_once_started() {
    let mut st = State::default();
    let mut fx = Rec::default();
    let (a, b) = (ep(1), ep(2));
    let sender = Endpoint::from(a);
    let sid = st
        .offer(1, sender.clone(), b, offer(XferKind::File, 10), &mut fx)
        .unwrap();
    fx.take();
    st.cancel(&sender, sid, &mut fx);
    st.cancel(&sender, sid, &mut fx);
    assert_eq!(
        fx.take(),
        [said(2, ServerMsg::Cancelled { sid })],
        "told once"
    );
    st.data(here(1), sid, chunk(sid, 4), &mut fx).unwrap();
    assert_eq!(fx.take(), [], "a cancelled stream's chunks are dropped");
    st.cancel_ack(LoginGen(2), sid, CRVIDEOSDK_NOERR, &mut fx);
    assert_eq!(
        fx.take(),
        [said(
            1,
            ServerMsg::CancelDone {
                sid,
                code: CRVIDEOSDK_NOERR
            }
        )]
    );
}

#[test]
fn results_of_a_session_that_arrived_wait_for_the_fence_of_the_node_it_came_from() {
    // Sender 1 arrived from node "w1": results this relay sent it there are still on their
    // way back through w1, so its results made here now are held, in order, until w1's fence.
    let mut st = State::default();
    let mut fx = Rec::default();
    let (a, b) = (ep(1), ep(2));
    let sender = Endpoint::from(a.clone());
    st.hold_results(&a, "w1");
    for n in 1..=3 {
        st.cmd(&sender, "u", n, &b, vec![0; 4], &mut fx)
            .unwrap()
            .unwrap();
    }
    fx.take();
    st.cmd_ack(LoginGen(2), 2, &mut fx);
    st.cmd_ack(LoginGen(2), 3, &mut fx);
    assert_eq!(fx.take(), [], "held while the fence is out");
    let f = st.fence_passed(LoginGen(1)).expect("held");
    let done = |ns: Vec<u64>| ServerMsg::CmdDone {
        ns,
        code: CRVIDEOSDK_NOERR,
    };
    assert_eq!(f.held, [done(vec![1, 2]), done(vec![3])]);
    assert_eq!(f.from, "w1");
    // Then they flow again.
    st.cmd(&sender, "u", 4, &b, vec![0; 4], &mut fx)
        .unwrap()
        .unwrap();
    fx.take();
    st.cmd_ack(LoginGen(2), 4, &mut fx);
    assert_eq!(fx.take(), [said(1, done(vec![4]))]);
    assert!(st.fence_passed(LoginGen(1)).is_none());
}
