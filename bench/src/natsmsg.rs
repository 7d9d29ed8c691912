//! The NATS anchors of the call-setup and cmd rows: request/reply between a requester in the
//! bench process and a responder in its own process (the bench re-run as `__nats_echo URL`, as
//! the crvm peers are), and windowed pub/sub. All clients are `async-nats` on tokio.

use crate::Res;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The responder answers requests here with the request's payload…
pub const ECHO: &str = "bench.echo";
/// …and here with an empty payload (an acknowledgement, like `send_cmd_rlst`).
pub const ACK: &str = "bench.ack";
const PUBSUB: &str = "bench.pubsub";

/// The `__nats_echo URL` role: one NATS client answering on [`ECHO`] and [`ACK`] until `quit`
/// or the end of stdin.
pub fn echo_main(args: &[String]) -> Res<()> {
    let [url] = args else {
        return Err("usage: crvm-bench __nats_echo URL".into());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let mut echo = client.subscribe(ECHO).await?;
        let mut ack = client.subscribe(ACK).await?;
        client.flush().await?;
        let (tx, mut quit) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                if line.map_or(true, |l| l == "quit") {
                    break;
                }
            }
            let _ = tx.send(());
        });
        println!("ready");
        loop {
            tokio::select! {
                Some(m) = echo.next() => {
                    if let Some(reply) = m.reply {
                        client.publish(reply, m.payload).await?;
                    }
                }
                Some(m) = ack.next() => {
                    if let Some(reply) = m.reply {
                        client.publish(reply, Vec::new().into()).await?;
                    }
                }
                _ = &mut quit => break,
            }
        }
        client.flush().await?;
        println!("bye");
        Ok(())
    })
}

/// `n` requests of `size` bytes on `subject`, one at a time: nanoseconds each.
pub async fn requests(
    client: &async_nats::Client,
    subject: &'static str,
    n: u64,
    size: usize,
) -> Res<Vec<u64>> {
    let payload: bytes::Bytes = vec![0x5a; size].into();
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        client.request(subject, payload.clone()).await?;
        samples.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(samples)
}

/// `senders` clients at once, each making `n` requests of `size` bytes to [`ACK`], one at a
/// time: the time until all are answered.
pub async fn concurrent_requests(url: &str, senders: usize, n: u64, size: usize) -> Res<Duration> {
    let mut clients = Vec::new();
    for _ in 0..senders {
        clients.push(async_nats::connect(url).await?);
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(async move { requests(&c, ACK, n, size).await.map(|_| ()) }))
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}

/// `senders` publishers at once, each publishing `n` messages of `size` bytes with at most
/// `window` of its own not yet received by the one subscriber (the pub/sub analogue of crvm's
/// cmds with `window` in flight): the time until the subscriber has them all.
pub async fn windowed_pubsub(
    url: &str,
    senders: usize,
    n: u64,
    size: usize,
    window: u64,
) -> Res<Duration> {
    let sub_client = async_nats::connect(url).await?;
    let mut sub = sub_client.subscribe(PUBSUB).await?;
    sub_client.flush().await?;
    let got: Arc<Vec<AtomicU64>> = Arc::new((0..senders).map(|_| AtomicU64::new(0)).collect());
    let wake: Arc<Vec<tokio::sync::Notify>> =
        Arc::new((0..senders).map(|_| tokio::sync::Notify::new()).collect());
    let total = senders as u64 * n;
    let (g, w) = (got.clone(), wake.clone());
    let subscriber = tokio::spawn(async move {
        let mut seen = 0;
        while seen < total {
            let m = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .map_err(|_| format!("pub/sub: {seen} of {total} messages arrived"))?
                .ok_or("subscription ended")?;
            let i = m.payload[0] as usize;
            g[i].fetch_add(1, Ordering::Release);
            w[i].notify_one();
            seen += 1;
        }
        Res::Ok(())
    });
    let mut pubs = Vec::new();
    for _ in 0..senders {
        pubs.push(async_nats::connect(url).await?);
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (got, wake) = (got.clone(), wake.clone());
            tokio::spawn(async move {
                let mut payload = vec![0x5a; size];
                payload[0] = i as u8;
                let payload: bytes::Bytes = payload.into();
                for sent in 0..n {
                    while got[i].load(Ordering::Acquire) + window <= sent {
                        wake[i].notified().await;
                    }
                    c.publish(PUBSUB, payload.clone()).await?;
                }
                c.flush().await?;
                Res::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    subscriber.await??;
    Ok(t0.elapsed())
}
