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

/// Whether `e` may go away by sending the command again: the connection dropped or could not
/// be made, Redis is loading, busy or a replica (during a failover). A refused command (a
/// bad argument, a function's error) is final.
fn transient(e: &redis::RedisError) -> bool {
    !matches!(e.retry_method(), RetryMethod::NoRetry)
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
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
            if !tried_load && err.to_string().contains("Function not found") {
                // Redis lost the library (a restart without data): load it and go again.
                tried_load = true;
                self.load_library().await?;
                continue;
            }
            if !transient(&err) || Instant::now() + pause >= deadline {
                tracing::warn!("cluster: {what} failed: {err}");
                self.inner.membership.lock().resync = true;
                return Err(Failed);
            }
            tracing::debug!("cluster: {what} failed ({err}); sending it again");
            tokio::time::sleep(pause).await;
            if self.inner.primary.follows_failovers() {
                self.find_primary().await;
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
    /// often it is sent, it runs once and every attempt gets that run's result.
    pub(super) async fn change<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, Failed> {
        let n = self.inner.next_op.fetch_add(1, Ordering::Relaxed);
        let op = format!("{}:{n:x}", self.inner.op_prefix);
        let keep_ms = 2 * self.inner.node_timeout.as_millis() as u64;
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(name).arg(0).arg(op).arg(keep_ms).arg(args);
        self.query(name, &cmd).await
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
