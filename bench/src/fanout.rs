//! Presence fan-out: one changer, N subscribers, for crvm and its anchors (NATS 1 → N, Redis
//! PUBLISH to N), all clients in the bench process on one tokio runtime.
//!
//! crvm: every subscriber and the changer speak the wire protocol directly
//! (`crvm_proto::raw::Codec` on tokio sockets, see [`crvm_bench::wire`]), one TCP connection
//! each, logged in as `subI` / `changer` of one tenant; subscribers send `start_status_notify`,
//! the changer `set_dnd` with a fresh value each time (the value numbers the change). NATS: one
//! connection per subscriber on one subject, and a publisher connection. Redis: one pub/sub
//! connection per subscriber on one channel, and a publisher connection.
//! Every message carries the same status object `{"userID":"changer","userStatus":1,
//! "DNDType":V}` and every subscriber parses it with serde_json (crvm's also parses the
//! envelope), so the subscribers' work is alike.

use crate::procs::mono_ns;
use crate::Res;
use crvm_bench::wire::Conn;
use crvm_proto::raw::{Codec, Incoming};
use crvm_proto::{Op, ServerMsg, UserStatus};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const SUBJECT: &str = "presence.demo";
const CHANGER: &str = "changer";
/// No single fan-out may take longer (it only catches hangs).
const PATIENCE: Duration = Duration::from_secs(60);

/// What the N subscribers of one system share: which change they wait for, how many have not
/// seen it yet, and when the last one did.
#[derive(Default)]
pub struct Fan {
    target: AtomicU64,
    remaining: AtomicUsize,
    last_at: AtomicU64,
    done: Notify,
    pushes: AtomicU64,
}

impl Fan {
    /// From now on, wait for change `v` at `n` subscribers.
    fn arm(&self, v: u64, n: usize) {
        self.remaining.store(n, Ordering::SeqCst);
        self.target.store(v, Ordering::SeqCst);
    }

    /// A subscriber received change `v` (each subscriber receives changes in order).
    fn on(&self, v: u64) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        if v == self.target.load(Ordering::SeqCst)
            && self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
        {
            self.last_at.store(mono_ns(), Ordering::SeqCst);
            self.done.notify_one();
        }
    }

    /// Waits until the armed change reached every subscriber; returns when the last got it.
    async fn wait(&self, what: &str) -> Res<u64> {
        tokio::time::timeout(PATIENCE, self.done.notified())
            .await
            .map_err(|_| {
                format!(
                    "{what}: {} subscribers still miss the change after {PATIENCE:?}",
                    self.remaining.load(Ordering::SeqCst)
                )
            })?;
        Ok(self.last_at.load(Ordering::SeqCst))
    }
}

fn status_json(v: u64) -> Vec<u8> {
    serde_json::to_vec(&UserStatus::new(CHANGER, 1, v as i32)).expect("serialisable")
}

/// The change number in a status object sent by [`status_json`] (or `None` for another user).
fn parse_status(json: &[u8]) -> Res<Option<u64>> {
    let s: UserStatus = serde_json::from_slice(json)?;
    Ok((s.user_id == CHANGER).then_some(s.dnd_type as u64))
}

/// Connects and logs in as `user` of the `demo` tenant.
async fn login(addr: &str, user: &str) -> Res<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut c = Conn::new(stream);
    c.login("demo", "demo-secret", user).await?;
    Ok(c)
}

/// Who publishes the changes.
enum Changer {
    /// Writes `set_dnd` frames (batched in `buf` until [`Changer::flush`]); a task reads and
    /// checks the replies. Both use the connection's codec.
    Crvm {
        w: OwnedWriteHalf,
        codec: Arc<Mutex<Codec>>,
        buf: Vec<u8>,
        replies: JoinHandle<Res<()>>,
    },
    Nats(async_nats::Client),
    /// Publishes pile up in a pipeline until [`Changer::flush`].
    Redis(redis::aio::MultiplexedConnection, Vec<u64>),
}

