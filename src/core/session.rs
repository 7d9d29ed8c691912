//! The client session, sans-IO: the whole state machine of one client (login, requests and
//! their results, calls, cmds, streams, heartbeats, logout, a lost link) with no socket, thread
//! or clock of its own. The worker thread ([`super::worker`]) pumps it: it asks which link the
//! session wants ([`Session::want`]), feeds it what the socket reads ([`Session::read_buf`],
//! [`Session::received`]), writes what it produces ([`Session::transmit`]), calls
//! [`Session::tick`] at [`Session::deadline`], and delivers its events. The app's calls reach
//! it under the same lock, so each is checked against the state it will act on.
//!
//! Rules kept here (SPEC §2.2, §3): every accepted request gets exactly one result event,
//! whatever happens to the link; a lost link answers everything outstanding with its code,
//! ends the session's calls locally, then `line_off`; a logout answers what the server did not
//! with 12 and emits nothing else.

use super::event::Event;
use super::ids::new_id;
use super::options::Options;
use super::transfer::{open_source, Io, Outgoing, Source, Transfers};
use crvm_proto::error::*;
use crvm_proto::frame::MAX_PAYLOAD_TO_CLIENT;
use crvm_proto::msg::{limits, validate_cmd, xfer};
use crvm_proto::{
    ClientMsg, Code, Decoder, FrameError, FrameRef, Kind, Op, Out, OutQueue, Outcome, ServerMsg,
    SizeLimits, XferKind, PROTOCOL_VERSION,
};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Heartbeat interval until the server's `welcome` says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer silent for this long is dead, whatever the heartbeat interval (SPEC §3.1, §3.6).
const MAX_SILENCE: Duration = Duration::from_secs(15);
/// First pause between two reconnect attempts after the immediate one, and the largest
/// (SPEC §3.6: full jitter, doubling from 250 ms up to 5 s).
const RETRY_BASE: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest a resume handshake may take on a connection before another attempt.
const RESUME_HANDSHAKE: Duration = Duration::from_secs(10);
/// A standalone acknowledgement goes out after this many frames handled without one.
const ACK_EVERY: u64 = 32;
/// Upper bound on a clean logout: the server's answer is awaited this long at most.
const LOGOUT_BUDGET: Duration = Duration::from_secs(5);
/// Most bytes of control frames encoded for one write.
const WRITE_BATCH: usize = 256 * 1024;

/// The events of a session, in order, with what each one needs once the app has it.
#[derive(Default)]
pub(crate) struct Events {
    /// Each event with the number of the cmd it delivers (0: none).
    q: VecDeque<(Event, u64)>,
    /// Calls this session is a party of, as told by the events so far: a lost link ends each
    /// of them with `notify_call_hungup` before `line_off`.
    calls: HashSet<String>,
    /// The `log_file` of the current login, if any.
    log: Option<File>,
}

impl Events {
    pub fn emit(&mut self, ev: Event) {
        self.push(ev, 0);
    }

    fn push(&mut self, ev: Event, cmd_n: u64) {
        match &ev {
            Event::Call {
                call_id,
                result: Ok(()),
                ..
            }
            | Event::NotifyCallIn { call_id, .. } => {
                self.calls.insert(call_id.clone());
            }
            Event::RejectCall {
                call_id,
                result: Ok(()),
                ..
            }
            | Event::HangupCall {
                call_id,
                result: Ok(()),
                ..
            }
            | Event::NotifyCallRejected { call_id, .. }
            | Event::NotifyCallHungup { call_id, .. } => {
                self.calls.remove(call_id);
            }
            _ => {}
        }
        if self.log.is_some() {
            // Not built without a log file: this runs once per event.
            self.log(&ev.summary());
        }
        self.q.push_back((ev, cmd_n));
    }

    /// Appends a line to the login's log file; a failed write is not the app's problem.
    fn log(&mut self, what: &str) {
        if let Some(f) = &mut self.log {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let line = format!("{}.{:03} crvm: {what}\n", t.as_secs(), t.subsec_millis());
            let _ = std::io::Write::write_all(f, line.as_bytes());
        }
    }
}

/// A login waiting for its link.
struct LoginReq {
    op: Op,
    cookie: String,
}

enum Phase {
    LoggedOut,
    /// The worker is connecting (DNS, TCP, TLS) for this login.
    Connecting {
        login: LoginReq,
        deadline: Instant,
    },
    /// `hello` and `login` are sent.
    LoggingIn {
        login_id: u64,
        cookie: String,
        deadline: Instant,
    },
    LoggedIn,
    /// The link was lost and the session is being resumed (SPEC §3.6).
    Reconnecting(Reconnect),
    /// A logout made while reconnecting: the app is logged out already; the library resumes
    /// the session once more only to log it out on the server, so that the others see it end
    /// now rather than when the server's hold expires. Best effort, within a budget.
    Farewell(Farewell),
    /// `logout` is sent; answers to earlier requests are still delivered.
    LoggingOut {
        logout_id: u64,
        deadline: Instant,
    },
}

/// How to resume the session, from the server's `resumable` (and each `resumed`).
struct Resumable {
    app_id: String,
    session: String,
    secret: String,
    window: Duration,
    /// Where to resume (a cluster node's address), or empty: where the login went.
    addr: String,
}

/// A session between losing its link and resuming it.
struct Reconnect {
    /// When the link was lost: request timers are paused from then, and the session is given
    /// up once the server's window has passed.
    since: Instant,
    /// Attempts made so far.
    attempt: u32,
    /// When the next attempt starts; `None` while one is under way.
    retry_at: Option<Instant>,
    /// While an attempt is under way: when it is given up (connecting, then the handshake).
    deadline: Option<Instant>,
}

/// A logout that still has to reach the server (see [`Phase::Farewell`]).
struct Farewell {
    r: Reconnect,
    /// Given up at this point, whatever happened.
    deadline: Instant,
    /// The `logout` request, once the session is resumed and it is sent.
    logout_id: Option<u64>,
}

/// What a request in flight is.
enum Pending {
    Op {
        op: Op,
        cookie: String,
    },
    /// The offer of the stream of this task.
    Offer(String),
}

/// The cmds of the session: sent and unfinished, queued beyond the window, and the numbering
/// of those coming in.
#[derive(Default)]
struct Cmds {
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
    delivered: u64,
    /// Number of the last `cmd_in` acknowledged to the server.
    acked: u64,
}

impl Cmds {
    fn pending_bytes(&self) -> u64 {
        (self.unfinished_bytes + self.queued_bytes) as u64
    }

