//! The cmd window (docs/API.md §3.5): cmds sent and unfinished, those queued beyond the window, and
//! the numbering and acknowledgement of those coming in.

use super::super::event::Event;
use super::super::events::Events;
use super::lifecycle::Phase;
use super::State;
use crvm_proto::error::check;
use crvm_proto::msg::xfer;
use crvm_proto::{ClientMsg, Code, FrameError, Out, OutQueue};
use std::collections::{BTreeMap, VecDeque};

#[derive(Default)]
pub(super) struct Cmds {
    next_n: u64,
    /// Sent, waiting for `cmd_done`: number → (task, bytes).
    unfinished: BTreeMap<u64, (String, usize)>,
    unfinished_bytes: usize,
    /// Accepted beyond the window, in order: task, target, bytes.
    queued: VecDeque<(String, String, Vec<u8>)>,
    queued_bytes: usize,
    /// Number of the last `cmd_in` received.
    last_in: u64,
    /// Number of the last `cmd_in` the app has had.
    pub delivered: u64,
    /// Number of the last `cmd_in` acknowledged to the server.
    acked: u64,
}

impl Cmds {
    pub fn pending_bytes(&self) -> u64 {
        (self.unfinished_bytes + self.queued_bytes) as u64
    }

    /// Whether cmds are unfinished or queued (a burst is under way).
    pub fn in_flight(&self) -> bool {
        !self.unfinished.is_empty() || !self.queued.is_empty()
    }

    /// Accepts a cmd; it goes out when the window has room ([`Cmds::pump`]).
    pub fn queue(&mut self, task: String, to: String, data: Vec<u8>) {
        self.queued_bytes += data.len();
        self.queued.push_back((task, to, data));
    }

    /// Sends the queued cmds the window has room for.
    pub fn pump(&mut self, out: &mut OutQueue) {
        while let Some((_, _, data)) = self.queued.front() {
            if !xfer::cmd_fits(self.unfinished.len(), self.unfinished_bytes, data.len()) {
                break;
            }
            let (task, to, data) = self.queued.pop_front().expect("front exists");
            self.next_n += 1;
            let n = self.next_n;
            self.queued_bytes -= data.len();
            self.unfinished_bytes += data.len();
            self.unfinished.insert(n, (task, data.len()));
            out.push(Out::attached(&ClientMsg::Cmd { n, to }, data));
        }
    }

    /// The server's `cmd_done`: the cmds numbered `ns` ended with `c`.
    pub fn done(&mut self, ns: Vec<u64>, c: i32, events: &mut Events) {
        let result = check(c);
        for n in ns {
            if let Some((task_id, len)) = self.unfinished.remove(&n) {
                self.unfinished_bytes -= len;
                events.emit(Event::CmdSent { task_id, result });
            }
        }
    }

    /// The server's `cmd_in` number `n`, carrying `data` from `from`; numbers must follow on.
    pub fn incoming(
        &mut self,
        n: u64,
        from: String,
        data: &[u8],
        events: &mut Events,
    ) -> Result<(), FrameError> {
        if n != self.last_in + 1 {
            return Err(FrameError::BadControl);
        }
        self.last_in = n;
        let ev = Event::NotifyCmdData {
            from,
            data: data.to_vec(),
        };
        events.push(ev, n);
        Ok(())
    }

    /// Every cmd, sent or queued, ends with `code`, in the order they were accepted.
    pub fn end_all(&mut self, code: Code, events: &mut Events) {
        let sent = std::mem::take(&mut self.unfinished).into_values();
        let queued = self.queued.drain(..).map(|(task, _, _)| (task, 0));
        for (task_id, _) in sent.chain(queued) {
            events.emit(Event::CmdSent {
                task_id,
                result: Err(code),
            });
        }
        *self = Cmds::default();
    }
}

impl State {
    /// Acknowledges the cmds the app has had, if the link is up (else once it is resumed: a
    /// receive window delivered while the link was down must still be acknowledged).
    pub(super) fn ack_cmds(&mut self) {
        let c = &mut self.cmds;
        if c.delivered > c.acked && matches!(self.phase, Phase::LoggedIn) {
            c.acked = c.delivered;
            self.out
                .push(Out::msg(&ClientMsg::CmdAck { upto: c.acked }));
        }
    }
}
