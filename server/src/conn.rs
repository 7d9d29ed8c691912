//! One task per connection: the transport side of a session. It decodes frames, enforces
//! the deadlines (hello, idle, slow frames) and the request-rate limit, hands each message to
//! its handler ([`crate::handlers`]) to completion before the next, so replies leave in request
//! order, and on teardown always leaves presence right and lingers so that a final `Close` is
//! read rather than reset. A session whose link dropped is parked for a resume instead, and a
//! `resume` takes one over on this connection ([`crate::resume`]).
//!
//! Everything outgoing goes through the connection's [`Outbox`] to its writer task
//! ([`run_writer`]); the reader never writes to the socket.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crvm_proto::error::{
    CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_FORCEDCLOSECONNECTION, CRVIDEOSDK_MISMATCHCLIENTVER,
    CRVIDEOSDK_NOT_LOGIN, CRVIDEOSDK_USER_BEEN_KICKOUT,
};
use crvm_proto::frame::MAX_PAYLOAD_TO_SERVER;
use crvm_proto::msg::xfer;
use crvm_proto::{ClientMsg, Decoder, FrameRef, Kind, ServerMsg, PROTOCOL_VERSION};
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::handlers::{clip, End, ResumeReq, ServerSession};
use crate::ids::ConnId;
use crate::limits::Bucket;
use crate::metrics;
use crate::outbox::{run_writer, Out, Outbox, State, Writer, CONTROL_LIMIT, FLUSH_TIMEOUT};
use crate::resume;
use crate::session::Phase;

/// A standalone acknowledgement is sent after this many frames handled without one having
/// gone out, so that a client that only sends still has its tail acknowledged.
const ACK_EVERY: u64 = 32;

/// After our last frame, read and discard what the peer still sends for at most this long
/// (and [`LINGER_BYTES`]) so that closing with unread input does not reset the connection
/// and destroy the final `Close` before the peer reads it.
const LINGER: Duration = Duration::from_secs(5);
/// Enough for every transfer window and cmd window a client may still have in flight
/// towards us.
const LINGER_BYTES: usize =
    xfer::MAX_OUTGOING * xfer::WINDOW as usize + xfer::CMD_WINDOW_BYTES + 1024 * 1024;

/// A connection: the handlers' [`ServerSession`] (the session, once logged in or resumed)
/// and the decoder of what the socket reads, read by this task.
struct Conn {
    session: ServerSession,
    dec: Decoder,
    /// A session resumed on this connection whose client has not sent anything since its
    /// `resumed` (its previous secret is still good until it does).
    unconfirmed: Option<String>,
}

/// Serves one accepted connection until it ends. `origin` is the web page of a browser on a
/// WebSocket ([`crate::ws`]); `None` for every other client.
pub async fn serve<S>(
    id: ConnId,
    stream: S,
    addr: SocketAddr,
    ctx: Arc<Ctx>,
    origin: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    metrics::get().opened();
    let (mut rd, wr) = tokio::io::split(stream);
    let outbox = Outbox::default();
    let mut writer: Writer<S> =
        tokio::spawn(run_writer(wr, outbox.clone(), ctx.config.heartbeat()));
    if !ctx.conns.add(id, &outbox) {
        outbox.close_with(&shutdown_msg());
    }
    let mut conn = Conn {
        session: ServerSession {
            login_conn: id,
            conn: id,
            addr,
            ctx: Arc::clone(&ctx),
            outbox,
            phase: Phase::AwaitHello,
            origin,
        },
        dec: {
            let mut dec = Decoder::new(MAX_PAYLOAD_TO_SERVER);
            dec.own_payloads(crate::outbox::payload_buf);
            dec
        },
        unconfirmed: None,
    };
    let end = loop {
        match conn.read_loop(&mut rd).await {
            End::Resume(req) => {
                if let Err(end) = conn.resume(req, &mut writer).await {
                    break end;
                }
            }
            end => break end,
        }
    };
    ctx.conns.remove(id);
    metrics::get().closed(conn.reason(&end));
    if let Some(sid) = resume::holdable(&conn.session, &end) {
        // The writer is gone before the session can be taken by a resume: two writers must
        // never drain one session's outbox.
        writer.abort();
        let _ = writer.await;
        let why = conn.describe(&end);
        if !resume::park(&mut conn.session, sid, why) {
            let who = conn.session.leave().await;
            tracing::info!("conn {id} closed ({addr}){who}: {}", conn.describe(&end));
        }
        return;
    }

    // Leave the hub first so no more pushes are queued for a connection that is going away.
    let who = conn.session.leave().await;
    tracing::info!("conn {id} closed ({addr}){who}: {}", conn.describe(&end));

    let outbox = conn.session.outbox.clone();
    match outbox.state() {
        State::Overflow | State::Broken => writer.abort(),
        _ => {
            outbox.close();
            match tokio::time::timeout(FLUSH_TIMEOUT, &mut writer).await {
                Ok(Ok(Some(mut wr))) => {
                    let _ = wr.shutdown().await;
                    if !matches!(end, End::PeerClosed | End::ReadFailed(_)) {
                        linger(&mut rd).await;
                    }
                }
                Ok(_) => {}
                Err(_) => writer.abort(),
            }
        }
    }
}

