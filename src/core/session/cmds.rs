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

/// Most slots [`Cmds`]' ring of unfinished cmds spans: twice the most cmds a window holds.
const RING_SPAN: usize = 2 * xfer::CMD_WINDOW;

#[derive(Default)]
pub(super) struct Cmds {
    next_n: u64,
    /// Sent, waiting for `cmd_done`: slot `i` is cmd number `first + i` — its task and bytes, or
    /// nothing once done (cmds to different users end out of order). Numbers are consecutive,
    /// so a ring indexed by number does what a tree map did, without its nodes.
    unfinished: VecDeque<Option<(String, usize)>>,
    /// Number of `unfinished[0]`.
    first: u64,
    /// Unfinished cmds that held the front of `unfinished` while [`RING_SPAN`] later ones were
    /// sent (a cmd to a user whose app takes its time): moved here so that the ring stays
    /// bounded however long one cmd waits.
    stragglers: BTreeMap<u64, (String, usize)>,
    /// Slots of `unfinished` still waiting.
    unfinished_count: usize,
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
        self.unfinished_count > 0 || !self.queued.is_empty()
    }

    /// Accepts a cmd; it goes out when the window has room ([`Cmds::pump`]).
    pub fn queue(&mut self, task: String, to: String, data: Vec<u8>) {
        self.queued_bytes += data.len();
        self.queued.push_back((task, to, data));
    }

    /// Sends the queued cmds the window has room for.
    pub fn pump(&mut self, out: &mut OutQueue) {
        while let Some((_, _, data)) = self.queued.front() {
            if !xfer::cmd_fits(self.unfinished_count, self.unfinished_bytes, data.len()) {
                break;
            }
            let (task, to, data) = self.queued.pop_front().expect("front exists");
            self.next_n += 1;
            let n = self.next_n;
            self.queued_bytes -= data.len();
            self.unfinished_bytes += data.len();
            if self.unfinished.is_empty() {
                self.first = n;
            }
            self.unfinished.push_back(Some((task, data.len())));
            self.unfinished_count += 1;
            while self.unfinished.len() > RING_SPAN {
                if let Some(cmd) = self.unfinished.pop_front().expect("longer than the span") {
                    self.stragglers.insert(self.first, cmd);
                }
                self.first += 1;
            }
            out.push(Out::attached(&ClientMsg::Cmd { n, to }, data));
        }
    }

    /// The server's `cmd_done`: the cmds numbered `ns` ended with `c`.
    pub fn done(&mut self, ns: Vec<u64>, c: i32, events: &mut Events) {
        let result = check(c);
        for n in ns {
            let cmd = match n.checked_sub(self.first) {
                Some(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| self.unfinished.get_mut(i))
                    .and_then(Option::take),
                None => self.stragglers.remove(&n),
            };
            if let Some((task_id, len)) = cmd {
                self.unfinished_count -= 1;
                self.unfinished_bytes -= len;
                events.emit(Event::CmdSent { task_id, result });
            }
        }
        while let Some(None) = self.unfinished.front() {
            self.unfinished.pop_front();
            self.first += 1;
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
        let stragglers = std::mem::take(&mut self.stragglers).into_values();
        let ring = std::mem::take(&mut self.unfinished).into_iter().flatten();
        let sent = stragglers.chain(ring);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(events: &mut Events) -> Vec<String> {
        std::iter::from_fn(|| events.pop())
            .map(|(ev, _)| match ev {
                Event::CmdSent { task_id, .. } => task_id,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// One cmd that waits while many later ones finish: the ring stays bounded, and the
    /// waiting cmd still gets its one result.
    #[test]
    fn a_cmd_left_waiting_neither_grows_the_ring_nor_loses_its_result() {
        let (mut cmds, mut out, mut events) = (Cmds::default(), OutQueue::new(), Events::default());
        cmds.queue("slow".into(), "carol".into(), vec![1]);
        cmds.pump(&mut out);
        for i in 0..3 * RING_SPAN as u64 {
            cmds.queue(format!("t{i}"), "bob".into(), vec![2]);
            cmds.pump(&mut out);
            cmds.done(vec![i + 2], 0, &mut events);
            assert!(cmds.unfinished.len() <= RING_SPAN);
        }
        assert_eq!(sent(&mut events).len(), 3 * RING_SPAN);
        assert_eq!(cmds.unfinished_count, 1);
        cmds.done(vec![1], 0, &mut events);
        assert_eq!(sent(&mut events), ["slow"]);
        assert!(!cmds.in_flight());
        assert_eq!(cmds.pending_bytes(), 0);
        // Unknown and repeated numbers are ignored.
        cmds.done(vec![0, 1, 1 << 40], 0, &mut events);
        assert!(sent(&mut events).is_empty());
    }

    #[test]
    fn cmds_ending_out_of_order_each_end_once_and_the_rest_end_in_order() {
        let (mut cmds, mut out, mut events) = (Cmds::default(), OutQueue::new(), Events::default());
        for i in 1..=5 {
            cmds.queue(format!("t{i}"), "bob".into(), vec![0; 10]);
        }
        cmds.pump(&mut out);
        cmds.done(vec![4, 2, 4], 0, &mut events);
        assert_eq!(sent(&mut events), ["t4", "t2"]);
        assert_eq!(cmds.pending_bytes(), 30);
        cmds.end_all(crvm_proto::error::code(1102), &mut events);
        assert_eq!(sent(&mut events), ["t1", "t3", "t5"]);
    }
}
