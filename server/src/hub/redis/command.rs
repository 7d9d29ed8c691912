//! Commands to Redis that a dropped connection does not fail (docs/DESIGN.md, "Redis faults
//! users never see").
//!
//! A command whose connection drops is sent again on a new connection at once (then after a
//! short, growing pause while Redis refuses connections), for as long as `node_timeout`:
//! beyond that the node closes its own sessions anyway. Sending a state change again is safe
//! because each carries an **operation ID**: the function runs the change once and remembers
//! its result under that ID (`crvm:op:<id>`, kept for twice the node timeout), so a change
//! whose connection dropped after it ran is answered from the memory — its effects were
//! published once, by the run that made them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RetryMethod, ToRedisArgs};
use tokio::time::Instant;

use super::{manager, Failed, RedisHub, LIBRARY};

/// Pauses between attempts while Redis cannot be reached: the first retry goes at once.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);
/// Pause before asking again while the nodes restore their sessions into an emptied Redis.
const RESTORING_PAUSE: Duration = Duration::from_millis(50);

/// Whether `e` may go away by sending the command again: the connection dropped or could not
/// be made, Redis is loading, busy or a replica (during a failover). A refused command (a
/// bad argument, a function's error) is final.
fn transient(e: &redis::RedisError) -> bool {
    !matches!(e.retry_method(), RetryMethod::NoRetry)
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
}

/// How a command failed.
enum Fault {
    /// Beyond hope, or refused: the request fails.
    Failed,
    /// A change made for a user reached a data set this node has not restored its sessions
    /// into (Redis came back empty): it is sent again once the node has.
    Stale,
    /// A call change sent to be confirmed would be refused (`CRVMREFUSED`), or must wait for
    /// the nodes' re-checks after a failover (`CRVMMOVING`: `moving`): nothing ran, nothing
    /// was answered.
    Refused { moving: bool },
}

/// The state changes that join a data set and restore into it: they never wait for that.
fn restores(name: &str) -> bool {
    matches!(
        name,
        "crvm_join" | "crvm_restore" | "crvm_sweep" | "crvm_snapshot" | "crvm_leave"
    )
}

impl RedisHub {
    /// Runs `cmd`, sending it again after transient failures for up to `node_timeout`.
    /// `what` names it in the log.
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, Failed> {
        let deadline = Instant::now() + self.inner.node_timeout;
        match self.query_until(what, cmd, deadline, false).await {
            Ok(v) => Ok(v),
            Err(_) => Err(Failed),
        }
    }

