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

use std::collections::{HashMap, VecDeque};

use crvm_proto::error::{
    CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID, CRVIDEOSDK_SENDFAIL,
    CRVIDEOSDK_TRANSID_INVALID,
};
use crvm_proto::msg::xfer;
use crvm_proto::{ServerMsg, XferKind};
use parking_lot::Mutex;

use crate::hub::{ConnId, Gen};
use crate::link;
use crate::outbox::{Out, Outbox};

/// One side of a transfer or cmd: a connection and its outbox.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub conn_id: ConnId,
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
        /// The session's generation: its identity here.
        gen: Gen,
        node: link::Peer,
    },
}

impl Sender {
    pub fn conn_id(&self) -> ConnId {
        match self {
            Sender::Local(e) => e.conn_id,
            Sender::Remote { gen, .. } => *gen,
        }
    }

    pub fn tell(&self, msg: &ServerMsg) {
        match self {
            Sender::Local(e) => e.tell(msg),
            Sender::Remote { gen, node } => node.deliver(*gen, msg),
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

#[derive(Debug)]
struct Stream {
    offer: Offer,
    sender: Sender,
    receiver: Endpoint,
    /// The receiver has been told (`incoming`) and the sender may send (`start`).
    started: bool,
    /// Data bytes relayed to the receiver so far.
    relayed: u64,
    /// Highest byte count the receiver acknowledged.
    acked: u64,
    /// The sender asked to cancel; waiting for the receiver's answer.
    cancelling: bool,
}

/// A cmd the relay holds: delivered and unacknowledged, or waiting for room.
#[derive(Debug)]
struct Cmd {
    sender: Sender,
    /// The sender's number of it.
    n: u64,
    len: usize,
}

/// What one receiving session has coming in.
#[derive(Debug)]
struct Inbox {
    endpoint: Endpoint,
    /// Number the next `cmd_in` gets.
    next_n: u64,
    /// Cmds handed to the receiver and not yet acknowledged, numbered from `next_n - len`.
    delivered: VecDeque<Cmd>,
    delivered_bytes: usize,
    /// Cmds waiting for room in the receiver's window, with their sender's name and bytes.
    waiting: VecDeque<(Cmd, String, Vec<u8>)>,
    /// Started streams to this receiver.
    streams: usize,
    /// Streams waiting for one of those to end.
    queued: VecDeque<u64>,
}

impl Inbox {
    fn new(endpoint: Endpoint) -> Inbox {
        Inbox {
            endpoint,
            next_n: 1,
            delivered: VecDeque::new(),
            delivered_bytes: 0,
            waiting: VecDeque::new(),
            streams: 0,
            queued: VecDeque::new(),
        }
    }

    fn has_room(&self, len: usize) -> bool {
        self.delivered.is_empty()
            || (self.delivered.len() < xfer::CMD_RECV_WINDOW
                && self.delivered_bytes + len <= xfer::CMD_RECV_WINDOW_BYTES)
    }

    /// Hands cmds to the receiver while its window has room.
    fn deliver(&mut self, cmd: Cmd, from: &str, data: Vec<u8>) {
        let n = self.next_n;
        self.next_n += 1;
        let msg = ServerMsg::CmdIn {
            n,
            from: from.to_owned(),
        };
        crate::metrics::get().relayed_cmd(cmd.len);
        let _ = self.endpoint.outbox.push(Out::attached(&msg, data));
        self.delivered_bytes += cmd.len;
        self.delivered.push_back(cmd);
    }

    fn refill(&mut self) {
        while let Some((cmd, _, _)) = self.waiting.front() {
            if !self.has_room(cmd.len) {
                return;
            }
            let (cmd, from, data) = self.waiting.pop_front().expect("front exists");
            self.deliver(cmd, &from, data);
        }
    }
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
    inboxes: HashMap<ConnId, Inbox>,
    outgoing: HashMap<ConnId, Outgoing>,
}

impl State {
    fn inbox(&mut self, receiver: &Endpoint) -> &mut Inbox {
        self.inboxes
            .entry(receiver.conn_id)
            .or_insert_with(|| Inbox::new(receiver.clone()))
    }

    fn outgoing(&mut self, conn_id: ConnId) -> &mut Outgoing {
        self.outgoing.entry(conn_id).or_default()
    }

    /// Forgets a sender with nothing unfinished. (An inbox lives as long as its session: it
    /// numbers the session's `cmd_in`s.)
    fn tidy(&mut self, sender: ConnId) {
        if self
            .outgoing
            .get(&sender)
            .is_some_and(|o| o.cmds == 0 && o.streams == 0)
        {
            self.outgoing.remove(&sender);
        }
    }

    /// Lets stream `sid` begin: the receiver hears of it, the sender may send.
    fn start(&mut self, sid: u64) {
        let s = self.streams.get_mut(&sid).expect("caller checked");
        s.started = true;
        let o = &s.offer;
        s.receiver.tell(&ServerMsg::Incoming {
            sid,
            task: o.task.clone(),
            from: o.from.clone(),
            kind: o.kind,
            size: o.size,
            name: o.name.clone(),
        });
        s.sender.tell(&ServerMsg::Start { sid });
        let receiver = s.receiver.clone();
        self.inbox(&receiver).streams += 1;
    }

    /// Removes stream `sid`, freeing its places, and starts the next one waiting for its
    /// receiver.
    fn remove(&mut self, sid: u64) -> Stream {
        let s = self.streams.remove(&sid).expect("caller checked");
        if let Some(o) = self.outgoing.get_mut(&s.sender.conn_id()) {
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
            self.start(next);
        }
        self.tidy(s.sender.conn_id());
        s
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

    /// A cmd numbered `n` from `sender` (user `from`) to `receiver`. Delivered at once if the
    /// receiver's window has room, else queued behind the others. `Err(code)` if it cannot be
    /// taken (1102: the receiver is going away); a sender over its window is a violation.
    pub fn cmd(
        &self,
        sender: &Sender,
        from: &str,
        n: u64,
        receiver: &Endpoint,
        data: Vec<u8>,
    ) -> Result<Result<(), i32>, Violation> {
        let mut st = self.state.lock();
        let len = data.len();
        let out = st
            .outgoing
            .get(&sender.conn_id())
            .copied()
            .unwrap_or_default();
        if !xfer::cmd_fits(out.cmds, out.cmd_bytes, len) {
            return Err(Violation("cmd window exceeded"));
        }
        // A session that is going away takes nothing new (it closes its outbox before it asks
        // the relay to end what it has).
        if !receiver.outbox.accepts() {
            return Ok(Err(CRVIDEOSDK_SENDDATA_TARGETINVALID));
        }
        let out = st.outgoing(sender.conn_id());
        out.cmds += 1;
        out.cmd_bytes += len;
        let cmd = Cmd {
            sender: sender.clone(),
            n,
            len,
        };
        let inbox = st.inbox(receiver);
        if inbox.waiting.is_empty() && inbox.has_room(len) {
            inbox.deliver(cmd, from, data);
        } else {
            inbox.waiting.push_back((cmd, from.to_owned(), data));
        }
        Ok(Ok(()))
    }

    /// The receiver on `from` has every `cmd_in` up to `upto`: their senders hear `cmd_done`,
    /// and waiting cmds take the room.
    pub fn cmd_ack(&self, from: ConnId, upto: u64) {
        let mut st = self.state.lock();
        let Some(inbox) = st.inboxes.get_mut(&from) else {
            return;
        };
        let first = inbox.next_n - inbox.delivered.len() as u64;
        let k = upto.saturating_add(1).saturating_sub(first);
        let k = (k as usize).min(inbox.delivered.len());
        let done: Vec<Cmd> = inbox.delivered.drain(..k).collect();
        inbox.delivered_bytes -= done.iter().map(|c| c.len).sum::<usize>();
        inbox.refill();
        finish_cmds(&mut st, done, CRVIDEOSDK_NOERR);
    }

    /// Registers a stream from `sender` to `receiver`, answers `res{re, offer{sid}}`, and starts
    /// it if the receiver has room (else it waits its turn). `Err(code)`: 1102 the receiver is
    /// going away, 1000 the sender already has [`xfer::MAX_OUTGOING`] streams.
    pub fn offer(
        &self,
        re: u64,
        sender: Sender,
        receiver: Endpoint,
        offer: Offer,
    ) -> Result<u64, i32> {
        let mut st = self.state.lock();
        if !receiver.outbox.accepts() {
            return Err(CRVIDEOSDK_SENDDATA_TARGETINVALID);
        }
        if st.outgoing(sender.conn_id()).streams >= xfer::MAX_OUTGOING {
            return Err(CRVIDEOSDK_SENDFAIL);
        }
        st.outgoing(sender.conn_id()).streams += 1;
        st.next_sid += 1;
        let sid = st.next_sid;
        sender.tell(&ServerMsg::Res {
            re,
            result: crvm_proto::Outcome::Offer { sid },
        });
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
            st.start(sid);
        }
        Ok(sid)
    }

    /// A data frame from `from` (payload: stream ID then bytes): forwarded as is, or dropped if
    /// its stream is gone or being cancelled. Overrunning the window or the size, sending before
    /// `start`, or writing to someone else's stream, is a violation.
    pub fn data(&self, from: ConnId, sid: u64, payload: &[u8]) -> Result<(), Violation> {
        let len = (payload.len() - 8) as u64;
        let mut st = self.state.lock();
        let Some(s) = st.streams.get_mut(&sid) else {
            return Ok(()); // ended meanwhile (receiver gone); the sender will hear of it
        };
        if s.sender.conn_id() != from {
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
        // The window bounds this queue; should it overflow anyway, the receiver's outbox closes
        // that connection and `session_ended` tells the sender.
        crate::metrics::get().relayed_data(payload.len() - 8);
        let _ = s.receiver.outbox.push_data(payload.to_vec());
        Ok(())
    }

    /// The sender's checksum, after its last chunk.
    pub fn data_end(&self, from: ConnId, sid: u64, hash: String) {
        let st = self.state.lock();
        if let Some(s) = st.streams.get(&sid) {
            if s.sender.conn_id() == from && s.started && !s.cancelling {
                s.receiver.tell(&ServerMsg::DataEnd { sid, hash });
            }
        }
    }

    /// The receiver holds `bytes` of the stream: pass the credit on to the sender.
    pub fn ack(&self, from: ConnId, sid: u64, bytes: u64) {
        let mut st = self.state.lock();
        if let Some(s) = st.streams.get_mut(&sid) {
            if s.receiver.conn_id == from && bytes > s.acked {
                s.acked = bytes.min(s.relayed);
                s.sender.tell(&ServerMsg::Progress {
                    sid,
                    bytes: s.acked,
                });
            }
        }
    }

    /// The receiver finished the stream with `code`.
    pub fn fin(&self, from: ConnId, sid: u64, code: i32) {
        let mut st = self.state.lock();
        match st.streams.get(&sid) {
            Some(s) if s.receiver.conn_id == from && s.started => {}
            _ => return,
        }
        let s = st.remove(sid);
        s.sender.tell(&ServerMsg::XferEnd { sid, code });
        if s.cancelling {
            // The receiver finished before it saw the cancel: too late to cancel.
            s.sender.tell(&ServerMsg::CancelDone {
                sid,
                code: CRVIDEOSDK_TRANSID_INVALID,
            });
        }
    }

    /// The sender wants to abandon the stream. A stream still waiting for its receiver ends
    /// at once (its receiver never heard of it); otherwise the receiver decides (see the
    /// module doc).
    pub fn cancel(&self, from: &Sender, sid: u64) {
        let mut st = self.state.lock();
        match st.streams.get_mut(&sid) {
            Some(s) if s.sender.conn_id() == from.conn_id() && !s.started => {
                st.remove(sid);
                from.tell(&ServerMsg::CancelDone {
                    sid,
                    code: CRVIDEOSDK_NOERR,
                });
            }
            Some(s) if s.sender.conn_id() == from.conn_id() => {
                if !s.cancelling {
                    s.cancelling = true;
                    s.receiver.tell(&ServerMsg::Cancelled { sid });
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
        match st.streams.get(&sid) {
            Some(s) if s.receiver.conn_id == from && s.cancelling => {}
            _ => return,
        }
        let s = st.remove(sid);
        s.sender.tell(&ServerMsg::CancelDone { sid, code });
    }

    /// A session ended. Its outgoing streams are cancelled towards their receivers (a waiting
    /// one just disappears); its incoming ones fail towards their senders (1102), or count as
    /// cancelled if the sender was cancelling anyway. Cmds it had coming in fail towards their
    /// senders with 1102; cmds it sent are still delivered.
    pub fn session_ended(&self, conn_id: ConnId) {
        let mut st = self.state.lock();
        // The receiving side first, so that no queued stream of this session starts below.
        if let Some(inbox) = st.inboxes.remove(&conn_id) {
            let mut cmds: Vec<Cmd> = inbox.delivered.into_iter().collect();
            cmds.extend(inbox.waiting.into_iter().map(|(c, _, _)| c));
            finish_cmds(&mut st, cmds, CRVIDEOSDK_SENDDATA_TARGETINVALID);
            let mut incoming: Vec<u64> = st
                .streams
                .iter()
                .filter(|(_, s)| s.receiver.conn_id == conn_id)
                .map(|(sid, _)| *sid)
                .collect();
            incoming.sort_unstable();
            for sid in incoming {
                // Not through `remove`: this receiver's inbox is gone, nothing starts.
                let s = st.streams.remove(&sid).expect("listed above");
                if let Some(o) = st.outgoing.get_mut(&s.sender.conn_id()) {
                    o.streams -= 1;
                }
                if s.sender.conn_id() == conn_id {
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
                st.tidy(s.sender.conn_id());
            }
        }
        let mut outgoing: Vec<u64> = st
            .streams
            .iter()
            .filter(|(_, s)| s.sender.conn_id() == conn_id)
            .map(|(sid, _)| *sid)
            .collect();
        outgoing.sort_unstable();
        for sid in outgoing {
            let s = st.remove(sid);
            if s.started {
                s.receiver.tell(&ServerMsg::Cancelled { sid });
            }
        }
        st.outgoing.remove(&conn_id);
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

/// Tells the senders of `cmds` that they ended with `code`, one `cmd_done` per sender (its
/// numbers in order), and frees their windows.
fn finish_cmds(st: &mut State, cmds: Vec<Cmd>, code: i32) {
    let mut by_sender: Vec<(Sender, Vec<u64>)> = Vec::new();
    for c in cmds {
        if let Some(o) = st.outgoing.get_mut(&c.sender.conn_id()) {
            o.cmds -= 1;
            o.cmd_bytes -= c.len;
        }
        match by_sender
            .iter_mut()
            .find(|(e, _)| e.conn_id() == c.sender.conn_id())
        {
            Some((_, ns)) => ns.push(c.n),
            None => by_sender.push((c.sender, vec![c.n])),
        }
    }
    for (sender, ns) in by_sender {
        sender.tell(&ServerMsg::CmdDone { ns, code });
        if st
            .outgoing
            .get(&sender.conn_id())
            .is_some_and(|o| o.cmds == 0 && o.streams == 0)
        {
            st.outgoing.remove(&sender.conn_id());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::State as OutState;

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
        assert!(r.data(2, sid, &chunk(sid, 10)).is_err(), "not the sender");
        assert!(r.data(1, sid, &chunk(sid, w)).is_ok());
        assert!(r.data(1, sid, &chunk(sid, 1)).is_err(), "window full");
        r.ack(2, sid, 100);
        assert!(r.data(1, sid, &chunk(sid, 100)).is_ok());
        assert_eq!(
            a.outbox.take_msgs(),
            [ServerMsg::Progress { sid, bytes: 100 }]
        );
        // Nothing beyond the offered size.
        let small = r
            .offer(8, a.clone().into(), b.clone(), offer(XferKind::Buffer, 5))
            .unwrap();
        assert!(r.data(1, small, &chunk(small, 6)).is_err());
        assert!(
            r.data(1, 999, &chunk(999, 6)).is_ok(),
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
        r.cancel_ack(2, s1, 0);
        let s2 = r
            .offer(2, a.clone().into(), b.clone(), offer(XferKind::Buffer, 10))
            .unwrap();
        r.cancel(&a.clone().into(), s2);
        r.fin(2, s2, 0); // delivered before the cancel arrived
        r.cancel_ack(2, s2, 1104); // ignored: already answered
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
        r.session_ended(1);
        assert_eq!(b.outbox.take_msgs(), [ServerMsg::Cancelled { sid: out }]);
        assert_eq!(
            c.outbox.take_msgs(),
            [ServerMsg::XferEnd {
                sid: inc,
                code: 1102
            }]
        );
        assert_eq!(r.len(), 1);
        r.fin(2, other, 0);
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
        let owner = ((waiting - 1) / xfer::MAX_OUTGOING as u64 + 1) as ConnId;
        assert!(r.data(owner, waiting, &chunk(waiting, 1)).is_err());
        // Each stream that ends lets the next one start, in order.
        for (i, sid) in sids.iter().enumerate() {
            r.fin(100, *sid, 0);
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
            r.cmd_ack(100, acked);
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
        r.session_ended(2);
        let msgs = a.outbox.take_msgs();
        assert_eq!(msgs.len(), 1);
        let ServerMsg::CmdDone { ns, code: 1102 } = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!(ns.len(), xfer::CMD_WINDOW);
        assert_eq!(r.busy_senders(), 0);
    }
}
