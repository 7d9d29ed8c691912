//! A session moving to another node (docs/DESIGN.md, "Drain"): what the relay of its old node
//! hands over — the cmds coming in to it, numbered as its client has seen them — and what the
//! relay of its new node takes. Its streams end (1102) rather than move.

use crvm_proto::error::CRVIDEOSDK_SENDDATA_TARGETINVALID;
use crvm_proto::ServerMsg;

use super::cmds::{Cmd, Inbox};
use super::{Deliver, Effect, Fenced, Relay, Sink, State};
use crate::ids::{LoginGen, SessionKey};
use crate::link::node_link::NodeLink;
use crate::route::endpoint::{Endpoint, LocalEnd, RemoteEnd};

/// A cmd coming in to a moving session, with its sender as the relay had it.
#[derive(Debug)]
pub struct MovingCmd {
    pub sender: Endpoint,
    pub n: u64,
    pub len: usize,
    /// For a cmd still waiting for room: its sender's user and its bytes.
    pub waiting: Option<(String, Vec<u8>)>,
}

/// The cmds coming in to a moving session.
#[derive(Debug, Default)]
pub struct MovingInbox {
    /// The number its next `cmd_in` gets.
    pub next_n: u64,
    /// Handed to it and not acknowledged, then waiting for room, in order.
    pub cmds: Vec<MovingCmd>,
}

impl State {
    /// Holds the cmd results of local session `end` (arrived from `from`) until
    /// [`State::fence_passed`].
    pub(super) fn hold_results(&mut self, end: &LocalEnd, from: &str) {
        let fenced = Fenced {
            end: end.clone(),
            from: from.to_owned(),
            held: Vec::new(),
        };
        self.fenced.insert(end.gen, fenced);
    }

    /// What was held for session `gen`, if anything, in order; its results flow again.
    pub(super) fn fence_passed(&mut self, gen: LoginGen) -> Option<Fenced> {
        self.fenced.remove(&gen)
    }

    /// Every cmd and stream sent by session `key` is from `by` now (it moved).
    fn replace_sender(&mut self, key: SessionKey, by: &Endpoint) {
        let cmds = self.inboxes.values_mut().flat_map(|inbox| {
            let delivered = inbox.delivered.iter_mut();
            delivered.chain(inbox.waiting.iter_mut().map(|(c, _, _)| c))
        });
        let senders = cmds
            .map(|c| &mut c.sender)
            .chain(self.streams.values_mut().map(|s| &mut s.sender));
        for sender in senders.filter(|s| s.key() == key) {
            *sender = by.clone();
        }
    }