impl Changer {
    async fn change(&mut self, v: u64) -> Res<()> {
        match self {
            Changer::Crvm { codec, buf, .. } => {
                let (_, bytes) = codec.lock().unwrap().request(Op::SetDnd { dnd: v as i32 });
                buf.extend_from_slice(&bytes);
            }
            Changer::Nats(c) => c.publish(SUBJECT, status_json(v).into()).await?,
            Changer::Redis(_, pending) => pending.push(v),
        }
        Ok(())
    }

    async fn flush(&mut self) -> Res<()> {
        match self {
            Changer::Crvm { w, buf, .. } => {
                w.write_all(buf).await?;
                buf.clear();
            }
            Changer::Nats(c) => c.flush().await?,
            Changer::Redis(_, pending) if pending.is_empty() => {}
            Changer::Redis(conn, pending) => {
                let mut pipe = redis::pipe();
                for v in pending.drain(..) {
                    pipe.cmd("PUBLISH")
                        .arg(SUBJECT)
                        .arg(status_json(v))
                        .ignore();
                }
                let () = pipe.query_async(conn).await?;
            }
        }
        Ok(())
    }
}

/// One system's subscribers and changer.
pub struct Setup {
    pub name: &'static str,
    n: usize,
    fan: Arc<Fan>,
    changer: Changer,
    tasks: Vec<JoinHandle<Res<()>>>,
    /// The next change number (unique over the run).
    next: u64,
}

