//! This node's effects, read from its Redis stream `crvm:fx:<node>` (docs/CLUSTER.md): the
//! functions append what this node must do; the reader applies it in order and remembers how
//! far it got, so that after a dropped connection it goes on from there and loses nothing
//! (a pub/sub channel would drop whatever was published while it reconnected).

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use super::RedisHub;
use crate::hub::Effect;

/// How long one read waits for new effects (it then asks again: a dead connection shows).
const BLOCK: Duration = Duration::from_millis(1000);
/// Pauses between attempts to connect while Redis refuses: the first goes at once.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// One XREAD's answer: per stream, its entries as (ID, [field, value, …]).
type Entries = Vec<(String, Vec<(String, Vec<Vec<u8>>)>)>;

impl RedisHub {
    /// This node's stream.
    pub(super) fn stream(&self) -> String {
        format!("crvm:fx:{}", self.node())
    }

    /// Reads and applies this node's effects for as long as the node runs, connecting again
    /// at once when the connection drops. While it is not connected the node counts as cut
    /// off from Redis (the heartbeat does nothing).
    pub(super) async fn read_effects(self) {
        let stream = self.stream();
        let mut pause = Duration::ZERO;
        loop {
            let Some(mut conn) = self.reader_connection().await else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
                continue;
            };
            pause = Duration::ZERO;
            // From here on nothing for this node can be missed.
            self.inner.subscribed.store(true, Ordering::Release);
            let primary = self.inner.primary_gen.load(Ordering::Acquire);
            // Until the commands go to another primary: the effects are read there then.
            while primary == self.inner.primary_gen.load(Ordering::Acquire) {
                let from = self.inner.read_pos.lock().clone();
                let read = redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(&from)
                    .query_async::<Option<Entries>>(&mut conn)
                    .await;
                match read {
                    Ok(got) => {
                        for (_, entries) in got.unwrap_or_default() {
                            for (id, fields) in entries {
                                // Read again after a failover (below): applied once.
                                if self.inner.applied.lock().insert(entry_id(&id)) {
                                    self.apply_entry(&id, &fields);
                                }
                                *self.inner.read_pos.lock() = id;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!("cluster: reading effects failed ({e}); reconnecting");
                        self.inner.subscribed.store(false, Ordering::Release);
                        break;
                    }
                }
            }
        }
    }

    /// A connection of its own (a blocking read would hold up every command behind it). A
    /// Redis that is another run than the one before (restarted, or a replica promoted) may
    /// have come back with less than it had: the sessions are re-checked at the next beat.
    async fn reader_connection(&self) -> Option<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BLOCK + self.inner.node_timeout));
        // Behind Sentinel, a lost connection may mean a failover: ask where the primary is.
        if self.inner.primary.follows_failovers() {
            self.find_primary().await;
        }
        let mut conn = self
            .client()
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .ok()?;
        let run = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let before = std::mem::replace(&mut *self.inner.redis_run.lock(), run.clone());
        if !before.is_empty() && before != run {
            tracing::info!("cluster: Redis restarted or failed over: re-checking the sessions");
            let mut m = self.inner.membership.lock();
            m.resync_next = true;
            // A promoted replica may lack the last entries read from the old primary and have
            // others, written there since, before the read position: read again from the
            // last trim (entries already applied are skipped).
            let from = if m.read_at_beat.is_empty() {
                "0-0".to_owned()
            } else {
                m.read_at_beat.clone()
            };
            *self.inner.read_pos.lock() = from;
        }
        Some(conn)
    }

    /// Applies the effects of entry `id` (field `e`: a JSON array).
    fn apply_entry(&self, id: &str, fields: &[Vec<u8>]) {
        for pair in fields.chunks_exact(2) {
            if pair[0] != b"e" {
                continue;
            }
            match serde_json::from_slice::<Vec<Effect>>(&pair[1]) {
                Ok(effects) => effects.into_iter().for_each(|e| self.apply(e)),
                Err(e) => tracing::warn!("cluster: bad effects {id} on {}: {e}", self.stream()),
            }
        }
    }

    /// Drops the entries of this node's stream before `upto` (read a beat ago or more).
    pub(super) async fn trim(&self, upto: &str) {
        let mut cmd = redis::cmd("XTRIM");
        cmd.arg(self.stream()).arg("MINID").arg(upto);
        let _ = self.query::<i64>("trimming the effects read", &cmd).await;
        let upto = entry_id(upto);
        self.inner.applied.lock().retain(|id| *id >= upto);
    }
}

/// A stream entry's ID (`ms-seq`) as numbers, which order like the IDs.
fn entry_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}
