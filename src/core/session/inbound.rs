//! What the server says, by phase. While logged in, every [`ServerMsg`] is mapped by one
//! exhaustive match ([`State::on_session_msg`]): a message type added to the protocol does not
//! compile until the session says what it means.

use super::super::event::Event;
use super::lifecycle::{Phase, Resumable};
use super::State;
use crvm_proto::error::*;
use crvm_proto::{ClientMsg, Code, FrameError, FrameRef, Kind, Op, Out, Outcome, ServerMsg};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl State {
    /// A data frame whose payload the decoder read into a buffer of its own (acknowledging
    /// `ack`).
    pub(super) fn on_owned_data(
        &mut self,
        ack: u64,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), FrameError> {
        if self.out.acked(ack).is_err() {
            return Err(FrameError::BadControl); // acknowledges a frame never sent
        }
        self.on_data(Cow::Owned(payload), now);
        Ok(())
    }

    fn on_data(&mut self, payload: Cow<'_, [u8]>, now: Instant) {
        if matches!(self.phase, Phase::LoggedIn) {
            let (xfers, mut io) = self.xio(now);
            xfers.recv.on_data(payload, &mut io);
        }
    }

    /// Handles one frame from the server. `Err` is a protocol violation.
    pub(super) fn on_frame(&mut self, f: FrameRef<'_>, now: Instant) -> Result<(), FrameError> {
        // A handshake frame's `ack` belongs to the connection, not to the session's numbering.
        let handshake = f.kind == Kind::Control && f.seq == 0;
        if !handshake && self.out.acked(f.ack).is_err() {
            return Err(FrameError::BadControl); // acknowledges a frame never sent
        }
        match f.kind {
            Kind::Ping => self.out.push(Out::Pong),
            Kind::Pong | Kind::Ack => {}
            Kind::Data => self.on_data(Cow::Borrowed(f.payload), now),
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
            Phase::LoggingIn { .. } => self.on_login_msg(msg, now),
            Phase::Reconnecting(_) => self.on_resume_msg(msg, now),
            Phase::Farewell(_) => {
                self.on_farewell_msg(msg, now);
                Ok(())
            }
            Phase::LoggingOut { logout_id } => {
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
                    ServerMsg::Res { re, result } => self.on_answer(re, result, now),
                    _ => {}
                }
                Ok(())
            }
            Phase::LoggedIn | Phase::LoggedOut | Phase::Connecting { .. } => Ok(()),
        }
    }

    /// The server closes the connection with `c` (its `close`).
    fn closed(&mut self, c: i32, now: Instant) {
        let c = Code::new(c).unwrap_or(code(CRVIDEOSDK_CONNECTIONLOST));
        self.link_ended(c, now);
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
            ServerMsg::Moved { addr, .. } => self.follow_move(addr, now),
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
            // The session's node is draining: it goes on at another node.
            ServerMsg::Moved { addr, .. } => self.follow_move(addr, now),
            // Frames of the session before `resumed` cannot be.
            _ => return Err(FrameError::BadControl),
        }
        Ok(())
    }

    fn on_login_msg(&mut self, msg: ServerMsg, now: Instant) -> Result<(), FrameError> {
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
                self.server = crvm_proto::SizeLimits {
                    max_buffer: max_buffer_bytes,
                    max_file: max_file_bytes,
                };
            }
            ServerMsg::Res {
                re,
                result: Outcome::Login { user_id },
            } if re == login_id => {
                let Phase::LoggingIn { cookie, .. } =
                    std::mem::replace(&mut self.phase, Phase::LoggedOut)
                else {
                    unreachable!("checked above")
                };
                self.enter_logged_in();
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
                self.link_ended(c, now);
            }
            _ => return Err(FrameError::BadControl),
        }
        Ok(())
    }

    /// Answers and pushes of an established session: every message the server may send, each
    /// mapped to what it means here.
    fn on_session_msg(
        &mut self,
        msg: ServerMsg,
        attachment: &[u8],
        now: Instant,
    ) -> Result<(), FrameError> {
        match msg {
            // The login was answered already.
            ServerMsg::Res {
                result: Outcome::Login { .. },
                ..
            } => return Err(FrameError::BadControl),
            ServerMsg::Res { re, result } => self.on_answer(re, result, now),
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
                self.cmds.incoming(n, from, attachment, &mut self.events)?
            }
            ServerMsg::CmdDone { ns, code } => self.cmds.done(ns, code, &mut self.events),
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
                xfers
                    .recv
                    .on_incoming(sid, task, from, kind, size, &name, &mut io);
            }
            ServerMsg::DataEnd { sid, hash } => {
                let (xfers, mut io) = self.xio(now);
                xfers.recv.on_data_end(sid, hash, &mut io);
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
                xfers.recv.on_cancelled(sid, &mut io);
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
            | ServerMsg::Retry { .. }
            | ServerMsg::Moved { .. } => return Err(FrameError::BadControl),
        }
        Ok(())
    }
}

/// Parses a server message. Status pushes and cmds, the bulk of what a busy client receives,
/// take a direct path (written as the server writes them); anything else goes the general way.
fn parse_server_msg(json: &[u8]) -> Option<ServerMsg> {
    if let Some(status) = crvm_proto::UserStatus::parse_push(json) {
        return Some(ServerMsg::UserStatus(status));
    }
    ServerMsg::parse(json).ok()
}
