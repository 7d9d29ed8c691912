//! The listener and graceful shutdown (docs/API.md §4): one task per accepted connection
//! ([`conn::serve`]), each registered in [`crate::ctx::Connections`] so that shutdown reaches it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::conn;
use crate::ctx::Ctx;
use crate::ids::ConnId;
use crate::store::run_blocking;

/// How long shutdown waits for connections to flush their `Close{206}`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections until `shutdown` resolves (to the name of what asked for it), then
/// closes every connection with `Close{206}`, waits up to [`SHUTDOWN_GRACE`] for them to
/// flush, and closes the storage.
pub async fn run(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    shutdown: impl Future<Output = &'static str>,
) {
    // Each connection task holds a sender; the channel closes when the last one ends.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut next_id = ConnId::default();
    tokio::pin!(shutdown);
    let why = loop {
        tokio::select! {
            why = &mut shutdown => break why,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    next_id.0 += 1;
                    conn::tune_socket(&stream);
                    let (id, ctx, alive) = (next_id, Arc::clone(&ctx), alive_tx.clone());
                    tokio::spawn(async move {
                        match ctx.tls.clone() {
                            None => conn::serve(id, stream, peer, ctx).await,
                            // Boxed: the handshake and the TLS stream would otherwise size
                            // every plain connection's task too.
                            Some(tls) => Box::pin(async move {
                                let handshake = tls.accept(stream);
                                match tokio::time::timeout(ctx.config.hello_timeout(), handshake).await {
                                    Ok(Ok(s)) => conn::serve(id, s, peer, ctx).await,
                                    Ok(Err(e)) => tracing::warn!("conn {id} TLS handshake failed ({peer}): {e}"),
                                    Err(_) => tracing::warn!("conn {id} TLS handshake timed out ({peer})"),
                                }
                            })
                            .await,
                        }
                        drop(alive);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    };
    drop(listener);
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
