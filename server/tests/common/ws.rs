//! WebSocket helpers: a server with `ws_listen`, handshake requests, and [`Bridge`], which plays
//! a browser: a local TCP port whose connections it carries over a WebSocket to the server, one
//! frame per binary message, so that the protocol's raw test client speaks WebSocket unchanged.

use std::io::BufRead;
use std::net::SocketAddr;

use crvm_proto::frame::HEADER_LEN;
use crvm_proto::raw::RawClient;
use crvm_proto::PROTOCOL_VERSION;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::{config, Server, TmpDir};

/// The page tenant `demo` allows in [`start`]'s config.
pub const ORIGIN: &str = "https://app.example.com";

/// A server with `ws_listen`, where tenant `demo` allows pages from [`ORIGIN`] and `acme`
/// allows none; the WebSocket address from its stdout.
pub fn start(dir: &TmpDir) -> (Server, SocketAddr) {
    start_with(dir, "")
}

/// [`start`] with more top-level config `top`.
pub fn start_with(dir: &TmpDir, top: &str) -> (Server, SocketAddr) {
    let text = config(&format!("ws_listen = \"127.0.0.1:0\"\n{top}")).replace(
        "app_id = \"demo\"\nsecret = \"demo-secret\"",
        &format!("app_id = \"demo\"\nsecret = \"demo-secret\"\nallowed_origins = [\"{ORIGIN}\"]"),
    );
    let mut s = Server::start(dir, &text);
    let addr = websocket_addr(&mut s);
    (s, addr)
}

/// The address on a server's `crvm-server websocket on …` line (the next one it prints: the
/// listening line is read at start; no `monitor_listen`).
pub fn websocket_addr(s: &mut Server) -> SocketAddr {
    let mut line = String::new();
    s.stdout.read_line(&mut line).unwrap();
    line.strip_prefix("crvm-server websocket on ")
        .unwrap_or_else(|| panic!("bad line {line:?}"))
        .trim()
        .parse()
        .unwrap()
}

/// The handshake request of a browser on `origin` offering `protocol`, at `path`.
pub fn request(
    ws: SocketAddr,
    path: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{ws}{path}").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    req
}

pub fn ours() -> String {
    format!("crvm.{PROTOCOL_VERSION}")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The HTTP status a handshake was refused with, or 101.
pub fn handshake_status(
    ws: SocketAddr,
    path: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> u16 {
    runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(ws).await.unwrap();
        match tokio_tungstenite::client_async(request(ws, path, protocol, origin), tcp).await {
            Ok((_, resp)) => {
                assert_eq!(
                    resp.headers()
                        .get("Sec-WebSocket-Protocol")
                        .and_then(|v| v.to_str().ok()),
                    protocol.map(|p| p.split(',').next_back().unwrap().trim()),
                );
                resp.status().as_u16()
            }
            Err(WsError::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("handshake: {e}"),
        }
    })
}

/// A local port whose TCP connections are carried to the server's WebSocket listener, each
/// frame in one binary message (what a browser does). Dropped: its thread ends with the test.
pub struct Bridge {
    pub addr: SocketAddr,
}

impl Bridge {
    pub fn start(ws: SocketAddr, origin: Option<&str>) -> Bridge {
        let origin = origin.map(str::to_owned);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let req = request(ws, "/crvm", Some(&ours()), origin.as_deref());
                    tokio::spawn(carry(tcp, ws, req));
                }
            })
        });
        Bridge {
            addr: rx.recv().unwrap(),
        }
    }

    pub fn connect(&self) -> RawClient {
        RawClient::connect(self.addr)
    }
}

/// Carries one TCP connection over a WebSocket until either ends.
pub async fn carry(
    tcp: tokio::net::TcpStream,
    ws: SocketAddr,
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) {
    let server = tokio::net::TcpStream::connect(ws).await.unwrap();
    let Ok((socket, _)) = tokio_tungstenite::client_async(req, server).await else {
        return; // Refused: the client sees its connection closed.
    };
    let (mut sink, mut stream) = socket.split();
    let (mut rd, mut wr) = tcp.into_split();
    let up = async {
        let mut buf = Vec::new();
        loop {
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut at = 0;
            while buf.len() - at >= HEADER_LEN {
                let len = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                if buf.len() - at < HEADER_LEN + len {
                    break;
                }
                let frame = Bytes::copy_from_slice(&buf[at..at + HEADER_LEN + len]);
                at += HEADER_LEN + len;
                if sink.send(Message::Binary(frame)).await.is_err() {
                    return;
                }
            }
            buf.drain(..at);
        }
    };
    let down = async {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => return,
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
