//! The cluster's shared state in Redis (docs/API.md §4.1, docs/CLUSTER.md): [`RedisHub`] implements
//! the hub's traits with the functions of `crvm.lua`, each an atomic state change that
//! publishes its effects to the nodes concerned; every node applies what arrives on its channel
//! in order ([`LocalSessions::apply`]).
//!
//! A node is alive while its heartbeat is: every `node_timeout / 5` it beats, and the beat reaps
//! every node silent for longer than `node_timeout` (its users go offline, their calls end for
//! the other party — each once, by whichever node's beat got there first). A node that cannot
//! beat for `node_timeout` closes its own sessions (`close{207}`) before anyone may reap it,
//! so a user is never logged in on two nodes; a node that finds it was reaped (it was frozen)
//! does the same and joins again; a node that finds Redis lost its data (the epoch changed)
//! joins again and restores its live sessions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crvm_proto::error::CRVIDEOSDK_SERVER_EXCEPTION;
use crvm_proto::UserStatus;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, ToRedisArgs};
use tokio::time::Instant;

use super::{
    Answer, CallInfo, CallRequest, CallStore, Directory, Effect, LocalSessions, Login, Operations,
    PresenceStore, Requester,
};
use crate::ids::LoginGen;
use crate::link::{Links, Registry};
use crate::random;

