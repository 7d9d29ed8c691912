//! The cluster's shared state in Redis (docs/CLUSTER.md): [`RedisHub`] implements
//! the hub's traits with the functions of `crvm.lua`, each an atomic state change that
//! publishes its effects to the nodes concerned; every node applies what arrives on its stream
//! in order ([`LocalSessions::apply`]).
//!
//! A node is alive while its heartbeat is: every `node_timeout / 5` it beats, and the beat reaps
//! every node silent for longer than `node_timeout` (its users go offline, their calls end for
//! the other party — each once, by whichever node's beat got there first). A node that cannot
//! beat for `node_timeout` closes its own sessions (`close{207}`) before anyone may reap it,
//! so a user is never logged in on two nodes; a node that finds it was reaped (it was frozen)
//! does the same and joins again; a node that finds Redis lost its data (the epoch changed)
//! joins again and restores its live sessions.
//!
//! Commands survive dropped connections ([`command`]): they are sent again, and every state
//! change carries an operation ID so that it runs once however often it is sent.

mod api;
mod command;
mod effects;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crvm_proto::error::CRVIDEOSDK_SERVER_EXCEPTION;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Answer, Effect, LocalSessions};
use crate::link::Links;
use crate::primary::Primary;
use crate::random;

/// The functions every node loads (idempotent: `FUNCTION LOAD REPLACE`).
const LIBRARY: &str = include_str!("../crvm.lua");

/// How often the no-answer timers are looked at.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// Sessions restored per call after Redis lost its data.
const RESTORE_BATCH: usize = 256;

/// How this node stands with the cluster.
struct Membership {
    /// The epoch of the data set this node joined ("" before it joined).
    epoch: String,
    /// When the last beat that succeeded was sent.
    last_ok: Instant,
    /// Something may have changed in Redis without this node's sessions being in it (a failed
    /// request, an outage): restore and sweep at the next good beat.
    resync: bool,
    /// How far this node had read its stream at the last good beat: what is before it goes
    /// at the next (a beat's worth of history stays for whoever else reads the stream).
    read_at_beat: String,
    /// The primary moved (a failover) since the last beat: the next one says so.
    moved: bool,
    /// Re-check at the beat after the next: after a failover, once the commands still on
    /// their way to the old primary have landed there (and were perhaps lost).
    resync_next: bool,
}

struct Inner {
    /// Where the primary is, and a client of it with its command connection, once known.
    primary: Primary,
    redis: Mutex<Option<(redis::Client, ConnectionManager)>>,
    node: String,
    local: Arc<LocalSessions>,
    links: Arc<Links>,
    call_timeout_ms: u64,
    node_timeout: Duration,
    /// Logins are taken only while this is set: joined, and Redis reached within the timeout.
    /// A watch, so that a login that arrives meanwhile can wait for it.
    up: watch::Sender<bool>,
    /// Redis holds this node's sessions in the data set it joined. Cleared when Redis is found
    /// to have lost its data, set again once they are restored: changes made for users wait.
    settled: watch::Sender<bool>,
    /// This node's stream is being read: effects reach it. Without it the node counts as
    /// cut off from Redis.
    subscribed: AtomicBool,
    /// The node is stopping: no more heartbeats (it would join again).
    leaving: AtomicBool,
    membership: Mutex<Membership>,
    /// The ID of the last entry of this node's stream applied ("0-0": none yet).
    read_pos: Mutex<String>,
    /// The entries applied since the last trim (by ID), so that none applies twice when the
    /// stream is read again at a new primary.
    applied: Mutex<std::collections::BTreeSet<(u64, u64)>>,
    /// Bumped whenever the commands go to another primary: the stream is read there too.
    primary_gen: AtomicU64,
    /// The `run_id` of the Redis the effects are read from ("" before the first).
    redis_run: Mutex<String>,
    /// Operation IDs of this process's state changes: a random prefix (a restarted node must
    /// not meet its previous instance's remembered results) and a counter.
    op_prefix: String,
    next_op: AtomicU64,
}

