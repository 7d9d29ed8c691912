//! Point-to-point transfers (SPEC §3.5), relayed: the sender's library streams to the server,
//! the server to the receiver's library, and the receiver's acknowledgements travel back the
//! same way. Nothing is stored; the relay only routes and enforces flow control.
//!
//! Flow control is end to end: a sender may have at most [`xfer::WINDOW`] bytes of a transfer
//! beyond what the receiver acknowledged. The relay checks it on every chunk and closes a
//! sender that overruns it, so per transfer it never queues more than one window, and per
//! receiving session never more than [`xfer::MAX_INCOMING`] windows — whatever the speeds.
//!
//! The receiver decides how a transfer ends (`fin`), including against a cancel: a cancel that
//! reaches the receiver after it delivered the data is answered 1104, so the sender's app never
//! hears "cancelled" for data the receiver's app was given.

use std::collections::HashMap;

use crvm_proto::error::{
    CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID, CRVIDEOSDK_SENDFAIL,
    CRVIDEOSDK_TRANSID_INVALID,
};
use crvm_proto::msg::xfer;
use crvm_proto::{ServerMsg, XferKind};
use parking_lot::Mutex;

use crate::hub::ConnId;
use crate::outbox::{Out, Outbox};

/// One side of a transfer.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub conn_id: ConnId,
    pub outbox: Outbox,
}

impl Endpoint {
    fn tell(&self, msg: &ServerMsg) {
        // A full or closing outbox takes care of its own connection.
        let _ = self.outbox.push(Out::msg(msg));
    }
}

#[derive(Debug)]
struct Xfer {
    kind: XferKind,
    sender: Endpoint,
    receiver: Endpoint,
    size: u64,
    /// Data bytes relayed to the receiver so far.
    relayed: u64,
    /// Highest byte count the receiver acknowledged.
    acked: u64,
    /// The sender asked to cancel; waiting for the receiver's answer.
    cancelling: bool,
}

/// A sender broke the protocol on a stream: its connection must be closed.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub &'static str);

#[derive(Debug, Default)]
struct State {
    next_sid: u64,
    xfers: HashMap<u64, Xfer>,
}

/// The transfers in flight on this server.
#[derive(Debug, Default)]
pub struct Relay {
    state: Mutex<State>,
}

impl Relay {
    pub fn new() -> Relay {
        Relay::default()
    }

    /// Registers a transfer from `sender` to `receiver` and returns its stream ID. 1000 when
    /// the receiver already has [`xfer::MAX_INCOMING`] transfers coming in.
    pub fn offer(
        &self,
        sender: Endpoint,
        receiver: Endpoint,
        kind: XferKind,
        size: u64,
    ) -> Result<u64, i32> {
        let mut st = self.state.lock();
        // A session that is going away takes no new transfers (it closes its outbox before it
        // asks the relay to end the ones it has).
        if !receiver.outbox.is_open() {
            return Err(CRVIDEOSDK_SENDDATA_TARGETINVALID);
        }
        let incoming = st
            .xfers
            .values()
            .filter(|x| x.receiver.conn_id == receiver.conn_id)
            .count();
        if incoming >= xfer::MAX_INCOMING {
            return Err(CRVIDEOSDK_SENDFAIL);
        }
        st.next_sid += 1;
        let sid = st.next_sid;
        st.xfers.insert(
            sid,
            Xfer {
                kind,
                sender,
                receiver,
                size,
                relayed: 0,
                acked: 0,
                cancelling: false,
            },
        );
        Ok(sid)
    }

    /// A data frame from `from` (payload: stream ID then bytes): forwarded as is, or dropped if
    /// its transfer is gone or being cancelled. Overrunning the window or the size, or writing
    /// to someone else's stream, is a violation.
    pub fn data(&self, from: ConnId, sid: u64, payload: Vec<u8>) -> Result<(), Violation> {
        let len = (payload.len() - 8) as u64;
        let mut st = self.state.lock();
        let Some(x) = st.xfers.get_mut(&sid) else {
            return Ok(()); // ended meanwhile (receiver gone); the sender will hear of it
        };
        if x.sender.conn_id != from || x.kind == XferKind::Cmd {
            return Err(Violation("data on a stream that is not yours"));
        }
        if x.cancelling {
            return Ok(());
        }
        if x.relayed + len > x.size {
            return Err(Violation("more data than offered"));
        }
        if x.relayed + len - x.acked > xfer::WINDOW {
            return Err(Violation("flow-control window exceeded"));
        }
        x.relayed += len;
        // The window bounds this queue; should it overflow anyway, the receiver's outbox closes
        // that connection and `session_ended` tells the sender.
        let _ = x.receiver.outbox.push_data(payload);
        Ok(())
    }

