//! The single-node shared state: everything in memory, one lock per tenant. Every transition
//! and the application of its effects to [`LocalSessions`] happen under that lock, and pushes
//! are non-blocking queue appends, so every subscriber sees one user's changes in the order
//! they happened and nobody ever waits on a slow subscriber.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crvm_proto::error::{CRVIDEOSDK_INVALID_CALLID, CRVIDEOSDK_NOT_LOGIN};
use crvm_proto::msg::{STATUS_IN_CALL, STATUS_OFFLINE, STATUS_ONLINE};
use crvm_proto::{ServerMsg, UserStatus};
use parking_lot::Mutex;

use super::{
    Answer, CallInfo, CallRequest, CallStore, Directory, Effect, LocalSessions, Login, Operations,
    PresenceStore, Requester,
};
use crate::calls::{self, CallTable};
use crate::ids::LoginGen;

#[derive(Debug)]
struct Entry {
    gen: LoginGen,
    user_status: i32,
    dnd: i32,
    /// Held for a resume for longer than the grace period.
    reconnecting: bool,
}

/// One tenant's online users (ordered, so the status list comes out sorted) and calls.
#[derive(Debug, Default)]
struct TenantState {
    users: BTreeMap<String, Entry>,
    calls: CallTable,
}

fn status(user_id: &str, e: &Entry) -> UserStatus {
    UserStatus {
        user_id: user_id.to_owned(),
        user_status: e.user_status,
        dnd_type: e.dnd,
        reconnecting: e.reconnecting,
    }
}

struct Inner {
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantState>>>>,
    local: Arc<LocalSessions>,
    call_timeout: Duration,
}

/// The single-node hub.
#[derive(Clone)]
pub struct MemoryHub {
    inner: Arc<Inner>,
}

impl MemoryHub {
    pub fn new(local: Arc<LocalSessions>, call_timeout: Duration) -> MemoryHub {
        MemoryHub {
            inner: Arc::new(Inner {
                tenants: Mutex::default(),
                local,
                call_timeout,
            }),
        }
    }

    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantState>> {
        // Tenants come from the config, so this map stays as small as the config.
        self.inner
            .tenants
            .lock()
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }

    fn status_effect(tenant: &str, status: UserStatus) -> Effect {
        Effect::Status {
            tenant: tenant.to_owned(),
            status,
        }
    }

    /// Applies what a call transition decided: messages to the parties, then their new status.
    fn apply_calls(&self, tenant: &str, t: &mut TenantState, effects: Vec<calls::Effect>) {
        let local = &self.inner.local;
        for effect in effects {
            match effect {
                calls::Effect::Notify { user, msg } => {
                    if let Some(e) = t.users.get(&user) {
                        local.apply(Effect::Deliver { gen: e.gen, msg });
                    }
                }
                calls::Effect::InCall { user, in_call } => {
                    if let Some(e) = t.users.get_mut(&user) {
                        e.user_status = if in_call {
                            STATUS_IN_CALL
                        } else {
                            STATUS_ONLINE
                        };
                        local.apply(Self::status_effect(tenant, status(&user, e)));
                    }
                }
            }
        }
    }

    /// Runs one call transition for `at` under its tenant's lock: checks that `at`'s session is
    /// still the user's (else `not_current`), applies the effects, then queues `at`'s reply.
    fn transition<T>(
        &self,
        at: &Requester<'_>,
        not_current: i32,
        f: impl FnOnce(&mut TenantState) -> Result<(T, Vec<calls::Effect>), i32>,
    ) -> Result<T, i32> {
        self.transition_then(at, not_current, f, |_| None)
    }

