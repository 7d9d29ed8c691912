//! What the server does with each message of a connection, one module per area, each an
//! `impl ServerSession` block holding the handlers of its messages (the shape of mini-redis's `cmd/`):
//!
//! - [`session`]: `hello`, `login`, `logout`;
//! - [`presence`]: do-not-disturb, the status list, status subscriptions;
//! - [`meetings`]: create, destroy, list (durable, through the meeting store);
//! - [`calls`]: call, accept, reject, hang up (the state machine is [`crate::calls`]);
//! - [`data`]: cmds, buffer and file streams (routed by [`crate::route`]).
//!
//! `conn.rs` owns the socket: it decodes frames, enforces deadlines and limits, and calls
//! [`ServerSession::on_msg`] / [`ServerSession::on_data`]. Every field is checked once, by the protocol's
//! [`ClientMsg::validate`], before any handler runs.

mod calls;
mod data;
mod meetings;
mod presence;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use crvm_proto::error::{CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_LOGINSTATE_ERROR, CRVIDEOSDK_NOT_LOGIN};
use crvm_proto::{ClientMsg, Op, ServerMsg, SizeLimits};

use crate::ctx::Ctx;
use crate::ids::ConnId;
use crate::outbox::{Out, Outbox};
use crate::session::{ParkedSession, Phase, User};

/// Why a connection's read loop ended.
pub enum End {
    PeerClosed,
    ReadFailed(std::io::Error),
    /// Nothing received for the idle timeout.
    Idle,
    /// This connection queued `Close{code}`.
    Closed {
        code: i32,
        reason: String,
    },
    LoginFailed(i32),
    Logout,
    /// Someone else stopped the outbox: kick, shutdown, overflow, a failed write, or a
    /// resume of the session on another connection.
    Stopped,
    /// The client asks to resume a session on this connection.
    Resume(ResumeReq),
    /// A resume was refused with this code (207, 10), or deferred (0: retry later).
    ResumeRefused(i32),
}

/// A `resume` as received.
pub struct ResumeReq {
    pub app_id: String,
    pub session: String,
    pub secret: String,
    pub last: u64,
}

/// One connection as the handlers see it — once logged in, the session, which may outlive its
/// connection and go on on another (docs/API.md §3.6). Its identity in the shared state, the relay and
/// the node links is its login ([`User::gen`]); connections are only where it is.
pub struct ServerSession {
    /// The connection the session logged in on (or, before login, this connection): it names
    /// the session in logs.
    pub login_conn: ConnId,
    /// The connection the session is on now.
    pub conn: ConnId,
    pub addr: SocketAddr,
    pub ctx: Arc<Ctx>,
    pub outbox: Outbox,
    pub phase: Phase,
    /// The web page (`Origin`) of a browser on a WebSocket connection; `None` for every other
    /// client. Checked against the tenant's `allowed_origins` at login.
    pub origin: Option<String>,
}

impl ServerSession {
    /// Handles one control message. `Some` ends the connection.
    pub async fn on_msg(&mut self, msg: ClientMsg, attachment: &[u8]) -> Option<End> {
        match (&self.phase, msg) {
            (Phase::AwaitHello, ClientMsg::Hello { ver, .. }) => self.hello(ver),
            (Phase::AwaitHello, _) => {
                Some(self.close(CRVIDEOSDK_ERR_DATA, "first frame must be hello".into()))
            }
            (_, ClientMsg::Hello { .. }) => {
                Some(self.close(CRVIDEOSDK_ERR_DATA, "hello sent twice".into()))
            }
            (
                Phase::LoggedOut,
                ClientMsg::Req {
                    id,
                    op: op @ Op::Login { .. },
                },
            ) => self.login(id, op).await,
            (Phase::LoggedOut, msg @ ClientMsg::Resume { .. }) => {
                if let Err(code) = msg.validate(&[], &self.sizes()) {
                    return Some(self.close(code.get(), "bad resume".into()));
                }
                let ClientMsg::Resume {
                    app_id,
                    session,
                    secret,
                    last,
                } = msg
                else {
                    unreachable!("matched above")
                };
                Some(End::Resume(ResumeReq {
                    app_id,
                    session,
                    secret,
                    last,
                }))
            }
            (Phase::LoggedOut, _) => Some(self.close(CRVIDEOSDK_NOT_LOGIN, "log in first".into())),
            (Phase::LoggedIn(user), msg) => {
                let user = user.clone();
                self.logged_in(&user, msg, attachment).await
            }
        }
    }

    /// A message of a logged-in session: checked, then handled by its area.
    async fn logged_in(&mut self, user: &User, msg: ClientMsg, attachment: &[u8]) -> Option<End> {
        if let Err(code) = msg.validate(attachment, &self.sizes()) {
            match msg {
                ClientMsg::Req { id, .. } => self.reply(id, code.get()),
                ClientMsg::Cmd { n, .. } => self.cmd_done(n, code.get()),
                // Only a broken client sends a bad stream message: it is dropped.
                _ => {}
            }
            return None;
        }
        match msg {
            ClientMsg::Hello { .. } => unreachable!("handled in on_msg"),
            ClientMsg::Resume { .. } => {
                Some(self.close(CRVIDEOSDK_ERR_DATA, "resume while logged in".into()))
            }
            ClientMsg::Req { id, op } => self.op(user, id, op).await,
            ClientMsg::Cmd { n, to } => self.cmd(user, n, &to, attachment).await,
            ClientMsg::CmdAck { upto } => {
                self.ctx.router.relay().cmd_ack(user.gen, upto);
                None
            }
            ClientMsg::DataEnd { sid, hash } => {
                self.ctx.router.data_end(user.gen, sid, hash);
                None
            }
            ClientMsg::Cancel { sid } => {
                self.ctx.router.cancel(self.end_of(user), sid);
                None
            }
            // A receiver's messages: its transfers run in this node's relay.
            ClientMsg::Ack { sid, bytes } => {
                self.ctx.router.relay().ack(user.gen, sid, bytes);
                None
            }
            ClientMsg::Fin { sid, code } => {
                self.ctx.router.relay().fin(user.gen, sid, code);
                None
            }
            ClientMsg::CancelAck { sid, code } => {
                self.ctx.router.relay().cancel_ack(user.gen, sid, code);
                None
            }
        }
    }