/// Sets up an accepted or dialled socket: no Nagle delay (replies are small and latency matters
/// more than packet count), and at most [`KERNEL_UNSENT`](crvm_proto::outq::KERNEL_UNSENT) bytes unsent in the kernel, so that
/// data waits in the outbox, where control frames overtake it, not in the send buffer ahead of
/// them (docs/API.md §3.5, "Signalling first on any link"). Both best effort.
pub fn tune_socket(stream: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let _ = stream.set_nodelay(true);
    crvm_proto::limit_unsent(stream.as_raw_fd());
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
        if let Some(user) = self.session.leave_node() {
            // The shared state's part is async; a runtime that is going away takes it along.
            let hub = Arc::clone(&self.session.ctx.hub);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { hub.logout(&user.tenant, &user.user_id, user.gen).await });
            }
        }
    }
}

/// What woke the read loop.
enum Wake {
    Stopped,
    Timeout,
    Read(io::Result<usize>),
}

/// Whether a message counts against the request-rate limit. Cmds and the messages of streams
/// are paced by flow control instead (a sender over its window is closed), so volume never
/// looks like a flood.
fn is_request(msg: &ClientMsg) -> bool {
    !matches!(
        msg,
        ClientMsg::Cmd { .. }
            | ClientMsg::CmdAck { .. }
            | ClientMsg::DataEnd { .. }
            | ClientMsg::Ack { .. }
            | ClientMsg::Fin { .. }
            | ClientMsg::CancelAck { .. }
    )
}