    /// Ends every stream session `gen` sends or receives here with 1102 on both sides.
    fn end_streams(&mut self, gen: LoginGen, fx: &mut impl Sink) {
        let mut sids: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.receiver.gen == gen || s.sender.key() == SessionKey::Here(gen))
            .map(|(sid, _)| *sid)
            .collect();
        sids.sort_unstable();
        for sid in sids {
            let s = self.remove(sid, fx);
            let end = ServerMsg::XferEnd {
                sid,
                code: CRVIDEOSDK_SENDDATA_TARGETINVALID,
            };
            // Both sides hear it once: the sender its end, the receiver that it stops.
            fx.effect(Effect::ToSender(&s.sender, end));
            if s.started {
                fx.effect(Effect::ToReceiver(
                    &s.receiver,
                    ServerMsg::Cancelled { sid },
                ));
            }
        }
    }

    /// Session `gen` leaves for the node reached by `there`: its streams end, its incoming
    /// cmds are taken out, and the cmds it sent to sessions here are answered over the link.
    fn leave(&mut self, gen: LoginGen, there: &RemoteEnd, fx: &mut impl Sink) -> MovingInbox {
        self.left.insert(gen);
        self.end_streams(gen, fx);
        let mut out = MovingInbox {
            next_n: 1,
            cmds: Vec::new(),
        };
        if let Some(inbox) = self.inboxes.remove(&gen) {
            out.next_n = inbox.next_n;
            for c in inbox.delivered {
                out.cmds.push(MovingCmd {
                    sender: c.sender,
                    n: c.n,
                    len: c.len,
                    waiting: None,
                });
            }
            for (c, from, data) in inbox.waiting {
                out.cmds.push(MovingCmd {
                    sender: c.sender,
                    n: c.n,
                    len: c.len,
                    waiting: Some((from, data)),
                });
            }
        }
        // Its cmds still here: their senders' windows count them where they went.
        for c in &out.cmds {
            if let Some(o) = self.outgoing.get_mut(&c.sender.key()) {
                o.cmds -= 1;
                o.cmd_bytes -= c.len;
            }
            self.tidy(c.sender.key());
        }
        let here = SessionKey::Here(gen);
        let away = Endpoint::There(there.clone());
        for inbox in self.inboxes.values_mut() {
            for c in inbox.delivered.iter_mut() {
                if c.sender.key() == here {
                    c.sender = away.clone();
                }
            }
            for (c, _, _) in inbox.waiting.iter_mut() {
                if c.sender.key() == here {
                    c.sender = away.clone();
                }
            }
        }
        if let Some(o) = self.outgoing.remove(&here) {
            let to = self.outgoing(SessionKey::There(gen));
            to.cmds += o.cmds;
            to.cmd_bytes += o.cmd_bytes;
        }
        out
    }

    /// Session `receiver` is arriving from another node: cmds for it wait until
    /// [`State::arrive`] hands it those it had there, numbered as its client saw them.
    fn expect(&mut self, receiver: &LocalEnd) {
        self.left.remove(&receiver.gen);
        let mut inbox = Inbox::new(receiver.clone());
        inbox.held = true;
        self.inboxes.insert(receiver.gen, inbox);
    }

    /// The cmds of a session that arrived from another node: numbered on from where they
    /// were there, before whatever reached it here meanwhile.
    fn arrive(&mut self, receiver: &LocalEnd, moving: MovingInbox, fx: &mut impl Sink) {
        let inbox = self.inbox(receiver);
        let here_waiting = std::mem::take(&mut inbox.waiting);
        inbox.held = false;
        inbox.next_n = moving.next_n;
        let mut counts = Vec::new();
        for c in moving.cmds {
            let cmd = Cmd {
                sender: c.sender,
                n: c.n,
                len: c.len,
            };
            counts.push((cmd.sender.key(), cmd.len));
            match c.waiting {
                None => {
                    inbox.delivered_bytes += cmd.len;
                    inbox.delivered.push_back(cmd);
                }
                Some((from, data)) => inbox.waiting.push_back((cmd, from, data)),
            }
        }
        inbox.waiting.extend(here_waiting);
        inbox.refill(fx);
        for (key, len) in counts {
            let o = self.outgoing(key);
            o.cmds += 1;
            o.cmd_bytes += len;
        }
    }
}

impl Relay {
    /// See [`State::leave`].
    pub fn leave(&self, gen: LoginGen, there: &RemoteEnd) -> MovingInbox {
        self.state.lock().leave(gen, there, &mut Deliver)
    }

    /// See [`State::expect`].
    pub fn expect(&self, receiver: &LocalEnd) {
        self.state.lock().expect(receiver)
    }

    /// See [`State::arrive`].
    pub fn arrive(&self, receiver: &LocalEnd, moving: MovingInbox) {
        self.state.lock().arrive(receiver, moving, &mut Deliver)
    }

    /// Session `gen`, a sender of another node until now, arrived here as `here` from the
    /// node of `from`. Results this relay sent it there before now are passed on to it from
    /// there; so that none is overtaken, its results are held from now on until that node
    /// answers the fence sent here, behind them ([`Relay::fence_passed`]), or its link is lost.
    pub fn localise(&self, here: &LocalEnd, from: Option<&NodeLink>) {
        let mut st = self.state.lock();
        let key = SessionKey::There(here.gen);
        st.replace_sender(key, &Endpoint::Here(here.clone()));
        if let Some(o) = st.outgoing.remove(&key) {
            let to = st.outgoing(SessionKey::Here(here.gen));
            to.cmds += o.cmds;
            to.cmd_bytes += o.cmd_bytes;
            to.streams += o.streams;
        }
        if let Some(link) = from {
            st.hold_results(here, link.node());
            // Under the lock: behind every result this relay sent it there.
            link.fence(here.gen);
        }
    }

    /// The node session `gen` came from has passed on every result it had for it: those held
    /// here follow, in order.
    pub fn fence_passed(&self, gen: LoginGen) {
        if let Some(f) = self.state.lock().fence_passed(gen) {
            release(f);
        }
    }

    /// The link to `node` is lost: results held for sessions that came from it go out now.
    pub fn fences_lost(&self, node: &str) {
        let mut st = self.state.lock();
        for (_, f) in st.fenced.extract_if(|_, f| f.from == node) {
            release(f);
        }
    }

    /// Senders of another node's session `gen` now reached through `to` (it moved there).
    pub fn rehome(&self, gen: LoginGen, to: &RemoteEnd) {
        self.state
            .lock()
            .replace_sender(SessionKey::There(gen), &Endpoint::There(to.clone()));
    }
}

/// Delivers the results held for a session, in order.
fn release(f: Fenced) {
    for msg in &f.held {
        f.end.tell(msg);
    }
}
