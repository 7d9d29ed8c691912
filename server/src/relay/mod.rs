//! Point-to-point data (docs/API.md §3.5), relayed: cmds, and the streams of buffers and files. The
//! sender's library sends to the server, the server to the receiver's library, and the
//! receiver's acknowledgements travel back the same way. Nothing is stored; the relay routes,
//! queues what may not go yet, and enforces flow control, so that volume slows senders down
//! instead of failing them (docs/API.md §3.5, "Volume is never a failure").
//!
//! **Cmds** are messages, not streams. A sender may have [`xfer::CMD_WINDOW`] cmds (and
//! [`xfer::CMD_WINDOW_BYTES`]) unfinished; more is a protocol violation (its library queues
//! them). The relay hands a receiver at most [`xfer::CMD_RECV_WINDOW`] cmds (and
//! [`xfer::CMD_RECV_WINDOW_BYTES`]) it has not acknowledged; the rest wait here in arrival order,
//! which keeps every sender's cmds to one receiver in the order they were sent. The receiver
//! acknowledges cumulatively (`cmd_ack{upto}`) once its app has them, and each sender hears
//! `cmd_done` for its own. What waits here is bounded by the senders' windows: per session, a
//! fixed amount.
//!
//! **Streams** (buffers, files): a sender may have at most [`xfer::WINDOW`] bytes of a stream
//! beyond what the receiver acknowledged; the relay checks it on every chunk and closes a sender
//! that overruns it. A receiver takes at most [`xfer::MAX_INCOMING`] streams at once; further
//! offers to it wait here (the sender already has its stream ID) and start, in order, as
//! earlier ones end. A sender may have [`xfer::MAX_OUTGOING`] streams unfinished.
//!
//! The receiver decides how a stream ends (`fin`), including against a cancel: a cancel that
//! reaches the receiver after it delivered the data is answered 1104, so the sender's app never
//! hears "cancelled" for data the receiver's app was given.
//!
//! **Shape.** The books ([`State`]) are pure: each transition (`offer`, `cmd`, `fin`, …) changes
//! them and emits its [`Effect`]s — a message for a sender or receiver, a cmd with its bytes, a
//! chunk — into a [`Sink`], without touching a socket, so the unit tests record exactly what
//! each transition says to whom, in order. [`Relay`] is the thin layer: it runs a
//! transition under its lock with [`Deliver`] as the sink, which queues each effect at once to
//! the receiving session's outbox or to the link to its node ([`Endpoint::tell`]). The sink is a
//! generic parameter, so a cmd or a chunk costs no allocation beyond the queued frame itself.
//!
//! Ordering: a transition emits its effects in the order their messages must arrive (`res{offer}`
//! before `start`, `incoming` before `start`), and [`Deliver`] queues each as it is emitted, still
//! under the relay's lock, so the effects of two transitions never interleave. Queueing never
//! waits (outboxes and links only append), so holding the lock for it is cheap. Hence
//! `res{offer}` precedes `start` precedes `xfer_end` on the sender's connection (or its link,
//! which keeps order too), and `incoming` precedes the stream's chunks on the receiver's: a
//! chunk is accepted only once the stream started, and `incoming` was queued by that start.
//!
//! [`xfer::CMD_WINDOW`]: crvm_proto::msg::xfer::CMD_WINDOW
//! [`xfer::CMD_WINDOW_BYTES`]: crvm_proto::msg::xfer::CMD_WINDOW_BYTES
//! [`xfer::CMD_RECV_WINDOW`]: crvm_proto::msg::xfer::CMD_RECV_WINDOW
//! [`xfer::CMD_RECV_WINDOW_BYTES`]: crvm_proto::msg::xfer::CMD_RECV_WINDOW_BYTES
//! [`xfer::WINDOW`]: crvm_proto::msg::xfer::WINDOW
//! [`xfer::MAX_INCOMING`]: crvm_proto::msg::xfer::MAX_INCOMING
//! [`xfer::MAX_OUTGOING`]: crvm_proto::msg::xfer::MAX_OUTGOING

