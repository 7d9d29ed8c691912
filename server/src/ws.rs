//! The WebSocket transport (`ws_listen`): browsers speak the same protocol as the library, one
//! binary WebSocket message per frame, on path [`PATH`] under the subprotocol
//! `crvm.<protocol version>`.
//!
//! The handshake is tokio-tungstenite's; this module decides whom it admits (path,
//! subprotocol, the page's `Origin`) and then *pumps*: frames from the browser's messages into
//! one end of an in-memory pipe, frames the connection writes to the pipe out as messages. The
//! other end of the pipe is an ordinary byte stream, served by [`crate::conn::serve`] exactly
//! like a TCP or TLS connection — deadlines, limits, login, resumption and all.

use std::net::SocketAddr;
use std::sync::Arc;

use crvm_proto::frame::{HEADER_LEN, MAX_PAYLOAD_TO_SERVER};
use crvm_proto::PROTOCOL_VERSION;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::conn;
use crate::ctx::Ctx;
use crate::ids::ConnId;

/// The path browsers connect to.
pub const PATH: &str = "/crvm";

/// Bytes the pipe between the pump and the connection holds each way: a few frames, so that
/// data waits in the connection's outbox (where control overtakes it), not here.
const PIPE: usize = 64 * 1024;

/// How long a closing pump keeps reading for the browser's own close.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a WebSocket carrying a message over the size limit is closed.
const TOO_BIG: &str = "a message larger than the largest frame";

/// The subprotocol of this server's protocol version.
pub fn subprotocol() -> String {
    format!("crvm.{PROTOCOL_VERSION}")
}

/// Who a WebSocket handshake admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The subprotocol answered.
    pub protocol: String,
    /// The page's `Origin`, when a browser sent one.
    pub origin: Option<String>,
}

/// Decides a handshake request: the path must be [`PATH`]; the client must offer a `crvm.N`
/// subprotocol (this server's version when offered, else the first `crvm.N`, so that the
/// client's `hello` is answered with code 4 rather than an opaque handshake failure); and a
/// browser's `Origin` must be allowed by some tenant (each tenant checks its own at login).
pub fn admit(
    path: &str,
    protocols: Option<&str>,
    origin: Option<&str>,
    origin_allowed: impl Fn(&str) -> bool,
) -> Result<Admitted, (StatusCode, String)> {
    if path != PATH {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no WebSocket at {path}; use {PATH}"),
        ));
    }
    let ours = subprotocol();
    let offered: Vec<&str> = protocols
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| {
            p.strip_prefix("crvm.")
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    let protocol = match offered.iter().find(|p| **p == ours).or(offered.first()) {
        Some(p) => p.to_string(),
        None => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("the subprotocol {ours} is required"),
            ))
        }
    };
    if let Some(o) = origin {
        if !origin_allowed(o) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("pages from {o} may not connect (allowed_origins)"),
            ));
        }
    }
    Ok(Admitted {
        protocol,
        origin: origin.map(str::to_owned),
    })
}

/// The WebSocket settings: no message or frame larger than the largest protocol frame a
/// client may send.
fn config() -> WebSocketConfig {
    let most = HEADER_LEN + MAX_PAYLOAD_TO_SERVER as usize;
    WebSocketConfig::default()
        .max_message_size(Some(most))
        .max_frame_size(Some(most))
}

/// The WebSocket handshake on an accepted (and, with TLS, decrypted) stream. `Err` is what
/// the log says about a refused or failed one.
pub async fn handshake<S>(stream: S, ctx: &Ctx) -> Result<(WebSocketStream<S>, Admitted), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut admitted = None;
    let mut refused = None;
    // The signature is tungstenite's handshake callback's.
    #[allow(clippy::result_large_err)]
    let decide = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let tenants = ctx.tenants.list();
        let allowed = |o: &str| tenants.iter().any(|t| t.allows_origin(o));
        match admit(
            req.uri().path(),
            header(header::SEC_WEBSOCKET_PROTOCOL),
            header(header::ORIGIN),
            allowed,
        ) {
            Ok(a) => {
                let value = HeaderValue::from_str(&a.protocol).expect("crvm.N is a header value");
                resp.headers_mut()
                    .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
                admitted = Some(a);
                Ok(resp)
            }
            Err((status, why)) => {
                let mut e = ErrorResponse::new(Some(why.clone()));
                *e.status_mut() = status;
                refused = Some(why);
                Err(e)
            }
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, decide, Some(config())).await;
    match (ws, admitted) {
        (Ok(ws), Some(a)) => Ok((ws, a)),
        (Ok(_), None) => Err("WebSocket handshake admitted without a decision".into()),
        (Err(e), _) => Err(refused.unwrap_or_else(|| e.to_string())),
    }
}

/// Serves one WebSocket connection until it ends: the connection proper on one end of a pipe,
/// the pump on the other.
pub async fn serve<S>(
    id: ConnId,
    ws: WebSocketStream<S>,
    admitted: Admitted,
    addr: SocketAddr,
    ctx: Arc<Ctx>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(PIPE);
    tokio::join!(
        conn::serve(id, ours, addr, ctx, admitted.origin),
        pump(id, ws, theirs)
    );
}

/// Whether `message` is exactly one frame: a header whose length field covers the rest.
fn one_frame(message: &[u8]) -> bool {
    message.len() >= HEADER_LEN && message.len() - HEADER_LEN == frame_len(message) as usize
}

/// The payload length in a frame header's first four bytes.
fn frame_len(header: &[u8]) -> u32 {
    u32::from_be_bytes([header[0], header[1], header[2], header[3]])
}

