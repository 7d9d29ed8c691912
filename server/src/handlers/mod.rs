//! What the server does with each message of a connection, one module per area, each an
//! `impl Peer` block holding the handlers of its messages (the shape of mini-redis's `cmd/`):
//!
//! - [`session`]: `hello`, `login`, `logout`;
//! - [`presence`]: do-not-disturb, the status list, status subscriptions;
//! - [`meetings`]: create, destroy, list (durable, through the meeting store);
//! - [`calls`]: call, accept, reject, hang up (the state machine is [`crate::calls`]);
//! - [`data`]: cmds, buffer and file streams (routed by [`crate::relay`]).
//!
//! `conn.rs` owns the socket: it decodes frames, enforces deadlines and limits, and calls
//! [`Peer::on_msg`] / [`Peer::on_data`]. Every field is checked once, by the protocol's
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

use crate::conn::{Ctx, End, ResumeReq};
use crate::hub::{ConnId, Gen};
use crate::link::Msg;
use crate::outbox::{Out, Outbox};

/// Where a connection is in its life.
pub enum Phase {
    AwaitHello,
    LoggedOut,
    LoggedIn(User),
}

/// The user a connection is logged in as.
#[derive(Debug, Clone)]
pub struct User {
    /// The tenant's app ID.
    pub tenant: String,
    pub user_id: String,
    /// The login's generation in the shared state (its identity in [`crate::hub`]).
    pub gen: Gen,
    /// The session's ID when it may be resumed (SPEC §3.6).
    pub session: Option<String>,
}

/// One connection as the handlers see it — once logged in, the session, which may outlive its
/// connection and go on on another (SPEC §3.6).
pub struct Peer {
    /// The session's identity in the hub and the relay: the ID of the connection it logged in
    /// on (or, before login, this connection's).
    pub id: ConnId,
    /// The connection the session is on now.
    pub conn: ConnId,
    pub addr: SocketAddr,
    pub ctx: Arc<Ctx>,
    pub outbox: Outbox,
    pub phase: Phase,
}

impl Peer {
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
                self.ctx.relay.cmd_ack(self.id, upto);
                None
            }
            ClientMsg::DataEnd { sid, hash } => {
                let (from, h) = (user.gen, hash.clone());
                if !self.forwarded(user, sid, || Msg::DataEnd { from, sid, hash: h }) {
                    self.ctx.relay.data_end(self.id, sid, hash);
                }
                None
            }
            ClientMsg::Cancel { sid } => {
                let from = user.gen;
                if !self.forwarded(user, sid, || Msg::Cancel { from, sid }) {
                    self.ctx.relay.cancel(&self.sender(), sid);
                }
                None
            }
            ClientMsg::Ack { sid, bytes } => {
                self.ctx.relay.ack(self.id, sid, bytes);
                None
            }
            ClientMsg::Fin { sid, code } => {
                self.ctx.relay.fin(self.id, sid, code);
                None
            }
            ClientMsg::CancelAck { sid, code } => {
                self.ctx.relay.cancel_ack(self.id, sid, code);
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
    pub fn stand_in(&self) -> Peer {
        Peer {
            id: self.conn,
            conn: self.conn,
            addr: self.addr,
            ctx: Arc::clone(&self.ctx),
            outbox: Outbox::default(),
            phase: Phase::LoggedOut,
        }
    }

    /// Logs the session out of the hub and the relay (if it is still the user's). Returns
    /// ` app "…" user "…"` for the log when it was logged in.
    pub async fn leave(&mut self) -> String {
        self.outbox.close();
        self.logout_session().await
    }

    /// [`Peer::leave`] without closing the outbox first (a logout's answer follows).
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

    /// What [`Peer::leave`] does on this node, at once: the session leaves this node's
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
        self.ctx.relay.session_ended(self.id);
        if let Some(links) = &self.ctx.links {
            links.session_ended(user.gen);
        }
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
