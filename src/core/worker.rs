//! The worker thread: owns the connection and the client state machine. It wakes on queued
//! requests, socket readiness and timers (one `poll(2)` call), and reports everything that
//! happens as events on the dispatch queue. It never runs app code.
//!
//! Link states: `Idle` → `Connecting` → `Open(LoggingIn)` → `Open(LoggedIn)` → `Idle`.
//! Every request accepted by an exported function gets exactly one result event, whatever
//! happens to the link; see [`Worker::link_lost`].

use super::conn::{self, Conn, ConnError};
use super::dispatch::Queued;
use super::event::Event;
use super::options::Options;
use super::request::{Login, Op, Request};
use super::transfer::{Io, Transfers};
use super::transport::{tls_config, Transport};
use super::{Inner, Public};
use crossbeam_channel::{Receiver, Sender};
use crvm_proto::error::*;
use crvm_proto::frame::{Frame, Kind};
use crvm_proto::msg::{to_json, ClientMsg, ServerMsg, PROTOCOL_VERSION};
use crvm_proto::XferKind;
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Heartbeat interval until the server's `Welcome` says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// A peer silent for this long is dead, whatever the heartbeat interval (SPEC §3.1).
const MAX_SILENCE: Duration = Duration::from_secs(30);
/// Upper bound on a clean logout (logout and destroy wait for the server's answer this long).
const LOGOUT_BUDGET: Duration = Duration::from_secs(5);

/// A login in progress or established.
struct Session {
    epoch: u64,
    cookie: String,
    opts: Options,
    login_id: u64,
    heartbeat: Duration,
}

enum Stage {
    LoggingIn { deadline: Instant },
    LoggedIn,
}

enum Link {
    Idle,
    Connecting {
        sock: TcpStream,
        addrs: Vec<SocketAddr>,
        next: usize,
        deadline: Instant,
        session: Session,
        login: ClientMsg,
    },
    Open {
        conn: Conn,
        stage: Stage,
        session: Session,
    },
}

struct Pending {
    op: Op,
    cookie: String,
    deadline: Instant,
}

pub(crate) struct Worker {
    inner: Arc<Inner>,
    rx: Receiver<Request>,
    events: Sender<Queued>,
    link: Link,
    /// Requests sent and not yet answered, by request ID (ascending = order sent).
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    /// Cookie of the last `start_user_status_notify`, carried by every presence push.
    notify_cookie: String,
    /// Calls this session is a party of, as told by the events emitted so far: a lost link ends
    /// each of them with `notify_call_hungup` before `line_off`.
    calls: HashSet<String>,
    transfers: Transfers,
    /// The `log_file` of the current session, if any.
    log: Option<std::fs::File>,
    stopping: bool,
}

impl Worker {
    pub fn new(inner: Arc<Inner>, rx: Receiver<Request>) -> Self {
        let events = inner.dispatch.sender();
        Worker {
            inner,
            rx,
            events,
            link: Link::Idle,
            pending: BTreeMap::new(),
            next_id: 1,
            notify_cookie: String::new(),
            calls: HashSet::new(),
            transfers: Transfers::default(),
            log: None,
            stopping: false,
        }
    }

    /// Thread body. A panic inside one turn is contained: the link is dropped as if lost, with
    /// the usual one-result-per-request guarantee, and the worker carries on.
    pub fn run(mut self) {
        while !self.stopping {
            if catch_unwind(AssertUnwindSafe(|| self.turn())).is_err() {
                self.link_lost(CRVIDEOSDK_INNER_ERR);
            }
        }
    }