    /// The sender's checksum, after its last chunk.
    pub fn data_end(&self, from: ConnId, sid: u64, hash: String) {
        let st = self.state.lock();
        if let Some(x) = st.xfers.get(&sid) {
            if x.sender.conn_id == from && !x.cancelling {
                x.receiver.tell(&ServerMsg::DataEnd { sid, hash });
            }
        }
    }

    /// The receiver holds `bytes` of the stream: pass the credit on to the sender.
    pub fn ack(&self, from: ConnId, sid: u64, bytes: u64) {
        let mut st = self.state.lock();
        if let Some(x) = st.xfers.get_mut(&sid) {
            if x.receiver.conn_id == from && bytes > x.acked {
                x.acked = bytes.min(x.relayed);
                x.sender.tell(&ServerMsg::Progress {
                    sid,
                    bytes: x.acked,
                });
            }
        }
    }

    /// The receiver finished the stream with `code`.
    pub fn fin(&self, from: ConnId, sid: u64, code: i32) {
        let mut st = self.state.lock();
        match st.xfers.get(&sid) {
            Some(x) if x.receiver.conn_id == from => {}
            _ => return,
        }
        let x = st.xfers.remove(&sid).expect("checked above");
        x.sender.tell(&ServerMsg::XferEnd { sid, code });
        if x.cancelling {
            // The receiver finished before it saw the cancel: too late to cancel.
            x.sender.tell(&ServerMsg::CancelDone {
                sid,
                code: CRVIDEOSDK_TRANSID_INVALID,
            });
        }
    }

    /// The sender wants to abandon the stream; the receiver decides (see the module doc).
    pub fn cancel(&self, from: &Endpoint, sid: u64) {
        let mut st = self.state.lock();
        match st.xfers.get_mut(&sid) {
            Some(x) if x.sender.conn_id == from.conn_id => {
                if !x.cancelling {
                    x.cancelling = true;
                    x.receiver.tell(&ServerMsg::Cancelled { sid });
                }
            }
            _ => from.tell(&ServerMsg::CancelDone {
                sid,
                code: CRVIDEOSDK_TRANSID_INVALID,
            }),
        }
    }

    /// The receiver's answer to `cancelled`.
    pub fn cancel_ack(&self, from: ConnId, sid: u64, code: i32) {
        let mut st = self.state.lock();
        match st.xfers.get(&sid) {
            Some(x) if x.receiver.conn_id == from && x.cancelling => {}
            _ => return,
        }
        let x = st.xfers.remove(&sid).expect("checked above");
        x.sender.tell(&ServerMsg::CancelDone { sid, code });
    }

    /// A session ended: its outgoing transfers are cancelled towards their receivers, its
    /// incoming ones fail towards their senders (1102), or count as cancelled if the sender was
    /// cancelling anyway.
    pub fn session_ended(&self, conn_id: ConnId) {
        let mut st = self.state.lock();
        let ended: Vec<u64> = st
            .xfers
            .iter()
            .filter(|(_, x)| x.sender.conn_id == conn_id || x.receiver.conn_id == conn_id)
            .map(|(sid, _)| *sid)
            .collect();
        for sid in ended {
            let x = st.xfers.remove(&sid).expect("listed above");
            if x.sender.conn_id == conn_id {
                if x.receiver.conn_id != conn_id {
                    x.receiver.tell(&ServerMsg::Cancelled { sid });
                }
            } else if x.cancelling {
                x.sender.tell(&ServerMsg::CancelDone {
                    sid,
                    code: CRVIDEOSDK_NOERR,
                });
            } else {
                x.sender.tell(&ServerMsg::XferEnd {
                    sid,
                    code: CRVIDEOSDK_SENDDATA_TARGETINVALID,
                });
            }
        }
    }

