//! The app's calls: each is checked against the state it will act on (a refusal is its
//! synchronous result), then changes the session.

use super::super::event::Event;
use super::super::ids::new_id;
use super::super::transfer::{open_source, Outgoing, Source};
use super::lifecycle::{LoginReq, Phase};
use super::{Session, State};
use crvm_proto::error::*;
use crvm_proto::msg::{limits, validate_cmd};
use crvm_proto::{Code, Op, SizeLimits, XferKind};
use std::sync::Arc;
use std::time::Instant;

impl Session {
    /// Sets one option (see [`super::Options::set`]); only while logged out.
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
    /// once (docs/API.md §3.6); 12 if not logged in.
    pub fn network_changed(&mut self, now: Instant) -> Result<(), Code> {
        let st = &mut self.st;
        st.check_alive()?;
        match &mut st.phase {
            Phase::LoggedIn => st.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now),
            Phase::Reconnecting(r) => {
                // Whatever attempt was under way or waited for: a new one, now.
                r.attempt = 0;
                st.gen = st.gen.next();
                st.start_attempt(now);
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
    pub fn send_cmd(&mut self, to: &str, data: Vec<u8>, now: Instant) -> Result<String, Code> {
        let st = &mut self.st;
        validate_cmd(to, data.len())?;
        st.check_logged_in()?;
        st.check_pending(data.len() as u64)?;
        let task = new_id("t-");
        st.cmds.queue(task.clone(), to.to_owned(), data);
        st.pump(now);
        Ok(task)
    }

    /// Accepts a buffer to `to`; it is sent when its turn comes (docs/API.md §3.5).
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
}

impl State {
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

    /// The one synchronous refusal for volume (docs/API.md §3.5): while what is accepted and not yet
    /// acknowledged would exceed `max_pending_bytes`. Something alone always fits.
    fn check_pending(&self, more: u64) -> Result<(), Code> {
        let pending = self.cmds.pending_bytes() + self.xfers.pending_bytes();
        if pending > 0 && pending + more > self.opts.max_pending_bytes {
            return Err(code(CRVIDEOSDK_SENDFAIL));
        }
        Ok(())
    }
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
