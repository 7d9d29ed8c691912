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

/// The `__nats_echo URL [PREFIX]` role: one NATS client answering on [`ECHO`] and [`ACK`]
/// (or on `PREFIX.echo` and `PREFIX.ack`) until `quit` or the end of stdin.
pub fn echo_main(args: &[String]) -> Res<()> {
    let (url, echo_subject, ack_subject) = match args {
        [url] => (url, ECHO.to_owned(), ACK.to_owned()),
        [url, prefix] => (url, format!("{prefix}.echo"), format!("{prefix}.ack")),
        _ => return Err("usage: crvm-bench __nats_echo URL [PREFIX]".into()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await?;
        let mut echo = client.subscribe(echo_subject).await?;
        let mut ack = client.subscribe(ack_subject).await?;
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
    subject: &str,
    n: u64,
    size: usize,
) -> Res<Vec<u64>> {
    let payload: bytes::Bytes = vec![0x5a; size].into();
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        client.request(subject.to_owned(), payload.clone()).await?;
        samples.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(samples)
}

/// `senders` clients at once, each publishing `n` messages of `size` bytes to `subject` (an
/// [`ACK`] subject) with its own inbox as the reply subject, back to back (no window), and
/// counting the responder's `n` empty replies: the time until every reply has arrived.
pub async fn pipelined_requests(
    url: &str,
    subject: &str,
    senders: usize,
    n: u64,
    size: usize,
) -> Res<Duration> {
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
            let subject = subject.to_owned();
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
                    c.publish_with_reply(subject.clone(), inbox.clone(), payload.clone())
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

/// Waits until a request on `subject` is answered: across a NATS cluster, a responder's
/// subscription reaches the other servers a moment after it is made.
pub async fn until_answered(client: &async_nats::Client, subject: &str) -> Res<()> {
    let t0 = Instant::now();
    loop {
        let ask = client.request(subject.to_owned(), bytes::Bytes::new());
        match tokio::time::timeout(Duration::from_secs(1), ask).await {
            Ok(Ok(_)) => return Ok(()),
            _ if t0.elapsed() > Duration::from_secs(30) => {
                return Err(format!("nobody answers on {subject} after 30 s").into())
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
