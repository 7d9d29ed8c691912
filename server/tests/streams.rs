//! Admission of buffer and file streams at the protocol level (docs/API.md §3.5, protocol v2): an
//! offer is answered `res{offer}` and its data may flow only after `start`; a sender has at most
//! [`xfer::MAX_OUTGOING`] unfinished streams (the next offer is refused with 1000); a receiver
//! takes [`xfer::MAX_INCOMING`] at once and further offers to it wait, starting in order as
//! earlier ones end (in protocol version 1 they were refused with 1000); data before `start` is
//! a protocol violation. Cmds are not streams: an offer of kind `cmd` is malformed (5).

mod common;

use common::*;
use crvm_proto::msg::xfer;
use crvm_proto::{ClientMsg, Kind, Op, ServerMsg, XferKind};

/// Offers `size` bytes of `kind` from `c` to `to`: the stream ID, or the refusal's code.
fn offer(c: &mut Client, to: &str, task: &str, kind: XferKind, size: u64) -> Result<u64, i32> {
    match c.request(Op::Offer {
        task: task.into(),
        to: to.into(),
        kind,
        size,
        name: if kind == XferKind::File {
            "f.bin".into()
        } else {
            String::new()
        },
    }) {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Offer { sid },
            ..
        } => Ok(sid),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Err(code),
            ..
        } => Err(code),
        other => panic!("answer to an offer: {other:?}"),
    }
}

/// A buffer offer that the receiver has room for: `res{offer}`, then `start` at once.
fn offer_started(c: &mut Client, to: &str, task: &str) -> u64 {
    let sid = offer(c, to, task, XferKind::Buffer, 10).unwrap();
    assert_eq!(c.msg(), ServerMsg::Start { sid }, "{task}");
    sid
}

/// The next message of the receiver `rx`: `incoming` for stream `sid`, offered by `from` as
/// `task`.
fn expect_incoming(rx: &mut Client, sid: u64, from: &str, task: &str) {
    assert_eq!(
        rx.msg(),
        ServerMsg::Incoming {
            sid,
            task: task.into(),
            from: from.into(),
            kind: XferKind::Buffer,
            size: 10,
            name: String::new(),
        }
    );
}

#[test]
fn offer_refusals_and_the_senders_limit() {
    let dir = TmpDir::new();
    let s = Server::start(
        &dir,
        &config("max_buffer_bytes = 1000\nmax_file_bytes = 2000"),
    );
    let mut tx = s.login("demo", "tx");
    let mut rx = s.login("demo", "rx");
    // Cmds travel as `cmd` messages, never as streams; nobody sends to themselves.
    assert_eq!(offer(&mut tx, "rx", "c", XferKind::Cmd, 3), Err(5));
    assert_eq!(offer(&mut tx, "tx", "self", XferKind::Buffer, 10), Err(5));
    assert_eq!(offer(&mut tx, "", "empty", XferKind::Buffer, 10), Err(5));
    assert_eq!(
        offer(&mut tx, "nobody", "n", XferKind::Buffer, 10),
        Err(1102)
    );
    assert_eq!(
        offer(&mut tx, "rx", "big", XferKind::Buffer, 1001),
        Err(1101)
    );
    assert_eq!(
        offer(&mut tx, "rx", "huge", XferKind::File, 2001),
        Err(1103)
    );
    // The sender's limit: MAX_OUTGOING unfinished streams, buffers and files alike.
    let sids: Vec<u64> = (0..xfer::MAX_OUTGOING)
        .map(|i| offer_started(&mut tx, "rx", &format!("t{i}")))
        .collect();
    assert_eq!(
        offer(&mut tx, "rx", "one more", XferKind::Buffer, 10),
        Err(1000)
    );
    assert_eq!(
        offer(&mut tx, "rx", "a file", XferKind::File, 10),
        Err(1000)
    );
    for (i, sid) in sids.iter().enumerate() {
        expect_incoming(&mut rx, *sid, "tx", &format!("t{i}"));
    }
    assert_nothing_pending(&mut rx, "rx");
    // One ends: its sender hears so, and has room for one more.
    rx.send(&ClientMsg::Fin {
        sid: sids[0],
        code: 0,
    });
    assert_eq!(
        tx.msg(),
        ServerMsg::XferEnd {
            sid: sids[0],
            code: 0
        }
    );
    let sid = offer_started(&mut tx, "rx", "again");
    expect_incoming(&mut rx, sid, "tx", "again");
    assert_eq!(
        offer(&mut tx, "rx", "and again", XferKind::Buffer, 10),
        Err(1000)
    );
}

#[test]
fn streams_beyond_the_receivers_limit_wait_and_start_in_order() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut rx = s.login("demo", "rx");
    let full = xfer::MAX_INCOMING / xfer::MAX_OUTGOING;
    // `full` senders fill the receiver (each at its own limit), one more sender's streams wait.
    let mut tx: Vec<Client> = (0..=full)
        .map(|k| s.login("demo", &format!("tx{k}")))
        .collect();
    let mut started = Vec::new();
    for (k, c) in tx[..full].iter_mut().enumerate() {
        for i in 0..xfer::MAX_OUTGOING {
            let task = format!("t{k}-{i}");
            started.push((k, offer_started(c, "rx", &task), task));
        }
    }
    assert_eq!(started.len(), xfer::MAX_INCOMING);
    let waiting: Vec<(u64, String)> = (0..xfer::MAX_OUTGOING)
        .map(|i| {
            let task = format!("w-{i}");
            let sid = offer(&mut tx[full], "rx", &task, XferKind::Buffer, 10);
            (
                sid.expect("an offer beyond the receiver's limit waits"),
                task,
            )
        })
        .collect();
    // No `start` for the waiting ones, no `incoming` beyond the limit.
    assert_nothing_pending(&mut tx[full], "the waiting sender");
    for (k, sid, task) in &started {
        expect_incoming(&mut rx, *sid, &format!("tx{k}"), task);
    }
    assert_nothing_pending(&mut rx, "rx");
    // One more sender, queued behind them.
    let mut late = s.login("demo", "late");
    let late_sid = offer(&mut late, "rx", "late", XferKind::Buffer, 10).unwrap();
    // Each stream that ends lets the next waiting one start, in the order offered.
    let w = format!("tx{full}");
    for ((k, sid, _), (next, task)) in started.iter().zip(&waiting) {
        rx.send(&ClientMsg::Fin { sid: *sid, code: 0 });
        assert_eq!(tx[*k].msg(), ServerMsg::XferEnd { sid: *sid, code: 0 });
        assert_eq!(tx[full].msg(), ServerMsg::Start { sid: *next });
        expect_incoming(&mut rx, *next, &w, task);
    }
    assert_nothing_pending(&mut rx, "rx");
    // Still full: the late stream waits. Data on it before its `start` breaks the protocol.
    assert_nothing_pending(&mut late, "late");
    let bytes = late
        .codec
        .frame(Kind::Data, &[&late_sid.to_be_bytes(), b"0123456789"]);
    late.raw(&bytes);
    late.expect_close(6);
    assert!(
        s.log_text().contains("data before start"),
        "{}",
        s.log_text()
    );
    // The receiver never heard of it, and what it has goes on: the next stream to end leaves
    // room that nothing fills.
    assert_nothing_pending(&mut rx, "rx");
    let (k, sid, _) = &started[xfer::MAX_OUTGOING];
    rx.send(&ClientMsg::Fin { sid: *sid, code: 0 });
    assert_eq!(tx[*k].msg(), ServerMsg::XferEnd { sid: *sid, code: 0 });
    assert_nothing_pending(&mut rx, "rx");
}
