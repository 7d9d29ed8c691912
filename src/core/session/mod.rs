//! The client session, sans-IO: the whole state machine of one client (login, requests and
//! their results, calls, cmds, streams, heartbeats, logout, a lost link) with no socket, thread,
//! clock or randomness of its own — the time comes with every call, the rest through [`Env`].
//! Shaped like quinn-proto's `Connection`: the worker thread ([`super::worker`]) hands it
//! input ([`Session::received`], [`Session::link_up`], [`Session::link_failed`]), polls what it
//! has to send ([`Session::transmit`]), when it must run next ([`Session::deadline`], then
//! [`Session::tick`]) and its events ([`Session::take_events`]). The app's calls reach it
//! under the same lock, so each is checked against the state it will act on.
//!
//! Rules kept here (docs/API.md §2.2, §3): every accepted request gets exactly one result event,
//! whatever happens to the link; a lost link answers everything outstanding with its code,
//! ends the session's calls locally, then `line_off`; a logout answers what the server did not
//! with 12 and emits nothing else.
//!
//! The parts: `app` (the app's calls), `link` (the worker's side: link, bytes, timers,
//! events), `lifecycle` (login, logout, a lost link, resume, farewell), `requests` (the table
//! of requests in flight and their results), `cmds` (the cmd window), `inbound` (what the
//! server says, by phase), `timers` (the timer table), `env` (randomness and the log).

mod app;
mod cmds;
mod env;
mod inbound;
mod lifecycle;
mod link;
mod requests;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use env::{Env, SystemEnv};

use super::events::Events;
use super::options::Options;
use super::transfer::{Io, Transfers};
use cmds::Cmds;
use crvm_proto::frame::MAX_PAYLOAD_TO_CLIENT;
use crvm_proto::{Decoder, OutQueue, SizeLimits};
use lifecycle::{Phase, Resumable};
use requests::Requests;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timers::TimerTable;

/// A generation of the link the session wants (the client's link epoch): it changes whenever
/// the wanted link changes (a new login, a link given up), and the worker drops a connection
/// of an older one. Not a login generation nor the server's parking epoch: a number of this
/// client's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkGen(u64);

impl LinkGen {
    /// The generation after this one.
    fn next(self) -> LinkGen {
        LinkGen(self.0 + 1)
    }
}

/// Heartbeat interval until the server's `welcome` says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer silent for this long is dead, whatever the heartbeat interval (docs/API.md §3.1, §3.6).
const MAX_SILENCE: Duration = Duration::from_secs(15);
/// A standalone acknowledgement goes out after this many frames handled without one.
const ACK_EVERY: u64 = 32;
/// Most bytes of control frames encoded for one write.
const WRITE_BATCH: usize = 256 * 1024;

/// Which link the session wants, for the worker to make it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// No link.
    None,
    /// A new connection for this login.
    Connect { tls: bool },
    /// Keep the connection established for this generation.
    Keep,
}

pub(crate) struct Session {
    dec: Decoder,
    st: State,
}

struct State {
    opts: Options,
    env: Box<dyn Env>,
    /// Set at the first login: the dispatch mode is fixed from then on.
    dispatch_fixed: bool,
    destroyed: bool,
    phase: Phase,
    timers: TimerTable,
    /// Changes whenever the wanted link changes (a new login, a link given up): the worker
    /// drops a connection of an older generation.
    gen: LinkGen,
    /// A login made while the logout before it completes.
    next_login: Option<lifecycle::LoginReq>,
    out: OutQueue,
    events: Events,
    requests: Requests,
    /// Cookie of the last `start_user_status_notify`, carried by every presence push.
    notify_cookie: Arc<str>,
    cmds: Cmds,
    xfers: Transfers,
    heartbeat: Duration,
    last_rx: Instant,
    last_tx: Instant,
    /// The server's transfer limits, from its `welcome`.
    server: SizeLimits,
    /// Number of the last cmd event handed out for delivery (see [`Session::take_events`]).
    taken_cmd: u64,
    /// How to resume this session, once the server has said it may be.
    resume: Option<Resumable>,
    /// The `ack` of the last frame written.
    ack_sent: u64,
    /// The app ID of the current login (a resume names it).
    app_id: String,
}

impl Session {
    pub fn new(now: Instant, env: Box<dyn Env>) -> Session {
        Session {
            dec: client_decoder(),
            st: State {
                opts: Options::default(),
                env,
                dispatch_fixed: false,
                destroyed: false,
                phase: Phase::LoggedOut,
                timers: TimerTable::default(),
                gen: LinkGen::default(),
                next_login: None,
                out: OutQueue::new(),
                events: Events::default(),
                requests: Requests::default(),
                notify_cookie: Arc::from(""),
                cmds: Cmds::default(),
                xfers: Transfers::default(),
                heartbeat: DEFAULT_HEARTBEAT,
                last_rx: now,
                last_tx: now,
                server: SizeLimits::NONE,
                taken_cmd: 0,
                resume: None,
                ack_sent: 0,
                app_id: String::new(),
            },
        }
    }

    pub fn opts(&self) -> &Options {
        &self.st.opts
    }
}

impl State {
    /// The stream engine and what its steps need, borrowed side by side.
    fn xio(&mut self, now: Instant) -> (&mut Transfers, Io<'_>) {
        let io = Io {
            out: &mut self.out,
            events: &mut self.events,
            opts: &self.opts,
            now,
        };
        (&mut self.xfers, io)
    }

    /// The transfer limits that apply: the client's and the server's.
    fn sizes(&self) -> SizeLimits {
        SizeLimits {
            max_buffer: self.opts.max_buffer_bytes.min(self.server.max_buffer),
            max_file: self.server.max_file,
        }
    }

    /// Sends what may go now: queued cmds within the window, and offers of queued streams.
    fn pump(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::LoggedIn) {
            return;
        }
        self.cmds.pump(&mut self.out);
        self.pump_offers(now);
    }

    /// Something was heard from the server at `now`: the link is alive for a while more.
    fn heard(&mut self, now: Instant) {
        self.last_rx = now;
        if matches!(self.phase, Phase::LoggedIn) {
            self.timers
                .set(timers::Timer::Idle, now + dead_after(self.heartbeat));
        }
    }

    /// Something was sent at `now`: no ping is due before a heartbeat interval.
    fn spoke(&mut self, now: Instant) {
        self.last_tx = now;
        if matches!(self.phase, Phase::LoggedIn) {
            self.timers.set(timers::Timer::Ping, now + self.heartbeat);
        }
    }
}

/// A decoder for what the server sends: chunks of 16 to 256 KiB are read into buffers of their
/// own, which a file's go to the disk writer in (and come back from, for the next).
fn client_decoder() -> Decoder {
    let mut dec = Decoder::new(MAX_PAYLOAD_TO_CLIENT);
    dec.own_payloads(|len| vec![0; len]);
    dec
}

/// How long a link may stay silent before it is judged dead.
fn dead_after(heartbeat: Duration) -> Duration {
    (heartbeat * 3).min(MAX_SILENCE)
}
