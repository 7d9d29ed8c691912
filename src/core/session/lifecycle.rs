//! The life of a session: login, logout, a lost link and its resumption (docs/API.md §3.6), the
//! farewell of a logout made while resuming, and the timers of each phase.

use super::super::event::Event;
use super::timers::Timer;
use super::State;
use crvm_proto::error::*;
use crvm_proto::{ClientMsg, Code, FrameError, Op, Out};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First pause between two reconnect attempts after the immediate one, and the largest
/// (docs/API.md §3.6: full jitter, doubling from 250 ms up to 5 s).
pub(super) const RETRY_BASE: Duration = Duration::from_millis(250);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest a resume handshake may take on a connection before another attempt.
pub(super) const RESUME_HANDSHAKE: Duration = Duration::from_secs(10);
/// Upper bound on a clean logout: the server's answer is awaited this long at most.
const LOGOUT_BUDGET: Duration = Duration::from_secs(5);

/// A login waiting for its link.
pub(super) struct LoginReq {
    pub op: Op,
    pub cookie: String,
}

/// Where the session is. The deadlines of each phase are in the timer table: entering a phase
/// stops those of the one before ([`State::enter`]).
pub(super) enum Phase {
    LoggedOut,
    /// The worker is connecting (DNS, TCP, TLS) for this login ([`Timer::Connect`]).
    Connecting {
        login: LoginReq,
    },
    /// `hello` and `login` are sent ([`Timer::Login`]).
    LoggingIn {
        login_id: u64,
        cookie: String,
    },
    /// [`Timer::Idle`], [`Timer::Ping`].
    LoggedIn,
    /// The link was lost and the session is being resumed (docs/API.md §3.6).
    Reconnecting(Reconnect),
    /// A logout made while reconnecting: the app is logged out already; the library resumes
    /// the session once more only to log it out on the server, so that the others see it end
    /// now rather than when the server's hold expires. Best effort, within a budget
    /// ([`Timer::GiveUp`]).
    Farewell(Farewell),
    /// `logout` is sent; answers to earlier requests are still delivered ([`Timer::Logout`]).
    LoggingOut {
        logout_id: u64,
    },
}

/// How to resume the session, from the server's `resumable` (and each `resumed`).
pub(super) struct Resumable {
    pub app_id: String,
    pub session: String,
    pub secret: String,
    pub window: Duration,
    /// Where to resume (a cluster node's address), or empty: where the login went.
    pub addr: String,
}

/// A session between losing its link and resuming it. While an attempt waits for its turn,
/// [`Timer::Retry`] is set; while one is under way, [`Timer::Attempt`]; the server's window
/// closes at [`Timer::GiveUp`].
pub(super) struct Reconnect {
    /// When the link was lost: request timers are paused from then.
    since: Instant,
    /// Attempts made so far.
    pub attempt: u32,
}

/// A logout that still has to reach the server (see [`Phase::Farewell`]).
pub(super) struct Farewell {
    r: Reconnect,
    /// The `logout` request, once the session is resumed and it is sent.
    pub logout_id: Option<u64>,
}

/// The pause before reconnect attempt `attempt` (1 = the first after the immediate one): full
/// jitter over a ceiling doubling from [`RETRY_BASE`] up to [`RETRY_MAX`]; `random` is a
/// uniformly distributed value.
pub(super) fn backoff(attempt: u32, random: u64) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(RETRY_MAX);
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    ceiling.mul_f64(unit)
}

impl State {
    /// Enters `phase`, stopping the timers of the one before.
    pub(super) fn enter(&mut self, phase: Phase) {
        self.timers.stop_phase();
        self.phase = phase;
    }

    /// Whether the session is between two reconnect attempts (no link wanted meanwhile).
    pub(super) fn waiting_to_retry(&self) -> bool {
        matches!(self.phase, Phase::Reconnecting(_) | Phase::Farewell(_))
            && self.timers.is_set(Timer::Retry)
    }

    /// The resume under way, if any (to resume the session, or to say farewell).
    fn reconnect_mut(&mut self) -> Option<&mut Reconnect> {
        match &mut self.phase {
            Phase::Reconnecting(r) | Phase::Farewell(Farewell { r, .. }) => Some(r),
            _ => None,
        }
    }

    /// Runs `timer`, which expired at `now` (and is stopped). A timer of a phase left since
    /// it was set does nothing.
    pub(super) fn on_timeout(&mut self, timer: Timer, now: Instant) {
        match (timer, &self.phase) {
            (Timer::GiveUp, Phase::Reconnecting(_)) => {
                // The server no longer holds the session.
                self.link_lost(code(CRVIDEOSDK_CONNECTIONLOST), now)
            }
            (Timer::GiveUp, Phase::Farewell(_)) => self.farewell_done(now),
            (Timer::Connect, Phase::Connecting { .. }) => {
                self.link_ended(code(CRVIDEOSDK_CREATE_CONN_FAILED), now)
            }
            (Timer::Login, Phase::LoggingIn { .. }) => {
                self.link_ended(code(CRVIDEOSDK_NOSERVER_RSP), now)
            }
            (Timer::Logout, Phase::LoggingOut { .. }) => self.finish_logout(now),
            (Timer::Idle, Phase::LoggedIn) => self.link_ended(code(CRVIDEOSDK_CONNECTIONLOST), now),
            (Timer::Attempt, Phase::Reconnecting(_) | Phase::Farewell(_)) => {
                self.attempt_failed(now, None)
            }
            (Timer::Retry, Phase::Reconnecting(_) | Phase::Farewell(_)) => self.start_attempt(now),
            (Timer::Ping, Phase::LoggedIn) => {
                self.out.push(Out::Ping);
                self.spoke(now);
            }
            (Timer::Request, _) => self.requests_timed_out(now),
            _ => {}
        }
    }