    fn emit(&mut self, ev: Event) {
        match &ev {
            Event::CallSuccess { call_id, .. } | Event::NotifyCallIn { call_id, .. } => {
                self.calls.insert(call_id.clone());
            }
            Event::RejectCallSuccess { call_id, .. }
            | Event::HungupCallSuccess { call_id, .. }
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
        let _ = self.events.send(Queued::Event(ev));
    }

    /// Appends a line to the session's log file; a failed write is not the app's problem.
    fn log(&mut self, what: &str) {
        if let Some(f) = &mut self.log {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let line = format!("{}.{:03} crvm: {what}\n", t.as_secs(), t.subsec_millis());
            let _ = std::io::Write::write_all(f, line.as_bytes());
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// One wait-and-handle step of the loop.
    fn turn(&mut self) {
        let (sock_fd, sock_events) = match &self.link {
            Link::Idle => (-1, 0),
            Link::Connecting { sock, .. } => (std::os::fd::AsRawFd::as_raw_fd(sock), libc::POLLOUT),
            Link::Open { conn, .. } => {
                let out = if conn.wants_write() { libc::POLLOUT } else { 0 };
                (conn.fd(), libc::POLLIN | out)
            }
        };
        let timeout_ms = match self.next_deadline() {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so a timer is never polled a millisecond early, in a tight loop.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut fds = [
            libc::pollfd {
                fd: self.inner.waker.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sock_fd,
                events: sock_events,
                revents: 0,
            },
        ];
        let nfds = if sock_fd >= 0 { 2 } else { 1 };
        // SAFETY: `fds` is a live array of `nfds` pollfd structs.
        unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };

        if fds[0].revents != 0 {
            self.inner.waker.drain();
        }
        while let Ok(req) = self.rx.try_recv() {
            self.handle_request(req);
        }
        if nfds == 2 && fds[1].revents != 0 {
            self.service_socket(fds[1].revents);
        }
        self.check_timers();
        self.flush();
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.link {
            Link::Idle => None,
            Link::Connecting { deadline, .. } => Some(*deadline),
            Link::Open {
                conn,
                stage,
                session,
            } => {
                let mut d = conn.last_rx + dead_after(session.heartbeat);
                d = d.min(conn.last_tx + session.heartbeat);
                if let Stage::LoggingIn { deadline } = stage {
                    d = d.min(*deadline);
                }
                if let Some(p) = self.pending.values().map(|p| p.deadline).min() {
                    d = d.min(p);
                }
                Some(d)
            }
        }
    }

    // ----- requests -------------------------------------------------------------------------

    fn handle_request(&mut self, req: Request) {
        match req {
            Request::Login { login, opts, epoch } => self.start_login(login, opts, epoch),
            Request::Logout => self.logout(),
            Request::Op { op, cookie } => self.send_op(op, cookie),
            Request::Cancel { task } => self.cancel_send(task),
            Request::Shutdown => {
                self.stopping = true;
                self.logout();
            }
        }
    }

    fn start_login(&mut self, login: Login, opts: Options, epoch: u64) {
        // Logout always precedes a new login in the queue, so the link is idle; be safe anyway.
        self.close_link();
        self.log = opts.log_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        let what = format!(
            "login to {} as app {:?} user {:?}",
            self.inner.addr, login.app_id, login.user_id
        );
        self.log(&what);
        let deadline = Instant::now() + opts.connect_timeout;
        let session = Session {
            epoch,
            cookie: login.cookie,
            opts,
            login_id: 0,
            heartbeat: DEFAULT_HEARTBEAT,
        };
        let msg = ClientMsg::Login {
            id: 0, // assigned once the link is up
            app_id: login.app_id,
            secret: login.secret,
            user_id: login.user_id,
            nick: login.nick,
            token: login.token,
        };
        let addrs: Vec<SocketAddr> = match self.inner.addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(_) => Vec::new(),
        };
        self.try_connect(addrs, 0, deadline, session, msg);
    }

    /// Starts connecting to `addrs[next..]`, skipping addresses that fail at once.
    fn try_connect(
        &mut self,
        addrs: Vec<SocketAddr>,
        mut next: usize,
        deadline: Instant,
        session: Session,
        login: ClientMsg,
    ) {
        while next < addrs.len() {
            let addr = addrs[next];
            next += 1;
            if let Ok(sock) = conn::start_connect(&addr) {
                self.link = Link::Connecting {
                    sock,
                    addrs,
                    next,
                    deadline,
                    session,
                    login,
                };
                return;
            }
        }
        self.login_failed(session, CRVIDEOSDK_CREATE_CONN_FAILED);
    }

    fn send_op(&mut self, op: Op, cookie: String) {
        let Link::Open {
            conn,
            stage: Stage::LoggedIn,
            session,
        } = &mut self.link
        else {
            // Accepted while logged in, but the link went down before the worker got to it
            // (and the app logged out since, or the link-lost drain would have answered it).
            self.emit(op.result(CRVIDEOSDK_CONNECTIONLOST, cookie));
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        if matches!(op, Op::StartStatusNotify) {
            // Pushes can overtake the reply, so the cookie applies from the moment we ask.
            self.notify_cookie = cookie.clone();
        }
        conn.send_control(&to_json(&op.to_msg(id)), op.attachment());
        let deadline = Instant::now() + session.opts.request_timeout;
        self.pending.insert(
            id,
            Pending {
                op,
                cookie,
                deadline,
            },
        );
    }

    /// The app cancels a transfer: decided by the transfer engine once it has a stream, or
    /// flagged on the offer still waiting for one.
    fn cancel_send(&mut self, task: String) {
        if !matches!(
            self.link,
            Link::Open {
                stage: Stage::LoggedIn,
                ..
            }
        ) {
            return self.emit(Event::CancelSendRlst {
                task_id: task,
                code: CRVIDEOSDK_CONNECTIONLOST,
            });
        }
        let mut found = false;
        self.with_transfers(|t, io| found = t.cancel(&task, io));
        if found {
            return;
        }
        let offered = self.pending.values_mut().find_map(|p| match &mut p.op {
            Op::Send(spec) if spec.task == task => Some(spec),
            _ => None,
        });
        match offered {
            Some(spec) if spec.kind != XferKind::Cmd && !spec.cancel => spec.cancel = true,
            _ => self.emit(Event::CancelSendRlst {
                task_id: task,
                code: CRVIDEOSDK_TRANSID_INVALID,
            }),
        }
    }

    /// Runs a transfer step with the link and session options, then emits what it produced.
    fn with_transfers(&mut self, f: impl FnOnce(&mut Transfers, &mut Io<'_>)) {
        let mut events = Vec::new();
        if let Link::Open {
            conn,
            session,
            stage: Stage::LoggedIn,
        } = &mut self.link
        {
            let mut io = Io {
                conn,
                opts: &session.opts,
                events: &mut events,
            };
            f(&mut self.transfers, &mut io);
        }
        for ev in events {
            self.emit(ev);
        }
    }

    /// Ends the session at the app's request (or on destroy). No `line_off`.
    fn logout(&mut self) {
        match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Idle => {}
            Link::Connecting { session, .. }
            | Link::Open {
                stage: Stage::LoggingIn { .. },
                session,
                ..
            } => {
                // The login was overtaken by a logout: it still gets its one result.
                self.emit(Event::LoginFail {
                    code: CRVIDEOSDK_LOGINSTATE_ERROR,
                    cookie: session.cookie,
                });
            }
            Link::Open {
                mut conn, session, ..
            } => {
                let id = self.id();
                conn.send_control(&to_json(&ClientMsg::Logout { id }), &[]);
                let budget = session.opts.request_timeout.min(LOGOUT_BUDGET);
                self.finish_logout(&mut conn, id, Instant::now() + budget);
                // What the server did not answer before the logout ends here, for the app's
                // one-result-per-request rule; the server already told the peers.
                self.fail_pending(CRVIDEOSDK_NOT_LOGIN);
                let mut events = Vec::new();
                self.transfers.end_all(CRVIDEOSDK_NOT_LOGIN, &mut events);
                for ev in events {
                    self.emit(ev);
                }
            }
        }
        self.notify_cookie.clear();
        self.calls.clear();
    }

    /// Delivers the answers to everything sent before the logout, until the server acknowledges
    /// it, closes, or the budget runs out. New requests wait in the queue meanwhile.
    fn finish_logout(&mut self, conn: &mut Conn, logout_id: u64, deadline: Instant) {
        let mut frames = Vec::new();
        loop {
            if conn.flush().is_err() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let mut pfd = libc::pollfd {
                fd: conn.fd(),
                events: libc::POLLIN | if conn.wants_write() { libc::POLLOUT } else { 0 },
                revents: 0,
            };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
            frames.clear();
            let res = conn.read_frames(&mut frames);
            for f in frames.drain(..) {
                match parse_control(&f) {
                    Some((ServerMsg::Reply { re, .. }, _)) if re == logout_id => return,
                    Some((ServerMsg::Close { .. }, _)) | None if f.kind == Kind::Control => return,
                    // Transfers end with the logout; only answers to requests matter now.
                    Some((msg, _)) if !is_transfer_msg(&msg) => self.handle_logged_in(msg, &[]),
                    _ => {}
                }
            }
            if res.is_err() {
                return;
            }
        }
    }

    // ----- socket ---------------------------------------------------------------------------

    fn service_socket(&mut self, revents: libc::c_short) {
        match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Idle => {}
            Link::Connecting {
                sock,
                addrs,
                next,
                deadline,
                session,
                login,
            } => match conn::connect_result(&sock) {
                Ok(()) => match self.transport(sock, &session.opts) {
                    Ok(t) => self.link_up(Conn::new(t), session, login),
                    Err(_) => self.login_failed(session, CRVIDEOSDK_SSL_ERR),
                },
                Err(_) => self.try_connect(addrs, next, deadline, session, login),
            },
            link @ Link::Open { .. } => {
                self.link = link;
                self.read_socket(revents);
            }
        }
    }

    /// The stream for a connected socket: TLS when the options ask for it.
    fn transport(&self, sock: TcpStream, opts: &Options) -> std::io::Result<Transport> {
        if !opts.tls {
            return Ok(Transport::Plain(sock));
        }
        let config = tls_config(opts.tls_ca_file.as_deref())?;
        let host = self.inner.addr.rsplit_once(':').map_or("", |(h, _)| h);
        Transport::tls(sock, config, host)
    }

    /// The TCP connection is up: say hello and log in in one go.
    fn link_up(&mut self, mut conn: Conn, mut session: Session, mut login: ClientMsg) {
        let hello = ClientMsg::Hello {
            ver: PROTOCOL_VERSION,
            agent: format!("libcrvm/{}", env!("CARGO_PKG_VERSION")),
        };
        conn.send_control(&to_json(&hello), &[]);
        session.login_id = self.id();
        if let ClientMsg::Login { id, .. } = &mut login {
            *id = session.login_id;
        }
        conn.send_control(&to_json(&login), &[]);
        let deadline = Instant::now() + session.opts.request_timeout;
        self.link = Link::Open {
            conn,
            stage: Stage::LoggingIn { deadline },
            session,
        };
    }

    fn read_socket(&mut self, revents: libc::c_short) {
        let Link::Open { conn, .. } = &mut self.link else {
            return;
        };
        let mut frames = Vec::new();
        let mut res = Ok(());
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            res = conn.read_frames(&mut frames);
        }
        if res.is_ok() && revents & libc::POLLOUT != 0 {
            res = conn.flush();
        }
        for f in frames {
            if !self.handle_frame(f) {
                return;
            }
        }
        if let Err(e) = res {
            self.link_lost(lost_code(&e));
        }
    }

    /// Handles one frame; false if it ended the link.
    fn handle_frame(&mut self, f: Frame) -> bool {
        match f.kind {
            Kind::Ping => {
                if let Link::Open { conn, .. } = &mut self.link {
                    conn.send_simple(Kind::Pong);
                }
                true
            }
            Kind::Pong => true,
            Kind::Data => {
                self.with_transfers(|t, io| t.on_data(&f.payload, io));
                true
            }
            Kind::Control => match parse_control(&f) {
                Some((msg, attachment)) => self.handle_msg(msg, attachment),
                None => {
                    self.link_lost(CRVIDEOSDK_CONNECTIONLOST);
                    false
                }
            },
        }
    }

    fn handle_msg(&mut self, msg: ServerMsg, attachment: &[u8]) -> bool {
        let logging_in = matches!(
            self.link,
            Link::Open {
                stage: Stage::LoggingIn { .. },
                ..
            }
        );
        if let ServerMsg::Close { code, .. } = msg {
            self.link_lost(code);
            return false;
        }
        if !logging_in {
            return match msg {
                ServerMsg::Welcome { .. } | ServerMsg::LoginOk { .. } => {
                    self.link_lost(CRVIDEOSDK_CONNECTIONLOST);
                    false
                }
                msg => {
                    self.handle_logged_in(msg, attachment);
                    true
                }
            };
        }
        let Link::Open { stage, session, .. } = &mut self.link else {
            return false;
        };
        match msg {
            ServerMsg::Welcome {
                heartbeat_ms,
                max_buffer_bytes,
                max_file_bytes,
                ..
            } => {
                session.heartbeat = Duration::from_millis(heartbeat_ms.clamp(100, 10_000));
                let mut st = self.inner.state.lock();
                st.server_max_buffer = max_buffer_bytes;
                st.server_max_file = max_file_bytes;
                true
            }
            ServerMsg::LoginOk { re, user_id } if re == session.login_id => {
                *stage = Stage::LoggedIn;
                let cookie = std::mem::take(&mut session.cookie);
                let mut st = self.inner.state.lock();
                if st.epoch == session.epoch {
                    st.public = Public::LoggedIn;
                }
                drop(st);
                self.emit(Event::LoginSuccess { user_id, cookie });
                true
            }
            ServerMsg::Reply { re, code } if re == session.login_id => {
                self.login_ended(if code == 0 {
                    CRVIDEOSDK_SERVER_EXCEPTION
                } else {
                    code
                });
                false
            }
            _ => {
                self.link_lost(CRVIDEOSDK_CONNECTIONLOST);
                false
            }
        }
    }

    /// Replies and pushes of an established session.
    fn handle_logged_in(&mut self, msg: ServerMsg, attachment: &[u8]) {
        let (re, event) = match msg {
            ServerMsg::UserStatus { status } => {
                let cookie = self.notify_cookie.clone();
                return self.emit(Event::NotifyUserStatus {
                    user_status: to_string(&status),
                    cookie,
                });
            }
            ServerMsg::CallIn {
                call_id,
                caller,
                meet_obj,
                ext,
            } => {
                return self.emit(Event::NotifyCallIn {
                    call_id,
                    meet_obj,
                    caller_id: caller,
                    usr_ext_dat: ext,
                })
            }
            ServerMsg::CallAccepted {
                call_id,
                ext,
                meet_obj,
            } => {
                return self.emit(Event::NotifyCallAccepted {
                    call_id,
                    usr_ext_dat: ext,
                    meet_obj,
                })
            }
            ServerMsg::CallRejected {
                call_id,
                reason,
                ext,
            } => {
                return self.emit(Event::NotifyCallRejected {
                    call_id,
                    reason,
                    usr_ext_dat: ext,
                })
            }
            ServerMsg::CallHungup { call_id, ext } => {
                return self.emit(Event::NotifyCallHungup {
                    call_id,
                    usr_ext_dat: ext,
                })
            }
            ServerMsg::OfferOk { re, sid } => {
                if let Some(p) = self.pending.remove(&re) {
                    match p.op {
                        Op::Send(spec) => self.with_transfers(|t, io| t.started(sid, *spec, io)),
                        op => self.emit(op.result(CRVIDEOSDK_SERVER_EXCEPTION, p.cookie)),
                    }
                }
                return;
            }
            ServerMsg::Incoming {
                sid,
                task,
                from,
                kind,
                size,
                name,
            } => {
                return self.with_transfers(|t, io| {
                    t.on_incoming(sid, task, from, kind, size, &name, attachment, io)
                })
            }
            ServerMsg::DataEnd { sid, hash } => {
                return self.with_transfers(|t, io| t.on_data_end(sid, hash, io))
            }
            ServerMsg::Progress { sid, bytes } => {
                return self.with_transfers(|t, io| t.on_progress(sid, bytes, io))
            }
            ServerMsg::XferEnd { sid, code } => {
                return self.with_transfers(|t, io| t.on_xfer_end(sid, code, io))
            }
            ServerMsg::Cancelled { sid } => {
                return self.with_transfers(|t, io| t.on_cancelled(sid, io))
            }
            ServerMsg::CancelDone { sid, code } => {
                return self.with_transfers(|t, io| t.on_cancel_done(sid, code, io))
            }
            ServerMsg::Reply { re, code } => (re, Reply::Code(code)),
            ServerMsg::Statuses { re, list } => (re, Reply::Json(to_string(&list))),
            ServerMsg::MeetingCreated { re, meeting } => (re, Reply::Json(to_string(&meeting))),
            ServerMsg::Meetings { re, list } => (re, Reply::Json(to_string(&list))),
            ServerMsg::Welcome { .. } | ServerMsg::LoginOk { .. } | ServerMsg::Close { .. } => {
                return
            }
        };
        // An answer to a request that already timed out is dropped: it had its one result.
        let Some(p) = self.pending.remove(&re) else {
            return;
        };
        if let (Op::Send(spec), Reply::Code(code)) = (&p.op, &event) {
            // The offer failed; a cancel made meanwhile finds nothing left to cancel.
            let cancelled = spec.cancel.then(|| spec.task.clone());
            self.emit(spec.result(if *code == 0 {
                CRVIDEOSDK_SERVER_EXCEPTION
            } else {
                *code
            }));
            if let Some(task_id) = cancelled {
                self.emit(Event::CancelSendRlst {
                    task_id,
                    code: CRVIDEOSDK_TRANSID_INVALID,
                });
            }
            return;
        }
        let ev = match (p.op, event) {
            (op, Reply::Code(code)) => op.result(code, p.cookie),
            (Op::GetUserStatus, Reply::Json(users_status)) => Event::GetUserStatusSuccess {
                users_status,
                cookie: p.cookie,
            },
            (Op::CreateMeeting { .. }, Reply::Json(meet_obj)) => Event::CreateMeetingSuccess {
                meet_obj,
                cookie: p.cookie,
            },
            (Op::GetMeetings, Reply::Json(json_meetings)) => Event::GetMeetingsSuccess {
                json_meetings,
                cookie: p.cookie,
            },
            (op, Reply::Json(_)) => op.result(CRVIDEOSDK_SERVER_EXCEPTION, p.cookie),
        };
        self.emit(ev);
    }

    // ----- endings --------------------------------------------------------------------------

    /// A login attempt ended without a session.
    fn login_failed(&mut self, session: Session, code: i32) {
        let mut st = self.inner.state.lock();
        if st.epoch == session.epoch && st.public == Public::LoggingIn {
            st.public = Public::LoggedOut;
        }
        drop(st);
        self.emit(Event::LoginFail {
            code,
            cookie: session.cookie,
        });
    }

    fn login_ended(&mut self, code: i32) {
        if let Link::Open { session, .. } | Link::Connecting { session, .. } =
            std::mem::replace(&mut self.link, Link::Idle)
        {
            self.login_failed(session, code);
        }
    }

    /// The link went down (or the server closed it with `code`). Every request the app was told
    /// was sent gets its result with `code`, then — if the app still believes it is logged in —
    /// `line_off(code)`. Requests already queued behind the loss are answered the same way,
    /// under the state lock, so none slips between the answers and `line_off`.
    fn link_lost(&mut self, code: i32) {
        let (session, logged_in) = match std::mem::replace(&mut self.link, Link::Idle) {
            Link::Idle => return self.fail_pending(code),
            Link::Connecting { session, .. } => (session, false),
            Link::Open { stage, session, .. } => (session, matches!(stage, Stage::LoggedIn)),
        };
        if !logged_in {
            return self.login_failed(session, code);
        }
        self.notify_cookie.clear();
        let inner = Arc::clone(&self.inner);
        let mut st = inner.state.lock();
        self.fail_pending(code);
        let mut events = Vec::new();
        self.transfers.end_all(code, &mut events);
        for ev in events {
            self.emit(ev);
        }
        if st.epoch != session.epoch || st.public != Public::LoggedIn {
            return; // the app already logged out (and maybe in again); its queue is its own
        }
        st.public = Public::LoggedOut;
        let mut later = Vec::new();
        while let Ok(req) = self.rx.try_recv() {
            match req {
                Request::Op { op, cookie } => self.emit(op.result(code, cookie)),
                Request::Cancel { task } => self.emit(Event::CancelSendRlst {
                    task_id: task,
                    code,
                }),
                other => later.push(other),
            }
        }
        // The server ends this session's calls; tell the app here, since it will not hear it.
        let mut calls: Vec<String> = self.calls.drain().collect();
        calls.sort();
        for call_id in calls {
            self.emit(Event::NotifyCallHungup {
                call_id,
                usr_ext_dat: String::new(),
            });
        }
        self.emit(Event::LineOff { code });
        drop(st);
        for req in later {
            self.handle_request(req);
        }
    }

    fn fail_pending(&mut self, code: i32) {
        for (_, p) in std::mem::take(&mut self.pending) {
            self.emit(p.op.result(code, p.cookie));
        }
    }

    fn close_link(&mut self) {
        self.link = Link::Idle;
    }

    // ----- timers and output ----------------------------------------------------------------

    fn check_timers(&mut self) {
        let now = Instant::now();
        match &mut self.link {
            Link::Idle => {}
            Link::Connecting { deadline, .. } => {
                if now >= *deadline {
                    self.login_ended(CRVIDEOSDK_CREATE_CONN_FAILED);
                }
            }
            Link::Open {
                conn,
                stage,
                session,
            } => {
                if let Stage::LoggingIn { deadline } = stage {
                    if now >= *deadline {
                        return self.login_ended(CRVIDEOSDK_NOSERVER_RSP);
                    }
                }
                if now >= conn.last_rx + dead_after(session.heartbeat) {
                    return self.link_lost(CRVIDEOSDK_CONNECTIONLOST);
                }
                if now >= conn.last_tx + session.heartbeat {
                    conn.send_simple(Kind::Ping);
                }
                let expired: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| now >= p.deadline)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    if let Some(p) = self.pending.remove(&id) {
                        self.emit(p.op.result(CRVIDEOSDK_NOSERVER_RSP, p.cookie));
                    }
                }
            }
        }
    }

    /// Writes what the link can take, refilling the data queue from the transfers as it drains
    /// (a bounded number of chunks per turn, so requests and timers are never starved).
    fn flush(&mut self) {
        for _ in 0..64 {
            let mut queued = false;
            self.with_transfers(|t, io| queued = t.pump(io));
            let Link::Open { conn, .. } = &mut self.link else {
                return;
            };
            if conn.wants_write() {
                if let Err(e) = conn.flush() {
                    return self.link_lost(lost_code(&e));
                }
            }
            if !queued || conn.data_queued() > 0 {
                return; // nothing more to send, or the socket is full
            }
        }
    }
}

