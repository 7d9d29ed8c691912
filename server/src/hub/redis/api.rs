//! [`RedisHub`] as the hub's traits: each request is one function of the library.

use async_trait::async_trait;
use crvm_proto::error::CRVIDEOSDK_SERVER_EXCEPTION;
use crvm_proto::UserStatus;
use redis::FromRedisValue;

use super::{Failed, RedisHub};
use crate::hub::local::LocalCall;
use crate::hub::{
    Answer, CallInfo, CallRequest, CallStore, Directory, Login, Operations, PresenceStore,
    Requester,
};
use crate::ids::LoginGen;
use crate::link::Registry;

#[async_trait]
impl Operations for RedisHub {
    fn healthy(&self) -> bool {
        self.is_up()
    }

    async fn ready(&self) {
        let mut up = self.inner.up.subscribe();
        // The sender lives as long as the hub.
        let _ = up.wait_for(|up| *up).await;
    }

    async fn calls(&self, tenant: &str) -> Result<Vec<CallInfo>, i32> {
        // The key layout of crvm.lua: a tenant's length keeps any tenant and call ID apart.
        let t = format!("{}:{tenant}", tenant.len());
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(format!("crvm:cs:{t}"));
        let ids: Vec<String> = self
            .query("listing calls", &cmd)
            .await
            .map_err(|Failed| CRVIDEOSDK_SERVER_EXCEPTION)?;
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
        let Some(mut conn) = self.connection().await else {
            return Err(CRVIDEOSDK_SERVER_EXCEPTION);
        };
        let rows: Vec<Row> = pipe.query_async(&mut conn).await.map_err(|e| {
            tracing::warn!("cluster: listing calls failed: {e}");
            CRVIDEOSDK_SERVER_EXCEPTION
        })?;
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

    async fn move_session(
        &self,
        tenant: &str,
        user_id: &str,
        gen: LoginGen,
        to: &str,
    ) -> Result<bool, i32> {
        let gen = gen.to_string();
        let args = (self.node(), self.epoch(), to, tenant, user_id, gen.as_str());
        match self.change::<i64>("crvm_move", args).await {
            Ok(n) => Ok(n == 1),
            Err(Failed) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }

    async fn peers(&self) -> Vec<String> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg("crvm:beats").arg(0).arg(-1);
        let nodes: Vec<String> = self
            .query("listing the nodes", &cmd)
            .await
            .unwrap_or_default();
        nodes.into_iter().filter(|n| n != self.node()).collect()
    }

    async fn kick(&self, tenant: &str, user_id: &str) -> Result<bool, i32> {
        match self.change::<i64>("crvm_kick", (tenant, user_id)).await {
            Ok(n) => Ok(n == 1),
            Err(Failed) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }
}

#[async_trait]
impl Registry for RedisHub {
    async fn lookup(&self, node: &str) -> Option<(String, String)> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("crvm:link:{node}"));
        let v: Option<String> = self.query("looking up a node link", &cmd).await.ok()?;
        let v = v?;
        let (addr, key) = v.split_once(' ')?;
        Some((addr.to_owned(), key.to_owned()))
    }
}

#[async_trait]
impl Directory for RedisHub {
    async fn login(&self, login: Login<'_>) -> Result<(), i32> {
        // A node still joining, or briefly cut off from Redis, makes the login wait.
        if !self.wait_up(self.inner.node_timeout).await {
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
        match self.change::<i64>("crvm_login", args).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
            // Redis unreachable for the node timeout: this node closes its sessions, and the
            // next good beat ends whatever of this login reached Redis (`resync`).
            Err(Failed) => Err(CRVIDEOSDK_SERVER_EXCEPTION),
        }
    }

    async fn logout(&self, tenant: &str, user_id: &str, gen: LoginGen) {
        // While this node is cut off, its sessions are swept when it is back.
        if self.is_up() {
            let gen = gen.to_string();
            let _ = self
                .change::<i64>("crvm_logout", (tenant, user_id, gen.as_str()))
                .await;
        }
    }

    async fn leave(&self) {
        self.inner
            .leaving
            .store(true, std::sync::atomic::Ordering::Release);
        self.set_up(false);
        let args = (self.node(), self.epoch());
        match self.change::<i64>("crvm_leave", args).await {
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
        let args = (
            self.node(),
            tenant,
            user_id,
            g.as_str(),
            re.as_str(),
            d.as_str(),
        );
        let answer = match self.change::<i32>("crvm_set_dnd", args).await {
            Ok(code) => Answer::Sent(code),
            Err(Failed) => Answer::ToSend(CRVIDEOSDK_SERVER_EXCEPTION),
        };
        if answer == Answer::Sent(0) {
            self.inner.local.set_dnd(gen, dnd);
        }
        answer
    }

    async fn set_notify(&self, at: &Requester<'_>, on: bool) -> Result<(), i32> {
        let (g, on, re) = (
            at.gen.to_string(),
            if on { "1" } else { "0" },
            at.re.to_string(),
        );
        let args = (
            self.node(),
            at.tenant,
            at.user_id,
            g.as_str(),
            on,
            re.as_str(),
        );
        self.change::<i64>("crvm_notify", args)
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
        // While this node is cut off, the mark waits: its sessions are checked again when it is
        // back.
        if self.is_up() {
            let (g, on) = (gen.to_string(), if on { "1" } else { "0" });
            let _ = self
                .change::<i64>("crvm_reconnecting", (tenant, user_id, g.as_str(), on))
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
        // Recorded before it is placed: the callee's answer may come before this returns.
        let local = &self.inner.local;
        let placed = local.call_of(at.gen).is_none();
        if placed {
            let call = LocalCall {
                call_id: req.call_id.to_owned(),
                peer: req.callee.to_owned(),
                caller: true,
                connected: false,
                meet_obj: req.meet_obj.to_owned(),
                placing: true,
            };
            local.set_call(at.gen, call);
        }
        let answer = self.answered("crvm_call", args).await;
        if placed && answer != Answer::Sent(0) {
            local.call_ended(at.gen, req.call_id);
        } else if placed {
            local.call_placed(at.gen, req.call_id);
        }
        answer
    }

    async fn accept(&self, at: &Requester<'_>, call_id: &str, meet_obj: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, meet_obj, ext];
        let answer = self.answered("crvm_accept", args).await;
        if answer == Answer::Sent(0) {
            self.inner.local.call_connected(at.gen, call_id);
        }
        answer
    }

    async fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, ext];
        let answer = self.answered("crvm_reject", args).await;
        if answer == Answer::Sent(0) {
            self.inner.local.call_ended(at.gen, call_id);
        }
        answer
    }

    async fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        let (gen, re) = (at.gen.to_string(), at.re.to_string());
        let args = vec![at.tenant, at.user_id, &gen, &re, call_id, ext];
        let answer = self.answered("crvm_hangup", args).await;
        if answer == Answer::Sent(0) {
            self.inner.local.call_ended(at.gen, call_id);
        }
        answer
    }
}