use std::borrow::Cow;
use std::collections::HashMap;

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID};
use crvm_proto::{ServerMsg, XferKind};
use parking_lot::Mutex;

use crate::ids::{FastMap, LoginGen, SessionKey};
use crate::outbox::Out;
use crate::route::endpoint::{Endpoint, LocalEnd};

mod cmds;
mod moving;
mod streams;
#[cfg(test)]
mod tests;

use cmds::{finish_cmds, Cmd, Inbox};
pub use moving::{MovingCmd, MovingInbox};
use streams::Stream;

/// Something a transition of the relay makes happen outside its books.
#[derive(Debug)]
pub enum Effect<'a> {
    /// Queue `msg` to a sender, here or on another node: `res{offer}`, `start`, `progress`,
    /// `xfer_end`, `cancel_done`, `cmd_done`.
    ToSender(&'a Endpoint, ServerMsg),
    /// Queue `msg` to a receiver: `incoming`, `data_end`, `cancelled`.
    ToReceiver(&'a LocalEnd, ServerMsg),
    /// Hand the receiver cmd `n` from user `from`, with its bytes.
    CmdIn {
        to: &'a LocalEnd,
        n: u64,
        from: &'a str,
        data: Vec<u8>,
    },
    /// Forward a chunk to the receiver as it came (stream ID, then bytes): its own buffer if
    /// it was read into one, else a copy.
    Data {
        to: &'a LocalEnd,
        payload: Cow<'a, [u8]>,
    },
}

/// Where a transition puts its effects, in order.
pub trait Sink {
    fn effect(&mut self, e: Effect<'_>);
}

/// The sink of the running server: each effect queued at once to its session's outbox or the
/// link to its node (see the module doc for why at once, under the relay's lock).
pub struct Deliver;

impl Sink for Deliver {
    fn effect(&mut self, e: Effect<'_>) {
        // A full or closing outbox takes care of its own connection; a closed link's loss ends
        // everything it carried.
        match e {
            Effect::ToSender(to, msg) => to.tell(msg),
            Effect::ToReceiver(to, msg) => to.tell(&msg),
            Effect::CmdIn { to, n, from, data } => {
                crate::metrics::get().relayed_cmd(data.len());
                let json = crvm_proto::hot::cmd_in_json(n, from);
                let _ = to.outbox.push(Out::Attached(json.into(), data.into()));
            }
            Effect::Data { to, payload } => {
                // The window bounds this queue; should it overflow anyway, the receiver's
                // outbox closes that connection and `session_ended` tells the sender.
                crate::metrics::get().relayed_data(payload.len() - 8);
                let _ = to.outbox.push_data(payload.into_owned());
            }
        }
    }
}

/// A sender broke the protocol: its connection must be closed.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub &'static str);

/// What an offer is (checked by the handler before it gets here).
#[derive(Debug, Clone)]
pub struct Offer {
    pub task: String,
    pub from: String,
    pub kind: XferKind,
    pub size: u64,
    pub name: String,
}

/// What one sending session has unfinished.
#[derive(Debug, Default, Clone, Copy)]
struct Outgoing {
    cmds: usize,
    cmd_bytes: usize,
    streams: usize,
}

/// The relay's books, and its transitions (here and in `cmds.rs` and `streams.rs`).
#[derive(Debug, Default)]
pub struct State {
    next_sid: u64,
    streams: HashMap<u64, Stream>,
    /// Per receiving session (always one of this node).
    inboxes: FastMap<LoginGen, Inbox>,
    /// Per sending session, of this node or another.
    outgoing: FastMap<SessionKey, Outgoing>,
    /// Sessions that left this node (a drain): a cmd that still finds one here goes back to
    /// its caller, to be sent on ([`Relay::cmd_unless_left`]).
    left: std::collections::HashSet<LoginGen>,
    /// Sessions that arrived here from another node (named), whose cmds' results are held
    /// until that node has passed on every result it had for them ([`Relay::localise`]).
    fenced: FastMap<LoginGen, Fenced>,
}

/// The results held for a session that arrived: its outbox, the node it came from, the
/// `cmd_done`s in the order they were made.
#[derive(Debug)]
struct Fenced {
    end: LocalEnd,
    from: String,
    held: Vec<ServerMsg>,
}

impl State {
    fn inbox(&mut self, receiver: &LocalEnd) -> &mut Inbox {
        self.inboxes
            .entry(receiver.gen)
            .or_insert_with(|| Inbox::new(receiver.clone()))
    }

    fn outgoing(&mut self, sender: SessionKey) -> &mut Outgoing {
        self.outgoing.entry(sender).or_default()
    }

    /// Forgets a sender with nothing unfinished. (An inbox lives as long as its session: it
    /// numbers the session's `cmd_in`s.)
    fn tidy(&mut self, sender: SessionKey) {
        if self
            .outgoing
            .get(&sender)
            .is_some_and(|o| o.cmds == 0 && o.streams == 0)
        {
            self.outgoing.remove(&sender);
        }
    }
}

impl State {
    /// A session ended. Its outgoing streams are cancelled towards their receivers (a waiting
    /// one just disappears); its incoming ones fail towards their senders (1102), or count as
    /// cancelled if the sender was cancelling anyway. Cmds it had coming in fail towards their
    /// senders with 1102; cmds it sent are still delivered.
    pub fn session_ended(&mut self, key: SessionKey, fx: &mut impl Sink) {
        if let SessionKey::Here(gen) = key {
            self.fenced.remove(&gen);
        }
        // The receiving side first (a session of this node's), so that no queued stream of
        // this session starts below.
        let inbox = match key {
            SessionKey::Here(gen) => self.inboxes.remove(&gen).map(|inbox| (gen, inbox)),
            SessionKey::There(_) => None,
        };
        if let Some((gen, inbox)) = inbox {
            let mut cmds: Vec<Cmd> = inbox.delivered.into_iter().collect();
            cmds.extend(inbox.waiting.into_iter().map(|(c, _, _)| c));
            finish_cmds(self, cmds, CRVIDEOSDK_SENDDATA_TARGETINVALID, fx);
            let mut incoming: Vec<u64> = self
                .streams
                .iter()
                .filter(|(_, s)| s.receiver.gen == gen)
                .map(|(sid, _)| *sid)
                .collect();
            incoming.sort_unstable();
            for sid in incoming {
                // Not through `remove`: this receiver's inbox is gone, nothing starts.
                let s = self.streams.remove(&sid).expect("listed above");
                if let Some(o) = self.outgoing.get_mut(&s.sender.key()) {
                    o.streams -= 1;
                }
                if s.sender.key() == key {
                    continue;
                }
                let msg = if s.cancelling {
                    ServerMsg::CancelDone {
                        sid,
                        code: CRVIDEOSDK_NOERR,
                    }
                } else {
                    ServerMsg::XferEnd {
                        sid,
                        code: CRVIDEOSDK_SENDDATA_TARGETINVALID,
                    }
                };
                fx.effect(Effect::ToSender(&s.sender, msg));
                self.tidy(s.sender.key());
            }
        }
        let mut outgoing: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.sender.key() == key)
            .map(|(sid, _)| *sid)
            .collect();
        outgoing.sort_unstable();
        for sid in outgoing {
            let s = self.remove(sid, fx);
            if s.started {
                fx.effect(Effect::ToReceiver(
                    &s.receiver,
                    ServerMsg::Cancelled { sid },
                ));
            }
        }
        self.outgoing.remove(&key);
    }
}

/// The cmds and streams in flight on this server: the books under one lock, each transition's
/// effects delivered as it emits them (see the module doc). What each call does is documented
/// on its transition of [`State`].
#[derive(Debug, Default)]
pub struct Relay {
    state: Mutex<State>,
}

impl Relay {
    pub fn new() -> Relay {
        Relay::default()
    }

    /// A relay whose stream IDs start above `base`: in a cluster, each node's relay numbers
    /// streams apart from the others' (a session may stream to several nodes at once).
    pub fn with_sid_base(base: u64) -> Relay {
        let relay = Relay::default();
        relay.state.lock().next_sid = base;
        relay
    }

    /// See [`State::cmd`].
    pub fn cmd(
        &self,
        sender: &Endpoint,
        from: &str,
        n: u64,
        receiver: &LocalEnd,
        data: Vec<u8>,
    ) -> Result<Result<(), i32>, Violation> {
        self.state
            .lock()
            .cmd(sender, from, n, receiver, data, &mut Deliver)
    }

    /// [`State::cmd`], unless `receiver` left this node (a drain) since the caller found it:
    /// then its bytes come back, for the caller to send on to its new node.
    pub fn cmd_unless_left(
        &self,
        sender: &Endpoint,
        from: &str,
        n: u64,
        receiver: &LocalEnd,
        data: Vec<u8>,
    ) -> Result<Result<Result<(), i32>, Violation>, Vec<u8>> {
        let mut st = self.state.lock();
        if st.left.contains(&receiver.gen) {
            return Err(data);
        }
        Ok(st.cmd(sender, from, n, receiver, data, &mut Deliver))
    }

    /// See [`State::cmd_ack`].
    pub fn cmd_ack(&self, receiver: LoginGen, upto: u64) {
        self.state.lock().cmd_ack(receiver, upto, &mut Deliver)
    }

    /// See [`State::offer`].
    pub fn offer(
        &self,
        re: u64,
        sender: Endpoint,
        receiver: LocalEnd,
        offer: Offer,
    ) -> Result<u64, i32> {
        self.state
            .lock()
            .offer(re, sender, receiver, offer, &mut Deliver)
    }

    /// See [`State::data`].
    pub fn data<'p>(
        &self,
        from: SessionKey,
        sid: u64,
        payload: impl Into<Cow<'p, [u8]>>,
    ) -> Result<(), Violation> {
        self.state.lock().data(from, sid, payload, &mut Deliver)
    }

    /// See [`State::data_end`].
    pub fn data_end(&self, from: SessionKey, sid: u64, hash: String) {
        self.state.lock().data_end(from, sid, hash, &mut Deliver)
    }

    /// See [`State::ack`].
    pub fn ack(&self, receiver: LoginGen, sid: u64, bytes: u64) {
        self.state.lock().ack(receiver, sid, bytes, &mut Deliver)
    }

    /// See [`State::fin`].
    pub fn fin(&self, receiver: LoginGen, sid: u64, code: i32) {
        self.state.lock().fin(receiver, sid, code, &mut Deliver)
    }

    /// See [`State::cancel`].
    pub fn cancel(&self, from: &Endpoint, sid: u64) {
        self.state.lock().cancel(from, sid, &mut Deliver)
    }

    /// See [`State::cancel_ack`].
    pub fn cancel_ack(&self, receiver: LoginGen, sid: u64, code: i32) {
        self.state
            .lock()
            .cancel_ack(receiver, sid, code, &mut Deliver)
    }

    /// See [`State::session_ended`].
    pub fn session_ended(&self, key: SessionKey) {
        self.state.lock().session_ended(key, &mut Deliver)
    }

    /// Streams in flight or waiting (for tests and logs).
    pub fn len(&self) -> usize {
        self.state.lock().streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Senders with cmds or streams unfinished (for tests: nothing is left behind).
    pub fn busy_senders(&self) -> usize {
        self.state.lock().outgoing.len()
    }
}