    pub(super) fn start_login(&mut self, login: LoginReq, now: Instant) {
        let log = self
            .opts
            .log_file
            .as_ref()
            .and_then(|p| self.env.open_log(p));
        self.events.set_log(log);
        if let Op::Login {
            app_id, user_id, ..
        } = &login.op
        {
            let what = format!("login as app {app_id:?} user {user_id:?}");
            self.events.log(&what);
        }
        self.gen = self.gen.next();
        self.enter(Phase::Connecting { login });
        self.timers
            .set(Timer::Connect, now + self.opts.connect_timeout);
    }

    /// The connection for a login is up: `hello` and `login` go out in one go.
    pub(super) fn send_login(&mut self, login: LoginReq, now: Instant) {
        if let Op::Login { app_id, .. } = &login.op {
            self.app_id = app_id.clone();
        }
        let login_id = self.id();
        self.out.push(Out::msg(&ClientMsg::Req {
            id: login_id,
            op: login.op,
        }));
        self.enter(Phase::LoggingIn {
            login_id,
            cookie: login.cookie,
        });
        self.timers
            .set(Timer::Login, now + self.opts.request_timeout);
    }

    /// The login succeeded (or the session was resumed): the link's heartbeat starts.
    pub(super) fn enter_logged_in(&mut self) {
        self.enter(Phase::LoggedIn);
        self.heard(self.last_rx);
        self.spoke(self.last_tx);
    }