/// The command connection to `client`'s Redis. No response timeout: a request whose answer is
/// late must not be answered twice (once with 8, once by its effects). A node cut off from
/// Redis closes its sessions instead, after `node_timeout`.
fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// The shared state of a cluster node.
#[derive(Clone)]
pub struct RedisHub {
    inner: Arc<Inner>,
}

/// `Redis` failed: the request gets 8, and the node re-checks its sessions at the next beat.
#[derive(Debug)]
struct Failed;

impl RedisHub {
    /// Connects (lazily: a node starts while Redis is down and joins once it is up) and
    /// starts the subscription, heartbeat and timer tasks on the current runtime.
    pub fn start(
        primary: Primary,
        node: String,
        local: Arc<LocalSessions>,
        links: Arc<Links>,
        call_timeout: Duration,
        node_timeout: Duration,
    ) -> Result<RedisHub, String> {
        // A fixed address is checked now; Sentinel is asked on first use.
        let redis = match &primary {
            Primary::Url(url) => {
                let client =
                    redis::Client::open(url.as_str()).map_err(|e| format!("cluster.redis: {e}"))?;
                let conn = manager(&client).map_err(|e| format!("cluster.redis: {e}"))?;
                Some((client, conn))
            }
            Primary::Sentinel { .. } => None,
        };
        let hub = RedisHub {
            inner: Arc::new(Inner {
                primary,
                redis: Mutex::new(redis),
                node,
                local,
                links,
                call_timeout_ms: call_timeout.as_millis() as u64,
                node_timeout,
                up: watch::Sender::new(false),
                settled: watch::Sender::new(true),
                subscribed: AtomicBool::new(false),
                leaving: AtomicBool::new(false),
                membership: Mutex::new(Membership {
                    epoch: String::new(),
                    last_ok: Instant::now(),
                    resync: false,
                    read_at_beat: String::new(),
                    moved: false,
                    resync_next: false,
                }),
                read_pos: Mutex::new("0-0".to_owned()),
                applied: Mutex::default(),
                primary_gen: AtomicU64::new(0),
                redis_run: Mutex::new(String::new()),
                op_prefix: random::hex(16),
                next_op: AtomicU64::new(0),
            }),
        };
        tokio::spawn(hub.clone().read_effects());
        tokio::spawn(hub.clone().heartbeat());
        tokio::spawn(hub.clone().timers());
        Ok(hub)
    }

    /// Whether this node takes logins now.
    pub fn is_up(&self) -> bool {
        *self.inner.up.borrow()
    }

    fn set_up(&self, up: bool) {
        self.inner.up.send_replace(up);
    }

    fn set_settled(&self, settled: bool) {
        self.inner.settled.send_replace(settled);
    }

