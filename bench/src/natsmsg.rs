//! The NATS anchors of the call-setup and cmd rows: request/reply between a requester in the
//! bench process and a responder in its own process (the bench re-run as `__nats_echo URL`, as
//! the crvm peers are), one at a time or pipelined. All clients are `async-nats` on tokio.

use crate::Res;
use futures_util::StreamExt;
use std::time::{Duration, Instant};

/// The responder answers requests here with the request's payload…
pub const ECHO: &str = "bench.echo";
/// …and here with an empty payload (an acknowledgement, like `send_cmd_rlst`).
pub const ACK: &str = "bench.ack";

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

/// `senders` clients at once, each publishing `n` messages of `size` bytes to [`ACK`] with its
/// own inbox as the reply subject, back to back (no window), and counting the responder's `n`
/// empty replies: the time until every reply has arrived.
pub async fn pipelined_requests(url: &str, senders: usize, n: u64, size: usize) -> Res<Duration> {
    let mut clients = Vec::new();
    for _ in 0..senders {
        let c = async_nats::connect(url).await?;
        let inbox = c.new_inbox();
        let replies = c.subscribe(inbox.clone()).await?;
        c.flush().await?;
        clients.push((c, inbox, replies));
    }
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(c, inbox, mut replies)| {
            tokio::spawn(async move {
                let payload: bytes::Bytes = vec![0x5a; size].into();
                let counter = tokio::spawn(async move {
                    for got in 0..n {
                        tokio::time::timeout(Duration::from_secs(30), replies.next())
                            .await
                            .map_err(|_| format!("{got} of {n} replies arrived"))?
                            .ok_or("subscription ended")?;
                    }
                    Res::Ok(())
                });
                for _ in 0..n {
                    c.publish_with_reply(ACK, inbox.clone(), payload.clone())
                        .await?;
                }
                c.flush().await?;
                counter.await?
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}