pub enum Target<'a> {
    Crvm(&'a str),
    /// The nodes of a cluster: the changer on the first, subscribers spread over all in turn.
    CrvmNodes(&'a [String]),
    Nats(&'a str),
    Redis(&'a str),
}

impl Setup {
    /// Connects the changer and `n` subscribers, each subscribed before this returns.
    pub async fn start(target: Target<'_>, n: usize) -> Res<Setup> {
        let fan = Arc::new(Fan::default());
        let mut tasks = Vec::with_capacity(n);
        let one;
        let (target, name) = match target {
            Target::Crvm(addr) => {
                one = [addr.to_owned()];
                (Target::CrvmNodes(&one), "crvm")
            }
            Target::CrvmNodes(nodes) => (Target::CrvmNodes(nodes), "crvm cluster"),
            t => (t, ""),
        };
        let (name, changer) = match target {
            Target::Crvm(_) => unreachable!("made CrvmNodes above"),
            Target::CrvmNodes(nodes) => {
                let changer = login(&nodes[0], CHANGER).await?;
                // Everyone logs in first, then subscribes: no login pushes to N subscribers.
                let mut subs = Vec::with_capacity(n);
                for i in 0..n {
                    subs.push(login(&nodes[i % nodes.len()], &format!("sub{i}")).await?);
                }
                for mut c in subs {
                    c.request_ok(Op::StartStatusNotify).await?;
                    let fan = fan.clone();
                    tasks.push(tokio::spawn(async move {
                        loop {
                            if let ServerMsg::UserStatus(status) = c.msg().await? {
                                if status.user_id == CHANGER {
                                    fan.on(status.dnd_type as u64);
                                }
                            }
                        }
                    }));
                }
                let (stream, codec) = changer.into_parts();
                let (mut r, w) = stream.into_split();
                let codec = Arc::new(Mutex::new(codec));
                let reader = codec.clone();
                let replies = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = r.read(&mut buf).await?;
                        if n == 0 {
                            return Ok(());
                        }
                        let mut codec = reader.lock().unwrap();
                        codec.feed(&buf[..n]);
                        while let Some(i) = codec.next_incoming()? {
                            match i {
                                Incoming::Msg(
                                    ServerMsg::Res {
                                        result: crvm_proto::Outcome::Ok,
                                        ..
                                    }
                                    | ServerMsg::UserStatus(_),
                                    _,
                                ) => {}
                                Incoming::Msg(m, _) => return Err(format!("changer: {m:?}").into()),
                                _ => {}
                            }
                        }
                    }
                });
                let changer = Changer::Crvm {
                    w,
                    codec,
                    buf: Vec::new(),
                    replies,
                };
                (name, changer)
            }
            Target::Nats(url) => {
                for _ in 0..n {
                    let client = async_nats::connect(url).await?;
                    let mut sub = client.subscribe(SUBJECT).await?;
                    client.flush().await?;
                    let fan = fan.clone();
                    tasks.push(tokio::spawn(async move {
                        let _client = client;
                        while let Some(m) = sub.next().await {
                            if let Some(v) = parse_status(&m.payload)? {
                                fan.on(v);
                            }
                        }
                        Ok(())
                    }));
                }
                ("NATS", Changer::Nats(async_nats::connect(url).await?))
            }
            Target::Redis(url) => {
                let client = redis::Client::open(url)?;
                for _ in 0..n {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(SUBJECT).await?;
                    let fan = fan.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut messages = ps.on_message();
                        while let Some(m) = messages.next().await {
                            if let Some(v) = parse_status(m.get_payload_bytes())? {
                                fan.on(v);
                            }
                        }
                        Ok(())
                    }));
                }
                // No response timeout (500 ms by default): a pipeline of a thousand publishes
                // to a thousand subscribers each takes longer.
                let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                ("Redis", Changer::Redis(conn, Vec::new()))
            }
        };
        Ok(Setup {
            name,
            n,
            fan,
            changer,
            tasks,
            next: 1,
        })
    }

    /// `k` changes back to back (the client batches them, up to 1000 a write): changes per
    /// second, from the first being sent until the last subscriber has the last.
    pub async fn rate(&mut self, k: u64) -> Res<f64> {
        let first = self.next;
        let last = first + k - 1;
        self.next = last + 1;
        self.fan.arm(last, self.n);
        let pushes = self.pushes();
        let t0 = mono_ns();
        for v in first..=last {
            self.changer.change(v).await?;
            if (v - first) % 1000 == 999 {
                self.changer.flush().await?;
            }
        }
        self.changer.flush().await?;
        let t1 = self.fan.wait(self.name).await?;
        self.check()?;
        let got = self.pushes() - pushes;
        if got != k * self.n as u64 {
            let want = k * self.n as u64;
            return Err(format!("{}: {got} pushes arrived, {want} expected", self.name).into());
        }
        Ok(k as f64 / ((t1 - t0) as f64 / 1e9))
    }

    /// `k` single changes, each after the previous reached everyone: nanoseconds from sending
    /// one to the last subscriber having it.
    pub async fn latencies(&mut self, k: u64) -> Res<Vec<u64>> {
        let mut out = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let v = self.next;
            self.next += 1;
            self.fan.arm(v, self.n);
            let t0 = mono_ns();
            self.changer.change(v).await?;
            self.changer.flush().await?;
            let t1 = self.fan.wait(self.name).await?;
            out.push(t1 - t0);
        }
        self.check()?;
        Ok(out)
    }

    /// Fails if a subscriber (or the crvm changer's reply reader) stopped.
    fn check(&mut self) -> Res<()> {
        let Changer::Crvm { replies, .. } = &self.changer else {
            return self.check_tasks();
        };
        if replies.is_finished() {
            return Err("crvm changer's connection ended".into());
        }
        self.check_tasks()
    }

    fn check_tasks(&self) -> Res<()> {
        if let Some(i) = self.tasks.iter().position(|t| t.is_finished()) {
            return Err(format!("{} subscriber {i} stopped", self.name).into());
        }
        Ok(())
    }

    /// Pushes received so far (all subscribers).
    fn pushes(&self) -> u64 {
        self.fan.pushes.load(Ordering::Relaxed)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Changer::Crvm { replies, .. } = &self.changer {
            replies.abort();
        }
    }
}