    /// Waits until this node's sessions are in Redis's data set, at most until `deadline`;
    /// whether they are.
    async fn wait_settled(&self, deadline: tokio::time::Instant) -> bool {
        let mut settled = self.inner.settled.subscribe();
        let waited = tokio::time::timeout_at(deadline, settled.wait_for(|s| *s)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Waits until this node takes logins, for at most `patience`; whether it does.
    async fn wait_up(&self, patience: Duration) -> bool {
        let mut up = self.inner.up.subscribe();
        let waited = tokio::time::timeout(patience, up.wait_for(|up| *up)).await;
        matches!(waited, Ok(Ok(_)))
    }

    fn node(&self) -> &str {
        &self.inner.node
    }

    fn epoch(&self) -> String {
        self.inner.membership.lock().epoch.clone()
    }

    /// Applies one effect from this node's stream.
    fn apply(&self, effect: Effect) {
        match effect {
            Effect::NodeGone { node } if node != self.inner.node => self.inner.links.lost(&node),
            Effect::NodeGone { .. } => {}
            e => self.inner.local.apply(e),
        }
    }

    /// Beats every `node_timeout / 5`; joins, rejoins, restores and fences (see the module).
    async fn heartbeat(self) {
        let timeout = self.inner.node_timeout;
        let interval = (timeout / 5).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.inner.leaving.load(Ordering::Acquire) {
                return;
            }
            // Behind Sentinel, where the primary is is asked at every beat: an old primary may
            // take writes for a while after its replica was promoted, which would be lost.
            if self.inner.primary.follows_failovers() {
                self.find_primary().await;
            }
            let sent = Instant::now();
            let joined = !self.epoch().is_empty();
            // Nothing is done for a node that effects cannot reach.
            let result = if !self.inner.subscribed.load(Ordering::Acquire) {
                Ok(Err(Failed))
            } else if joined {
                let moved = std::mem::take(&mut self.inner.membership.lock().moved);
                let args = (
                    self.node(),
                    self.epoch(),
                    timeout.as_millis() as u64,
                    if moved { "1" } else { "0" },
                );
                let beat = tokio::time::timeout(interval, self.fcall::<String>("crvm_beat", args));
                let result = beat.await;
                if !matches!(result, Ok(Ok(_))) && moved {
                    self.inner.membership.lock().moved = true;
                }
                result
            } else {
                Ok(Ok("wiped".to_owned()))
            };
            match result {
                Ok(Ok(state)) => self.after_beat(&state, sent).await,
                _ => {
                    // Before anyone may reap this node (`timeout` after its last beat, checked
                    // at their beats), with two intervals to spare for the check's own lag.
                    let last_ok = self.inner.membership.lock().last_ok;
                    let fence_after = timeout.saturating_sub(interval * 2);
                    if joined && self.is_up() && last_ok.elapsed() >= fence_after {
                        tracing::info!(
                            "cluster: Redis unreachable for {} ms: closing this node's sessions",
                            last_ok.elapsed().as_millis()
                        );
                        self.fence();
                    }
                }
            }
        }
    }

    async fn after_beat(&self, state: &str, sent: Instant) {
        match state {
            "ok" => {
                let read = self.inner.read_pos.lock().clone();
                let (resync, upto) = {
                    let mut m = self.inner.membership.lock();
                    m.last_ok = sent;
                    let upto = std::mem::replace(&mut m.read_at_beat, read);
                    let now = std::mem::take(&mut m.resync);
                    m.resync |= std::mem::take(&mut m.resync_next);
                    (now, upto)
                };
                if !upto.is_empty() {
                    self.trim(&upto).await;
                }
                // Back after an outage that closed every session, nothing of this node's may
                // stay in Redis either.
                let down = !self.is_up();
                if resync || down {
                    if self.resync().await.is_err() {
                        self.inner.membership.lock().resync = true;
                    } else {
                        self.set_settled(true);
                        if down {
                            self.set_up(true);
                            tracing::info!("cluster: node {} serving again", self.node());
                        }
                    }
                } else if !*self.inner.settled.borrow() && !self.inner.membership.lock().resync {
                    // Found stale by a request, though the data set is the one this node
                    // restored into (a change it sent raced its restore), and no re-check is
                    // due (a failover's comes at the next beat): nothing to wait for.
                    self.set_settled(true);
                }
            }
            "fenced" => {
                tracing::info!(
                    "cluster: node {} was declared dead meanwhile: closing its sessions and joining again",
                    self.node()
                );
                self.fence();
                let _ = self.join(sent, false).await;
            }
            _ => {
                // Never joined, or Redis lost the data this node joined: join, then restore
                // (changes made for users wait meanwhile).
                self.set_settled(false);
                let restore = !self.epoch().is_empty() && !self.inner.local.all().is_empty();
                if self.join(sent, restore).await.is_ok() {
                    if self.resync().await.is_err() {
                        self.inner.membership.lock().resync = true;
                    } else {
                        self.set_settled(true);
                    }
                }
            }
        }
    }

    /// Closes every session of this node (`close{207}`) without touching Redis, and takes no
    /// logins until the next good beat.
    fn fence(&self) {
        self.set_up(false);
        for (gen, _) in self.inner.local.all() {
            self.inner.local.apply(Effect::Drop { gen });
        }
    }

    /// Becomes a member of the data set in Redis under this node's generation prefix (a new
    /// one when another node has it; the sessions made under the old one are closed).
    /// `restore`: it has sessions to restore into the data set (Redis lost the one it joined).
    async fn join(&self, sent: Instant, restore: bool) -> Result<(), Failed> {
        self.load_library().await?;
        loop {
            let prefix = format!("{:x}", self.inner.local.prefix());
            let link = format!("{} {}", self.inner.links.addr, self.inner.links.key());
            // After Redis lost the data this node joined, the others may have sessions to
            // restore (whether this one has or not): a data set it makes is young for half a
            // node timeout (the others notice within a beat), and joining it with sessions to
            // restore makes it young that long again. With sessions to restore it is
            // restoring until its sweep. A fenced node has none left.
            let young = if self.epoch().is_empty() {
                0
            } else {
                self.inner.node_timeout.as_millis() as u64 / 2
            };
            let restoring = if restore { "1" } else { "0" };
            let args = (self.node(), prefix, random::hex(32), link, young, restoring);
            let (epoch, ok): (String, i64) = self.change("crvm_join", args).await?;
            if ok == 1 {
                let mut m = self.inner.membership.lock();
                let fresh = m.epoch.is_empty();
                m.epoch = epoch;
                m.last_ok = sent;
                drop(m);
                // Up before it says so: whoever reads the log finds it serving.
                self.set_up(true);
                if fresh {
                    tracing::info!("cluster: node {} joined", self.node());
                } else {
                    tracing::info!("cluster: node {} serving again", self.node());
                }
                return Ok(());
            }
            self.fence();
            self.inner.local.new_prefix();
        }
    }

    /// Makes Redis hold exactly this node's live sessions: restores those it lost (or kicks
    /// them, when their user logged in elsewhere meanwhile), ends those it has that are gone.
    /// The calls they are in are restored too where Redis lost them (not those it ended
    /// lately: their ends are on their way here).
    async fn resync(&self) -> Result<(), Failed> {
        // Logins made while this runs are newer than the list and must survive the sweep.
        let (from, to) = self.inner.local.newer_than_now();
        let sessions = self.inner.local.all();
        let epoch = self.epoch();
        let flag = |on: bool| if on { "1" } else { "0" }.to_owned();
        for chunk in sessions.chunks(RESTORE_BATCH) {
            let mut args: Vec<String> = vec![
                self.node().to_owned(),
                epoch.clone(),
                self.inner.call_timeout_ms.to_string(),
                self.inner.node_timeout.as_millis().to_string(),
            ];
            for (gen, l) in chunk {
                args.push(l.tenant.clone());
                args.push(l.user_id.clone());
                args.push(gen.to_string());
                args.push(l.dnd.to_string());
                args.push(flag(self.inner.local.is_subscribed(&l.tenant, *gen)));
                // The call it is in, if any: call ID, the other party, placed, accepted, meet.
                match self.inner.local.call_of(*gen).filter(|c| !c.placing) {
                    Some(c) => args.extend([
                        c.call_id,
                        c.peer,
                        flag(c.caller),
                        flag(c.connected),
                        c.meet_obj,
                    ]),
                    None => args.extend(["", "", "0", "0", ""].map(str::to_owned)),
                }
            }
            self.change::<Vec<i64>>("crvm_restore", args).await?;
        }
        let mut args: Vec<String> = vec![self.node().to_owned(), epoch, from, to];
        args.extend(sessions.iter().map(|(gen, _)| gen.to_string()));
        let swept: i64 = self.change("crvm_sweep", args).await?;
        tracing::info!(
            "cluster: sessions re-checked: {} live, {swept} stale ended in Redis",
            sessions.len()
        );
        // Subscribers here may have missed changes meanwhile: they get the present.
        let tenants = self.inner.local.subscribed_tenants();
        if !tenants.is_empty() {
            let mut args = vec![self.node().to_owned()];
            args.extend(tenants);
            self.change::<i64>("crvm_snapshot", args).await?;
        }
        Ok(())
    }

    /// Ends every due no-answer timer (whichever node gets there first).
    async fn timers(self) {
        let mut tick = tokio::time::interval(TIMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.is_up() {
                let _ = self.fcall::<i64>("crvm_timers", Vec::<&str>::new()).await;
            }
        }
    }

    /// Runs a function that answers its request itself (through this node's stream), or 8
    /// for the caller to answer when Redis failed.
    async fn answered(&self, name: &str, args: Vec<&str>) -> Answer {
        match self.confirmed(name, &args).await {
            Ok(code) => Answer::Sent(code),
            Err(Failed) => Answer::ToSend(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }
}