    /// [`MemoryHub::transition`], then queues to `at` the message `then` picks, still under
    /// the lock.
    fn transition_then<T>(
        &self,
        at: &Requester<'_>,
        not_current: i32,
        f: impl FnOnce(&mut TenantState) -> Result<(T, Vec<calls::Effect>), i32>,
        then: impl FnOnce(&TenantState) -> Option<ServerMsg>,
    ) -> Result<T, i32> {
        let tenant = self.tenant(at.tenant);
        let mut t = tenant.lock();
        if t.users.get(at.user_id).map(|e| e.gen) != Some(at.gen) {
            return Err(not_current);
        }
        let (value, effects) = f(&mut t)?;
        self.apply_calls(at.tenant, &mut t, effects);
        self.inner.local.apply(Effect::Reply {
            gen: at.gen,
            re: at.re.to_string(),
            code: 0,
        });
        if let Some(msg) = then(&t) {
            self.inner.local.apply(Effect::Deliver { gen: at.gen, msg });
        }
        Ok(value)
    }

    /// The no-answer timer of call `serial` fired; ends the call if it is still ringing.
    fn no_answer(&self, tenant: &str, call_id: &str, serial: u64) {
        let state = self.tenant(tenant);
        let mut t = state.lock();
        let effects = t.calls.no_answer(call_id, serial);
        self.apply_calls(tenant, &mut t, effects);
    }
}

#[async_trait]
impl Directory for MemoryHub {
    async fn login(&self, login: Login<'_>) -> Result<(), i32> {
        let state = self.tenant(login.tenant);
        let mut t = state.lock();
        // The kicked session's call ends as if that session had gone away.
        let ended = t.calls.vanish(login.user_id);
        self.apply_calls(login.tenant, &mut t, ended);
        let entry = Entry {
            gen: login.gen,
            user_status: STATUS_ONLINE,
            dnd: 0,
            reconnecting: false,
        };
        let old = t.users.insert(login.user_id.to_owned(), entry);
        if let Some(old) = old {
            self.inner.local.apply(Effect::Kick { gen: old.gen });
        }
        let st = status(login.user_id, &t.users[login.user_id]);
        self.inner
            .local
            .apply(Self::status_effect(login.tenant, st));
        Ok(())
    }

    async fn logout(&self, tenant: &str, user_id: &str, gen: LoginGen) {
        let state = self.tenant(tenant);
        let mut t = state.lock();
        if t.users.get(user_id).map(|e| e.gen) != Some(gen) {
            return;
        }
        let ended = t.calls.vanish(user_id);
        self.apply_calls(tenant, &mut t, ended);
        t.users.remove(user_id);
        let offline = UserStatus::new(user_id, STATUS_OFFLINE, 0);
        self.inner.local.apply(Self::status_effect(tenant, offline));
    }

    async fn locate(&self, tenant: &str, user_id: &str) -> Result<Option<String>, i32> {
        let state = self.tenant(tenant);
        let t = state.lock();
        Ok(t.users.get(user_id).map(|_| String::new()))
    }
}

#[async_trait]
impl PresenceStore for MemoryHub {
    async fn set_dnd(
        &self,
        tenant: &str,
        user_id: &str,
        gen: LoginGen,
        _re: u64,
        dnd: i32,
    ) -> Answer {
        // One node: the status is pushed under the lock, so the caller's answer after it keeps
        // its order.
        let state = self.tenant(tenant);
        let mut t = state.lock();
        match t.users.get_mut(user_id) {
            Some(e) if e.gen == gen => {
                e.dnd = dnd;
                let st = status(user_id, e);
                self.inner.local.apply(Self::status_effect(tenant, st));
                Answer::ToSend(0)
            }
            _ => Answer::ToSend(CRVIDEOSDK_NOT_LOGIN),
        }
    }

    async fn set_notify(&self, at: &Requester<'_>, on: bool) -> Result<(), i32> {
        let (gen, re) = (at.gen, at.re.to_string());
        self.inner.local.apply(Effect::Notify { gen, on, re });
        Ok(())
    }

    async fn statuses(&self, tenant: &str) -> Result<Vec<UserStatus>, i32> {
        let state = self.tenant(tenant);
        let t = state.lock();
        Ok(t.users.iter().map(|(id, e)| status(id, e)).collect())
    }

