//! One task per connection: handshake, login, the requests of SPEC §3.1–§3.3 in arrival order,
//! heartbeats, and a teardown that always leaves presence right.
//!
//! The reader (this task) decodes frames and handles each request to completion before the
//! next, so replies leave in request order. Everything outgoing goes through the connection's
//! [`Outbox`] to its writer task ([`run_writer`]); the reader never writes to the socket.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crvm_proto::error::{
    CRVIDEOSDK_ANCTPSWD_ERR, CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_FORCEDCLOSECONNECTION,
    CRVIDEOSDK_INVALID_CALLID, CRVIDEOSDK_LOGINSTATE_ERROR, CRVIDEOSDK_MEETNOTEXIST,
    CRVIDEOSDK_MEETPARAM_ERR, CRVIDEOSDK_MISMATCHCLIENTVER, CRVIDEOSDK_NOERR, CRVIDEOSDK_NOT_LOGIN,
    CRVIDEOSDK_SENDBUFFER_LARGE, CRVIDEOSDK_SENDCMD_LARGE, CRVIDEOSDK_SENDDATA_TARGETINVALID,
    CRVIDEOSDK_SENDFILE_FILEINERROR, CRVIDEOSDK_SERVER_EXCEPTION, CRVIDEOSDK_USER_BEEN_KICKOUT,
};
use crvm_proto::frame::MAX_PAYLOAD_TO_SERVER;
use crvm_proto::msg::{limits, valid_meet_obj, xfer};
use crvm_proto::{ClientMsg, Decoder, Frame, Kind, Meeting, ServerMsg, XferKind, PROTOCOL_VERSION};
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::auth::{self, Credentials};
use crate::config::Config;
use crate::hub::{CallRequest, ConnId, Hub, Requester, Session};
use crate::limits::{Bucket, LoginLimiter};
use crate::log;
use crate::outbox::{run_writer, Out, Outbox, State, CONTROL_LIMIT};
use crate::random;
use crate::relay::{Endpoint, Relay};
use crate::server::Connections;
use crate::store::{run_blocking, MeetingDraft, MeetingRecord, MeetingStore};

/// How long a closing connection's writer may take to flush before it is cut off.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// After our last frame, read and discard what the peer still sends for at most this long
/// (and [`LINGER_BYTES`]) so that closing with unread input does not reset the connection
/// and destroy the final `Close` before the peer reads it.
const LINGER: Duration = Duration::from_secs(5);
/// Enough for every transfer window a client may still have in flight towards us.
const LINGER_BYTES: usize = xfer::MAX_INCOMING * xfer::WINDOW as usize;
/// Longest client-supplied text copied into a log line or a close reason.
const LOG_CLIP: usize = 160;

/// What every connection shares.
pub struct Ctx {
    pub config: Arc<Config>,
    pub hub: Arc<dyn Hub>,
    pub store: Arc<dyn MeetingStore>,
    pub relay: Arc<Relay>,
    pub conns: Connections,
    /// Set when the server speaks TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub logins: LoginLimiter,
}

/// Where a connection is in its life.
enum Phase {
    AwaitHello,
    LoggedOut,
    LoggedIn { tenant: String, user_id: String },
}

/// Why the read loop ended.
enum End {
    PeerClosed,
    ReadFailed(io::Error),
    /// Nothing received for the idle timeout.
    Idle,
    /// This connection queued `Close{code}`.
    Closed {
        code: i32,
        reason: String,
    },
    LoginFailed(i32),
    Logout,
    /// Someone else stopped the outbox: kick, shutdown, overflow or a failed write.
    Stopped,
}

struct Conn {
    id: ConnId,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    outbox: Outbox,
    phase: Phase,
}