    /// Transfers in flight (for tests and logs).
    pub fn len(&self) -> usize {
        self.state.lock().xfers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{Flow, State as OutState};

    fn ep(conn_id: ConnId) -> Endpoint {
        Endpoint {
            conn_id,
            outbox: Outbox::default(),
        }
    }

    fn chunk(sid: u64, n: usize) -> Vec<u8> {
        let mut p = sid.to_be_bytes().to_vec();
        p.resize(8 + n, 7);
        p
    }

    async fn msgs(ob: &Outbox) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while ob.queued_bytes() > 0 {
            let mut batch = Vec::new();
            assert_eq!(ob.next_batch(&mut batch).await, Flow::Ready);
            for o in batch {
                if let Out::Control(j) = o {
                    out.push(serde_json::from_slice(&j).unwrap());
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn window_size_and_ownership_are_enforced() {
        let r = Relay::new();
        let (a, b) = (ep(1), ep(2));
        let sid = r
            .offer(a.clone(), b.clone(), XferKind::File, 4 << 20)
            .unwrap();
        let w = xfer::WINDOW as usize;
        assert!(r.data(2, sid, chunk(sid, 10)).is_err(), "not the sender");
        assert!(r.data(1, sid, chunk(sid, w)).is_ok());
        assert!(r.data(1, sid, chunk(sid, 1)).is_err(), "window full");
        r.ack(2, sid, 100);
        assert!(r.data(1, sid, chunk(sid, 100)).is_ok());
        assert_eq!(
            msgs(&a.outbox).await,
            [ServerMsg::Progress { sid, bytes: 100 }]
        );
        // Nothing beyond the offered size.
        let small = r.offer(a.clone(), b.clone(), XferKind::Buffer, 5).unwrap();
        assert!(r.data(1, small, chunk(small, 6)).is_err());
        assert!(
            r.data(1, 999, chunk(999, 6)).is_ok(),
            "unknown streams are dropped"
        );
    }

    #[tokio::test]
    async fn cancel_is_decided_by_the_receiver() {
        let r = Relay::new();
        let (a, b) = (ep(1), ep(2));
        let s1 = r.offer(a.clone(), b.clone(), XferKind::Buffer, 10).unwrap();
        r.cancel(&a, s1);
        r.cancel_ack(2, s1, 0);
        let s2 = r.offer(a.clone(), b.clone(), XferKind::Buffer, 10).unwrap();
        r.cancel(&a, s2);
        r.fin(2, s2, 0); // delivered before the cancel arrived
        r.cancel_ack(2, s2, 1104); // ignored: already answered
        r.cancel(&a, 777);
        assert_eq!(
            msgs(&a.outbox).await,
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
        assert_eq!(
            msgs(&b.outbox).await,
            [
                ServerMsg::Cancelled { sid: s1 },
                ServerMsg::Cancelled { sid: s2 }
            ]
        );
        assert!(r.is_empty());
    }

    #[tokio::test]
    async fn ended_sessions_end_their_transfers() {
        let r = Relay::new();
        let (a, b, c) = (ep(1), ep(2), ep(3));
        let out = r.offer(a.clone(), b.clone(), XferKind::File, 10).unwrap();
        let inc = r.offer(c.clone(), a.clone(), XferKind::File, 10).unwrap();
        let other = r.offer(c.clone(), b.clone(), XferKind::File, 10).unwrap();
        r.session_ended(1);
        assert_eq!(msgs(&b.outbox).await, [ServerMsg::Cancelled { sid: out }]);
        assert_eq!(
            msgs(&c.outbox).await,
            [ServerMsg::XferEnd {
                sid: inc,
                code: 1102
            }]
        );
        assert_eq!(r.len(), 1);
        r.fin(2, other, 0);
        assert!(r.is_empty());
        assert_eq!(a.outbox.state(), OutState::Open);
    }

    #[test]
    fn incoming_transfers_are_capped_per_receiver() {
        let r = Relay::new();
        for _ in 0..xfer::MAX_INCOMING {
            r.offer(ep(1), ep(2), XferKind::Buffer, 1).unwrap();
        }
        assert_eq!(r.offer(ep(1), ep(2), XferKind::Buffer, 1), Err(1000));
        assert!(r.offer(ep(1), ep(3), XferKind::Buffer, 1).is_ok());
    }
}