    /// A request of a logged-in session.
    async fn op(&mut self, user: &User, id: u64, op: Op) -> Option<End> {
        match op {
            Op::Login { .. } => self.reply(id, CRVIDEOSDK_LOGINSTATE_ERROR),
            Op::Logout => return Some(self.logout(id).await),
            Op::SetDnd { dnd } => self.set_dnd(user, id, dnd).await,
            Op::GetUserStatus => self.get_user_status(user, id).await,
            Op::StartStatusNotify => self.set_notify(user, id, true).await,
            Op::StopStatusNotify => self.set_notify(user, id, false).await,
            Op::CreateMeeting { subject, with_pswd } => {
                self.create_meeting(user, id, subject, with_pswd).await
            }
            Op::DestroyMeeting { meet_id } => self.destroy_meeting(user, id, meet_id).await,
            Op::GetMeetings => self.get_meetings(user, id).await,
            op @ (Op::Call { .. }
            | Op::AcceptCall { .. }
            | Op::RejectCall { .. }
            | Op::HangupCall { .. }) => self.call_op(user, id, op).await,
            Op::Offer {
                task,
                to,
                kind,
                size,
                name,
            } => self.offer(user, id, task, to, kind, size, name).await,
        }
        None
    }

    /// The transfer limits this server enforces.
    fn sizes(&self) -> SizeLimits {
        SizeLimits {
            max_buffer: self.ctx.config.max_buffer_bytes,
            max_file: self.ctx.config.max_file_bytes,
        }
    }

    fn reply(&self, re: u64, code: i32) {
        self.send(&ServerMsg::reply(re, code));
    }

    fn send(&self, msg: &ServerMsg) {
        self.send_out(Out::msg(msg));
    }

    /// Queues a frame. A refused push needs no handling here: overflow stops the outbox, which
    /// ends the read loop, and a closing outbox drops late messages on purpose.
    pub fn send_out(&self, out: Out) {
        let _ = self.outbox.push(out);
    }

    /// Queues `Close{code}` as the last frame.
    pub fn close(&self, code: i32, reason: String) -> End {
        self.outbox.close_with(&ServerMsg::Close {
            code,
            reason: reason.clone(),
        });
        End::Closed { code, reason }
    }

    /// What stays of this connection once its session is parked: nothing logged in.
    pub fn stand_in(&self) -> ServerSession {
        ServerSession {
            login_conn: self.conn,
            conn: self.conn,
            addr: self.addr,
            ctx: Arc::clone(&self.ctx),
            outbox: Outbox::default(),
            phase: Phase::LoggedOut,
            origin: self.origin.clone(),
        }
    }

    /// This session as parking holds it: without the node's context.
    pub fn into_parked(self) -> ParkedSession {
        ParkedSession {
            login_conn: self.login_conn,
            conn: self.conn,
            addr: self.addr,
            outbox: self.outbox,
            phase: self.phase,
        }
    }

    /// A parked session back at work, with the node's context.
    pub fn from_parked(ctx: Arc<Ctx>, p: ParkedSession) -> ServerSession {
        ServerSession {
            login_conn: p.login_conn,
            conn: p.conn,
            addr: p.addr,
            ctx,
            outbox: p.outbox,
            phase: p.phase,
            // A parked session has no connection; a resume sets its new one's.
            origin: None,
        }
    }

    /// Logs the session out of the hub and the relay (if it is still the user's). Returns
    /// ` app "…" user "…"` for the log when it was logged in.
    pub async fn leave(&mut self) -> String {
        self.outbox.close();
        self.logout_session().await
    }

    /// [`ServerSession::leave`] without closing the outbox first (a logout's answer follows).
    async fn logout_session(&mut self) -> String {
        match self.leave_node() {
            Some(user) => {
                self.ctx
                    .hub
                    .logout(&user.tenant, &user.user_id, user.gen)
                    .await;
                format!(" app {:?} user {:?}", user.tenant, user.user_id)
            }
            None => String::new(),
        }
    }

    /// What [`ServerSession::leave`] does on this node, at once: the session leaves this node's
    /// sessions (nothing new is routed to it), its transfers end. Returns the user, who must
    /// still be logged out of the shared state.
    pub fn leave_node(&mut self) -> Option<User> {
        let Phase::LoggedIn(user) = std::mem::replace(&mut self.phase, Phase::LoggedOut) else {
            return None;
        };
        if let Some(sid) = &user.session {
            self.ctx
                .sessions
                .ended(sid, self.conn, self.outbox.state().kicked());
        }
        self.ctx.local.remove(user.gen);
        self.ctx.router.session_ended(user.gen);
        Some(user)
    }
}

/// Longest client-supplied text copied into a log line or a close reason.
const LOG_CLIP: usize = 160;

/// At most [`LOG_CLIP`] bytes of `s`, cut at a character boundary.
pub fn clip(s: &str) -> &str {
    if s.len() <= LOG_CLIP {
        return s;
    }
    let mut end = LOG_CLIP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