    async fn set_reconnecting(&self, tenant: &str, user_id: &str, gen: LoginGen, on: bool) {
        let state = self.tenant(tenant);
        let mut t = state.lock();
        if let Some(e) = t.users.get_mut(user_id) {
            if e.gen == gen && e.reconnecting != on {
                e.reconnecting = on;
                let st = status(user_id, e);
                self.inner.local.apply(Self::status_effect(tenant, st));
            }
        }
    }
}

#[async_trait]
impl CallStore for MemoryHub {
    async fn call(&self, at: &Requester<'_>, req: &CallRequest<'_>) -> Answer {
        let started = self.transition_then(
            at,
            CRVIDEOSDK_NOT_LOGIN,
            |t| {
                let callee = t.users.get(req.callee);
                let (online, dnd) = (callee.is_some(), callee.is_some_and(|e| e.dnd != 0));
                t.calls.start(
                    req.call_id,
                    at.user_id,
                    req.callee,
                    req.meet_obj,
                    req.ext,
                    online,
                    dnd,
                )
            },
            // The caller learns that it rings a user whose link is down.
            |t| {
                let e = t.users.get(req.callee).filter(|e| e.reconnecting)?;
                Some(ServerMsg::UserStatus(status(req.callee, e)))
            },
        );
        let serial = match started {
            Ok(serial) => serial,
            Err(code) => return Answer::ToSend(code),
        };
        let hub = self.clone();
        let (tenant, call_id) = (at.tenant.to_owned(), req.call_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(hub.inner.call_timeout).await;
            hub.no_answer(&tenant, &call_id, serial);
        });
        Answer::Sent(0)
    }

    async fn accept(&self, at: &Requester<'_>, call_id: &str, meet_obj: &str, ext: &str) -> Answer {
        answer(self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.accept(at.user_id, call_id, meet_obj, ext)?))
        }))
    }

    async fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        answer(self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.reject(at.user_id, call_id, ext)?))
        }))
    }

    async fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer {
        answer(self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.hangup(at.user_id, call_id, ext)?))
        }))
    }
}

/// A transition that succeeded answered its requester itself; a refusal is the caller's to
/// answer.
fn answer(r: Result<(), i32>) -> Answer {
    match r {
        Ok(()) => Answer::Sent(0),
        Err(code) => Answer::ToSend(code),
    }
}

#[async_trait]
impl Operations for MemoryHub {
    fn healthy(&self) -> bool {
        true
    }

    async fn calls(&self, tenant: &str) -> Result<Vec<CallInfo>, i32> {
        Ok(self.tenant(tenant).lock().calls.list())
    }

