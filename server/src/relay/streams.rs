//! Streams of buffers and files through the relay (see the module doc of [`super`]): offers,
//! their turn at the receiver, the window of each, and how they end.

use std::borrow::Cow;

use crvm_proto::error::{
    CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID, CRVIDEOSDK_SENDFAIL,
    CRVIDEOSDK_TRANSID_INVALID,
};
use crvm_proto::msg::xfer;
use crvm_proto::ServerMsg;

use super::{Effect, Offer, Sink, State, Violation};
use crate::ids::{LoginGen, SessionKey};
use crate::route::endpoint::{Endpoint, LocalEnd};

#[derive(Debug)]
pub(super) struct Stream {
    pub(super) offer: Offer,
    pub(super) sender: Endpoint,
    pub(super) receiver: LocalEnd,
    /// The receiver has been told (`incoming`) and the sender may send (`start`).
    pub(super) started: bool,
    /// Data bytes relayed to the receiver so far.
    pub(super) relayed: u64,
    /// Highest byte count the receiver acknowledged.
    pub(super) acked: u64,
    /// The sender asked to cancel; waiting for the receiver's answer.
    pub(super) cancelling: bool,
}

impl State {
    /// Lets stream `sid` begin: the receiver hears of it, the sender may send.
    fn start(&mut self, sid: u64, fx: &mut impl Sink) {
        let s = self.streams.get_mut(&sid).expect("caller checked");
        s.started = true;
        let o = &s.offer;
        let incoming = ServerMsg::Incoming {
            sid,
            task: o.task.clone(),
            from: o.from.clone(),
            kind: o.kind,
            size: o.size,
            name: o.name.clone(),
        };
        fx.effect(Effect::ToReceiver(&s.receiver, incoming));
        fx.effect(Effect::ToSender(&s.sender, ServerMsg::Start { sid }));
        let receiver = s.receiver.clone();
        self.inbox(&receiver).streams += 1;
    }

    /// Removes stream `sid`, freeing its places, and starts the next one waiting for its
    /// receiver.
    pub(super) fn remove(&mut self, sid: u64, fx: &mut impl Sink) -> Stream {
        let s = self.streams.remove(&sid).expect("caller checked");
        if let Some(o) = self.outgoing.get_mut(&s.sender.key()) {
            o.streams -= 1;
        }
        let next = {
            let inbox = self.inbox(&s.receiver);
            if s.started {
                inbox.streams -= 1;
            } else {
                inbox.queued.retain(|q| *q != sid);
            }
            (inbox.streams < xfer::MAX_INCOMING)
                .then(|| inbox.queued.pop_front())
                .flatten()
        };
        if let Some(next) = next {
            self.start(next, fx);
        }
        self.tidy(s.sender.key());
        s
    }
}

impl State {
    /// Registers a stream from `sender` to `receiver`, answers `res{re, offer{sid}}`, and starts
    /// it if the receiver has room (else it waits its turn). `Err(code)`: 1102 the receiver is
    /// going away, 1000 the sender already has [`xfer::MAX_OUTGOING`] streams.
    pub fn offer(
        &mut self,
        re: u64,
        sender: Endpoint,
        receiver: LocalEnd,
        offer: Offer,
        fx: &mut impl Sink,
    ) -> Result<u64, i32> {
        let st = self;
        if !receiver.outbox.accepts() || st.left.contains(&receiver.gen) {
            return Err(CRVIDEOSDK_SENDDATA_TARGETINVALID);
        }
        if st.outgoing(sender.key()).streams >= xfer::MAX_OUTGOING {
            return Err(CRVIDEOSDK_SENDFAIL);
        }
        st.outgoing(sender.key()).streams += 1;
        st.next_sid += 1;
        let sid = st.next_sid;
        let res = ServerMsg::Res {
            re,
            result: crvm_proto::Outcome::Offer { sid },
        };
        fx.effect(Effect::ToSender(&sender, res));
        let inbox = st.inbox(&receiver);
        let now = inbox.streams < xfer::MAX_INCOMING && inbox.queued.is_empty();
        if !now {
            inbox.queued.push_back(sid);
        }
        st.streams.insert(
            sid,
            Stream {
                offer,
                sender,
                receiver,
                started: false,
                relayed: 0,
                acked: 0,
                cancelling: false,
            },
        );
        if now {
            st.start(sid, fx);
        }
        Ok(sid)
    }