    /// [`RedisHub::query`] until `deadline`. For a change made for a user (`user`), a missing
    /// library (Redis restarted empty) or a refusal as stale is [`Fault::Stale`].
    async fn query_until<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
        deadline: Instant,
        user: bool,
    ) -> Result<T, Fault> {
        let mut pause = Duration::ZERO;
        let mut tried_load = false;
        loop {
            let err = match self.connection().await {
                Some(mut conn) => match cmd.query_async::<T>(&mut conn).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                },
                None => redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no primary known",
                )),
            };
            let text = err.to_string();
            if text.contains("CRVMREFUSED") || text.contains("CRVMMOVING") {
                let moving = text.contains("CRVMMOVING");
                return Err(Fault::Refused { moving });
            }
            if text.contains("CRVMRESTORING") && Instant::now() + RESTORING_PAUSE < deadline {
                // Nothing ran: the user looked up may be one a node has not restored yet.
                tokio::time::sleep(RESTORING_PAUSE).await;
                continue;
            }
            if user && (text.contains("CRVMSTALE") || text.contains("Function not found")) {
                // Nothing ran. Redis lost its data: restore first (the next beat), then go on.
                self.set_settled(false);
                if text.contains("Function not found") {
                    let _ = self.load_library().await;
                }
                return Err(Fault::Stale);
            }
            if !tried_load && text.contains("Function not found") {
                // Redis lost the library (a restart without data): load it and go again.
                tried_load = true;
                self.load_library().await.map_err(|_| Fault::Failed)?;
                continue;
            }
            if !transient(&err) || Instant::now() + pause >= deadline {
                tracing::warn!("cluster: {what} failed: {err}");
                self.inner.membership.lock().resync = true;
                return Err(Fault::Failed);
            }
            tracing::debug!("cluster: {what} failed ({err}); sending it again");
            tokio::time::sleep(pause).await;
            if self.inner.primary.follows_failovers() {
                self.find_primary().await;
            }
            if user && !*self.inner.settled.borrow() {
                // The primary moved: the change waits for the re-check there.
                return Err(Fault::Stale);
            }
            pause = (pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
        }
    }

    /// Calls function `name` of the library: a read, or a change that may safely run twice
    /// (a heartbeat, the timers).
    pub(super) async fn fcall<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, Failed> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(name).arg(0).arg(args);
        self.query(name, &cmd).await
    }

    /// Calls state change `name` of the library under a fresh operation ID, so that however
    /// often it is sent, it runs once and every attempt gets that run's result. A change made
    /// for a user names the data set this node restored its sessions into, and waits while the
    /// node restores them into a new one (Redis came back empty) — within `node_timeout`.
    pub(super) async fn change<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, Failed> {
        match self.try_change(name, args).await {
            Ok(v) => Ok(v),
            // (Only a call change sent to be confirmed is refused: see `confirmed`.)
            Err(Fault::Refused { .. }) | Err(Fault::Failed) | Err(Fault::Stale) => Err(Failed),
        }
    }

    /// A call function of the library (`crvm_call`, `crvm_accept`, …) sent by this node's
    /// `node` for a user, which answers its request itself; its code, or `Failed`.
    ///
    /// Behind Sentinel a refusal (600, 601, 602, 603) is confirmed before it is answered: the
    /// nodes follow a failover a beat apart, and until each has re-checked its sessions at the
    /// new primary what one wrote to the old one may be missing there — or this node may still
    /// be talking to the old one. So the function is first sent with `?node`: a refusal comes
    /// back unanswered, nothing done; the node asks Sentinel where the primary is and, if it
    /// moved, follows it and sends the function again there (after its own re-check there);
    /// while some node's re-check since a failover is due it sends it again every 50 ms, for
    /// at most half the node timeout. Then it is sent as `node`, and its answer is final. Only
    /// refusals pay: one question to Sentinel when nothing moved.
    pub(super) async fn confirmed(&self, name: &str, args: &[&str]) -> Result<i32, Failed> {
        let asking = format!("?{}", self.node());
        let confirm_until = Instant::now() + self.inner.node_timeout / 2;
        let mut confirm = self.inner.primary.follows_failovers();
        loop {
            let at = if confirm {
                asking.as_str()
            } else {
                self.node()
            };
            let mut all = Vec::with_capacity(args.len() + 1);
            all.push(at);
            all.extend_from_slice(args);
            match self.try_change::<i32>(name, all).await {
                Ok(code) => return Ok(code),
                Err(Fault::Refused { moving }) => {
                    // Where the primary is now: a move makes the next attempt wait for this
                    // node's re-check at the new one (`change` waits for `settled`).
                    let gen = self.inner.primary_gen.load(Ordering::Acquire);
                    self.find_primary().await;
                    let moved = self.inner.primary_gen.load(Ordering::Acquire) != gen;
                    if moved && Instant::now() < confirm_until {
                        continue;
                    }
                    if !moving || Instant::now() + RESTORING_PAUSE >= confirm_until {
                        confirm = false;
                    } else {
                        tokio::time::sleep(RESTORING_PAUSE).await;
                    }
                }
                Err(Fault::Failed) | Err(Fault::Stale) => return Err(Failed),
            }
        }
    }

    /// [`RedisHub::change`], telling a refusal of a call change sent to be confirmed apart.
    async fn try_change<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, Fault> {
        let n = self.inner.next_op.fetch_add(1, Ordering::Relaxed);
        let op = format!("{}:{n:x}", self.inner.op_prefix);
        let keep_ms = 2 * self.inner.node_timeout.as_millis() as u64;
        let args = args.to_redis_args();
        let user = !restores(name);
        let deadline = Instant::now() + self.inner.node_timeout;
        loop {
            if user && !self.wait_settled(deadline).await {
                tracing::warn!("cluster: {name} failed: the sessions were not restored in time");
                return Err(Fault::Failed);
            }
            let epoch = if user { self.epoch() } else { String::new() };
            let mut cmd = redis::cmd("FCALL");
            cmd.arg(name).arg(0).arg(&op).arg(keep_ms).arg(epoch);
            for a in &args {
                cmd.arg(&a[..]);
            }
            match self.query_until(name, &cmd, deadline, user).await {
                Ok(v) => return Ok(v),
                Err(Fault::Stale) => continue,
                Err(f) => return Err(f),
            }
        }
    }

    /// The command connection to the primary (found first if it is not known yet).
    pub(super) async fn connection(&self) -> Option<ConnectionManager> {
        if let Some((_, conn)) = &*self.inner.redis.lock() {
            return Some(conn.clone());
        }
        self.find_primary().await
    }

    /// A client of the primary (found first if it is not known yet).
    pub(super) async fn client(&self) -> Option<redis::Client> {
        if let Some((client, _)) = &*self.inner.redis.lock() {
            return Some(client.clone());
        }
        self.find_primary().await?;
        self.inner.redis.lock().as_ref().map(|(c, _)| c.clone())
    }

    /// Asks where the primary is (Sentinel: after a failover it moved) and, if it moved,
    /// connects there from now on. The connection to use.
    pub(super) async fn find_primary(&self) -> Option<ConnectionManager> {
        let client = match self.inner.primary.client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cluster: finding the Redis primary failed: {e}");
                return self.inner.redis.lock().as_ref().map(|(_, c)| c.clone());
            }
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut redis = self.inner.redis.lock();
        if let Some((known, conn)) = &*redis {
            if known.get_connection_info().addr().to_string() == addr {
                return Some(conn.clone());
            }
        }
        let conn = manager(&client).ok()?;
        tracing::info!("cluster: the Redis primary is {addr}");
        if redis.is_some() {
            // The old primary may have taken writes its replica never got (replication is
            // asynchronous): the sessions are re-checked at the new one.
            let mut m = self.inner.membership.lock();
            m.resync_next = true;
            m.moved = true;
            drop(m);
            // Changes made for users wait for that re-check: run before it, they would act
            // on what the new primary lacks (a call it lost is not there to hang up).
            self.set_settled(false);
        }
        *redis = Some((client, conn.clone()));
        self.inner.primary_gen.fetch_add(1, Ordering::AcqRel);
        Some(conn)
    }

    /// Loads the library (idempotent: `FUNCTION LOAD REPLACE`).
    pub(super) async fn load_library(&self) -> Result<(), Failed> {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD").arg("REPLACE").arg(LIBRARY);
        // Not `query`: it calls this when a function is missing.
        let deadline = Instant::now() + self.inner.node_timeout;
        let mut pause = Duration::ZERO;
        loop {
            let Some(mut conn) = self.connection().await else {
                tokio::time::sleep(pause.max(FIRST_PAUSE)).await;
                pause = (pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
                if Instant::now() >= deadline {
                    return Err(Failed);
                }
                continue;
            };
            match cmd.query_async::<String>(&mut conn).await {
                Ok(_) => return Ok(()),
                Err(e) if transient(&e) && Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
                }
                Err(e) => {
                    tracing::warn!("cluster: loading the functions failed: {e}");
                    return Err(Failed);
                }
            }
        }
    }
}