    async fn kick(&self, tenant: &str, user_id: &str) -> Result<bool, i32> {
        let gen = self.tenant(tenant).lock().users.get(user_id).map(|e| e.gen);
        if let Some(gen) = gen {
            self.inner.local.apply(Effect::Kicked { gen });
        }
        Ok(gen.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::local::Local;
    use crate::outbox::{Outbox, State};

    fn hub() -> (MemoryHub, Arc<LocalSessions>) {
        let local = Arc::new(LocalSessions::new(0));
        (
            MemoryHub::new(Arc::clone(&local), Duration::from_secs(30)),
            local,
        )
    }

    /// Adds a session to the node and logs it in; returns its generation and outbox.
    async fn login(
        hub: &MemoryHub,
        local: &LocalSessions,
        tenant: &str,
        user: &str,
    ) -> (LoginGen, Outbox) {
        let outbox = Outbox::default();
        let gen = local.next_gen();
        local.add(
            gen,
            Local {
                tenant: tenant.into(),
                user_id: user.into(),
                outbox: outbox.clone(),
                dnd: 0,
            },
        );
        hub.login(Login {
            tenant,
            user_id: user,
            gen,
        })
        .await
        .unwrap();
        local.open(gen);
        (gen, outbox)
    }

    fn st(user: &str, s: i32, d: i32) -> ServerMsg {
        ServerMsg::UserStatus(UserStatus::new(user, s, d))
    }

    #[tokio::test]
    async fn presence_flow_and_tenant_isolation() {
        let (hub, local) = hub();
        let (bob, bob_ob) = login(&hub, &local, "t1", "bob").await;
        let (carol, carol_ob) = login(&hub, &local, "t2", "carol").await;
        assert!(local.set_notify(bob, true));
        assert!(local.set_notify(carol, true));
        let (alice, _) = login(&hub, &local, "t1", "alice").await;
        assert_eq!(
            hub.set_dnd("t1", "alice", alice, 1, 7).await,
            Answer::ToSend(0)
        );
        hub.logout("t1", "alice", alice).await;
        hub.logout("t1", "alice", alice).await;
        assert_eq!(
            bob_ob.take_msgs(),
            vec![st("alice", 1, 0), st("alice", 1, 7), st("alice", 0, 0)]
        );
        assert!(carol_ob.take_msgs().is_empty());
        assert_eq!(hub.statuses("t2").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_reconnecting_mark_is_pushed_on_change_listed_and_told_to_a_caller() {
        let (hub, local) = hub();
        let (bob, bob_ob) = login(&hub, &local, "t", "bob").await;
        local.set_notify(bob, true);
        let (alice, _) = login(&hub, &local, "t", "alice").await;
        let held = |s, d| {
            ServerMsg::UserStatus(UserStatus {
                reconnecting: true,
                ..UserStatus::new("alice", s, d)
            })
        };
        hub.set_reconnecting("t", "alice", alice, true).await;
        // Only a change is pushed; a stale session changes nothing.
        hub.set_reconnecting("t", "alice", alice, true).await;
        hub.set_reconnecting("t", "alice", bob, false).await;
        assert!(hub.statuses("t").await.unwrap()[0].reconnecting);
        let (carol, carol_ob) = login(&hub, &local, "t", "carol").await;
        let at = Requester {
            tenant: "t",
            user_id: "carol",
            gen: carol,
            re: 7,
        };
        let req = CallRequest {
            call_id: "c1",
            callee: "alice",
            meet_obj: "",
            ext: "",
        };
        assert_eq!(hub.call(&at, &req).await, Answer::Sent(0));
        // The caller: its answer, then the callee's marked status.
        assert_eq!(
            carol_ob.take_msgs(),
            vec![ServerMsg::reply(7, 0), held(2, 0)]
        );
        hub.set_reconnecting("t", "alice", alice, false).await;
        assert_eq!(
            bob_ob.take_msgs(),
            vec![
                st("alice", 1, 0),
                held(1, 0),
                st("carol", 1, 0),
                st("carol", 2, 0),
                held(2, 0),
                st("alice", 2, 0),
            ]
        );
        // A newer login starts unmarked.
        hub.set_reconnecting("t", "alice", alice, true).await;
        login(&hub, &local, "t", "alice").await;
        assert!(!hub.statuses("t").await.unwrap()[0].reconnecting);
    }

    #[tokio::test]
    async fn kick_keeps_the_new_session() {
        let (hub, local) = hub();
        let (bob, bob_ob) = login(&hub, &local, "t", "bob").await;
        local.set_notify(bob, true);
        let (a1, a1_ob) = login(&hub, &local, "t", "alice").await;
        let (a2, _) = login(&hub, &local, "t", "alice").await;
        assert_eq!(a1_ob.state(), State::Closing { code: Some(10) });
        assert!(local.outbox(a1).is_none() && local.outbox(a2).is_some());
        // The kicked session's teardown changes nothing.
        hub.logout("t", "alice", a1).await;
        assert_eq!(
            hub.set_dnd("t", "alice", a1, 1, 1).await,
            Answer::ToSend(12)
        );
        let names: Vec<_> = hub
            .statuses("t")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.user_id)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            bob_ob.take_msgs(),
            vec![st("alice", 1, 0), st("alice", 1, 0)]
        );
        assert_eq!(local.find("t", "alice").map(|(g, _)| g), Some(a2));
    }
}
