//! One task per connection: the transport side of a session. It decodes frames, enforces
//! the deadlines (hello, idle, slow frames) and the request-rate limit, hands each message to
//! its handler ([`crate::handlers`]) to completion before the next, so replies leave in request
//! order, and on teardown always leaves presence right and lingers so that a final `Close` is
//! read rather than reset.
//!
//! Everything outgoing goes through the connection's [`Outbox`] to its writer task
//! ([`run_writer`]); the reader never writes to the socket.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::config::Config;
use crate::handlers::{clip, Peer, Phase};
use crate::hub::{ConnId, Hub};
use crate::limits::{Bucket, LoginLimiter};
use crate::log;
use crate::outbox::{run_writer, Out, Outbox, State, CONTROL_LIMIT};
use crate::relay::Relay;
use crate::server::Connections;
use crate::store::MeetingStore;

/// How long a closing connection's writer may take to flush before it is cut off.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// After our last frame, read and discard what the peer still sends for at most this long
/// (and [`LINGER_BYTES`]) so that closing with unread input does not reset the connection
/// and destroy the final `Close` before the peer reads it.
const LINGER: Duration = Duration::from_secs(5);
/// Enough for every transfer window and cmd window a client may still have in flight
/// towards us.
const LINGER_BYTES: usize =
    xfer::MAX_OUTGOING * xfer::WINDOW as usize + xfer::CMD_WINDOW_BYTES + 1024 * 1024;

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

/// Why the read loop ended.
pub enum End {
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

/// A connection: the handlers' [`Peer`], read by this task.
struct Conn(Peer);

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
    let mut conn = Conn(Peer {
        id,
        addr: peer,
        ctx: Arc::clone(&ctx),
        outbox: outbox.clone(),
        phase: Phase::AwaitHello,
    });
    let end = conn.read_loop(&mut rd, &ack).await;

    // Leave the hub first so no more pushes are queued for a connection that is going away.
    let who = conn.0.leave();
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
        self.0.leave();
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
    async fn read_loop(&mut self, rd: &mut (impl AsyncRead + Unpin), ack: &AtomicU64) -> End {
        let config = Arc::clone(&self.0.ctx.config);
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
                if !self.0.outbox.is_open() {
                    return End::Stopped;
                }
                let frame = match dec.next_frame_ref() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => return self.0.close(CRVIDEOSDK_ERR_DATA, e.to_string()),
                };
                decoded = true;
                ack.store(frame.seq, Ordering::Release);
                if let Some(end) = self.on_frame(frame, &mut requests).await {
                    return end;
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
            let mut deadline = match self.0.phase {
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
                _ = self.0.outbox.stopped() => Wake::Stopped,
                r = rd.read(dec.spare()) => Wake::Read(r),
                _ = tokio::time::sleep_until(deadline) => Wake::Timeout,
            };
            match wake {
                Wake::Stopped => return End::Stopped,
                Wake::Timeout
                    if partial_since.is_some_and(|p| Instant::now() >= p + frame_timeout) =>
                {
                    return self
                        .0
                        .close(CRVIDEOSDK_ERR_DATA, "frame not completed in time".into());
                }
                Wake::Timeout if matches!(self.0.phase, Phase::AwaitHello) => {
                    return self.0.close(CRVIDEOSDK_ERR_DATA, "no hello in time".into());
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

    async fn on_frame(&mut self, frame: FrameRef<'_>, requests: &mut Bucket) -> Option<End> {
        let peer = &mut self.0;
        if matches!(peer.phase, Phase::AwaitHello) && frame.kind != Kind::Control {
            return Some(peer.close(CRVIDEOSDK_ERR_DATA, "first frame must be hello".into()));
        }
        let flood = |requests: &mut Bucket| !requests.take(Instant::now().into_std());
        match frame.kind {
            Kind::Ping => {
                if flood(requests) {
                    return Some(peer.close(CRVIDEOSDK_ERR_DATA, "request flood".into()));
                }
                peer.send_out(Out::Pong);
                None
            }
            Kind::Pong => None,
            // Paced by flow control.
            Kind::Data => peer.on_data(frame),
            Kind::Control => {
                let (json, attachment) = match frame.control() {
                    Ok(parts) => parts,
                    Err(e) => return Some(peer.close(CRVIDEOSDK_ERR_DATA, e.to_string())),
                };
                match serde_json::from_slice::<ClientMsg>(json) {
                    Ok(msg) => {
                        if is_request(&msg) && flood(requests) {
                            return Some(peer.close(CRVIDEOSDK_ERR_DATA, "request flood".into()));
                        }
                        // Boxed: the request handlers' states (storage, calls) are large and
                        // alive only while a request runs; unboxed they would size every idle
                        // connection's task.
                        Box::pin(peer.on_msg(msg, attachment)).await
                    }
                    Err(_) if foreign_hello(&peer.phase, json) => Some(peer.close(
                        CRVIDEOSDK_MISMATCHCLIENTVER,
                        "unsupported protocol version".into(),
                    )),
                    Err(e) => Some(peer.close(
                        CRVIDEOSDK_ERR_DATA,
                        format!("bad control message: {}", clip(&e.to_string())),
                    )),
                }
            }
        }
    }

    fn describe(&self, end: &End) -> String {
        match end {
            End::PeerClosed => "peer closed the connection".into(),
            End::ReadFailed(e) => format!("read failed: {e}"),
            End::Idle => format!(
                "nothing received for {} ms",
                self.0.ctx.config.idle_timeout().as_millis()
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
            End::Stopped => match self.0.outbox.state() {
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
