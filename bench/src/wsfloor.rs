//! The floor under (l)'s rows: what Chromium's own WebSocket costs, with no crvm on either end.
//! A WebSocket echo and sink runs in this process; a bare page (no crvm-web) measures its
//! round trip and send rate, and a native client (tungstenite over a blocking socket) the same
//! round trip. The difference between the two round trips, and the page's send rate, bound what
//! any web client over WebSocket can reach on this machine, crvm-web or another.

use crate::Res;
use futures_util::{SinkExt, StreamExt};
use std::net::TcpStream;
use std::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

/// Messages of at most this many bytes are echoed; a 1-byte message is answered with the bytes
/// of the larger ones received since the last such answer (as text); larger ones are counted.
pub const ECHO_MAX: usize = 1024;

/// Starts the echo and sink on a thread of its own (it lives as long as the bench); returns
/// its port.
pub fn start() -> Res<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("ws-floor".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the WebSocket floor");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("the floor's listener");
                while let Ok((socket, _)) = listener.accept().await {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(serve(socket));
                }
            });
        })?;
    Ok(port)
}

async fn serve(socket: tokio::net::TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
        return;
    };
    let mut counted = 0u64;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Binary(bytes) = msg else {
            continue;
        };
        let reply = match bytes.len() {
            1 => Message::Text(std::mem::take(&mut counted).to_string().into()),
            n if n <= ECHO_MAX => Message::Binary(bytes),
            n => {
                counted += n as u64;
                continue;
            }
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}

/// `n` round trips of a 100-byte message from a native client, in nanoseconds.
pub fn native_rtt(port: u16, n: u64) -> Res<Vec<u64>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/"), stream)
        .map_err(|e| format!("the floor's native client: {e}"))?;
    let payload = bytes::Bytes::from(vec![0u8; 100]);
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        ws.send(Message::Binary(payload.clone()))?;
        loop {
            if let Message::Binary(_) = ws.read()? {
                break;
            }
        }
        out.push(t0.elapsed().as_nanos() as u64);
    }
    let _ = ws.close(None);
    Ok(out)
}