    pub(super) fn logout(&mut self, now: Instant) -> Result<(), Code> {
        match std::mem::replace(&mut self.phase, Phase::LoggedOut) {
            Phase::LoggedOut => return Err(code(CRVIDEOSDK_NOT_LOGIN)),
            logging_out @ Phase::LoggingOut { .. } => {
                // Already logging out: only a login queued behind it is abandoned.
                self.phase = logging_out;
                let Some(login) = self.next_login.take() else {
                    return Err(code(CRVIDEOSDK_NOT_LOGIN));
                };
                self.login_failed(login.cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::Connecting { login } => {
                // The login was overtaken by a logout: it still gets its one result.
                self.enter(Phase::LoggedOut);
                self.gen = self.gen.next();
                self.login_failed(login.cookie, code(CRVIDEOSDK_LOGINSTATE_ERROR));
            }
            Phase::LoggingIn { cookie, .. } => {
                self.enter(Phase::LoggedOut);
                self.gen = self.gen.next();
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
        self.enter(Phase::LoggingOut { logout_id });
        self.timers.set(Timer::Logout, now + self.logout_budget());
    }

    fn login_failed(&mut self, cookie: String, code: Code) {
        self.events.emit(Event::Login {
            result: Err(code),
            cookie,
        });
    }

    /// The link of the current generation is over (or was never made) with `code`.
    pub(super) fn link_ended(&mut self, code: Code, now: Instant) {
        match std::mem::replace(&mut self.phase, Phase::LoggedOut) {
            Phase::LoggedOut => {}
            Phase::Connecting { login } => {
                self.enter(Phase::LoggedOut);
                self.gen = self.gen.next();
                self.login_failed(login.cookie, code);
            }
            Phase::LoggingIn { cookie, .. } => {
                self.enter(Phase::LoggedOut);
                self.gen = self.gen.next();
                self.login_failed(cookie, code);
            }
            Phase::LoggedIn => self.lose_link(code, now),
            Phase::Reconnecting(r) => {
                self.phase = Phase::Reconnecting(r);
                self.attempt_failed(now, None);
            }
            Phase::Farewell(_) => self.farewell_done(now),
            Phase::LoggingOut { .. } if self.resume.is_some() && self.opts.reconnect => {
                // The logout may not have reached the server: it is said again on a resume,
                // within what is left of its budget.
                let deadline = self.timers.get(Timer::Logout).unwrap_or(now);
                self.farewell(now, deadline);
            }
            logging_out @ Phase::LoggingOut { .. } => {
                self.phase = logging_out;
                self.finish_logout(now);
            }
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
        let Some(window) = self.resume.as_ref().map(|r| r.window).filter(|_| resumable) else {
            return self.link_lost(code, now);
        };
        self.gen = self.gen.next();
        self.enter(Phase::Reconnecting(Reconnect {
            since: now,
            attempt: 0,
        }));
        self.timers.set(Timer::GiveUp, now + window);
        self.requests.pause(&mut self.timers);
        self.events.emit(Event::LineReconnecting { code });
        // The first attempt at once.
        self.start_attempt(now);
    }

    /// Starts a reconnect attempt: the connection must be made (and then the handshake done)
    /// in time.
    pub(super) fn start_attempt(&mut self, now: Instant) {
        let limit = self.opts.connect_timeout.min(RESUME_HANDSHAKE);
        let Some(r) = self.reconnect_mut() else {
            return;
        };
        r.attempt += 1;
        self.timers.stop(Timer::Retry);
        self.timers.set(Timer::Attempt, now + limit);
        self.gen = self.gen.next();
    }

    /// A reconnect attempt failed (no connection, no answer, told to come back later after
    /// `after`): the next one is scheduled.
    pub(super) fn attempt_failed(&mut self, now: Instant, after: Option<Duration>) {
        let random = self.env.random_u64();
        let Some(r) = self.reconnect_mut() else {
            return;
        };
        let pause = backoff(r.attempt, random) + after.unwrap_or_default();
        self.timers.stop(Timer::Attempt);
        self.timers.set(Timer::Retry, now + pause);
        self.gen = self.gen.next();
    }

    /// The node the session was on moved it to another (a drain): the next attempt goes to
    /// `addr` at once, with the same session and secret.
    pub(super) fn follow_move(&mut self, addr: String, now: Instant) {
        if let Some(r) = self.resume.as_mut() {
            r.addr = addr;
        }
        if self.reconnect_mut().is_none() {
            return;
        }
        self.timers.stop(Timer::Attempt);
        self.timers.set(Timer::Retry, now);
        self.gen = self.gen.next();
    }

    /// A logout while reconnecting (or a link lost while logging out): everything outstanding
    /// ends with 12 for the app at once, and the session is resumed one last time to be logged
    /// out on the server (best effort, until `deadline`).
    fn farewell(&mut self, now: Instant, deadline: Instant) {
        let resume = self.resume.take();
        self.end_everything(code(CRVIDEOSDK_NOT_LOGIN), now);
        self.events.forget_calls();
        let Some(resume) = resume else {
            return;
        };
        self.resume = Some(resume);
        self.enter(Phase::Farewell(Farewell {
            r: Reconnect {
                since: now,
                attempt: 0,
            },
            logout_id: None,
        }));
        self.timers.set(Timer::GiveUp, deadline);
        self.start_attempt(now);
    }

    /// The farewell is over (answered, refused, or out of time): logged out for good; a login
    /// made meanwhile starts.
    pub(super) fn farewell_done(&mut self, now: Instant) {
        self.enter(Phase::LoggedOut);
        self.gen = self.gen.next();
        self.out.clear();
        self.resume = None;
        if let Some(login) = self.next_login.take() {
            self.start_login(login, now);
        }
    }

    /// The resume is accepted: the server has handled our frames up to `last`.
    pub(super) fn resumed(
        &mut self,
        secret: String,
        last: u64,
        now: Instant,
    ) -> Result<(), FrameError> {
        let Phase::Reconnecting(r) = &self.phase else {
            return Err(FrameError::BadControl);
        };
        let since = r.since;
        self.last_rx = now;
        self.last_tx = now;
        self.enter_logged_in();
        if self.out.resume(last).is_err() {
            // The server claims frames we never sent: the session cannot go on.
            return Err(FrameError::BadControl);
        }
        if let Some(res) = &mut self.resume {
            res.secret = secret;
        }
        // Request timers resume where they were paused.
        let offline = now.saturating_duration_since(since);
        self.requests.resume(offline, &mut self.timers);
        self.events.emit(Event::LineResumed {
            offline_ms: offline.as_millis() as u64,
        });
        self.ack_cmds();
        Ok(())
    }

    /// The session ends without a logout: every outstanding request gets its result with
    /// `code`, the session's calls end locally, then `line_off(code)`.
    pub(super) fn link_lost(&mut self, code: Code, now: Instant) {
        self.end_everything(code, now);
        for call_id in self.events.take_calls() {
            self.events.emit(Event::NotifyCallHungup {
                call_id,
                usr_ext_dat: String::new(),
            });
        }
        self.events.emit(Event::LineOff { code });
    }

    /// The logout is answered (or the server closed, or the budget ran out): what it did not
    /// answer ends with 12, and a login made meanwhile starts.
    pub(super) fn finish_logout(&mut self, now: Instant) {
        self.end_everything(code(CRVIDEOSDK_NOT_LOGIN), now);
        self.events.forget_calls();
        if let Some(login) = self.next_login.take() {
            self.start_login(login, now);
        }
    }

    /// Common to every end of a session: requests, cmds and streams end with `code`.
    fn end_everything(&mut self, code: Code, now: Instant) {
        self.enter(Phase::LoggedOut);
        self.gen = self.gen.next();
        self.out.clear();
        self.resume = None;
        self.notify_cookie = Arc::from("");
        for p in self.requests.take_all(&mut self.timers) {
            self.fail(p, code, now);
        }
        self.cmds.end_all(code, &mut self.events);
        self.xfers.end_all(code, &mut self.events);
        self.taken_cmd = 0;
    }
}