impl Conn {
    /// Resumes session `req` on this connection ([`resume::resume`]): the reader state
    /// carries on with the session's.
    async fn resume<S>(&mut self, req: ResumeReq, writer: &mut Writer<S>) -> Result<(), End>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let sid = req.session.clone();
        let session = resume::resume(&self.session, req, writer).await?;
        self.dec.continue_after(session.outbox.handled());
        self.unconfirmed = Some(sid);
        self.session = session;
        Ok(())
    }

    async fn read_loop(&mut self, rd: &mut (impl AsyncRead + Unpin)) -> End {
        let config = Arc::clone(&self.session.ctx.config);
        let hello_deadline = Instant::now() + config.hello_timeout();
        let idle = config.idle_timeout();
        let frame_timeout = config.frame_timeout();
        let mut requests = Bucket::new(config.max_requests_per_s, 2 * config.max_requests_per_s);
        let mut last_rx = Instant::now();
        // When the frame now partly buffered began to arrive: it must complete in time.
        let mut partial_since: Option<Instant> = None;
        let mut acked_at = self.session.outbox.handled();
        loop {
            let mut decoded = false;
            loop {
                if !self.session.outbox.is_open() {
                    return End::Stopped;
                }
                let frame = match self.dec.next_frame_ref() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => return self.session.close(CRVIDEOSDK_ERR_DATA, e.to_string()),
                };
                decoded = true;
                if let Some(sid) = self.unconfirmed.take() {
                    // The client only speaks after `resumed`: it has the new secret.
                    self.session.ctx.sessions.confirm(&sid);
                }
                let seq = frame.seq;
                if matches!(self.session.phase, Phase::LoggedIn(_))
                    && self.session.outbox.acked(frame.ack).is_err()
                {
                    return self.session.close(
                        CRVIDEOSDK_ERR_DATA,
                        format!("acknowledges frame {} never sent", frame.ack),
                    );
                }
                // Handled from here on: its answer, queued while handling it, acknowledges it.
                // (A session outlives its connection, so what is being handled completes.)
                if seq != 0 {
                    self.session.outbox.set_handled(seq);
                }
                if frame.owned {
                    // A chunk read into a buffer of its own: passed on as it is.
                    let payload = self.dec.take_payload().expect("an owned frame's payload");
                    if let Some(end) = Self::on_owned_data(&mut self.session, payload) {
                        return end;
                    }
                    continue;
                }
                if let Some(end) = Self::on_frame(&mut self.session, frame, &mut requests).await {
                    return end;
                }
            }
            let handled = self.session.outbox.handled();
            if handled >= acked_at + ACK_EVERY && matches!(self.session.phase, Phase::LoggedIn(_)) {
                self.session.send_out(Out::Ack);
                acked_at = handled;
            }
            partial_since = match self.dec.buffered() {
                0 => None,
                // A frame was completed, so the clock restarts for the one now partly buffered,
                // from now: the time this connection spent handling requests (storage, locks) is
                // not the client's slowness. (Keeping the older time would also cut off a client
                // that streams frames without ever leaving the buffer empty between two reads.)
                _ if decoded => Some(Instant::now()),
                _ => partial_since.or(Some(last_rx)),
            };
            let mut deadline = match self.session.phase {
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
                _ = self.session.outbox.stopped() => Wake::Stopped,
                r = rd.read(self.dec.spare()) => Wake::Read(r),
                _ = tokio::time::sleep_until(deadline) => Wake::Timeout,
            };
            match wake {
                Wake::Stopped => return End::Stopped,
                Wake::Timeout
                    if partial_since.is_some_and(|p| Instant::now() >= p + frame_timeout) =>
                {
                    return self
                        .session
                        .close(CRVIDEOSDK_ERR_DATA, "frame not completed in time".into());
                }
                Wake::Timeout if matches!(self.session.phase, Phase::AwaitHello) => {
                    return self
                        .session
                        .close(CRVIDEOSDK_ERR_DATA, "no hello in time".into());
                }
                Wake::Timeout => return End::Idle,
                Wake::Read(Ok(0)) => return End::PeerClosed,
                Wake::Read(Ok(n)) => {
                    self.dec.filled(n);
                    last_rx = Instant::now();
                }
                Wake::Read(Err(e)) => return End::ReadFailed(e),
            }
        }
    }

    /// A data frame whose payload the decoder read into a buffer of its own.
    fn on_owned_data(session: &mut ServerSession, payload: Vec<u8>) -> Option<End> {
        if matches!(session.phase, Phase::AwaitHello) {
            return Some(session.close(CRVIDEOSDK_ERR_DATA, "first frame must be hello".into()));
        }
        session.on_data(Cow::Owned(payload))
    }

    async fn on_frame(
        session: &mut ServerSession,
        frame: FrameRef<'_>,
        requests: &mut Bucket,
    ) -> Option<End> {
        if matches!(session.phase, Phase::AwaitHello) && frame.kind != Kind::Control {
            return Some(session.close(CRVIDEOSDK_ERR_DATA, "first frame must be hello".into()));
        }
        let flood = |requests: &mut Bucket| !requests.take(Instant::now().into_std());
        match frame.kind {
            Kind::Ping => {
                if flood(requests) {
                    return Some(session.close(CRVIDEOSDK_ERR_DATA, "request flood".into()));
                }
                session.send_out(Out::Pong);
                None
            }
            Kind::Pong | Kind::Ack => None,
            // Paced by flow control.
            Kind::Data => session.on_data(Cow::Borrowed(frame.payload)),
            Kind::Control => {
                let (json, attachment) = match frame.control() {
                    Ok(parts) => parts,
                    Err(e) => return Some(session.close(CRVIDEOSDK_ERR_DATA, e.to_string())),
                };
                match ClientMsg::parse(json) {
                    // Only a connection's handshake is unnumbered.
                    Ok(msg) if frame.seq == 0 && !msg.is_handshake() => Some(session.close(
                        CRVIDEOSDK_ERR_DATA,
                        "an unnumbered frame that is not part of the handshake".into(),
                    )),
                    Ok(msg) => {
                        if is_request(&msg) && flood(requests) {
                            return Some(
                                session.close(CRVIDEOSDK_ERR_DATA, "request flood".into()),
                            );
                        }
                        // Boxed: the request handlers' states (storage, calls) are large and
                        // alive only while a request runs; unboxed they would size every idle
                        // connection's task.
                        let kind = metrics::request_kind(&msg);
                        let t0 = std::time::Instant::now();
                        let end = Box::pin(session.on_msg(msg, attachment)).await;
                        metrics::get().request(kind, t0.elapsed());
                        end
                    }
                    Err(_) if foreign_hello(&session.phase, json) => Some(session.close(
                        CRVIDEOSDK_MISMATCHCLIENTVER,
                        "unsupported protocol version".into(),
                    )),
                    Err(e) => Some(session.close(
                        CRVIDEOSDK_ERR_DATA,
                        format!("bad control message: {}", clip(&e.to_string())),
                    )),
                }
            }
        }
    }

    fn describe(&self, end: &End) -> String {
        match end {
            End::Resume(_) => "resume".into(),
            End::ResumeRefused(0) => "resume deferred (rate limit) or sent to another node".into(),
            End::ResumeRefused(code) => format!("resume refused (code {code})"),
            End::PeerClosed => "peer closed the connection".into(),
            End::ReadFailed(e) => format!("read failed: {e}"),
            End::Idle => format!(
                "nothing received for {} ms",
                self.session.ctx.config.idle_timeout().as_millis()
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
            End::Stopped => match self.session.outbox.state() {
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
                State::Detached => "taken over by a resume".into(),
                State::Open => "stopped".into(),
            },
        }
    }

    /// The `reason` label of the metric of ended connections (a bounded set).
    fn reason(&self, end: &End) -> &'static str {
        match end {
            End::Resume(_) => "resumed",
            End::ResumeRefused(_) => "resume_refused",
            End::PeerClosed => "peer_closed",
            End::ReadFailed(_) => "read_failed",
            End::Idle => "idle",
            End::Closed { .. } => "protocol_error",
            End::LoginFailed(_) => "login_failed",
            End::Logout => "logout",
            End::Stopped => match self.session.outbox.state() {
                State::Closing {
                    code: Some(CRVIDEOSDK_USER_BEEN_KICKOUT),
                } => "kicked",
                State::Overflow => "overflow",
                State::Broken => "write_failed",
                State::Detached => "resumed",
                State::Closing { .. } | State::Open => "closed_by_server",
            },
        }
    }
}

/// Whether an unparsable first message is a `hello` of another protocol version. Its other
/// fields may have changed shape, and version 1 had no `c` envelope, but `t` and `ver` are
/// found either at the top or in `c`: such a client still learns it needs another version (4)
/// rather than that it sent garbage (6).
fn foreign_hello(phase: &Phase, json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Ver {
        ver: u32,
    }
    #[derive(serde::Deserialize)]
    struct AnyHello {
        t: String,
        ver: Option<u32>,
        c: Option<Ver>,
    }
    matches!(phase, Phase::AwaitHello)
        && serde_json::from_slice::<AnyHello>(json).is_ok_and(|h| {
            let ver = h.ver.or(h.c.map(|c| c.ver));
            h.t == "hello" && ver.is_some_and(|v| v != PROTOCOL_VERSION)
        })
}