/// Serves one accepted connection until it ends.
pub async fn serve<S>(id: ConnId, stream: S, peer: SocketAddr, ctx: Arc<Ctx>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let outbox = Outbox::default();
    let ack = Arc::new(AtomicU64::new(0));
    let mut writer = tokio::spawn(run_writer(
        wr,
        outbox.clone(),
        Arc::clone(&ack),
        ctx.config.heartbeat(),
    ));
    if !ctx.conns.add(id, &outbox) {
        outbox.close_with(&shutdown_msg());
    }
    let mut conn = Conn {
        id,
        peer,
        ctx: Arc::clone(&ctx),
        outbox: outbox.clone(),
        phase: Phase::AwaitHello,
    };
    let end = conn.read_loop(&mut rd, &ack).await;

    // Leave the hub first so no more pushes are queued for a connection that is going away.
    let who = conn.leave();
    log!("conn {id} closed ({peer}){who}: {}", conn.describe(&end));

    match outbox.state() {
        State::Overflow | State::Broken => writer.abort(),
        _ => {
            outbox.close();
            match tokio::time::timeout(FLUSH_TIMEOUT, &mut writer).await {
                Ok(_) => {
                    if !matches!(end, End::PeerClosed | End::ReadFailed(_)) {
                        linger(&mut rd).await;
                    }
                }
                Err(_) => writer.abort(),
            }
        }
    }
}

/// `Close{206}`, sent to every connection when the server stops.
pub fn shutdown_msg() -> ServerMsg {
    ServerMsg::Close {
        code: CRVIDEOSDK_FORCEDCLOSECONNECTION,
        reason: "server shutting down".into(),
    }
}