enum Reply {
    Code(i32),
    Json(String),
}

/// The code a failed link is reported with: 209 for TLS failures (a bad or untrusted
/// certificate shows up as a failed login), 207 for everything else.
fn lost_code(e: &ConnError) -> i32 {
    if e.tls {
        CRVIDEOSDK_SSL_ERR
    } else {
        CRVIDEOSDK_CONNECTIONLOST
    }
}

fn dead_after(heartbeat: Duration) -> Duration {
    (heartbeat * 3).min(MAX_SILENCE)
}

fn parse_control(f: &Frame) -> Option<(ServerMsg, &[u8])> {
    if f.kind != Kind::Control {
        return None;
    }
    let (json, attachment) = f.control().ok()?;
    Some((parse_server_msg(json)?, attachment))
}

/// Parses a server message. Status pushes, the bulk of what a busy client receives, take a
/// direct path: the `t`-tagged enum makes serde buffer every field of a message before it
/// knows the variant, which costs several allocations per push. Anything else, or a push
/// written differently, goes the general way.
fn parse_server_msg(json: &[u8]) -> Option<ServerMsg> {
    #[derive(serde::Deserialize)]
    struct StatusPush {
        status: crvm_proto::UserStatus,
    }
    if json.starts_with(br#"{"t":"user_status","#) {
        if let Ok(p) = serde_json::from_slice::<StatusPush>(json) {
            return Some(ServerMsg::UserStatus { status: p.status });
        }
    }
    serde_json::from_slice(json).ok()
}