/// The length of the first whole frame in `buf`, if it holds one.
fn whole_frame(buf: &[u8]) -> Option<usize> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let total = HEADER_LEN + frame_len(buf) as usize;
    (buf.len() >= total).then_some(total)
}

/// Why the browser-to-connection half of a pump ended.
enum Inbound {
    /// The connection no longer reads (it has ended).
    ConnectionDone,
    /// The browser closed the WebSocket, or its link failed.
    BrowserDone,
    /// The browser broke the rules: the WebSocket is closed with this reason.
    Refused(&'static str),
}

/// Moves frames between the WebSocket and the pipe until either side ends, then closes the
/// WebSocket: normally when the connection ended, with 1002 (protocol error) when the browser
/// sent something other than one frame per binary message, with 1009 (too big) for a message
/// over the limit.
async fn pump<S>(id: ConnId, ws: WebSocketStream<S>, pipe: tokio::io::DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (mut from_conn, mut to_conn) = tokio::io::split(pipe);
    // The two halves, dropped before the WebSocket and the pipe are closed below.
    let bad = {
        let inbound = async {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Binary(b)) if one_frame(&b) => {
                        if to_conn.write_all(&b).await.is_err() {
                            return Inbound::ConnectionDone;
                        }
                    }
                    Ok(Message::Binary(_)) => {
                        return Inbound::Refused("a binary message must carry exactly one frame")
                    }
                    Ok(Message::Text(_)) => {
                        return Inbound::Refused("text messages are not part of the protocol")
                    }
                    Ok(Message::Close(_)) => return Inbound::BrowserDone,
                    // Pings are answered by the library; pongs and raw frames mean nothing here.
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                    Err(WsError::Capacity(_)) => return Inbound::Refused(TOO_BIG),
                    Err(e) => {
                        tracing::debug!("conn {id} WebSocket read failed: {e}");
                        return Inbound::BrowserDone;
                    }
                }
            }
            Inbound::BrowserDone
        };
        let outbound = async {
            let mut buf: Vec<u8> = Vec::with_capacity(PIPE);
            loop {
                match from_conn.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let mut at = 0;
                while let Some(n) = whole_frame(&buf[at..]) {
                    let frame = Bytes::copy_from_slice(&buf[at..at + n]);
                    at += n;
                    if sink.feed(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                buf.drain(..at);
                if sink.flush().await.is_err() {
                    return;
                }
            }
        };
        tokio::pin!(inbound, outbound);
        tokio::select! {
            end = &mut inbound => match end {
                // The connection stopped reading: what it wrote last (its `close`) is still to
                // go out before the WebSocket closes.
                Inbound::ConnectionDone => {
                    outbound.await;
                    None
                }
                Inbound::BrowserDone => None,
                Inbound::Refused(why) => Some(why),
            },
            () = &mut outbound => None,
        }
    };
    // The connection reads end-of-stream (a dropped link, as over TCP) and ends or parks.
    let _ = to_conn.shutdown().await;
    drop(to_conn);
    let close = match bad {
        Some(why) => {
            tracing::warn!("conn {id} WebSocket closed: {why}");
            CloseFrame {
                code: if why == TOO_BIG {
                    CloseCode::Size
                } else {
                    CloseCode::Protocol
                },
                reason: why.into(),
            }
        }
        None => CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        },
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    // Read (and drop) what the browser still sends, until its own close, for a while: closing
    // with unread input would reset the connection and could destroy our last frames before
    // the browser reads them (the TCP listener lingers the same way).
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; HEADER_LEN + payload];
        f[..4].copy_from_slice(&(payload as u32).to_be_bytes());
        f
    }

    #[test]
    fn a_message_is_exactly_one_frame() {
        assert!(one_frame(&frame(0)));
        assert!(one_frame(&frame(10)));
        let mut two = frame(3);
        two.extend(frame(0));
        assert!(!one_frame(&two));
        assert!(!one_frame(&frame(10)[..20]));
        assert!(!one_frame(&frame(10)[..30]));
        assert!(!one_frame(b""));
        assert_eq!(whole_frame(&frame(5)), Some(HEADER_LEN + 5));
        assert_eq!(whole_frame(&frame(5)[..HEADER_LEN + 4]), None);
        assert_eq!(whole_frame(&two), Some(HEADER_LEN + 3));
    }

    #[test]
    fn the_handshake_admits_the_path_the_subprotocol_and_allowed_origins() {
        let ours = subprotocol();
        let allowed = |o: &str| o == "https://app.example.com";
        let ok = admit(PATH, Some(&ours), None, allowed).unwrap();
        assert_eq!(ok.protocol, ours);
        assert_eq!(ok.origin, None);
        // Ours among others, in any position.
        let offer = format!("chat, crvm.1, {ours}");
        assert_eq!(
            admit(PATH, Some(&offer), None, allowed).unwrap().protocol,
            ours
        );
        // Another version only: admitted under it, so that `hello` can say code 4.
        assert_eq!(
            admit(PATH, Some("crvm.1"), None, allowed).unwrap().protocol,
            "crvm.1"
        );
        for bad in [None, Some(""), Some("chat"), Some("crvm."), Some("crvm.x1")] {
            assert_eq!(
                admit(PATH, bad, None, allowed).unwrap_err().0,
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        assert_eq!(
            admit("/other", Some(&ours), None, allowed).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
        let page = admit(PATH, Some(&ours), Some("https://app.example.com"), allowed).unwrap();
        assert_eq!(page.origin.as_deref(), Some("https://app.example.com"));
        assert_eq!(
            admit(PATH, Some(&ours), Some("https://evil.example"), allowed)
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
    }
}