/// Reads and discards until EOF, an error, or the linger bounds.
async fn linger(rd: &mut (impl AsyncRead + Unpin)) {
    // On the heap: a buffer here would be part of every connection task's size.
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while total < LINGER_BYTES {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Should a bug panic inside a connection, presence must still not show a ghost user.
impl Drop for Conn {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What woke the read loop.
enum Wake {
    Stopped,
    Timeout,
    Read(io::Result<usize>),
}

impl Conn {
    /// Logs the session out of the hub (if it is still the user's) and unregisters the
    /// connection. Returns ` app "…" user "…"` for the log when it was logged in.
    fn leave(&mut self) -> String {
        self.ctx.conns.remove(self.id);
        match std::mem::replace(&mut self.phase, Phase::LoggedOut) {
            Phase::LoggedIn { tenant, user_id } => {
                // Closed first, so that no transfer can be offered to this session once the
                // relay has ended the ones it had (see `Relay::offer`).
                self.outbox.close();
                self.ctx.hub.logout(&tenant, &user_id, self.id);
                self.ctx.relay.session_ended(self.id);
                format!(" app {tenant:?} user {user_id:?}")
            }
            _ => String::new(),
        }
    }

    async fn read_loop(&mut self, rd: &mut (impl AsyncRead + Unpin), ack: &AtomicU64) -> End {
        let config = Arc::clone(&self.ctx.config);
        let mut dec = Decoder::new(MAX_PAYLOAD_TO_SERVER);
        let hello_deadline = Instant::now() + config.hello_timeout();
        let idle = config.idle_timeout();
        let frame_timeout = config.frame_timeout();
        let mut requests = Bucket::new(config.max_requests_per_s, 2 * config.max_requests_per_s);
        let mut last_rx = Instant::now();
        // When the frame now partly buffered began to arrive: it must complete in time.
        let mut partial_since: Option<Instant> = None;
        loop {
            let mut decoded = false;
            loop {
                if !self.outbox.is_open() {
                    return End::Stopped;
                }
                match dec.next_frame() {
                    Ok(Some(frame)) => {
                        decoded = true;
                        ack.store(dec.last_seq(), Ordering::Release);
                        // Data is paced by flow control; everything else counts as a request.
                        if frame.kind != Kind::Data && !requests.take(Instant::now().into_std()) {
                            return self.close(CRVIDEOSDK_ERR_DATA, "request flood".into());
                        }
                        // Boxed: the request handlers' states (storage, calls) are large and
                        // alive only while a request runs; unboxed they would size every idle
                        // connection's task.
                        if let Some(end) = Box::pin(self.on_frame(frame)).await {
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.close(CRVIDEOSDK_ERR_DATA, e.to_string()),
                }
            }
            partial_since = match dec.buffered() {
                0 => None,
                // A frame was completed, so the clock restarts for the one now partly buffered,
                // from now: the time this connection spent handling requests (storage, locks) is
                // not the client's slowness. (Keeping the older time would also cut off a client
                // that streams frames without ever leaving the buffer empty between two reads.)
                _ if decoded => Some(Instant::now()),
                _ => partial_since.or(Some(last_rx)),
            };
            let mut deadline = match self.phase {
                Phase::AwaitHello => hello_deadline,
                _ => last_rx + idle,
            };
            if let Some(since) = partial_since {
                deadline = deadline.min(since + frame_timeout);
            }
            // Bytes already received are taken before any deadline is judged: after a long
            // request the deadline may have passed while the client's data sat in the socket.
            let wake = tokio::select! {
                biased;
                _ = self.outbox.stopped() => Wake::Stopped,
                r = rd.read(dec.spare()) => Wake::Read(r),
                _ = tokio::time::sleep_until(deadline) => Wake::Timeout,
            };
            match wake {
                Wake::Stopped => return End::Stopped,
                Wake::Timeout
                    if partial_since.is_some_and(|p| Instant::now() >= p + frame_timeout) =>
                {
                    return self.close(CRVIDEOSDK_ERR_DATA, "frame not completed in time".into());
                }
                Wake::Timeout if matches!(self.phase, Phase::AwaitHello) => {
                    return self.close(CRVIDEOSDK_ERR_DATA, "no hello in time".into());
                }
                Wake::Timeout => return End::Idle,
                Wake::Read(Ok(0)) => return End::PeerClosed,
                Wake::Read(Ok(n)) => {
                    dec.filled(n);
                    last_rx = Instant::now();
                }
                Wake::Read(Err(e)) => return End::ReadFailed(e),
            }
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Option<End> {
        if matches!(self.phase, Phase::AwaitHello) && frame.kind != Kind::Control {
            return Some(self.close(CRVIDEOSDK_ERR_DATA, "first frame must be hello".into()));
        }
        match frame.kind {
            Kind::Ping => {
                self.send_out(Out::Pong);
                None
            }
            Kind::Pong => None,
            Kind::Data => {
                if !matches!(self.phase, Phase::LoggedIn { .. }) {
                    return Some(self.close(CRVIDEOSDK_NOT_LOGIN, "log in first".into()));
                }
                // The decoder guarantees the 8-byte stream ID.
                let sid = u64::from_be_bytes(frame.payload[..8].try_into().unwrap());
                match self.ctx.relay.data(self.id, sid, frame.payload) {
                    Ok(()) => None,
                    Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
                }
            }
            Kind::Control => {
                let (json, attachment) = match frame.control() {
                    Ok(parts) => parts,
                    Err(e) => return Some(self.close(CRVIDEOSDK_ERR_DATA, e.to_string())),
                };
                match serde_json::from_slice::<ClientMsg>(json) {
                    Ok(msg) => self.on_msg(msg, attachment).await,
                    Err(_) if self.foreign_hello(json) => Some(self.close(
                        CRVIDEOSDK_MISMATCHCLIENTVER,
                        "unsupported protocol version".into(),
                    )),
                    Err(e) => Some(self.close(
                        CRVIDEOSDK_ERR_DATA,
                        format!("bad control message: {}", clip(&e.to_string())),
                    )),
                }
            }
        }
    }

    /// Whether an unparsable first message is a `Hello` of another protocol version. Its other
    /// fields may have changed shape, but `t` and `ver` never do, so such a client still learns
    /// it needs another version (4) rather than that it sent garbage (6).
    fn foreign_hello(&self, json: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct AnyHello {
            t: String,
            ver: u32,
        }
        matches!(self.phase, Phase::AwaitHello)
            && serde_json::from_slice::<AnyHello>(json)
                .is_ok_and(|h| h.t == "hello" && h.ver != PROTOCOL_VERSION)
    }

    async fn on_msg(&mut self, msg: ClientMsg, attachment: &[u8]) -> Option<End> {
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
                ClientMsg::Login {
                    id,
                    app_id,
                    secret,
                    user_id,
                    nick,
                    token,
                },
            ) => self.login(id, app_id, &secret, user_id, &nick, &token),
            (Phase::LoggedOut, _) => Some(self.close(CRVIDEOSDK_NOT_LOGIN, "log in first".into())),
            (Phase::LoggedIn { tenant, user_id }, msg) => {
                let (tenant, user_id) = (tenant.clone(), user_id.clone());
                self.request(&tenant, &user_id, msg, attachment).await
            }
        }
    }

    fn hello(&mut self, ver: u32) -> Option<End> {
        if ver != PROTOCOL_VERSION {
            return Some(self.close(
                CRVIDEOSDK_MISMATCHCLIENTVER,
                format!("protocol version {ver} is not supported; this server speaks {PROTOCOL_VERSION}"),
            ));
        }
        self.phase = Phase::LoggedOut;
        let c = &self.ctx.config;
        self.send(&ServerMsg::Welcome {
            ver: PROTOCOL_VERSION,
            heartbeat_ms: c.heartbeat_ms,
            max_buffer_bytes: c.max_buffer_bytes,
            max_file_bytes: c.max_file_bytes,
        });
        None
    }

    fn login(
        &mut self,
        id: u64,
        app_id: String,
        secret: &str,
        user_id: String,
        nick: &str,
        token: &str,
    ) -> Option<End> {
        let too_long = app_id.len() > limits::APP_ID_MAX
            || secret.len() > limits::SECRET_MAX
            || user_id.len() > limits::USER_ID_MAX
            || nick.len() > limits::NICK_MAX
            || token.len() > limits::OPAQUE_MAX;
        let limited = !self.ctx.logins.allowed(self.peer.ip(), &app_id);
        let result = if too_long {
            Err(CRVIDEOSDK_MEETPARAM_ERR)
        } else if limited {
            // Too many failures from here or into this tenant: refused like a wrong secret,
            // without looking at the credentials, for the rest of the minute.
            Err(CRVIDEOSDK_ANCTPSWD_ERR)
        } else {
            let cred = Credentials {
                app_id: &app_id,
                secret,
                user_id: &user_id,
                token,
            };
            auth::authenticate(&self.ctx.config, &cred, now_secs() as u64)
        };
        let user = match result {
            Ok(user) => user,
            Err(code) => {
                if !limited && code != CRVIDEOSDK_MEETPARAM_ERR {
                    self.ctx.logins.failed(self.peer.ip(), &app_id);
                }
                log!(
                    "conn {} login failed ({}): app {:?} user {:?}: code {code}{}",
                    self.id,
                    self.peer,
                    clip(&app_id),
                    clip(&user_id),
                    if limited {
                        " (too many failed logins)"
                    } else {
                        ""
                    }
                );
                self.reply(id, code);
                self.outbox.close();
                return Some(End::LoginFailed(code));
            }
        };
        let kicked = self.ctx.hub.login(Session {
            conn_id: self.id,
            tenant: app_id.clone(),
            user_id: user.clone(),
            outbox: self.outbox.clone(),
        });
        if let Some(old) = kicked {
            log!(
                "conn {old} kicked: app {:?} user {:?} logged in again on conn {}",
                app_id,
                user,
                self.id
            );
        }
        log!(
            "conn {} login ok ({}): app {:?} user {:?}",
            self.id,
            self.peer,
            app_id,
            user
        );
        self.send(&ServerMsg::LoginOk {
            re: id,
            user_id: user.clone(),
        });
        self.phase = Phase::LoggedIn {
            tenant: app_id,
            user_id: user,
        };
        None
    }

    /// A request of a logged-in session.
    async fn request(
        &mut self,
        tenant: &str,
        user_id: &str,
        msg: ClientMsg,
        attachment: &[u8],
    ) -> Option<End> {
        let hub = Arc::clone(&self.ctx.hub);
        let conn_id = self.id;
        // `false` from the hub means this session was replaced meanwhile (it is being kicked).
        let code = |ok: bool| {
            if ok {
                CRVIDEOSDK_NOERR
            } else {
                CRVIDEOSDK_NOT_LOGIN
            }
        };
        match msg {
            ClientMsg::Hello { .. } => unreachable!("handled in on_msg"),
            ClientMsg::Login { id, .. } => self.reply(id, CRVIDEOSDK_LOGINSTATE_ERROR),
            ClientMsg::Logout { id } => {
                // Out of the registry first (no new transfer can reach this session), then
                // its transfers end: their peers are told (SPEC §3.1: logout leaves no trace).
                hub.logout(tenant, user_id, conn_id);
                self.ctx.relay.session_ended(conn_id);
                log!("conn {conn_id} logout: app {tenant:?} user {user_id:?}");
                self.phase = Phase::LoggedOut;
                self.reply(id, CRVIDEOSDK_NOERR);
                self.outbox.close();
                return Some(End::Logout);
            }
            ClientMsg::SetDnd { id, dnd } => {
                let ok = hub.set_dnd(tenant, user_id, conn_id, dnd);
                self.reply(id, code(ok));
            }
            ClientMsg::GetUserStatus { id } => {
                let list = hub.statuses(tenant);
                self.send(&ServerMsg::Statuses { re: id, list });
            }
            ClientMsg::StartStatusNotify { id } => {
                let ok = hub.set_notify(tenant, user_id, conn_id, true);
                self.reply(id, code(ok));
            }
            ClientMsg::StopStatusNotify { id } => {
                let ok = hub.set_notify(tenant, user_id, conn_id, false);
                self.reply(id, code(ok));
            }
            ClientMsg::CreateMeeting {
                id,
                subject,
                with_pswd,
            } => {
                self.create_meeting(id, tenant, user_id, subject, with_pswd)
                    .await
            }
            ClientMsg::DestroyMeeting { id, meet_id } => {
                self.destroy_meeting(id, tenant, user_id, meet_id).await
            }
            ClientMsg::Call {
                id,
                call_id,
                callee,
                meet_obj,
                ext,
            } => {
                let req = CallRequest {
                    call_id: &call_id,
                    callee: &callee,
                    meet_obj: &meet_obj,
                    ext: &ext,
                };
                self.call(id, tenant, user_id, &req);
            }
            ClientMsg::AcceptCall {
                id,
                call_id,
                meet_obj,
                ext,
            } => {
                let at = self.requester(tenant, user_id, id);
                let r = call_fields_ok(&call_id, &ext, &meet_obj)
                    .and_then(|()| hub.accept(&at, &call_id, &meet_obj, &ext));
                self.call_failed(id, "accept", &call_id, r);
            }
            ClientMsg::RejectCall { id, call_id, ext } => {
                let at = self.requester(tenant, user_id, id);
                let r = call_fields_ok(&call_id, &ext, "")
                    .and_then(|()| hub.reject(&at, &call_id, &ext));
                self.call_failed(id, "reject", &call_id, r);
            }
            ClientMsg::HangupCall { id, call_id, ext } => {
                let at = self.requester(tenant, user_id, id);
                let r = call_fields_ok(&call_id, &ext, "")
                    .and_then(|()| hub.hangup(&at, &call_id, &ext));
                self.call_failed(id, "hangup", &call_id, r);
            }
            ClientMsg::Offer {
                id,
                task,
                to,
                kind,
                size,
                name,
            } => {
                let offer = OfferReq {
                    task: &task,
                    to: &to,
                    kind,
                    size,
                    name: &name,
                };
                if let Err(code) = self.offer(id, tenant, user_id, &offer, attachment) {
                    self.reply(id, code);
                }
            }
            ClientMsg::DataEnd { sid, hash } => {
                if hash.len() <= HASH_MAX {
                    self.ctx.relay.data_end(conn_id, sid, hash);
                }
            }
            ClientMsg::Cancel { sid } => self.ctx.relay.cancel(&self.endpoint(), sid),
            ClientMsg::Ack { sid, bytes } => self.ctx.relay.ack(conn_id, sid, bytes),
            ClientMsg::Fin { sid, code } => self.ctx.relay.fin(conn_id, sid, code),
            ClientMsg::CancelAck { sid, code } => self.ctx.relay.cancel_ack(conn_id, sid, code),
            ClientMsg::GetMeetings { id } => {
                let t = tenant.to_owned();
                match run_blocking(&self.ctx.store, move |s| s.list(&t)).await {
                    Ok(list) => {
                        let list = list.into_iter().map(|r| self.meeting(r)).collect();
                        self.send(&ServerMsg::Meetings { re: id, list });
                    }
                    Err(e) => self.store_failed(id, "list meetings", &e),
                }
            }
        }
        None
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            conn_id: self.id,
            outbox: self.outbox.clone(),
        }
    }

    /// Checks an offer (request `re`), registers the transfer, answers `offer_ok` and tells the
    /// receiver.
    fn offer(
        &self,
        re: u64,
        tenant: &str,
        from: &str,
        o: &OfferReq<'_>,
        attachment: &[u8],
    ) -> Result<(), i32> {
        let c = &self.ctx.config;
        let fields_ok = !o.task.is_empty()
            && o.task.len() <= limits::ID_MAX
            && !o.to.is_empty()
            && o.to.len() <= limits::USER_ID_MAX
            && o.name.len() <= limits::PATH_MAX
            && o.to != from;
        if !fields_ok {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        match o.kind {
            XferKind::Cmd if attachment.len() > xfer::CMD_MAX => {
                return Err(CRVIDEOSDK_SENDCMD_LARGE)
            }
            XferKind::Cmd if attachment.len() as u64 != o.size => {
                return Err(CRVIDEOSDK_MEETPARAM_ERR)
            }
            XferKind::Buffer if o.size > c.max_buffer_bytes => {
                return Err(CRVIDEOSDK_SENDBUFFER_LARGE)
            }
            XferKind::File if o.size > c.max_file_bytes => {
                return Err(CRVIDEOSDK_SENDFILE_FILEINERROR)
            }
            _ => {}
        }
        let (conn_id, outbox) = self
            .ctx
            .hub
            .session_of(tenant, o.to)
            .ok_or(CRVIDEOSDK_SENDDATA_TARGETINVALID)?;
        let receiver = Endpoint { conn_id, outbox };
        let to_receiver = receiver.outbox.clone();
        let sid = self
            .ctx
            .relay
            .offer(self.endpoint(), receiver, o.kind, o.size)?;
        let incoming = ServerMsg::Incoming {
            sid,
            task: o.task.to_owned(),
            from: from.to_owned(),
            kind: o.kind,
            size: o.size,
            name: o.name.to_owned(),
        };
        let out = if o.kind == XferKind::Cmd {
            Out::attached(&incoming, attachment.to_vec())
        } else {
            Out::msg(&incoming)
        };
        // `offer_ok` is queued first: once the receiver has `incoming` it may answer `fin` at
        // once (a cmd needs nothing more), and the `xfer_end` that follows must not reach the
        // sender before the `offer_ok` that tells it the stream ID. `incoming` still precedes
        // every chunk: the sender's chunks are read by this connection's loop, which is here.
        self.send(&ServerMsg::OfferOk { re, sid });
        let _ = to_receiver.push(out);
        Ok(())
    }

    fn requester<'a>(&self, tenant: &'a str, user_id: &'a str, re: u64) -> Requester<'a> {
        Requester {
            tenant,
            user_id,
            conn_id: self.id,
            re,
        }
    }

    /// Rings the callee and arms the no-answer timer.
    fn call(&self, id: u64, tenant: &str, caller: &str, req: &CallRequest<'_>) {
        let valid = !req.call_id.is_empty()
            && req.call_id.len() <= limits::ID_MAX
            && !req.callee.is_empty()
            && req.callee.len() <= limits::USER_ID_MAX
            && req.ext.len() <= limits::OPAQUE_MAX
            && valid_meet_obj(req.meet_obj);
        let r = if valid {
            self.ctx.hub.call(&self.requester(tenant, caller, id), req)
        } else {
            Err(CRVIDEOSDK_MEETPARAM_ERR)
        };
        if let Ok(serial) = r {
            let hub = Arc::clone(&self.ctx.hub);
            let timeout = Duration::from_secs(self.ctx.config.call_timeout_s);
            let (tenant, call_id) = (tenant.to_owned(), req.call_id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                hub.no_answer(&tenant, &call_id, serial);
            });
        }
        self.call_failed(id, "call", req.call_id, r);
    }

    /// Answers a call request that failed (a successful one was answered by the hub, in order
    /// with the notifications it caused).
    fn call_failed<T>(&self, id: u64, what: &str, call_id: &str, r: Result<T, i32>) {
        if let Err(code) = r {
            log!("conn {} {what} {:?}: code {code}", self.id, clip(call_id));
            self.reply(id, code);
        }
    }

    async fn create_meeting(
        &mut self,
        id: u64,
        tenant: &str,
        user_id: &str,
        subject: String,
        with_pswd: bool,
    ) {
        if subject.chars().count() > limits::SUBJECT_MAX_CHARS {
            return self.reply(id, CRVIDEOSDK_MEETPARAM_ERR);
        }
        let draft = MeetingDraft {
            pswd: if with_pswd {
                random::digits(6)
            } else {
                String::new()
            },
            subject,
            creator: user_id.to_owned(),
            start_time: now_secs(),
        };
        let t = tenant.to_owned();
        match run_blocking(&self.ctx.store, move |s| s.create(&t, &draft)).await {
            Ok(r) => {
                let meeting = self.meeting(r);
                self.send(&ServerMsg::MeetingCreated { re: id, meeting });
            }
            Err(e) => self.store_failed(id, "create meeting", &e),
        }
    }

    async fn destroy_meeting(&mut self, id: u64, tenant: &str, user_id: &str, meet_id: i32) {
        if meet_id <= 0 {
            return self.reply(id, CRVIDEOSDK_MEETNOTEXIST);
        }
        let (t, u) = (tenant.to_owned(), user_id.to_owned());
        match run_blocking(&self.ctx.store, move |s| s.destroy(&t, meet_id, &u)).await {
            Ok(true) => self.reply(id, CRVIDEOSDK_NOERR),
            Ok(false) => self.reply(id, CRVIDEOSDK_MEETNOTEXIST),
            Err(e) => self.store_failed(id, "destroy meeting", &e),
        }
    }

    fn meeting(&self, r: MeetingRecord) -> Meeting {
        Meeting {
            id: r.id,
            pub_meet_url: self.ctx.config.meet_url(r.id),
            pswd: r.pswd,
            subject: r.subject,
            creator: r.creator,
            member_count: 0,
            start_time: r.start_time,
        }
    }

    fn store_failed(&self, id: u64, what: &str, e: &impl std::fmt::Display) {
        log!("conn {} {what} failed: storage error: {e}", self.id);
        self.reply(id, CRVIDEOSDK_SERVER_EXCEPTION);
    }

    fn reply(&self, re: u64, code: i32) {
        self.send(&ServerMsg::Reply { re, code });
    }

    fn send(&self, msg: &ServerMsg) {
        self.send_out(Out::msg(msg));
    }

    /// Queues a frame. A refused push needs no handling here: overflow stops the outbox, which
    /// ends the read loop, and a closing outbox drops late messages on purpose.
    fn send_out(&self, out: Out) {
        let _ = self.outbox.push(out);
    }

    /// Queues `Close{code}` as the last frame.
    fn close(&self, code: i32, reason: String) -> End {
        self.outbox.close_with(&ServerMsg::Close {
            code,
            reason: reason.clone(),
        });
        End::Closed { code, reason }
    }

    fn describe(&self, end: &End) -> String {
        match end {
            End::PeerClosed => "peer closed the connection".into(),
            End::ReadFailed(e) => format!("read failed: {e}"),
            End::Idle => format!(
                "nothing received for {} ms",
                self.ctx.config.idle_timeout().as_millis()
            ),
            End::Closed { code, reason } => {
                let kind = match *code {
                    CRVIDEOSDK_ERR_DATA => "protocol error",
                    CRVIDEOSDK_MISMATCHCLIENTVER => "version mismatch",
                    CRVIDEOSDK_NOT_LOGIN => "request before login",
                    _ => "closed",
                };
                format!("{kind} (code {code}): {reason:?}")
            }
            End::LoginFailed(code) => format!("login failed (code {code})"),
            End::Logout => "logout".into(),
            End::Stopped => match self.outbox.state() {
                State::Closing {
                    code: Some(CRVIDEOSDK_USER_BEEN_KICKOUT),
                } => "kicked by a newer login (code 10)".into(),
                State::Closing {
                    code: Some(CRVIDEOSDK_FORCEDCLOSECONNECTION),
                } => "server shutdown (code 206)".into(),
                State::Overflow => {
                    format!("slow consumer: outbound queue over {CONTROL_LIMIT} bytes, dropped")
                }
                State::Broken => "write failed".into(),
                State::Closing { code } => format!("closed (code {code:?})"),
                State::Open => "stopped".into(),
            },
        }
    }
}

/// An `offer` request's fields.
struct OfferReq<'a> {
    task: &'a str,
    to: &'a str,
    kind: XferKind,
    size: u64,
    name: &'a str,
}

/// Longest checksum text relayed (an XXH3-128 is 32 hex digits).
const HASH_MAX: usize = 64;

/// Limits of accept/reject/hang-up fields: a malformed call ID cannot name a call (600);
/// over-long or malformed data is refused (5).
fn call_fields_ok(call_id: &str, ext: &str, meet_obj: &str) -> Result<(), i32> {
    if call_id.is_empty() || call_id.len() > limits::ID_MAX {
        return Err(CRVIDEOSDK_INVALID_CALLID);
    }
    if ext.len() > limits::OPAQUE_MAX || !valid_meet_obj(meet_obj) {
        return Err(CRVIDEOSDK_MEETPARAM_ERR);
    }
    Ok(())
}

/// Unix time in seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// At most [`LOG_CLIP`] bytes of `s`, cut at a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= LOG_CLIP {
        return s;
    }
    let mut end = LOG_CLIP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
