//! Cmds through the relay (see the module doc of [`super`]): each receiver's window, the
//! cmds waiting for room in it, and `cmd_done` back to their senders.

use std::collections::VecDeque;

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_SENDDATA_TARGETINVALID};
use crvm_proto::msg::xfer;
use crvm_proto::ServerMsg;

use super::{Effect, Sink, State, Violation};
use crate::ids::LoginGen;
use crate::route::endpoint::{Endpoint, LocalEnd};

/// A cmd the relay holds: delivered and unacknowledged, or waiting for room.
#[derive(Debug)]
pub(super) struct Cmd {
    pub(super) sender: Endpoint,
    /// The sender's number of it.
    pub(super) n: u64,
    pub(super) len: usize,
}

/// What one receiving session has coming in.
#[derive(Debug)]
pub(super) struct Inbox {
    pub(super) endpoint: LocalEnd,
    /// Number the next `cmd_in` gets.
    pub(super) next_n: u64,
    /// Cmds handed to the receiver and not yet acknowledged, numbered from `next_n - len`.
    pub(super) delivered: VecDeque<Cmd>,
    pub(super) delivered_bytes: usize,
    /// Cmds waiting for room in the receiver's window, with their sender's name and bytes.
    pub(super) waiting: VecDeque<(Cmd, String, Vec<u8>)>,
    /// Started streams to this receiver.
    pub(super) streams: usize,
    /// Streams waiting for one of those to end.
    pub(super) queued: VecDeque<u64>,
    /// The receiver is arriving from another node: nothing is handed to it until the cmds it
    /// had there are ([`super::moving`]).
    pub(super) held: bool,
}

impl Inbox {
    pub(super) fn new(endpoint: LocalEnd) -> Inbox {
        Inbox {
            endpoint,
            next_n: 1,
            delivered: VecDeque::new(),
            delivered_bytes: 0,
            waiting: VecDeque::new(),
            streams: 0,
            queued: VecDeque::new(),
            held: false,
        }
    }

    pub(super) fn has_room(&self, len: usize) -> bool {
        !self.held
            && (self.delivered.is_empty()
                || (self.delivered.len() < xfer::CMD_RECV_WINDOW
                    && self.delivered_bytes + len <= xfer::CMD_RECV_WINDOW_BYTES))
    }

    /// Hands a cmd to the receiver (its window has room).
    fn deliver(&mut self, cmd: Cmd, from: &str, data: Vec<u8>, fx: &mut impl Sink) {
        let n = self.next_n;
        self.next_n += 1;
        fx.effect(Effect::CmdIn {
            to: &self.endpoint,
            n,
            from,
            data,
        });
        self.delivered_bytes += cmd.len;
        self.delivered.push_back(cmd);
    }

    /// Hands waiting cmds to the receiver while its window has room.
    pub(super) fn refill(&mut self, fx: &mut impl Sink) {
        while let Some((cmd, _, _)) = self.waiting.front() {
            if !self.has_room(cmd.len) {
                return;
            }
            let (cmd, from, data) = self.waiting.pop_front().expect("front exists");
            self.deliver(cmd, &from, data, fx);
        }
    }
}

impl State {
    /// A cmd numbered `n` from `sender` (user `from`) to `receiver`. Delivered at once if the
    /// receiver's window has room, else queued behind the others. `Err(code)` if it cannot be
    /// taken (1102: the receiver is going away); a sender over its window is a violation.
    pub fn cmd(
        &mut self,
        sender: &Endpoint,
        from: &str,
        n: u64,
        receiver: &LocalEnd,
        data: Vec<u8>,
        fx: &mut impl Sink,
    ) -> Result<Result<(), i32>, Violation> {
        let st = self;
        let len = data.len();
        let out = st.outgoing.get(&sender.key()).copied().unwrap_or_default();
        if !xfer::cmd_fits(out.cmds, out.cmd_bytes, len) {
            return Err(Violation("cmd window exceeded"));
        }
        // A session that is going away takes nothing new (it closes its outbox before it asks
        // the relay to end what it has).
        if !receiver.outbox.accepts() {
            return Ok(Err(CRVIDEOSDK_SENDDATA_TARGETINVALID));
        }
        let out = st.outgoing(sender.key());
        out.cmds += 1;
        out.cmd_bytes += len;
        let cmd = Cmd {
            sender: sender.clone(),
            n,
            len,
        };
        let inbox = st.inbox(receiver);
        if inbox.waiting.is_empty() && inbox.has_room(len) {
            inbox.deliver(cmd, from, data, fx);
        } else {
            inbox.waiting.push_back((cmd, from.to_owned(), data));
        }
        Ok(Ok(()))
    }

    /// Receiver `receiver` has every `cmd_in` up to `upto`: their senders hear `cmd_done`,
    /// and waiting cmds take the room.
    pub fn cmd_ack(&mut self, receiver: LoginGen, upto: u64, fx: &mut impl Sink) {
        let st = self;
        let Some(inbox) = st.inboxes.get_mut(&receiver) else {
            return;
        };
        let first = inbox.next_n - inbox.delivered.len() as u64;
        let k = upto.saturating_add(1).saturating_sub(first);
        let k = (k as usize).min(inbox.delivered.len());
        let done: Vec<Cmd> = inbox.delivered.drain(..k).collect();
        inbox.delivered_bytes -= done.iter().map(|c| c.len).sum::<usize>();
        inbox.refill(fx);
        finish_cmds(st, done, CRVIDEOSDK_NOERR, fx);
    }
}

/// Tells the senders of `cmds` that they ended with `code`, one `cmd_done` per sender (its
/// numbers in order), and frees their windows.
pub(super) fn finish_cmds(st: &mut State, cmds: Vec<Cmd>, code: i32, fx: &mut impl Sink) {
    let mut by_sender: Vec<(Endpoint, Vec<u64>)> = Vec::new();
    for c in cmds {
        if let Some(o) = st.outgoing.get_mut(&c.sender.key()) {
            o.cmds -= 1;
            o.cmd_bytes -= c.len;
        }
        match by_sender
            .iter_mut()
            .find(|(e, _)| e.key() == c.sender.key())
        {
            Some((_, ns)) => ns.push(c.n),
            None => by_sender.push((c.sender, vec![c.n])),
        }
    }
    for (sender, ns) in by_sender {
        let done = ServerMsg::CmdDone { ns, code };
        // Its earlier results may still be on their way through the node it came from.
        let fenced = match &sender {
            Endpoint::Here(e) => st.fenced.get_mut(&e.gen),
            Endpoint::There(_) => None,
        };
        match fenced {
            Some(f) => f.held.push(done),
            None => fx.effect(Effect::ToSender(&sender, done)),
        }
        if st
            .outgoing
            .get(&sender.key())
            .is_some_and(|o| o.cmds == 0 && o.streams == 0)
        {
            st.outgoing.remove(&sender.key());
        }
    }
}
