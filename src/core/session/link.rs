//! The worker's side of the session: which link it wants, the link coming up or failing, the
//! bytes read and to write, its timers, and its events on their way to the app.

use super::super::event::Event;
use super::super::transfer::Wake;
use super::lifecycle::{Phase, RESUME_HANDSHAKE};
use super::timers::Timer;
use super::{client_decoder, LinkGen, Session, Want, ACK_EVERY, DEFAULT_HEARTBEAT, WRITE_BATCH};
use crvm_proto::error::*;
use crvm_proto::msg::xfer;
use crvm_proto::{Batch, ClientMsg, Code, Out, OutQueue, PROTOCOL_VERSION};
use std::time::Instant;

impl Session {
    /// Where to connect when [`Session::want`] says so: the node holding the session while
    /// resuming in a cluster, else `None` (the address the client was made with).
    pub fn connect_addr(&self) -> Option<&str> {
        match &self.st.phase {
            Phase::Reconnecting(_) | Phase::Farewell(_) => self
                .st
                .resume
                .as_ref()
                .map(|r| r.addr.as_str())
                .filter(|a| !a.is_empty()),
            _ => None,
        }
    }

    /// The link this session wants, and its generation.
    pub fn want(&self) -> (LinkGen, Want) {
        let tls = self.st.opts.tls;
        let w = match &self.st.phase {
            Phase::LoggedOut => Want::None,
            Phase::Connecting { .. } => Want::Connect { tls },
            Phase::Reconnecting(_) | Phase::Farewell(_) if self.st.waiting_to_retry() => Want::None,
            Phase::Reconnecting(_) | Phase::Farewell(_) => Want::Connect { tls },
            _ => Want::Keep,
        };
        (self.st.gen, w)
    }

    /// The connection of generation `gen` is up (TLS, if any, set up over it): say hello and
    /// log in in one go.
    pub fn link_up(&mut self, gen: LinkGen, now: Instant) {
        let st = &mut self.st;
        if gen != st.gen {
            return;
        }
        if let Phase::Reconnecting(_) | Phase::Farewell(_) = &st.phase {
            // A resume: hello and resume, unnumbered; everything queued waits for the answer.
            let Some(res) = &st.resume else {
                return;
            };
            let last = self.dec.last_seq();
            self.dec = client_decoder();
            self.dec.continue_after(last);
            let handshake = RESUME_HANDSHAKE.min(st.opts.request_timeout);
            st.timers.set(Timer::Attempt, now + handshake);
            st.last_rx = now;
            st.last_tx = now;
            st.out.new_connection();
            st.out.push_handshake(Out::msg(&hello()));
            st.out.push_handshake(Out::msg(&ClientMsg::Resume {
                app_id: res.app_id.clone(),
                session: res.session.clone(),
                secret: res.secret.clone(),
                last,
            }));
            return;
        }
        let Phase::Connecting { .. } = st.phase else {
            return;
        };
        let Phase::Connecting { login } = std::mem::replace(&mut st.phase, Phase::LoggedOut) else {
            unreachable!("checked above")
        };
        self.dec = client_decoder();
        st.out = OutQueue::new();
        st.out.keep_tail(st.opts.reconnect);
        st.resume = None;
        st.ack_sent = 0;
        st.heartbeat = DEFAULT_HEARTBEAT;
        st.last_rx = now;
        st.last_tx = now;
        st.out.push_handshake(Out::msg(&hello()));
        st.send_login(login, now);
    }

    /// The connection of generation `gen` failed or could not be made: `code` is 203 for a
    /// connection never made, 209 for TLS, 207 for a lost one.
    pub fn link_failed(&mut self, gen: LinkGen, code: Code, now: Instant) {
        if gen != self.st.gen {
            return;
        }
        if matches!(self.st.phase, Phase::Reconnecting(_) | Phase::Farewell(_)) {
            self.st.attempt_failed(now, None);
        } else {
            self.st.link_ended(code, now);
        }
    }