    /// Every cmd, sent or queued, ends with `code`, in the order they were accepted.
    fn end_all(&mut self, code: Code, events: &mut Events) {
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
    /// Set at the first login: the dispatch mode is fixed from then on.
    dispatch_fixed: bool,
    destroyed: bool,
    phase: Phase,
    /// Changes whenever the wanted link changes (a new login, a link given up): the worker
    /// drops a connection of an older generation.
    gen: u64,
    /// A login made while the logout before it completes.
    next_login: Option<LoginReq>,
    out: OutQueue,
    events: Events,
    /// Requests sent and not yet answered, by request ID (ascending = order sent), with their
    /// deadlines.
    pending: BTreeMap<u64, (Pending, Instant)>,
    next_id: u64,
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
    pub fn new(now: Instant) -> Session {
        Session {
            dec: Decoder::new(MAX_PAYLOAD_TO_CLIENT),
            st: State {
                opts: Options::default(),
                dispatch_fixed: false,
                destroyed: false,
                phase: Phase::LoggedOut,
                gen: 0,
                next_login: None,
                out: OutQueue::new(),
                events: Events::default(),
                pending: BTreeMap::new(),
                next_id: 1,
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

    // ----- the app's calls ------------------------------------------------------------------

    /// Sets one option (see [`Options::set`]); only while logged out.
    pub fn set_option(&mut self, key: &str, value: &str) -> Result<(), Code> {
        let st = &mut self.st;
        st.check_alive()?;
        if st.logged_in_publicly() || (key == "dispatch" && st.dispatch_fixed) {
            return Err(code(CRVIDEOSDK_LOGINSTATE_ERROR));
        }
        st.opts.set(key, value)
    }

    /// Starts a login (`op` is an `Op::Login`); the dispatch mode is fixed from then on.
    pub fn login(&mut self, op: Op, cookie: &str, now: Instant) -> Result<(), Code> {
        let st = &mut self.st;
        op.validate(&SizeLimits::NONE)?;
        check_len(cookie, limits::OPAQUE_MAX)?;
        st.check_alive()?;
        let mut op = op;
        if let Op::Login { resume, .. } = &mut op {
            *resume = st.opts.reconnect;
        }
        let login = LoginReq {
            op,
            cookie: cookie.to_owned(),
        };
        match st.phase {
            Phase::LoggedOut => st.start_login(login, now),
            // Runs once the logout before it completes.
            Phase::LoggingOut { .. } | Phase::Farewell(_) if st.next_login.is_none() => {
                st.next_login = Some(login)
            }
            _ => return Err(code(CRVIDEOSDK_LOGINSTATE_ERROR)),
        }
        st.dispatch_fixed = true;
        Ok(())
    }

    /// Logs out (or abandons a login in progress, which still gets `login_fail(9)`).
    pub fn logout(&mut self, now: Instant) -> Result<(), Code> {
        self.st.check_alive()?;
        self.st.logout(now)
    }

    /// The app says the network changed: a logged-in session drops its link and resumes at
    /// once (SPEC §3.6); 12 if not logged in.
    pub fn network_changed(&mut self, now: Instant) -> Result<(), Code> {
        let st = &mut self.st;
        st.check_alive()?;
        match &mut st.phase {
            Phase::LoggedIn => st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now),
            Phase::Reconnecting(r) => {
                // Whatever attempt was under way or waited for: a new one, now.
                st.gen += 1;
                r.attempt = 0;
                r.retry_at = Some(now);
                r.deadline = None;
                st.retry_due(now);
            }
            _ => return Err(code(CRVIDEOSDK_NOT_LOGIN)),
        }
        Ok(())
    }

    /// The client is being destroyed: log out cleanly if needed; nothing starts again.
    pub fn destroy(&mut self, now: Instant) {
        let st = &mut self.st;
        if st.destroyed {
            return;
        }
        st.next_login = None;
        let _ = st.logout(now);
        st.destroyed = true;
    }

    /// Whether the session is over for good: destroyed and logged out.
    pub fn finished(&self) -> bool {
        self.st.destroyed && matches!(self.st.phase, Phase::LoggedOut)
    }

    /// A request of a logged-in session (not a login, logout or offer).
    pub fn request(&mut self, op: Op, cookie: &str, now: Instant) -> Result<(), Code> {
        let st = &mut self.st;
        op.validate(&st.sizes())?;
        check_len(cookie, limits::OPAQUE_MAX)?;
        st.check_logged_in()?;
        if matches!(op, Op::StartStatusNotify) {
            // Pushes can overtake the reply, so the cookie applies from the moment we ask.
            st.notify_cookie = Arc::from(cookie);
        }
        st.send_request(op, cookie.to_owned(), now);
        st.pump(now);
        Ok(())
    }

    /// Accepts a cmd to `to`; it goes out at once or, beyond the window, in its turn.
    pub fn send_cmd(&mut self, to: &str, data: &[u8], now: Instant) -> Result<String, Code> {
        let st = &mut self.st;
        validate_cmd(to, data.len())?;
        st.check_logged_in()?;
        st.check_pending(data.len() as u64)?;
        let task = new_id("t-");
        st.cmds.queued_bytes += data.len();
        st.cmds
            .queued
            .push_back((task.clone(), to.to_owned(), data.to_vec()));
        st.pump(now);
        Ok(task)
    }

    /// Accepts a buffer to `to`; it is sent when its turn comes (SPEC §3.5).
    pub fn send_buffer(&mut self, to: &str, data: Vec<u8>, now: Instant) -> Result<String, Code> {
        let st = &mut self.st;
        if data.len() as u64 > st.opts.max_buffer_bytes.min(st.server.max_buffer) {
            return Err(code(CRVIDEOSDK_SENDBUFFER_LARGE));
        }
        check_target(to)?;
        st.check_logged_in()?;
        st.check_pending(data.len() as u64)?;
        let task = new_id("t-");
        let size = data.len() as u64;
        let o = Outgoing::new(
            task.clone(),
            to.to_owned(),
            XferKind::Buffer,
            Source::Bytes(data),
            size,
            String::new(),
        );
        st.xfers.queue(o);
        st.pump(now);
        Ok(task)
    }

    /// Accepts the file at `path` for `to`: opened now (missing 1400, unreadable or not a
    /// regular file 1401, over the server's limit 1103), streamed when its turn comes.
    pub fn send_file(&mut self, to: &str, path: &str, now: Instant) -> Result<String, Code> {
        let st = &mut self.st;
        if path.is_empty() {
            return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
        }
        check_len(path, limits::PATH_MAX)?;
        let (file, size) = open_source(path.as_ref())?;
        if size > st.server.max_file {
            return Err(code(CRVIDEOSDK_SENDFILE_FILEINERROR));
        }
        check_target(to)?;
        st.check_logged_in()?;
        let task = new_id("t-");
        let o = Outgoing::new(
            task.clone(),
            to.to_owned(),
            XferKind::File,
            Source::File(file),
            size,
            path.to_owned(),
        );
        st.xfers.queue(o);
        st.pump(now);
        Ok(task)
    }

    /// Cancels a buffer or file; its result is `cancel_send_rlst` (1104 for an unknown or
    /// finished task, or a cmd).
    pub fn cancel_send(&mut self, task: &str, now: Instant) -> Result<(), Code> {
        let st = &mut self.st;
        if task.is_empty() {
            return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
        }
        check_len(task, limits::ID_MAX)?;
        st.check_logged_in()?;
        let (xfers, mut io) = st.xio(now);
        if !xfers.cancel(task, &mut io) {
            st.events.emit(Event::CancelSend {
                task_id: task.to_owned(),
                result: Err(code(CRVIDEOSDK_TRANSID_INVALID)),
            });
        }
        st.pump(now);
        Ok(())
    }

    // ----- the worker's side ----------------------------------------------------------------

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
    pub fn want(&self) -> (u64, Want) {
        let w = match &self.st.phase {
            Phase::LoggedOut => Want::None,
            Phase::Connecting { .. } => Want::Connect {
                tls: self.st.opts.tls,
            },
            Phase::Reconnecting(r) | Phase::Farewell(Farewell { r, .. })
                if r.retry_at.is_some() =>
            {
                Want::None
            }
            Phase::Reconnecting(_) | Phase::Farewell(_) => Want::Connect {
                tls: self.st.opts.tls,
            },
            _ => Want::Keep,
        };
        (self.st.gen, w)
    }

    /// The connection of generation `gen` is up (TLS, if any, set up over it): say hello and
    /// log in in one go.
    pub fn link_up(&mut self, gen: u64, now: Instant) {
        let st = &mut self.st;
        if gen != st.gen {
            return;
        }
        if let Phase::Reconnecting(r) | Phase::Farewell(Farewell { r, .. }) = &mut st.phase {
            // A resume: hello and resume, unnumbered; everything queued waits for the answer.
            let Some(res) = &st.resume else {
                return;
            };
            let last = self.dec.last_seq();
            self.dec = Decoder::new(MAX_PAYLOAD_TO_CLIENT);
            self.dec.continue_after(last);
            r.deadline = Some(now + RESUME_HANDSHAKE.min(st.opts.request_timeout));
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
        let Phase::Connecting { login, .. } = std::mem::replace(&mut st.phase, Phase::LoggedOut)
        else {
            unreachable!("checked above")
        };
        self.dec = Decoder::new(MAX_PAYLOAD_TO_CLIENT);
        st.out = OutQueue::new();
        st.out.keep_tail(st.opts.reconnect);
        st.resume = None;
        st.ack_sent = 0;
        st.heartbeat = DEFAULT_HEARTBEAT;
        st.last_rx = now;
        st.last_tx = now;
        st.out.push_handshake(Out::msg(&hello()));
        if let Op::Login { app_id, .. } = &login.op {
            st.app_id = app_id.clone();
        }
        let login_id = st.id();
        st.out.push(Out::msg(&ClientMsg::Req {
            id: login_id,
            op: login.op,
        }));
        st.phase = Phase::LoggingIn {
            login_id,
            cookie: login.cookie,
            deadline: now + st.opts.request_timeout,
        };
    }

    /// The connection of generation `gen` failed or could not be made: `code` is 203 for a
    /// connection never made, 209 for TLS, 207 for a lost one.
    pub fn link_failed(&mut self, gen: u64, code: Code, now: Instant) {
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
        self.st.last_rx = now;
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
            if self.st.on_frame(frame, now).is_err() {
                self.st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now);
            }
            if self.st.gen != gen {
                break; // the link is gone: the rest of what was read is moot
            }
        }
        let handled = self.dec.last_seq();
        if matches!(self.st.phase, Phase::LoggedIn) && handled >= self.st.ack_sent + ACK_EVERY {
            self.st.out.push(Out::Ack);
            self.st.ack_sent = handled;
        }
        self.st.pump(now);
    }

    /// Appends what should be written next to `buf`: queued control frames first, else one data
    /// chunk. False if there is nothing to write.
    pub fn transmit(&mut self, buf: &mut Vec<u8>, now: Instant) -> bool {
        let st = &mut self.st;
        if matches!(st.phase, Phase::LoggedOut | Phase::Connecting { .. }) || !st.link_up() {
            return false;
        }
        let ack = self.dec.last_seq();
        st.ack_sent = ack;
        loop {
            if st.out.encode(ack, buf, WRITE_BATCH) > 0 {
                break;
            }
            if matches!(st.phase, Phase::LoggedIn)
                && st.xfers.fill_chunk(&mut st.out, ack, buf, &mut st.events)
            {
                break;
            }
            if st.out.is_empty() {
                return false;
            }
        }
        st.last_tx = now;
        true
    }

    /// When [`Session::tick`] must run next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let st = &self.st;
        let link = st.last_rx + dead_after(st.heartbeat);
        let ping = st.last_tx + st.heartbeat;
        let requests = st.pending.values().map(|(_, d)| *d).min();
        let own = match &st.phase {
            Phase::LoggedOut => return None,
            Phase::Connecting { deadline, .. } => return Some(*deadline),
            // Request timers are paused while the link is down.
            Phase::Reconnecting(r) => {
                let give_up = r.since + st.resume.as_ref().map_or(Duration::ZERO, |r| r.window);
                return Some(
                    r.retry_at
                        .or(r.deadline)
                        .map_or(give_up, |t| t.min(give_up)),
                );
            }
            Phase::Farewell(f) => {
                let next = f.r.retry_at.or(f.r.deadline);
                return Some(next.map_or(f.deadline, |t| t.min(f.deadline)));
            }
            Phase::LoggingIn { deadline, .. } | Phase::LoggingOut { deadline, .. } => *deadline,
            Phase::LoggedIn => link.min(ping),
        };
        Some(requests.map_or(own, |r| r.min(own)))
    }

    /// Runs the timers that are due at `now`.
    pub fn tick(&mut self, now: Instant) {
        let st = &mut self.st;
        match &st.phase {
            Phase::LoggedOut => return,
            Phase::Connecting { deadline, .. } => {
                if now >= *deadline {
                    st.link_ended(code(CRVIDEOSDK_CREATE_CONN_FAILED), now);
                }
                return;
            }
            Phase::LoggingIn { deadline, .. } => {
                if now >= *deadline {
                    return st.link_ended(code(CRVIDEOSDK_NOSERVER_RSP), now);
                }
            }
            Phase::LoggingOut { deadline, .. } => {
                if now >= *deadline {
                    return st.finish_logout(now);
                }
            }
            Phase::Farewell(f) => {
                if now >= f.deadline {
                    return st.farewell_done(now);
                }
                if f.r.deadline.is_some_and(|d| now >= d) {
                    st.attempt_failed(now, None);
                }
                st.retry_due(now);
                return;
            }
            Phase::Reconnecting(r) => {
                let window = st.resume.as_ref().map_or(Duration::ZERO, |r| r.window);
                if now >= r.since + window {
                    // The server no longer holds the session.
                    return st.link_lost(code(CRVIDEOSDK_CONNECTIONLOST), now);
                }
                if r.deadline.is_some_and(|d| now >= d) {
                    st.attempt_failed(now, None);
                }
                st.retry_due(now);
                return;
            }
            Phase::LoggedIn => {
                if now >= st.last_rx + dead_after(st.heartbeat) {
                    return st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now);
                }
                if now >= st.last_tx + st.heartbeat {
                    st.out.push(Out::Ping);
                    st.last_tx = now;
                }
            }
        }
        let expired: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, (_, d))| now >= *d)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((p, _)) = st.pending.remove(&id) {
                st.fail(p, code(CRVIDEOSDK_NOSERVER_RSP), now);
            }
        }
        st.pump(now);
    }

    /// Whether cmds are unfinished or queued (a burst is under way).
    pub fn cmds_in_flight(&self) -> bool {
        !self.st.cmds.unfinished.is_empty() || !self.st.cmds.queued.is_empty()
    }

    /// Whether frames wait to be written on an established link.
    pub fn has_output(&self) -> bool {
        !matches!(self.st.phase, Phase::LoggedOut | Phase::Connecting { .. })
            && self.st.link_up()
            && !self.st.out.is_empty()
    }

    /// Whether events wait for delivery.
    pub fn has_events(&self) -> bool {
        !self.st.events.q.is_empty()
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
            let Some((ev, n)) = st.events.q.pop_front() else {
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
    /// app's pace, SPEC §3.5).
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

/// The pause before reconnect attempt `attempt` (1 = the first after the immediate one): full
/// jitter over a ceiling doubling from [`RETRY_BASE`] up to [`RETRY_MAX`].
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(RETRY_MAX);
    let unit = (super::ids::random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(unit)
}

impl State {
    /// Acknowledges the cmds the app has had, if the link is up (else once it is resumed: a
    /// receive window delivered while the link was down must still be acknowledged).
    fn ack_cmds(&mut self) {
        if self.cmds.delivered > self.cmds.acked && matches!(self.phase, Phase::LoggedIn) {
            self.cmds.acked = self.cmds.delivered;
            self.out.push(Out::msg(&ClientMsg::CmdAck {
                upto: self.cmds.acked,
            }));
        }
    }

    /// Whether a connection is up (or being set up) for the session's traffic: not while a
    /// resume waits for its next attempt.
    fn link_up(&self) -> bool {
        !matches!(
            &self.phase,
            Phase::Reconnecting(r) | Phase::Farewell(Farewell { r, .. }) if r.retry_at.is_some()
        )
    }

    /// The resume under way, if any (to resume the session, or to say farewell).
    fn reconnect_mut(&mut self) -> Option<&mut Reconnect> {
        match &mut self.phase {
            Phase::Reconnecting(r) | Phase::Farewell(Farewell { r, .. }) => Some(r),
            _ => None,
        }
    }

    /// The link is lost with `code`: a resumable session starts resuming; any other ends.
    fn lose_link(&mut self, code: Code, now: Instant) {
        let resumable = self.resume.is_some()
            && self.opts.reconnect
            && matches!(
                code.get(),
                CRVIDEOSDK_CONNECTIONLOST | CRVIDEOSDK_SSL_ERR | CRVIDEOSDK_SOCKETEXCEPTION
            );
        if !resumable {
            return self.link_lost(code, now);
        }
        self.gen += 1;
        self.phase = Phase::Reconnecting(Reconnect {
            since: now,
            attempt: 0,
            retry_at: Some(now),
            deadline: None,
        });
        self.events.emit(Event::LineReconnecting { code });
        self.retry_due(now);
    }

    /// Starts the attempt that is due, if one is.
    fn retry_due(&mut self, now: Instant) {
        let limit = self.opts.connect_timeout.min(RESUME_HANDSHAKE);
        let Some(r) = self.reconnect_mut() else {
            return;
        };
        if r.retry_at.is_some_and(|t| now >= t) {
            r.retry_at = None;
            // The connection must be made (and then the handshake done) in time.
            r.deadline = Some(now + limit);
            r.attempt += 1;
            self.gen += 1;
        }
    }

    /// A reconnect attempt failed (no connection, no answer, told to come back later after
    /// `after`): the next one is scheduled.
    fn attempt_failed(&mut self, now: Instant, after: Option<Duration>) {
        let Some(r) = self.reconnect_mut() else {
            return;
        };
        let pause = backoff(r.attempt) + after.unwrap_or_default();
        r.retry_at = Some(now + pause);
        r.deadline = None;
        self.gen += 1;
    }

    /// A logout while reconnecting (or a link lost while logging out): everything outstanding
    /// ends with 12 for the app at once, and the session is resumed one last time to be logged
    /// out on the server (best effort, until `deadline`).
    fn farewell(&mut self, now: Instant, deadline: Instant) {
        let resume = self.resume.take();
        self.end_everything(code(CRVIDEOSDK_NOT_LOGIN), now);
        self.events.calls.clear();
        let Some(resume) = resume else {
            return;
        };
        self.resume = Some(resume);
        self.phase = Phase::Farewell(Farewell {
            r: Reconnect {
                since: now,
                attempt: 0,
                retry_at: Some(now),
                deadline: None,
            },
            deadline,
            logout_id: None,
        });
        self.retry_due(now);
    }

    /// The farewell is over (answered, refused, or out of time): logged out for good; a login
    /// made meanwhile starts.
    fn farewell_done(&mut self, now: Instant) {
        self.phase = Phase::LoggedOut;
        self.gen += 1;
        self.out.clear();
        self.resume = None;
        if let Some(login) = self.next_login.take() {
            self.start_login(login, now);
        }
    }

    /// The resume is accepted: the server has handled our frames up to `last`.
    fn resumed(&mut self, secret: String, last: u64, now: Instant) -> Result<(), FrameError> {
        let Phase::Reconnecting(r) = std::mem::replace(&mut self.phase, Phase::LoggedIn) else {
            return Err(FrameError::BadControl);
        };
        if self.out.resume(last).is_err() {
            // The server claims frames we never sent: the session cannot go on.
            return Err(FrameError::BadControl);
        }
        if let Some(res) = &mut self.resume {
            res.secret = secret;
        }
        // Request timers resume where they were paused.
        let offline = now.saturating_duration_since(r.since);
        for (_, deadline) in self.pending.values_mut() {
            *deadline += offline;
        }
        self.last_rx = now;
        self.last_tx = now;
        self.events.emit(Event::LineResumed {
            offline_ms: offline.as_millis() as u64,
        });
        self.ack_cmds();
        Ok(())
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn check_alive(&self) -> Result<(), Code> {
        if self.destroyed {
            return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
        }
        Ok(())
    }

    /// Logged in as far as the app is concerned (a logout in progress is logged out).
    fn logged_in_publicly(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting { .. }
                | Phase::LoggingIn { .. }
                | Phase::LoggedIn
                | Phase::Reconnecting(_)
        )
    }

    /// Logged in, with the link up or being resumed: requests are accepted (and, while the
    /// link is down, queued).
    fn check_logged_in(&self) -> Result<(), Code> {
        self.check_alive()?;
        if !matches!(self.phase, Phase::LoggedIn | Phase::Reconnecting(_)) {
            return Err(code(CRVIDEOSDK_NOT_LOGIN));
        }
        Ok(())
    }

    /// The one synchronous refusal for volume (SPEC §3.5): while what is accepted and not yet
    /// acknowledged would exceed `max_pending_bytes`. Something alone always fits.
    fn check_pending(&self, more: u64) -> Result<(), Code> {
        let pending = self.cmds.pending_bytes() + self.xfers.pending_bytes();
        if pending > 0 && pending + more > self.opts.max_pending_bytes {
            return Err(code(CRVIDEOSDK_SENDFAIL));
        }
        Ok(())
    }

    /// The transfer limits that apply: the client's and the server's.
    fn sizes(&self) -> SizeLimits {
        SizeLimits {
            max_buffer: self.opts.max_buffer_bytes.min(self.server.max_buffer),
            max_file: self.server.max_file,
        }
    }

    fn start_login(&mut self, login: LoginReq, now: Instant) {
        self.events.log = self.opts.log_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        if let Op::Login {
            app_id, user_id, ..
        } = &login.op
        {
            let what = format!("login as app {app_id:?} user {user_id:?}");
            self.events.log(&what);
        }
        self.gen += 1;
        self.phase = Phase::Connecting {
            login,
            deadline: now + self.opts.connect_timeout,
        };
    }

    fn logout(&mut self, now: Instant) -> Result<(), Code> {
        match std::mem::replace(&mut self.phase, Phase::LoggedOut) {
            Phase::LoggedOut => return Err(code(CRVIDEOSDK_NOT_LOGIN)),
            Phase::LoggingOut {
                logout_id,
                deadline,
            } => {
                // Already logging out: only a login queued behind it is abandoned.
                self.phase = Phase::LoggingOut {
                    logout_id,
                    deadline,
                };
                let Some(login) = self.next_login.take() else {
                    return Err(code(CRVIDEOSDK_NOT_LOGIN));
                };
                self.login_failed(login.cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::Connecting { login, .. } => {
                // The login was overtaken by a logout: it still gets its one result.
                self.gen += 1;
                self.login_failed(login.cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::LoggingIn { cookie, .. } => {
                self.gen += 1;
                self.login_failed(cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::Reconnecting(_) => self.farewell(now, now + self.logout_budget()),
            farewell @ Phase::Farewell(_) => {
                // Logged out already: only a login queued behind it is abandoned.
                self.phase = farewell;
                let Some(login) = self.next_login.take() else {
                    return Err(code(CRVIDEOSDK_NOT_LOGIN));
                };
                self.login_failed(login.cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::LoggedIn => self.send_logout(now),
        }
        Ok(())
    }

    /// How long a logout waits for the server's answer at most.
    fn logout_budget(&self) -> Duration {
        self.opts.request_timeout.min(LOGOUT_BUDGET)
    }

    /// Sends `logout` and waits for its answer (within the budget).
    fn send_logout(&mut self, now: Instant) {
        let logout_id = self.id();
        self.out.push(Out::msg(&ClientMsg::Req {
            id: logout_id,
            op: Op::Logout,
        }));
        self.phase = Phase::LoggingOut {
            logout_id,
            deadline: now + self.logout_budget(),
        };
    }

    fn login_failed(&mut self, cookie: String, code: Code) {
        self.events.emit(Event::Login {
            result: Err(code),
            cookie,
        });
    }

    /// Sends request `op` with a fresh ID.
    fn send_request(&mut self, op: Op, cookie: String, now: Instant) {
        let id = self.id();
        let msg = ClientMsg::Req { id, op };
        self.out.push(Out::msg(&msg));
        let ClientMsg::Req { op, .. } = msg else {
            unreachable!("built above")
        };
        let deadline = now + self.opts.request_timeout;
        self.pending
            .insert(id, (Pending::Op { op, cookie }, deadline));
    }

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

    /// Sends what may go now: queued cmds within the window, and offers of queued streams.
    fn pump(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::LoggedIn) {
            return;
        }
        let c = &mut self.cmds;
        while let Some((_, _, data)) = c.queued.front() {
            if !xfer::cmd_fits(c.unfinished.len(), c.unfinished_bytes, data.len()) {
                break;
            }
            let (task, to, data) = c.queued.pop_front().expect("front exists");
            c.next_n += 1;
            let n = c.next_n;
            c.queued_bytes -= data.len();
            c.unfinished_bytes += data.len();
            c.unfinished.insert(n, (task, data.len()));
            self.out
                .push(Out::attached(&ClientMsg::Cmd { n, to }, data));
        }
        loop {
            let (xfers, mut io) = self.xio(now);
            let Some((task, op)) = xfers.next_offer(&mut io) else {
                break;
            };
            let id = self.id();
            self.out.push(Out::msg(&ClientMsg::Req { id, op }));
            let deadline = now + self.opts.request_timeout;
            self.pending.insert(id, (Pending::Offer(task), deadline));
        }
    }

    /// Request `p` failed with `code` (timeout, lost link, logout).
    fn fail(&mut self, p: Pending, code: Code, now: Instant) {
        match p {
            Pending::Op { op, cookie } => {
                let ev = op_result(op, Err(code), cookie);
                self.events.emit(ev);
            }
            Pending::Offer(task) => {
                let (xfers, mut io) = self.xio(now);
                xfers.offer_failed(&task, code, code, &mut io);
            }
        }
    }

    /// The link of the current generation is over (or was never made) with `code`.
    fn link_ended(&mut self, code: Code, now: Instant) {
        match std::mem::replace(&mut self.phase, Phase::LoggedOut) {
            Phase::LoggedOut => {}
            Phase::Connecting { login, .. } => {
                self.gen += 1;
                self.login_failed(login.cookie, code);
            }
            Phase::LoggingIn { cookie, .. } => {
                self.gen += 1;
                self.login_failed(cookie, code);
            }
            Phase::LoggedIn => self.lose_link(code, now),
            Phase::Reconnecting(r) => {
                self.phase = Phase::Reconnecting(r);
                self.attempt_failed(now, None);
            }
            Phase::Farewell(_) => self.farewell_done(now),
            Phase::LoggingOut { deadline, .. } if self.resume.is_some() && self.opts.reconnect => {
                // The logout may not have reached the server: it is said again on a resume,
                // within what is left of its budget.
                self.farewell(now, deadline);
            }
            logging_out @ Phase::LoggingOut { .. } => {
                self.phase = logging_out;
                self.finish_logout(now);
            }
        }
    }

    /// The session ends without a logout: every outstanding request gets its result with
    /// `code`, the session's calls end locally, then `line_off(code)`.
    fn link_lost(&mut self, code: Code, now: Instant) {
        self.end_everything(code, now);
        let mut calls: Vec<String> = self.events.calls.drain().collect();
        calls.sort();
        for call_id in calls {
            self.events.emit(Event::NotifyCallHungup {
                call_id,
                usr_ext_dat: String::new(),
            });
        }
        self.events.emit(Event::LineOff { code });
    }

    /// The logout is answered (or the server closed, or the budget ran out): what it did not
    /// answer ends with 12, and a login made meanwhile starts.
    fn finish_logout(&mut self, now: Instant) {
        self.end_everything(code(CRVIDEOSDK_NOT_LOGIN), now);
        self.events.calls.clear();
        if let Some(login) = self.next_login.take() {
            self.start_login(login, now);
        }
    }

    /// Common to every end of a session: requests, cmds and streams end with `code`.
    fn end_everything(&mut self, code: Code, now: Instant) {
        self.phase = Phase::LoggedOut;
        self.gen += 1;
        self.out.clear();
        self.resume = None;
        self.notify_cookie = Arc::from("");
        for (_, (p, _)) in std::mem::take(&mut self.pending) {
            self.fail(p, code, now);
        }
        self.cmds.end_all(code, &mut self.events);
        self.xfers.end_all(code, &mut self.events);
        self.taken_cmd = 0;
    }

    /// Handles one frame from the server. `Err` is a protocol violation.
    fn on_frame(&mut self, f: FrameRef<'_>, now: Instant) -> Result<(), FrameError> {
        // A handshake frame's `ack` belongs to the connection, not to the session's numbering.
        let handshake = f.kind == Kind::Control && f.seq == 0;
        if !handshake && self.out.acked(f.ack).is_err() {
            return Err(FrameError::BadControl); // acknowledges a frame never sent
        }
        match f.kind {
            Kind::Ping => self.out.push(Out::Pong),
            Kind::Pong | Kind::Ack => {}
            Kind::Data => {
                if matches!(self.phase, Phase::LoggedIn) {
                    let (sid, bytes) = f.data();
                    let (xfers, mut io) = self.xio(now);
                    xfers.on_data(sid, bytes, &mut io);
                }
            }
            Kind::Control => {
                let (json, attachment) = f.control()?;
                let msg = parse_server_msg(json).ok_or(FrameError::BadControl)?;
                if handshake != msg.is_handshake() {
                    return Err(FrameError::BadControl);
                }
                self.on_msg(msg, attachment, now)?;
            }
        }
        Ok(())
    }

    fn on_msg(
        &mut self,
        msg: ServerMsg,
        attachment: &[u8],
        now: Instant,
    ) -> Result<(), FrameError> {
        if matches!(self.phase, Phase::LoggedIn) {
            return self.on_session_msg(msg, attachment, now);
        }
        if let ServerMsg::Close { code, .. } = msg {
            self.closed(code, now);
            return Ok(());
        }
        match &self.phase {
            Phase::LoggingIn { .. } => self.on_login_msg(msg),
            Phase::LoggedIn => unreachable!("handled above"),
            Phase::Reconnecting(_) => self.on_resume_msg(msg, now),
            Phase::Farewell(_) => {
                self.on_farewell_msg(msg, now);
                Ok(())
            }
            Phase::LoggingOut { logout_id, .. } => {
                let logout_id = *logout_id;
                match msg {
                    ServerMsg::Res {
                        re,
                        result: Outcome::Ok | Outcome::Err(_),
                    } if re == logout_id => self.finish_logout(now),
                    // Only answers to requests matter now; streams (offers too) end with the
                    // logout.
                    ServerMsg::Res {
                        result: Outcome::Login { .. } | Outcome::Offer { .. },
                        ..
                    } => {}
                    ServerMsg::Res { re, result } => self.on_reply(re, result, now),
                    _ => {}
                }
                Ok(())
            }
            Phase::LoggedOut | Phase::Connecting { .. } => Ok(()),
        }
    }

    /// What the server says to a farewell: only its answers to the resume and to the logout
    /// matter; what it had held for the session is moot.
    fn on_farewell_msg(&mut self, msg: ServerMsg, now: Instant) {
        let Phase::Farewell(f) = &self.phase else {
            return;
        };
        let logout_id = f.logout_id;
        match msg {
            ServerMsg::Resumed { last, .. } if logout_id.is_none() => {
                let id = self.id();
                if let Phase::Farewell(f) = &mut self.phase {
                    f.logout_id = Some(id);
                }
                // Nothing but the logout: the app has had every result already.
                self.out.restart_after(last);
                self.out
                    .push(Out::msg(&ClientMsg::Req { id, op: Op::Logout }));
            }
            ServerMsg::Res {
                re,
                result: Outcome::Ok | Outcome::Err(_),
            } if Some(re) == logout_id => self.farewell_done(now),
            ServerMsg::ResumeFailed { .. } | ServerMsg::Retry { .. } => self.farewell_done(now),
            _ => {}
        }
    }

    /// The answer to a `resume`.
    fn on_resume_msg(&mut self, msg: ServerMsg, now: Instant) -> Result<(), FrameError> {
        match msg {
            ServerMsg::Welcome { heartbeat_ms, .. } => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.clamp(100, 10_000));
            }
            ServerMsg::Resumed { secret, last } => {
                self.resumed(secret, last, now)?;
                self.pump(now);
            }
            ServerMsg::ResumeFailed { code: c } => {
                // Gone (207: expired, or the server restarted) or kicked meanwhile (10).
                let c = Code::new(c).unwrap_or(code(CRVIDEOSDK_CONNECTIONLOST));
                self.link_lost(c, now);
            }
            ServerMsg::Retry { after_ms } => {
                self.attempt_failed(now, Some(Duration::from_millis(after_ms.min(60_000))))
            }
            // Frames of the session before `resumed` cannot be.
            _ => return Err(FrameError::BadControl),
        }
        Ok(())
    }

    fn on_login_msg(&mut self, msg: ServerMsg) -> Result<(), FrameError> {
        let Phase::LoggingIn { login_id, .. } = self.phase else {
            unreachable!("caller checked")
        };
        match msg {
            ServerMsg::Welcome {
                heartbeat_ms,
                max_buffer_bytes,
                max_file_bytes,
                ..
            } => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.clamp(100, 10_000));
                self.server = SizeLimits {
                    max_buffer: max_buffer_bytes,
                    max_file: max_file_bytes,
                };
            }
            ServerMsg::Res {
                re,
                result: Outcome::Login { user_id },
            } if re == login_id => {
                let Phase::LoggingIn { cookie, .. } =
                    std::mem::replace(&mut self.phase, Phase::LoggedIn)
                else {
                    unreachable!("checked above")
                };
                self.events.emit(Event::Login {
                    result: Ok(user_id),
                    cookie,
                });
            }
            // A refusal; a bare success is a server fault.
            ServerMsg::Res {
                re,
                result: result @ (Outcome::Ok | Outcome::Err(_)),
            } if re == login_id => {
                let c = Code::new(result.code()).unwrap_or(code(CRVIDEOSDK_SERVER_EXCEPTION));
                self.link_ended(c, self.last_rx);
            }
            _ => return Err(FrameError::BadControl),
        }
        Ok(())
    }

    /// Replies and pushes of an established session.
    fn on_session_msg(
        &mut self,
        msg: ServerMsg,
        attachment: &[u8],
        now: Instant,
    ) -> Result<(), FrameError> {
        match msg {
            ServerMsg::UserStatus(status) => {
                let cookie = Arc::clone(&self.notify_cookie);
                self.events.emit(Event::NotifyUserStatus { status, cookie });
            }
            ServerMsg::CallIn {
                call_id,
                caller,
                meet_obj,
                ext,
            } => self.events.emit(Event::NotifyCallIn {
                call_id,
                meet_obj,
                caller_id: caller,
                usr_ext_dat: ext,
            }),
            ServerMsg::CallAccepted {
                call_id,
                ext,
                meet_obj,
            } => self.events.emit(Event::NotifyCallAccepted {
                call_id,
                usr_ext_dat: ext,
                meet_obj,
            }),
            ServerMsg::CallRejected {
                call_id,
                reason,
                ext,
            } => {
                let reason = Code::new(reason).ok_or(FrameError::BadControl)?;
                self.events.emit(Event::NotifyCallRejected {
                    call_id,
                    reason,
                    usr_ext_dat: ext,
                })
            }
            ServerMsg::CallHungup { call_id, ext } => self.events.emit(Event::NotifyCallHungup {
                call_id,
                usr_ext_dat: ext,
            }),
            ServerMsg::CmdIn { n, from } => {
                if n != self.cmds.last_in + 1 {
                    return Err(FrameError::BadControl);
                }
                self.cmds.last_in = n;
                let ev = Event::NotifyCmdData {
                    from,
                    data: attachment.to_vec(),
                };
                self.events.push(ev, n);
            }
            ServerMsg::CmdDone { ns, code: c } => {
                let result = check(c);
                for n in ns {
                    if let Some((task_id, len)) = self.cmds.unfinished.remove(&n) {
                        self.cmds.unfinished_bytes -= len;
                        self.events.emit(Event::CmdSent { task_id, result });
                    }
                }
            }
            // The login was answered already.
            ServerMsg::Res {
                result: Outcome::Login { .. },
                ..
            } => return Err(FrameError::BadControl),
            ServerMsg::Res { re, result } => self.on_reply(re, result, now),
            ServerMsg::Start { sid } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_start(sid, &mut io);
            }
            ServerMsg::Incoming {
                sid,
                task,
                from,
                kind,
                size,
                name,
            } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_incoming(sid, task, from, kind, size, &name, &mut io);
            }
            ServerMsg::DataEnd { sid, hash } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_data_end(sid, hash, &mut io);
            }
            ServerMsg::Progress { sid, bytes } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_progress(sid, bytes, &mut io);
            }
            ServerMsg::XferEnd { sid, code } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_xfer_end(sid, code, &mut io);
            }
            ServerMsg::Cancelled { sid } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_cancelled(sid, &mut io);
            }
            ServerMsg::CancelDone { sid, code } => {
                let (xfers, mut io) = self.xio(now);
                xfers.on_cancel_done(sid, code, &mut io);
            }
            ServerMsg::Resumable {
                session,
                secret,
                window_s,
                addr,
            } => {
                self.resume = Some(Resumable {
                    app_id: self.app_id.clone(),
                    session,
                    secret,
                    window: Duration::from_secs(window_s),
                    addr,
                });
            }
            ServerMsg::Close { code, .. } => self.closed(code, now),
            // Handshake messages belong to a connection's start, not to a session.
            ServerMsg::Welcome { .. }
            | ServerMsg::Resumed { .. }
            | ServerMsg::ResumeFailed { .. }
            | ServerMsg::Retry { .. } => return Err(FrameError::BadControl),
        }
        Ok(())
    }

    /// The server closes the connection with `code` (its `close`).
    fn closed(&mut self, c: i32, now: Instant) {
        let c = Code::new(c).unwrap_or(code(CRVIDEOSDK_CONNECTIONLOST));
        self.link_ended(c, now);
    }

    /// The answer to request `re`. An answer to a request that already timed out is dropped:
    /// it had its one result.
    fn on_reply(&mut self, re: u64, result: Outcome, now: Instant) {
        let Some((p, _)) = self.pending.remove(&re) else {
            return;
        };
        match (p, result) {
            (Pending::Op { op, cookie }, result) => {
                let ev = op_result(op, Ok(result), cookie);
                self.events.emit(ev);
            }
            (Pending::Offer(task), Outcome::Offer { sid }) => {
                let (xfers, mut io) = self.xio(now);
                xfers.offered(&task, sid, &mut io);
            }
            (Pending::Offer(task), result) => {
                // Refused by the server; any other success is a server fault.
                let c = Code::new(result.code()).unwrap_or(code(CRVIDEOSDK_SERVER_EXCEPTION));
                let (xfers, mut io) = self.xio(now);
                xfers.offer_failed(&task, c, code(CRVIDEOSDK_TRANSID_INVALID), &mut io);
            }
        }
    }
}