/// The functions every node loads (idempotent: `FUNCTION LOAD REPLACE`).
const LIBRARY: &str = include_str!("crvm.lua");

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
    /// request, a lost subscription, an outage): restore and sweep at the next good beat.
    resync: bool,
}

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    node: String,
    local: Arc<LocalSessions>,
    links: Arc<Links>,
    call_timeout_ms: u64,
    node_timeout: Duration,
    /// Logins are taken only while this is set: joined, and Redis reached within the timeout.
    up: AtomicBool,
    /// This node's channel is subscribed: effects can reach it. Without it the node counts as
    /// cut off from Redis.
    subscribed: AtomicBool,
    /// The node is stopping: no more heartbeats (it would join again).
    leaving: AtomicBool,
    membership: Mutex<Membership>,
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
        url: &str,
        node: String,
        local: Arc<LocalSessions>,
        links: Arc<Links>,
        call_timeout: Duration,
        node_timeout: Duration,
    ) -> Result<RedisHub, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cluster.redis: {e}"))?;
        // No response timeout: a request whose answer is late must not be answered twice
        // (once with 8, once by its effects). A node cut off from Redis closes its sessions
        // instead, after `node_timeout`.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("cluster.redis: {e}"))?;
        let hub = RedisHub {
            inner: Arc::new(Inner {
                client,
                conn,
                node,
                local,
                links,
                call_timeout_ms: call_timeout.as_millis() as u64,
                node_timeout,
                up: AtomicBool::new(false),
                subscribed: AtomicBool::new(false),
                leaving: AtomicBool::new(false),
                membership: Mutex::new(Membership {
                    epoch: String::new(),
                    last_ok: Instant::now(),
                    resync: false,
                }),
            }),
        };
        tokio::spawn(hub.clone().subscribe());
        tokio::spawn(hub.clone().heartbeat());
        tokio::spawn(hub.clone().timers());
        Ok(hub)
    }

    /// Whether this node takes logins now.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    fn node(&self) -> &str {
        &self.inner.node
    }

    fn epoch(&self) -> String {
        self.inner.membership.lock().epoch.clone()
    }

    /// Calls function `name` of the library, loading the library first if Redis lost it.
    async fn fcall<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs + Clone,
    ) -> Result<T, Failed> {
        let mut conn = self.inner.conn.clone();
        let mut tried_load = false;
        loop {
            let r = redis::cmd("FCALL")
                .arg(name)
                .arg(0)
                .arg(args.clone())
                .query_async::<T>(&mut conn)
                .await;
            match r {
                Ok(v) => return Ok(v),
                Err(e) if !tried_load && e.to_string().contains("Function not found") => {
                    tried_load = true;
                    self.load_library().await?;
                }
                Err(e) => {
                    tracing::warn!("cluster: {name} failed: {e}");
                    self.inner.membership.lock().resync = true;
                    return Err(Failed);
                }
            }
        }
    }

    async fn load_library(&self) -> Result<(), Failed> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(LIBRARY)
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| {
                tracing::warn!("cluster: loading the functions failed: {e}");
                Failed
            })
    }

    /// Applies what arrives on this node's channel, resubscribing after a lost connection. The
    /// heartbeat joins only while subscribed, and re-checks the sessions after a gap.
    async fn subscribe(self) {
        let channel = format!("crvm:ch:{}", self.node());
        let mut backoff = Duration::from_millis(50);
        loop {
            let ps = match self.inner.client.get_async_pubsub().await {
                Ok(mut ps) => match ps.subscribe(&channel).await {
                    Ok(()) => Some(ps),
                    Err(e) => {
                        tracing::warn!("cluster: subscribing failed: {e}");
                        None
                    }
                },
                Err(_) => None,
            };
            let Some(ps) = ps else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            };
            backoff = Duration::from_millis(50);
            self.inner.subscribed.store(true, Ordering::Release);
            let mut stream = ps.into_on_message();
            while let Some(msg) = stream.next().await {
                match serde_json::from_slice::<Vec<Effect>>(msg.get_payload_bytes()) {
                    Ok(effects) => effects.into_iter().for_each(|e| self.apply(e)),
                    Err(e) => tracing::warn!("cluster: bad message on {channel}: {e}"),
                }
            }
            // Whatever was published meanwhile is lost: the sessions are re-checked.
            tracing::warn!("cluster: subscription lost; resubscribing");
            self.inner.subscribed.store(false, Ordering::Release);
            self.inner.membership.lock().resync = true;
        }
    }

    /// Applies one effect from this node's channel.
    fn apply(&self, effect: Effect) {
        match effect {
            Effect::NodeGone { node } if node != self.inner.node => self.inner.links.lost(&node),
            Effect::NodeGone { .. } => {}
            e => {
                // Every login and logout anywhere shows here as a status change: where the
                // user's session is may have changed.
                if let Effect::Status { tenant, status } = &e {
                    self.inner.links.forget_route(tenant, &status.user_id);
                }
                self.inner.local.apply(e)
            }
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
            let sent = Instant::now();
            let joined = !self.epoch().is_empty();
            // Nothing is done for a node that effects cannot reach.
            let result = if !self.inner.subscribed.load(Ordering::Acquire) {
                Ok(Err(Failed))
            } else if joined {
                let args = (self.node(), self.epoch(), timeout.as_millis() as u64);
                tokio::time::timeout(interval, self.fcall::<String>("crvm_beat", args)).await
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
                let resync = {
                    let mut m = self.inner.membership.lock();
                    m.last_ok = sent;
                    std::mem::take(&mut m.resync)
                };
                // Back after an outage that closed every session, nothing of this node's may
                // stay in Redis either.
                let down = !self.is_up();
                if resync || down {
                    if self.resync().await.is_err() {
                        self.inner.membership.lock().resync = true;
                    } else if down {
                        self.inner.up.store(true, Ordering::Release);
                        tracing::info!("cluster: node {} serving again", self.node());
                    }
                }
            }
            "fenced" => {
                tracing::info!(
                    "cluster: node {} was declared dead meanwhile: closing its sessions and joining again",
                    self.node()
                );
                self.fence();
                let _ = self.join(sent).await;
            }
            _ => {
                // Never joined, or Redis lost the data this node joined: join, then restore.
                if self.join(sent).await.is_ok() && self.resync().await.is_err() {
                    self.inner.membership.lock().resync = true;
                }
            }
        }
    }

    /// Closes every session of this node (`close{207}`) without touching Redis, and takes no
    /// logins until the next good beat.
    fn fence(&self) {
        self.inner.up.store(false, Ordering::Release);
        for (gen, _) in self.inner.local.all() {
            self.inner.local.apply(Effect::Drop { gen });
        }
    }

    /// Becomes a member of the data set in Redis under this node's generation prefix (a new
    /// one when another node has it; the sessions made under the old one are closed).
    async fn join(&self, sent: Instant) -> Result<(), Failed> {
        self.load_library().await?;
        loop {
            let prefix = format!("{:x}", self.inner.local.prefix());
            let link = format!("{} {}", self.inner.links.addr, self.inner.links.key());
            let args = (self.node(), prefix, random::hex(32), link);
            let (epoch, ok): (String, i64) = self.fcall("crvm_join", args).await?;
            if ok == 1 {
                let mut m = self.inner.membership.lock();
                let fresh = m.epoch.is_empty();
                m.epoch = epoch;
                m.last_ok = sent;
                drop(m);
                // Up before it says so: whoever reads the log finds it serving.
                self.inner.up.store(true, Ordering::Release);
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
    async fn resync(&self) -> Result<(), Failed> {
        // Logins made while this runs are newer than the list and must survive the sweep.
        let (from, to) = self.inner.local.newer_than_now();
        let sessions = self.inner.local.all();
        let epoch = self.epoch();
        for chunk in sessions.chunks(RESTORE_BATCH) {
            let mut args: Vec<String> = vec![self.node().to_owned(), epoch.clone()];
            for (gen, l) in chunk {
                args.push(l.tenant.clone());
                args.push(l.user_id.clone());
                args.push(gen.to_string());
                args.push(l.dnd.to_string());
            }
            self.fcall::<Vec<i64>>("crvm_restore", args).await?;
        }
        let mut args: Vec<String> = vec![self.node().to_owned(), epoch, from, to];
        args.extend(sessions.iter().map(|(gen, _)| gen.to_string()));
        let swept: i64 = self.fcall("crvm_sweep", args).await?;
        tracing::info!(
            "cluster: sessions re-checked: {} live, {swept} stale ended in Redis",
            sessions.len()
        );
        // Subscribers here may have missed changes meanwhile: they get the present.
        let tenants = self.inner.local.subscribed_tenants();
        if !tenants.is_empty() {
            let mut args = vec![self.node().to_owned()];
            args.extend(tenants);
            self.fcall::<i64>("crvm_snapshot", args).await?;
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

    /// Runs a function that answers its request itself (through this node's channel), or 8
    /// for the caller to answer when Redis failed.
    async fn answered(&self, name: &str, mut args: Vec<&str>) -> Answer {
        args.insert(0, self.node());
        match self.fcall::<i32>(name, args).await {
            Ok(code) => Answer::Sent(code),
            Err(Failed) => Answer::ToSend(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }
}

#[async_trait]
impl Operations for RedisHub {
    fn healthy(&self) -> bool {
        self.is_up()
    }

    async fn calls(&self, tenant: &str) -> Result<Vec<CallInfo>, i32> {
        let failed = |e: redis::RedisError| {
            tracing::warn!("cluster: listing calls failed: {e}");
            CRVIDEOSDK_SERVER_EXCEPTION
        };
        // The key layout of crvm.lua: a tenant's length keeps any tenant and call ID apart.
        let t = format!("{}:{tenant}", tenant.len());
        let mut conn = self.inner.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("crvm:cs:{t}"))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        if ids.is_empty() {
            return Ok(Vec::new()); // (an empty pipeline answers nothing to convert)
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(format!("crvm:c:{t}:{id}")).arg(&[
                "caller",
                "callee",
                "connected",
            ]);
        }
        type Row = (Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = pipe.query_async(&mut conn).await.map_err(failed)?;
        let mut calls: Vec<CallInfo> = ids
            .into_iter()
            .zip(rows)
            .filter_map(|(call_id, row)| match row {
                // Ended between the two reads.
                (Some(caller), Some(callee), connected) => Some(CallInfo {
                    call_id,
                    caller,
                    callee,
                    connected: connected.as_deref() == Some("1"),
                }),
                _ => None,
            })
            .collect();
        calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        Ok(calls)
    }

    async fn kick(&self, tenant: &str, user_id: &str) -> Result<bool, i32> {
        match self.fcall::<i64>("crvm_kick", (tenant, user_id)).await {
            Ok(n) => Ok(n == 1),
            Err(Failed) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }
}

#[async_trait]
impl Registry for RedisHub {
    async fn lookup(&self, node: &str) -> Option<(String, String)> {
        let mut conn = self.inner.conn.clone();
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("crvm:link:{node}"))
            .query_async(&mut conn)
            .await
            .ok()?;
        let v = v?;
        let (addr, key) = v.split_once(' ')?;
        Some((addr.to_owned(), key.to_owned()))
    }
}

#[async_trait]
impl Directory for RedisHub {
    async fn login(&self, login: Login<'_>) -> Result<(), i32> {
        if !self.is_up() {
            return Err(CRVIDEOSDK_SERVER_EXCEPTION);
        }
        let gen = login.gen.to_string();
        let args = (
            self.node(),
            self.epoch(),
            login.tenant,
            login.user_id,
            gen.as_str(),
        );
        match self.fcall::<i64>("crvm_login", args).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
            // The login may have happened without its answer reaching us; the next good beat
            // ends it there (`resync`), as this node no longer has the session.
            Err(Failed) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }

    async fn logout(&self, tenant: &str, user_id: &str, gen: LoginGen) {
        // While this node is cut off, its sessions are swept when it is back.
        if self.is_up() {
            let gen = gen.to_string();
            let _ = self
                .fcall::<i64>("crvm_logout", (tenant, user_id, gen.as_str()))
                .await;
        }
    }

    async fn leave(&self) {
        self.inner.leaving.store(true, Ordering::Release);
        self.inner.up.store(false, Ordering::Release);
        let args = (self.node(), self.epoch());
        match self.fcall::<i64>("crvm_leave", args).await {
            Ok(n) => tracing::info!("cluster: node {} left ({n} session(s) ended)", self.node()),
            Err(Failed) => tracing::warn!("cluster: node {} could not say it leaves", self.node()),
        }
        self.inner.links.close();
    }

    async fn locate(&self, tenant: &str, user_id: &str) -> Result<Option<String>, i32> {
        self.fcall("crvm_where", (tenant, user_id))
            .await
            .map_err(|Failed| CRVIDEOSDK_SERVER_EXCEPTION)
    }
}

#[async_trait]
impl PresenceStore for RedisHub {
    async fn set_dnd(
        &self,
        tenant: &str,
        user_id: &str,
        gen: LoginGen,
        re: u64,
        dnd: i32,
    ) -> Answer {
        let (g, re, d) = (gen.to_string(), re.to_string(), dnd.to_string());
        let answer = self
            .answered("crvm_set_dnd", vec![tenant, user_id, &g, &re, &d])
            .await;
        if answer == Answer::Sent(0) {
            self.inner.local.set_dnd(gen, dnd);
        }
        answer
    }

    async fn set_notify(&self, gen: LoginGen, on: bool, re: u64) -> Result<(), i32> {
        let (g, on, re) = (gen.to_string(), if on { "1" } else { "0" }, re.to_string());
        let args = (self.node(), g.as_str(), on, re.as_str());
        self.fcall::<i64>("crvm_notify", args)
            .await
            .map(drop)
            .map_err(|Failed| CRVIDEOSDK_SERVER_EXCEPTION)
    }

    async fn statuses(&self, tenant: &str) -> Result<Vec<UserStatus>, i32> {
        let flat: Vec<redis::Value> = self
            .fcall("crvm_statuses", tenant)
            .await
            .map_err(|Failed| CRVIDEOSDK_SERVER_EXCEPTION)?;
        let mut out = Vec::with_capacity(flat.len() / 4);
        for t in flat.chunks_exact(4) {
            let (Ok(user_id), Ok(user_status), Ok(dnd_type), Ok(rc)) = (
                String::from_redis_value(t[0].clone()),
                i32::from_redis_value(t[1].clone()),
                i32::from_redis_value(t[2].clone()),
                i32::from_redis_value(t[3].clone()),
            ) else {
                return Err(CRVIDEOSDK_SERVER_EXCEPTION);
            };
            out.push(UserStatus {
                user_id,
                user_status,
                dnd_type,
                reconnecting: rc != 0,
            });
        }
        Ok(out)
    }

    async fn set_reconnecting(&self, tenant: &str, user_id: &str, gen: LoginGen, on: bool) {
        // While this node is cut off, the mark waits: its sessions are swept when it is back.
        if self.is_up() {
            let (g, on) = (gen.to_string(), if on { "1" } else { "0" });
            let _ = self
                .fcall::<i64>("crvm_reconnecting", (tenant, user_id, g.as_str(), on))
                .await;
        }
    }
}

#[async_trait]
impl CallStore for RedisHub {
    async fn call(&self, at: &Requester<'_>, req: &CallRequest<'_>) -> Answer {
        let (gen, re, timeout) = (
            at.gen.to_string(),
            at.re.to_string(),
            self.inner.call_timeout_ms.to_string(),
        );
        let args = vec![
            at.tenant,
            at.user_id,
            &gen,
            &re,
            req.call_id,
            req.callee,
            req.meet_obj,
            req.ext,
            &timeout,
        ];
        self.answered("crvm_call", args).await
    }

    async fn accept(&self, at: &Requester<'_>, call_id: &str, meet_obj: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, meet_obj, ext];
        self.answered("crvm_accept", args).await
    }

    async fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, ext];
        self.answered("crvm_reject", args).await
    }

    async fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, ext];
        self.answered("crvm_hangup", args).await
    }
}
