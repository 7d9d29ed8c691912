//! Ordering of cmds through the relay (docs/API.md §3.5), at the protocol level: eight senders keep
//! many cmds each unfinished towards one receiver, which acknowledges every `cmd_in` the moment
//! it has it. The receiver must get each sender's cmds in the order they were sent, numbered
//! 1, 2, 3, … on its connection without a gap; each sender must hear exactly one `cmd_done`
//! (code 0) per cmd, for its own numbers in order, none missing, none twice, and never before
//! the receiver acknowledged that cmd.
//!
//! History: in protocol version 1 cmds were transfers, and an instant `fin` could make the
//! `xfer_end` overtake its `res{offer}`, so the sender could not match the end to its request and
//! waited for ever (found by crvm-bench: eight senders sending cmds to one receiver now and then
//! lost a `send_cmd_rlst`). Version 2 numbers cmds per connection and answers them end to end
//! with `cmd_done`; this test holds the new path to the same standard under the same load.

mod common;

use common::*;
use crvm_proto::msg::xfer;
use crvm_proto::{ClientMsg, ServerMsg};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const SENDERS: usize = 8;
const CMDS_PER_SENDER: u64 = 1000;
/// Cmds each sender keeps unfinished. Together the senders have twice the receiver's window
/// (by count) in flight, so cmds also wait in the relay and must leave it in order; at most
/// 600 × 6 KB are unfinished per sender, within its byte window.
const IN_FLIGHT: u64 = 600;

/// The bytes of sender `tx`'s cmd number `n`: both numbers, then a filler whose length varies
/// (up to ~6 KB) so that the relay's byte windows, not only its count windows, come into play.
fn payload(tx: usize, n: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + 6000);
    p.extend_from_slice(&(tx as u64).to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    let fill = (n % 7) as usize * 1000;
    p.extend((0..fill).map(|i| (i as u64 ^ n ^ tx as u64) as u8));
    p
}

/// Sender and number of a cmd's bytes (checking the filler too).
fn parse(data: &[u8]) -> (usize, u64) {
    assert!(data.len() >= 16, "cmd of {} bytes", data.len());
    let tx = u64::from_be_bytes(data[..8].try_into().unwrap()) as usize;
    let n = u64::from_be_bytes(data[8..16].try_into().unwrap());
    assert!(tx < SENDERS, "sender {tx}");
    assert!(
        data == payload(tx, n),
        "the bytes of tx{tx}'s cmd {n} differ"
    );
    (tx, n)
}

#[test]
fn cmds_keep_their_order_and_each_is_done_once() {
    const {
        assert!(IN_FLIGHT as usize <= xfer::CMD_WINDOW);
        assert!(SENDERS * IN_FLIGHT as usize > xfer::CMD_RECV_WINDOW);
    }
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut rx = s.login("demo", "rx");
    let total = SENDERS as u64 * CMDS_PER_SENDER;
    // Per sender, the highest cmd number the receiver has acknowledged (stored before the
    // acknowledgement is sent, so a `cmd_done` can be checked against it).
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..SENDERS).map(|_| AtomicU64::new(0)).collect());
    // The receiver acknowledges every cmd the moment it has it.
    let receiver = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            let mut next = [1u64; SENDERS];
            for expected_n in 1..=total {
                let (n, from, data) = rx.cmd_in();
                assert_eq!(n, expected_n, "cmd_in numbers run 1, 2, 3, … without a gap");
                let (tx, k) = parse(&data);
                assert_eq!(from, format!("tx{tx}"), "cmd {k} of tx{tx} from {from}");
                assert_eq!(k, next[tx], "tx{tx}'s cmds out of order");
                next[tx] += 1;
                acked[tx].store(k, Ordering::SeqCst);
                rx.send(&ClientMsg::CmdAck { upto: n });
            }
            assert!(next.iter().all(|&k| k == CMDS_PER_SENDER + 1), "{next:?}");
            rx
        })
    };
    let senders: Vec<_> = (0..SENDERS)
        .map(|tx| {
            let mut c = s.login("demo", &format!("tx{tx}"));
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                let (mut sent, mut done) = (0u64, 0u64);
                while done < CMDS_PER_SENDER {
                    while sent < CMDS_PER_SENDER && sent - done < IN_FLIGHT {
                        sent += 1;
                        let cmd = ClientMsg::Cmd {
                            n: sent,
                            to: "rx".into(),
                        };
                        c.send_attached(&cmd, &payload(tx, sent));
                    }
                    match c.msg() {
                        ServerMsg::CmdDone { ns, code } => {
                            assert_eq!(code, 0, "tx{tx}: cmd_done {ns:?}");
                            assert_eq!(ns, [done + 1], "tx{tx}: one cmd_done per cmd, in order");
                            let seen = acked[tx].load(Ordering::SeqCst);
                            assert!(
                                seen > done,
                                "tx{tx}: cmd_done of {} before the receiver acknowledged it \
                                 (it has acknowledged up to {seen})",
                                done + 1
                            );
                            done += 1;
                        }
                        other => panic!("tx{tx}: {other:?}"),
                    }
                }
                c
            })
        })
        .collect();
    let mut senders: Vec<Client> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let mut rx = receiver.join().unwrap();
    // Nothing doubled or left over on either side.
    assert_nothing_pending(&mut rx, "rx");
    for (tx, c) in senders.iter_mut().enumerate() {
        assert_nothing_pending(c, &format!("tx{tx}"));
    }
}