    /// A data frame from `from` (payload: stream ID then bytes): forwarded as is, or dropped if
    /// its stream is gone or being cancelled. Overrunning the window or the size, sending before
    /// `start`, or writing to someone else's stream, is a violation.
    pub fn data<'p>(
        &mut self,
        from: SessionKey,
        sid: u64,
        payload: impl Into<Cow<'p, [u8]>>,
        fx: &mut impl Sink,
    ) -> Result<(), Violation> {
        let payload = payload.into();
        let len = (payload.len() - 8) as u64;
        let Some(s) = self.streams.get_mut(&sid) else {
            return Ok(()); // ended meanwhile (receiver gone); the sender will hear of it
        };
        if s.sender.key() != from {
            return Err(Violation("data on a stream that is not yours"));
        }
        if !s.started {
            return Err(Violation("data before start"));
        }
        if s.cancelling {
            return Ok(());
        }
        if s.relayed + len > s.offer.size {
            return Err(Violation("more data than offered"));
        }
        if s.relayed + len - s.acked > xfer::WINDOW {
            return Err(Violation("flow-control window exceeded"));
        }
        s.relayed += len;
        fx.effect(Effect::Data {
            to: &s.receiver,
            payload,
        });
        Ok(())
    }

    /// The sender's checksum, after its last chunk.
    pub fn data_end(&self, from: SessionKey, sid: u64, hash: String, fx: &mut impl Sink) {
        if let Some(s) = self.streams.get(&sid) {
            if s.sender.key() == from && s.started && !s.cancelling {
                fx.effect(Effect::ToReceiver(
                    &s.receiver,
                    ServerMsg::DataEnd { sid, hash },
                ));
            }
        }
    }

    /// The receiver holds `bytes` of the stream: pass the credit on to the sender.
    pub fn ack(&mut self, receiver: LoginGen, sid: u64, bytes: u64, fx: &mut impl Sink) {
        if let Some(s) = self.streams.get_mut(&sid) {
            if s.receiver.gen == receiver && bytes > s.acked {
                s.acked = bytes.min(s.relayed);
                let progress = ServerMsg::Progress {
                    sid,
                    bytes: s.acked,
                };
                fx.effect(Effect::ToSender(&s.sender, progress));
            }
        }
    }

    /// The receiver finished the stream with `code`.
    pub fn fin(&mut self, receiver: LoginGen, sid: u64, code: i32, fx: &mut impl Sink) {
        let st = self;
        match st.streams.get(&sid) {
            Some(s) if s.receiver.gen == receiver && s.started => {}
            _ => return,
        }
        let s = st.remove(sid, fx);
        fx.effect(Effect::ToSender(
            &s.sender,
            ServerMsg::XferEnd { sid, code },
        ));
        if s.cancelling {
            // The receiver finished before it saw the cancel: too late to cancel.
            let done = ServerMsg::CancelDone {
                sid,
                code: CRVIDEOSDK_TRANSID_INVALID,
            };
            fx.effect(Effect::ToSender(&s.sender, done));
        }
    }

    /// The sender wants to abandon the stream. A stream still waiting for its receiver ends
    /// at once (its receiver never heard of it); otherwise the receiver decides (see the
    /// module doc).
    pub fn cancel(&mut self, from: &Endpoint, sid: u64, fx: &mut impl Sink) {
        let st = self;
        match st.streams.get_mut(&sid) {
            Some(s) if s.sender.key() == from.key() && !s.started => {
                st.remove(sid, fx);
                let done = ServerMsg::CancelDone {
                    sid,
                    code: CRVIDEOSDK_NOERR,
                };
                fx.effect(Effect::ToSender(from, done));
            }
            Some(s) if s.sender.key() == from.key() => {
                if !s.cancelling {
                    s.cancelling = true;
                    fx.effect(Effect::ToReceiver(
                        &s.receiver,
                        ServerMsg::Cancelled { sid },
                    ));
                }
            }
            _ => {
                let done = ServerMsg::CancelDone {
                    sid,
                    code: CRVIDEOSDK_TRANSID_INVALID,
                };
                fx.effect(Effect::ToSender(from, done));
            }
        }
    }

    /// The receiver's answer to `cancelled`.
    pub fn cancel_ack(&mut self, receiver: LoginGen, sid: u64, code: i32, fx: &mut impl Sink) {
        let st = self;
        match st.streams.get(&sid) {
            Some(s) if s.receiver.gen == receiver && s.cancelling => {}
            _ => return,
        }
        let s = st.remove(sid, fx);
        fx.effect(Effect::ToSender(
            &s.sender,
            ServerMsg::CancelDone { sid, code },
        ));
    }
}
