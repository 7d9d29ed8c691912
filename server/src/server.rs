//! The listener and graceful shutdown (docs/API.md §4): one task per accepted connection
//! ([`conn::serve`]), each registered in [`crate::ctx::Connections`] so that shutdown reaches it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conn;
use crate::ctx::Ctx;
use crate::ids::ConnId;
use crate::store::run_blocking;
use crate::ws;

/// How long shutdown waits for connections to flush their `Close{206}`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The next connection on `listener`; never, without one.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Starts serving what `accept` gave (on the WebSocket listener when `ws`) in a task of its
/// own, which holds `alive` until it ends.
async fn accepted(
    accept: std::io::Result<(TcpStream, SocketAddr)>,
    ws: bool,
    ctx: &Arc<Ctx>,
    next_id: &mut ConnId,
    alive: &mpsc::Sender<()>,
) {
    let (stream, peer) = match accept {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            return;
        }
    };
    next_id.0 += 1;
    conn::tune_socket(&stream);
    let (id, ctx, alive) = (*next_id, Arc::clone(ctx), alive.clone());
    tokio::spawn(async move {
        // TLS (if any), then the WebSocket handshake (if any), within the hello deadline.
        let deadline = Instant::now() + ctx.config.hello_timeout();
        match ctx.tls.clone() {
            None if !ws => conn::serve(id, stream, peer, ctx, None).await,
            None => serve_ws(id, stream, peer, ctx, deadline).await,
            // Boxed: the handshake and the TLS stream would otherwise size every plain
            // connection's task too.
            Some(tls) => {
                Box::pin(async move {
                    match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
                        Ok(Ok(s)) if ws => serve_ws(id, s, peer, ctx, deadline).await,
                        Ok(Ok(s)) => conn::serve(id, s, peer, ctx, None).await,
                        Ok(Err(e)) => tracing::warn!(
                            "conn {id} TLS handshake failed ({peer}): {}",
                            crate::tls::handshake_failure(&e)
                        ),
                        Err(_) => tracing::warn!("conn {id} TLS handshake timed out ({peer})"),
                    }
                })
                .await
            }
        }
        drop(alive);
    });
}

/// The WebSocket handshake by `deadline`, then the session.
async fn serve_ws<S>(id: ConnId, stream: S, peer: SocketAddr, ctx: Arc<Ctx>, deadline: Instant)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match tokio::time::timeout_at(deadline, ws::handshake(stream, &ctx)).await {
        Ok(Ok((socket, admitted))) => ws::serve(id, socket, admitted, peer, ctx).await,
        Ok(Err(why)) => tracing::warn!("conn {id} WebSocket handshake refused ({peer}): {why}"),
        Err(_) => tracing::warn!("conn {id} WebSocket handshake timed out ({peer})"),
    }
}

/// Accepts connections until `shutdown` resolves (to the name of what asked for it), then
/// closes every connection with `Close{206}`, waits up to [`SHUTDOWN_GRACE`] for them to
/// flush, and closes the storage.
pub async fn run(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    ws: Option<TcpListener>,
    shutdown: impl Future<Output = &'static str>,
) {
    // Each connection task holds a sender; the channel closes when the last one ends.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut next_id = ConnId::default();
    tokio::pin!(shutdown);
    let why = loop {
        tokio::select! {
            why = &mut shutdown => break why,
            r = listener.accept() => accepted(r, false, &ctx, &mut next_id, &alive_tx).await,
            r = accept_on(ws.as_ref()) => accepted(r, true, &ctx, &mut next_id, &alive_tx).await,
        }
    };
    drop(listener);
    drop(ws);
    let told = ctx.conns.close_all(&conn::shutdown_msg());
    tracing::info!("{why}: shutting down, closing {told} connection(s)");
    drop(alive_tx);
    if tokio::time::timeout(SHUTDOWN_GRACE, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} connection(s) did not finish within {} s",
            ctx.conns.len(),
            SHUTDOWN_GRACE.as_secs()
        );
    }
    ctx.hub.leave().await;
    match run_blocking(&ctx.store, |s| s.close()).await {
        Ok(()) => tracing::info!("storage closed; bye"),
        Err(e) => tracing::warn!("closing storage failed: {e}"),
    }
}