/// Messages that belong to a transfer rather than answer a request.
fn is_transfer_msg(m: &ServerMsg) -> bool {
    matches!(
        m,
        ServerMsg::OfferOk { .. }
            | ServerMsg::Incoming { .. }
            | ServerMsg::DataEnd { .. }
            | ServerMsg::Progress { .. }
            | ServerMsg::XferEnd { .. }
            | ServerMsg::Cancelled { .. }
            | ServerMsg::CancelDone { .. }
    )
}

fn to_string<T: serde::Serialize>(v: &T) -> String {
    String::from_utf8(to_json(v)).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crvm_proto::UserStatus;

    #[test]
    fn status_pushes_parse_the_same_on_the_direct_path() {
        let push = ServerMsg::UserStatus {
            status: UserStatus {
                user_id: "a\"b\u{e9}".into(),
                user_status: 2,
                dnd_type: 7,
            },
        };
        let json = to_json(&push);
        assert!(json.starts_with(br#"{"t":"user_status","#));
        assert_eq!(parse_server_msg(&json), Some(push.clone()));
        // Written differently: the general path still takes it.
        let spaced = br#"{ "t" : "user_status", "status": {"userID":"a\"b\u00e9","userStatus":2,"DNDType":7}}"#;
        assert_eq!(parse_server_msg(spaced), Some(push));
        // A wrong shape after the right prefix is refused like any bad message.
        assert_eq!(parse_server_msg(br#"{"t":"user_status","status":5}"#), None);
        let other = ServerMsg::Reply { re: 3, code: 0 };
        assert_eq!(parse_server_msg(&to_json(&other)), Some(other));
    }
}
