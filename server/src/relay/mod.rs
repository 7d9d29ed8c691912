//! Point-to-point data (SPEC §3.5), relayed: cmds, and the streams of buffers and files. The
//! sender's library sends to the server, the server to the receiver's library, and the
//! receiver's acknowledgements travel back the same way. Nothing is stored; the relay routes,
//! queues what may not go yet, and enforces flow control, so that volume slows senders down
//! instead of failing them (SPEC §3.5, "Volume is never a failure").
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
//! Ordering: everything here happens under one lock, and messages are queued to outboxes under
//! it, so that `res{offer}` precedes `start` precedes `xfer_end` on the sender's connection and
//! `incoming` precedes the stream's chunks on the receiver's.
//!
//! [`xfer::CMD_WINDOW`]: crvm_proto::msg::xfer::CMD_WINDOW
//! [`xfer::CMD_WINDOW_BYTES`]: crvm_proto::msg::xfer::CMD_WINDOW_BYTES
//! [`xfer::CMD_RECV_WINDOW`]: crvm_proto::msg::xfer::CMD_RECV_WINDOW
//! [`xfer::CMD_RECV_WINDOW_BYTES`]: crvm_proto::msg::xfer::CMD_RECV_WINDOW_BYTES
//! [`xfer::WINDOW`]: crvm_proto::msg::xfer::WINDOW
//! [`xfer::MAX_INCOMING`]: crvm_proto::msg::xfer::MAX_INCOMING
//! [`xfer::MAX_OUTGOING`]: crvm_proto::msg::xfer::MAX_OUTGOING

use std::collections::HashMap;

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID};
use crvm_proto::{ServerMsg, XferKind};
use parking_lot::Mutex;

use crate::ids::{LoginGen, SessionKey};
use crate::link::node_link::NodeLink;
use crate::outbox::Outbox;

mod cmds;
mod streams;
#[cfg(test)]
mod tests;

use cmds::{finish_cmds, Cmd, Inbox};
use streams::Stream;

/// A session of this node as one side of a transfer or cmd: its login and its outbox (which
/// follows it from connection to connection).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub gen: LoginGen,
    pub outbox: Outbox,
}

impl Endpoint {
    fn tell(&self, msg: &ServerMsg) {
        // A full or closing outbox takes care of its own connection.
        let _ = self.outbox.push_msg(msg);
    }
}

/// Who sends a cmd or a stream: a session of this node, or one of another node of the cluster
/// (whose relay state lives here, at the receiver's node), told through the link to its node.
#[derive(Debug, Clone)]
pub enum Sender {
    Local(Endpoint),
    Remote {
        /// The session's login on its node.
        gen: LoginGen,
        /// The link to its node.
        link: NodeLink,
    },
}

impl Sender {
    /// The sender's key in the relay's books.
    pub fn key(&self) -> SessionKey {
        match self {
            Sender::Local(e) => SessionKey::Here(e.gen),
            Sender::Remote { gen, .. } => SessionKey::There(*gen),
        }
    }

    pub fn tell(&self, msg: &ServerMsg) {
        match self {
            Sender::Local(e) => e.tell(msg),
            Sender::Remote { gen, link } => link.deliver(*gen, msg),
        }
    }
}

impl From<Endpoint> for Sender {
    fn from(e: Endpoint) -> Sender {
        Sender::Local(e)
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

#[derive(Debug, Default)]
struct State {
    next_sid: u64,
    streams: HashMap<u64, Stream>,
    /// Per receiving session (always one of this node).
    inboxes: HashMap<LoginGen, Inbox>,
    /// Per sending session, of this node or another.
    outgoing: HashMap<SessionKey, Outgoing>,
}

impl State {
    fn inbox(&mut self, receiver: &Endpoint) -> &mut Inbox {
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

/// The cmds and streams in flight on this server.
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

    /// A session ended. Its outgoing streams are cancelled towards their receivers (a waiting
    /// one just disappears); its incoming ones fail towards their senders (1102), or count as
    /// cancelled if the sender was cancelling anyway. Cmds it had coming in fail towards their
    /// senders with 1102; cmds it sent are still delivered.
    pub fn session_ended(&self, key: SessionKey) {
        let mut st = self.state.lock();
        // The receiving side first (a session of this node's), so that no queued stream of
        // this session starts below.
        let inbox = match key {
            SessionKey::Here(gen) => st.inboxes.remove(&gen).map(|inbox| (gen, inbox)),
            SessionKey::There(_) => None,
        };
        if let Some((gen, inbox)) = inbox {
            let mut cmds: Vec<Cmd> = inbox.delivered.into_iter().collect();
            cmds.extend(inbox.waiting.into_iter().map(|(c, _, _)| c));
            finish_cmds(&mut st, cmds, CRVIDEOSDK_SENDDATA_TARGETINVALID);
            let mut incoming: Vec<u64> = st
                .streams
                .iter()
                .filter(|(_, s)| s.receiver.gen == gen)
                .map(|(sid, _)| *sid)
                .collect();
            incoming.sort_unstable();
            for sid in incoming {
                // Not through `remove`: this receiver's inbox is gone, nothing starts.
                let s = st.streams.remove(&sid).expect("listed above");
                if let Some(o) = st.outgoing.get_mut(&s.sender.key()) {
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
                s.sender.tell(&msg);
                st.tidy(s.sender.key());
            }
        }
        let mut outgoing: Vec<u64> = st
            .streams
            .iter()
            .filter(|(_, s)| s.sender.key() == key)
            .map(|(sid, _)| *sid)
            .collect();
        outgoing.sort_unstable();
        for sid in outgoing {
            let s = st.remove(sid);
            if s.started {
                s.receiver.tell(&ServerMsg::Cancelled { sid });
            }
        }
        st.outgoing.remove(&key);
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
