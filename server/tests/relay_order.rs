//! Ordering of a transfer's messages at its sender when the receiver answers at once: the
//! sender must hear `offer_ok` (which tells it the stream ID) before the `xfer_end` of that
//! stream, or it cannot match the end to its request and waits for ever. Found by crvm-bench:
//! eight senders sending cmds to one receiver now and then lost a `send_cmd_rlst`.

mod common;

use common::*;
use crvm_proto::{ClientMsg, ServerMsg, XferKind};
use std::collections::HashSet;

const SENDERS: usize = 8;
const CMDS_PER_SENDER: u64 = 400;
/// Cmds each sender keeps in flight (8 × 4 = the 32 a receiver may have coming in).
const IN_FLIGHT: u64 = 4;

#[test]
fn offer_ok_always_precedes_xfer_end() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut rx = s.login("demo", "rx");
    let total = SENDERS as u64 * CMDS_PER_SENDER;
    // The receiver ends every transfer the moment it hears of it.
    let receiver = std::thread::spawn(move || {
        let mut ended = 0;
        while ended < total {
            if let ServerMsg::Incoming { sid, kind, .. } = rx.msg() {
                assert_eq!(kind, XferKind::Cmd);
                rx.send(&ClientMsg::Fin { sid, code: 0 });
                ended += 1;
            }
        }
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| {
            let mut c = s.login("demo", &format!("tx{n}"));
            std::thread::spawn(move || {
                let (mut offered, mut done) = (0u64, 0u64);
                let mut known = HashSet::new();
                while done < CMDS_PER_SENDER {
                    while offered < CMDS_PER_SENDER && offered - done < IN_FLIGHT {
                        let id = c.id();
                        let offer = ClientMsg::Offer {
                            id,
                            task: format!("t{n}-{offered}"),
                            to: "rx".into(),
                            kind: XferKind::Cmd,
                            size: 3,
                            name: String::new(),
                        };
                        c.send_attached(&offer, b"cmd");
                        offered += 1;
                    }
                    match c.msg() {
                        ServerMsg::OfferOk { sid, .. } => {
                            known.insert(sid);
                        }
                        ServerMsg::XferEnd { sid, code } => {
                            assert!(
                                known.remove(&sid),
                                "tx{n}: xfer_end of stream {sid} before its offer_ok"
                            );
                            assert_eq!(code, 0);
                            done += 1;
                        }
                        ServerMsg::UserStatus { .. } => {}
                        other => panic!("tx{n}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    receiver.join().unwrap();
}