    /// Room to read received bytes into; report how many with [`Session::received`].
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.dec.spare()
    }

    /// `n` bytes were read into [`Session::read_buf`]: decodes and handles every whole frame.
    /// A frame the protocol does not allow ends the link (207).
    pub fn received(&mut self, n: usize, now: Instant) {
        self.dec.filled(n);
        self.st.heard(now);
        let gen = self.st.gen;
        loop {
            let frame = match self.dec.next_frame_ref() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    self.st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now);
                    break;
                }
            };
            let handled = if frame.owned {
                // A chunk read into a buffer of its own: to the disk writer as it is.
                let ack = frame.ack;
                let payload = self.dec.take_payload().expect("an owned frame's payload");
                self.st.on_owned_data(ack, payload, now)
            } else {
                self.st.on_frame(frame, now)
            };
            if handled.is_err() {
                self.st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now);
            }
            if self.st.gen != gen {
                break; // the link is gone: the rest of what was read is moot
            }
        }
        self.st.xfers.recv.lend_buffers(&mut self.dec);
        let handled = self.dec.last_seq();
        if matches!(self.st.phase, Phase::LoggedIn) && handled >= self.st.ack_sent + ACK_EVERY {
            self.st.out.push(Out::Ack);
            self.st.ack_sent = handled;
        }
        self.st.pump(now);
    }

    /// Appends what should be written next to `batch`: queued control frames first, else one
    /// data chunk (whose bytes the batch holds in place). False if there is nothing to write.
    pub fn transmit(&mut self, batch: &mut Batch, now: Instant) -> bool {
        self.produce(batch, now, true)
    }

    /// [`Session::transmit`] without data: what an app's thread writes after its call (the
    /// worker reads and hashes the files).
    pub fn transmit_control(&mut self, batch: &mut Batch, now: Instant) -> bool {
        self.produce(batch, now, false)
    }

    /// Gives the payloads of a written `batch` back for the next chunks, and empties it (its
    /// memory is kept unless it grew past `keep` bytes).
    pub fn written(&mut self, batch: &mut Batch, keep: usize) {
        batch.clear_into(keep, &mut self.st.out);
    }

    fn produce(&mut self, batch: &mut Batch, now: Instant, data: bool) -> bool {
        let st = &mut self.st;
        if matches!(st.phase, Phase::LoggedOut | Phase::Connecting { .. }) || st.waiting_to_retry()
        {
            return false;
        }
        let ack = self.dec.last_seq();
        st.ack_sent = ack;
        loop {
            if st.out.encode_batch(ack, batch, WRITE_BATCH) > 0 {
                break;
            }
            if data
                && matches!(st.phase, Phase::LoggedIn)
                && st
                    .xfers
                    .fill_chunk(&mut st.out, ack, batch, &mut st.events, now)
            {
                break;
            }
            if st.out.is_empty() {
                return false;
            }
        }
        st.spoke(now);
        true
    }

    /// How many bytes the kernel should hold unsent on this link's socket: two milliseconds of
    /// what the outgoing streams deliver, so that a fast path stays busy while the worker is
    /// woken, and a slow one holds no more than 32 KiB ahead of a control frame.
    pub fn unsent_bound(&self) -> usize {
        crvm_proto::unsent_for_rate(self.st.xfers.out_rate())
    }

    /// When [`Session::tick`] must run next, if ever: the timer table's earliest deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.st.timers.next()
    }

    /// Runs the timers that are due at `now`, in the order of [`Timer::ALL`].
    pub fn tick(&mut self, now: Instant) {
        let st = &mut self.st;
        for timer in Timer::ALL {
            if st.timers.is_expired(timer, now) {
                st.timers.stop(timer);
                st.on_timeout(timer, now);
            }
        }
        st.pump(now);
    }

    /// Whether cmds are unfinished or queued (a burst is under way).
    pub fn cmds_in_flight(&self) -> bool {
        self.st.cmds.in_flight()
    }

    /// Received files are written on a thread of their own, which calls `wake` when it has
    /// stored or finished something: the worker then calls [`Session::disk_done`].
    pub fn set_disk_wake(&mut self, wake: Wake) {
        self.st.xfers.recv.set_wake(wake);
    }

    /// Takes what the disk writer finished: acknowledgements of stored chunks, received files.
    pub fn disk_done(&mut self, now: Instant) {
        let (xfers, mut io) = self.st.xio(now);
        xfers.recv.disk_done(&mut io);
    }

    /// Whether frames wait to be written on an established link.
    pub fn has_output(&self) -> bool {
        !matches!(self.st.phase, Phase::LoggedOut | Phase::Connecting { .. })
            && !self.st.waiting_to_retry()
            && !self.st.out.is_empty()
    }

    /// Whether events wait for delivery.
    pub fn has_events(&self) -> bool {
        !self.st.events.is_empty()
    }

    /// Takes the events waiting for delivery (at most `max`), in order.
    ///
    /// A batch holds at most a quarter of the server's cmd window for this session, so that the
    /// acknowledgement after it reaches the server while the rest of the window is still
    /// arriving: the flow never stops to wait for an acknowledgement.
    pub fn take_events(&mut self, out: &mut Vec<Event>, max: usize) {
        let st = &mut self.st;
        let (mut cmds, mut bytes) = (0, 0);
        for _ in 0..max {
            let Some((ev, n)) = st.events.pop() else {
                break;
            };
            if n > 0 {
                st.taken_cmd = n;
                cmds += 1;
                if let Event::NotifyCmdData { data, .. } = &ev {
                    bytes += data.len();
                }
            }
            out.push(ev);
            if cmds >= xfer::CMD_RECV_WINDOW / 4 || bytes >= xfer::CMD_RECV_WINDOW_BYTES / 4 {
                break;
            }
        }
    }

    /// The events taken last were delivered to the app: acknowledge the cmds among them, so
    /// that their senders hear `send_cmd_rlst` and may send more (flow control follows the
    /// app's pace, docs/API.md §3.5).
    pub fn delivered(&mut self) {
        let st = &mut self.st;
        st.cmds.delivered = st.cmds.delivered.max(st.taken_cmd);
        st.ack_cmds();
    }
}

fn hello() -> ClientMsg {
    ClientMsg::Hello {
        ver: PROTOCOL_VERSION,
        agent: format!("libcrvm/{}", env!("CARGO_PKG_VERSION")),
    }
}