/// The result event of request `op`: its answer, or the code it failed with. A success of
/// another kind than the request's (a bare one where a payload was due) is a server fault (8).
fn op_result(op: Op, reply: Result<Outcome, Code>, cookie: String) -> Event {
    let fault = code(CRVIDEOSDK_SERVER_EXCEPTION);
    let done = match &reply {
        Ok(Outcome::Ok) => Ok(()),
        Ok(Outcome::Err(c)) => check(*c),
        Ok(_) => Err(fault),
        Err(e) => Err(*e),
    };
    match op {
        Op::SetDnd { .. } => Event::SetDndStatus {
            result: done,
            cookie,
        },
        Op::GetUserStatus => Event::GetUserStatus {
            result: match reply {
                Ok(Outcome::Statuses(list)) => Ok(list),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::StartStatusNotify => Event::StartUserStatusNotify {
            result: done,
            cookie,
        },
        Op::StopStatusNotify => Event::StopUserStatusNotify {
            result: done,
            cookie,
        },
        Op::CreateMeeting { .. } => Event::CreateMeeting {
            result: match reply {
                Ok(Outcome::Meeting(m)) => Ok(m),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::DestroyMeeting { .. } => Event::DestroyMeeting {
            result: done,
            cookie,
        },
        Op::GetMeetings => Event::GetMeetings {
            result: match reply {
                Ok(Outcome::Meetings(list)) => Ok(list),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::Call { call_id, .. } => Event::Call {
            call_id,
            result: done,
            cookie,
        },
        Op::AcceptCall { call_id, .. } => Event::AcceptCall {
            call_id,
            result: done,
            cookie,
        },
        Op::RejectCall { call_id, .. } => Event::RejectCall {
            call_id,
            result: done,
            cookie,
        },
        Op::HangupCall { call_id, .. } => Event::HangupCall {
            call_id,
            result: done,
            cookie,
        },
        Op::Login { .. } | Op::Logout | Op::Offer { .. } => {
            unreachable!("logins, logouts and offers are not ops of `request`")
        }
    }
}

/// Parses a server message. Status pushes, the bulk of what a busy client receives, take a
/// direct path (written as the server writes them); anything else goes the general way.
fn parse_server_msg(json: &[u8]) -> Option<ServerMsg> {
    if let Some(status) = crvm_proto::UserStatus::parse_push(json) {
        return Some(ServerMsg::UserStatus(status));
    }
    serde_json::from_slice(json).ok()
}

fn check_len(s: &str, max: usize) -> Result<(), Code> {
    if s.len() > max {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    Ok(())
}

fn check_target(to: &str) -> Result<(), Code> {
    if to.is_empty() {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    check_len(to, limits::USER_ID_MAX)
}

fn dead_after(heartbeat: Duration) -> Duration {
    (heartbeat * 3).min(MAX_SILENCE)
}

#[cfg(test)]
mod tests {
    //! The session driven by hand: no socket, no thread, no clock.

    use super::*;
    use crvm_proto::frame::MAX_PAYLOAD_TO_SERVER;
    use crvm_proto::msg::to_json;
    use crvm_proto::{Encoder, UserStatus};

    /// The server's side of the link: decodes what the session transmits, encodes replies.
    struct Server {
        enc: Encoder,
        dec: Decoder,
    }

    impl Server {
        fn new() -> Server {
            Server {
                enc: Encoder::new(),
                dec: Decoder::new(MAX_PAYLOAD_TO_SERVER),
            }
        }

        /// Everything the session has to send, as messages.
        fn take(&mut self, s: &mut Session, now: Instant) -> Vec<ClientMsg> {
            let mut wire = Vec::new();
            while s.transmit(&mut wire, now) {}
            self.dec.feed(&wire);
            let mut out = Vec::new();
            while let Some(f) = self.dec.next_frame().unwrap() {
                if f.kind == Kind::Control {
                    out.push(serde_json::from_slice(f.control().unwrap().0).unwrap());
                }
            }
            out
        }

        fn send(&mut self, s: &mut Session, msg: &ServerMsg, now: Instant) {
            let bytes = if msg.is_handshake() {
                crvm_proto::frame::handshake_frame(&to_json(msg))
            } else {
                self.enc.control(self.dec.last_seq(), &to_json(msg), &[])
            };
            let room = s.read_buf();
            room[..bytes.len()].copy_from_slice(&bytes);
            s.received(bytes.len(), now);
        }
    }

    fn events(s: &mut Session) -> Vec<Event> {
        let mut out = Vec::new();
        s.take_events(&mut out, usize::MAX);
        s.delivered();
        out
    }

    fn login_op() -> Op {
        Op::Login {
            app_id: "demo".into(),
            secret: "s".into(),
            user_id: "alice".into(),
            nick: String::new(),
            token: String::new(),
            // What the session asks for with the default `reconnect=on`.
            resume: true,
        }
    }

    /// A session logged in as alice, and its server.
    fn logged_in(t0: Instant) -> (Session, Server) {
        let mut s = Session::new(t0);
        s.login(login_op(), "ck", t0).unwrap();
        let (gen, want) = s.want();
        assert_eq!(want, Want::Connect { tls: false });
        s.link_up(gen, t0);
        let mut srv = Server::new();
        let sent = srv.take(&mut s, t0);
        assert!(matches!(
            sent[0],
            ClientMsg::Hello {
                ver: PROTOCOL_VERSION,
                ..
            }
        ));
        let ClientMsg::Req { id, op } = &sent[1] else {
            panic!("{sent:?}")
        };
        assert_eq!(*op, login_op());
        let welcome = ServerMsg::Welcome {
            ver: PROTOCOL_VERSION,
            heartbeat_ms: 1000,
            max_buffer_bytes: 1 << 20,
            max_file_bytes: 1 << 30,
        };
        srv.send(&mut s, &welcome, t0);
        let ok = ServerMsg::Res {
            re: *id,
            result: Outcome::Login {
                user_id: "alice".into(),
            },
        };
        srv.send(&mut s, &ok, t0);
        assert_eq!(
            events(&mut s),
            [Event::Login {
                result: Ok("alice".into()),
                cookie: "ck".into()
            }]
        );
        (s, srv)
    }

    #[test]
    fn requests_are_answered_by_their_replies_or_by_the_end_of_the_link() {
        let t0 = Instant::now();
        let (mut s, mut srv) = logged_in(t0);
        s.request(Op::SetDnd { dnd: 2 }, "d", t0).unwrap();
        s.request(Op::GetUserStatus, "g", t0).unwrap();
        let sent = srv.take(&mut s, t0);
        let ids: Vec<u64> = sent
            .iter()
            .map(|m| match m {
                ClientMsg::Req { id, .. } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        let st = UserStatus {
            user_id: "bob".into(),
            user_status: 1,
            dnd_type: 0,
        };
        let list = ServerMsg::Res {
            re: ids[1],
            result: Outcome::Statuses(vec![st.clone()]),
        };
        srv.send(&mut s, &list, t0);
        assert_eq!(
            events(&mut s),
            [Event::GetUserStatus {
                result: Ok(vec![st]),
                cookie: "g".into()
            }]
        );
        // The link fails: the one left gets 207, then line_off; the session wants no link.
        let (gen, _) = s.want();
        s.link_failed(gen, code(CRVIDEOSDK_CONNECTIONLOST), t0);
        assert_eq!(
            events(&mut s),
            [
                Event::SetDndStatus {
                    result: Err(code(207)),
                    cookie: "d".into()
                },
                Event::LineOff { code: code(207) }
            ]
        );
        assert_eq!(s.want().1, Want::None);
        assert_eq!(s.request(Op::GetMeetings, "", t0), Err(code(12)));
    }

    #[test]
    fn timers_fail_requests_once_ping_and_drop_a_silent_link() {
        let t0 = Instant::now();
        let (mut s, mut srv) = logged_in(t0);
        s.request(Op::GetMeetings, "m", t0).unwrap();
        srv.take(&mut s, t0);
        // The heartbeat (1 s) comes before the request's 30 s.
        let ping_at = s.deadline().unwrap();
        assert_eq!(ping_at, t0 + Duration::from_secs(1));
        s.tick(ping_at);
        let mut wire = Vec::new();
        assert!(s.transmit(&mut wire, ping_at));
        assert_eq!(wire[4], Kind::Ping as u8);
        // Nothing heard for three intervals: the link is dead, the request answered with 207.
        s.tick(t0 + Duration::from_secs(3));
        assert_eq!(
            events(&mut s),
            [
                Event::GetMeetings {
                    result: Err(code(207)),
                    cookie: "m".into()
                },
                Event::LineOff { code: code(207) }
            ]
        );
    }

    #[test]
    fn a_lost_link_is_resumed_on_schedule_with_request_timers_paused() {
        let t0 = Instant::now();
        let (mut s, mut srv) = logged_in(t0);
        // The server says the session may be resumed, for 60 s.
        let resumable = ServerMsg::Resumable {
            addr: String::new(),
            session: "sess".into(),
            secret: "s1".into(),
            window_s: 60,
        };
        srv.send(&mut s, &resumable, t0);
        s.request(Op::GetMeetings, "m", t0).unwrap();
        srv.take(&mut s, t0);
        let (gen, _) = s.want();
        // The link fails: not a logout, a resume — the first attempt at once.
        s.link_failed(gen, code(207), t0);
        assert_eq!(
            events(&mut s),
            [Event::LineReconnecting { code: code(207) }]
        );
        let (gen1, want) = s.want();
        assert_eq!(want, Want::Connect { tls: false });
        assert!(gen1 > gen);
        // It is refused; the next one waits a jittered pause of at most 250 ms.
        s.link_failed(gen1, code(203), t0);
        assert_eq!(s.want().1, Want::None);
        let next = s.deadline().unwrap();
        assert!(next <= t0 + RETRY_BASE, "{:?}", next - t0);
        // Requests are accepted meanwhile; the first one's 30 s pass without a 202.
        s.request(Op::SetDnd { dnd: 1 }, "d", t0).unwrap();
        let later = t0 + Duration::from_secs(40);
        s.tick(next);
        let (gen2, want) = s.want();
        assert_eq!(want, Want::Connect { tls: false });
        s.link_up(gen2, later);
        s.tick(later);
        assert!(
            events(&mut s).is_empty(),
            "no timeout while the link was down"
        );
        // The handshake: hello and resume, unnumbered, with the secret and what we handled.
        let mut wire = Vec::new();
        while s.transmit(&mut wire, later) {}
        let mut dec = Decoder::new(MAX_PAYLOAD_TO_SERVER);
        dec.feed(&wire);
        let mut hs = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            assert_eq!(f.seq, 0, "only the handshake goes out before the answer");
            hs.push(serde_json::from_slice::<ClientMsg>(f.control().unwrap().0).unwrap());
        }
        let handled = srv.enc.next_seq() - 1;
        assert!(matches!(hs[0], ClientMsg::Hello { .. }));
        assert_eq!(
            hs[1],
            ClientMsg::Resume {
                app_id: "demo".into(),
                session: "sess".into(),
                secret: "s1".into(),
                last: handled,
            }
        );
        // Resumed: the server had none of the two requests; both go again, in order.
        let last = srv.dec.last_seq() - 1;
        srv.dec.continue_after(last);
        let resumed = ServerMsg::Resumed {
            secret: "s2".into(),
            last,
        };
        srv.send(&mut s, &resumed, later);
        assert_eq!(events(&mut s), [Event::LineResumed { offline_ms: 40_000 }]);
        let sent = srv.take(&mut s, later);
        let ids: Vec<u64> = sent
            .iter()
            .filter_map(|m| match m {
                ClientMsg::Req { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 2, "{sent:?}");
        // The paused timers go on from where they were: 30 s from the requests, plus 40 s away.
        let deadlines: Vec<Instant> = s.st.pending.values().map(|(_, d)| *d).collect();
        assert_eq!(deadlines, [t0 + Duration::from_secs(70); 2]);
        // The heartbeat finds a silent link within 15 s at most.
        assert_eq!(dead_after(Duration::from_secs(10)), Duration::from_secs(15));
    }

    #[test]
    fn the_reconnect_pause_doubles_from_250_ms_up_to_5_s_with_full_jitter() {
        for attempt in 1..12u32 {
            let ceiling = (RETRY_BASE * 2u32.pow((attempt - 1).min(8))).min(RETRY_MAX);
            let pauses: Vec<Duration> = (0..200).map(|_| backoff(attempt)).collect();
            assert!(pauses.iter().all(|p| *p <= ceiling), "attempt {attempt}");
            // Full jitter: spread over the whole range, not bunched at the ceiling.
            assert!(pauses.iter().any(|p| *p < ceiling / 4), "attempt {attempt}");
            assert!(
                pauses.iter().any(|p| *p > ceiling * 3 / 4),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn cmds_beyond_the_window_wait_and_a_logout_ends_them_with_12() {
        let t0 = Instant::now();
        let (mut s, mut srv) = logged_in(t0);
        let n = xfer::CMD_WINDOW + 3;
        let tasks: Vec<String> = (0..n)
            .map(|_| s.send_cmd("bob", b"x", t0).unwrap())
            .collect();
        let sent = srv.take(&mut s, t0);
        assert_eq!(sent.len(), xfer::CMD_WINDOW, "the window, no more");
        let done = ServerMsg::CmdDone {
            ns: vec![1],
            code: 0,
        };
        srv.send(&mut s, &done, t0);
        assert_eq!(
            srv.take(&mut s, t0),
            [ClientMsg::Cmd {
                n: xfer::CMD_WINDOW as u64 + 1,
                to: "bob".into()
            }]
        );
        s.logout(t0).unwrap();
        // The logout goes out; the server closes without answering the cmds.
        assert!(matches!(
            srv.take(&mut s, t0)[..],
            [ClientMsg::Req { op: Op::Logout, .. }]
        ));
        let close = ServerMsg::Close {
            code: 206,
            reason: String::new(),
        };
        srv.send(&mut s, &close, t0);
        let evs = events(&mut s);
        assert_eq!(evs.len(), n);
        assert_eq!(
            evs[0],
            Event::CmdSent {
                task_id: tasks[0].clone(),
                result: Ok(())
            }
        );
        for (ev, task) in evs[1..].iter().zip(&tasks[1..]) {
            assert_eq!(
                *ev,
                Event::CmdSent {
                    task_id: task.clone(),
                    result: Err(code(12))
                }
            );
        }
        assert_eq!(s.want().1, Want::None);
    }

    #[test]
    fn a_logout_overtaking_a_login_still_answers_it_and_a_login_behind_a_logout_waits() {
        let t0 = Instant::now();
        let mut s = Session::new(t0);
        s.login(login_op(), "first", t0).unwrap();
        assert_eq!(s.login(login_op(), "again", t0), Err(code(9)));
        s.logout(t0).unwrap();
        assert_eq!(
            events(&mut s),
            [Event::Login {
                result: Err(code(9)),
                cookie: "first".into()
            }]
        );
        assert_eq!(s.logout(t0), Err(code(12)));
        // Logged in, then out: a login made while the logout completes runs after it.
        let (mut s, mut srv) = logged_in(t0);
        s.logout(t0).unwrap();
        s.login(login_op(), "next", t0).unwrap();
        let sent = srv.take(&mut s, t0);
        let ClientMsg::Req { id, op: Op::Logout } = sent[0] else {
            panic!("{sent:?}")
        };
        let gen = s.want().0;
        srv.send(&mut s, &ServerMsg::reply(id, 0), t0);
        assert!(events(&mut s).is_empty(), "a logout has no event");
        let (next_gen, want) = s.want();
        assert_eq!(want, Want::Connect { tls: false });
        assert!(next_gen > gen, "a new link for the new login");
    }

    #[test]
    fn a_cancel_waiting_on_an_unanswered_offer_ends_with_the_link() {
        let t0 = Instant::now();
        let (mut s, mut srv) = logged_in(t0);
        let task = s.send_buffer("bob", vec![1; 10], t0).unwrap();
        let sent = srv.take(&mut s, t0);
        assert!(matches!(
            sent[..],
            [ClientMsg::Req {
                op: Op::Offer { .. },
                ..
            }]
        ));
        s.cancel_send(&task, t0).unwrap();
        assert!(
            events(&mut s).is_empty(),
            "decided once the offer is answered"
        );
        let (gen, _) = s.want();
        s.link_failed(gen, code(207), t0);
        // The buffer and its cancel both end with the link's code: neither was refused.
        assert_eq!(
            events(&mut s),
            [
                Event::BufferSent {
                    task_id: task.clone(),
                    result: Err(code(207))
                },
                Event::CancelSend {
                    task_id: task,
                    result: Err(code(207))
                },
                Event::LineOff { code: code(207) }
            ]
        );
    }
}
