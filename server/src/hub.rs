//! Who is online where, and what their presence is (SPEC §3.1–§3.2).
//!
//! Three narrow interfaces: [`SessionRegistry`] (log in, kick, log out, deliver to a user),
//! [`Presence`] (DND, subscriptions, the status list) and [`Calls`] (the call state machine of
//! [`crate::calls`], whose busy and offline checks need presence). Connections only see
//! `dyn Hub`, so a
//! multi-node implementation (shared registry, pub/sub fan-out) can replace [`MemoryHub`]
//! without touching them.
//!
//! Ordering: every change of a user's status and the fan-out of that change happen under one
//! per-tenant lock, and pushes are non-blocking queue appends, so every subscriber sees one
//! user's changes in the order they happened and nobody ever waits on a slow subscriber.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crvm_proto::error::CRVIDEOSDK_USER_BEEN_KICKOUT;
use crvm_proto::error::{CRVIDEOSDK_INVALID_CALLID, CRVIDEOSDK_NOERR, CRVIDEOSDK_NOT_LOGIN};
use crvm_proto::msg::{STATUS_IN_CALL, STATUS_OFFLINE, STATUS_ONLINE};
use crvm_proto::{ServerMsg, UserStatus};
use parking_lot::Mutex;

use crate::calls::{CallTable, Effect};
use crate::outbox::{Out, Outbox};

/// Server-unique ID of a connection, for logs and to tell an old session from its successor.
pub type ConnId = u64;

/// A logged-in connection as the registry knows it.
#[derive(Debug, Clone)]
pub struct Session {
    pub conn_id: ConnId,
    /// The tenant's app ID.
    pub tenant: String,
    pub user_id: String,
    /// Where messages for this session are queued.
    pub outbox: Outbox,
}

/// Which connection each logged-in user is on.
pub trait SessionRegistry: Send + Sync {
    /// Makes `session` its user's only session and marks the user online (status 1, DND 0),
    /// pushing that status to the tenant's subscribers. An older session of the same user is
    /// sent `Close{10}` and forgotten; its connection ID is returned.
    fn login(&self, session: Session) -> Option<ConnId>;

    /// Ends the user's session if it is still the one on `conn_id` (a kicked connection's
    /// teardown must not log out its successor): the user goes offline and subscribers are
    /// told. Returns whether it did.
    fn logout(&self, tenant: &str, user_id: &str, conn_id: ConnId) -> bool;

    /// Queues a control message to the user's current session. False if the user is offline
    /// or the session could not take it.
    fn deliver(&self, tenant: &str, user_id: &str, msg: &ServerMsg) -> bool;

    /// The user's current session, for routing a transfer to it.
    fn session_of(&self, tenant: &str, user_id: &str) -> Option<(ConnId, Outbox)>;
}

/// Presence: do-not-disturb, status subscriptions and the status list.
pub trait Presence: Send + Sync {
    /// Stores the DND value of the session on `conn_id` and pushes the new status.
    /// False if that session is no longer the user's.
    fn set_dnd(&self, tenant: &str, user_id: &str, conn_id: ConnId, dnd: i32) -> bool;

    /// Turns status pushes to the session on `conn_id` on or off (idempotent).
    /// False if that session is no longer the user's.
    fn set_notify(&self, tenant: &str, user_id: &str, conn_id: ConnId, on: bool) -> bool;

    /// Status of every online user of the tenant, sorted by user ID.
    fn statuses(&self, tenant: &str) -> Vec<UserStatus>;
}

/// A call request as it arrives (fields already checked against the limits).
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    pub call_id: &'a str,
    pub callee: &'a str,
    pub meet_obj: &'a str,
    pub ext: &'a str,
}

/// One-to-one calls. Every method acts for the session on `conn_id`, which must still be the
/// user's, and on success queues that session's `reply{re, 0}` itself, under the same lock as
/// the transition: no notification about the call can reach the requester before its reply.
/// Errors are the codes of SPEC §3.4, for the caller to answer.
pub trait Calls: Send + Sync {
    /// Rings the callee. Returns the serial to pass to [`Calls::no_answer`] when the call's
    /// timer fires.
    fn call(&self, at: &Requester<'_>, req: &CallRequest<'_>) -> Result<u64, i32>;
    fn accept(
        &self,
        at: &Requester<'_>,
        call_id: &str,
        meet_obj: &str,
        ext: &str,
    ) -> Result<(), i32>;
    fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Result<(), i32>;
    fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Result<(), i32>;
    /// The no-answer timer of call `serial` fired; ends the call if it is still ringing.
    fn no_answer(&self, tenant: &str, call_id: &str, serial: u64);
}

/// Who makes a call request, and the request ID to answer.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub tenant: &'a str,
    pub user_id: &'a str,
    pub conn_id: ConnId,
    pub re: u64,
}

/// Everything a connection needs from the shared state.
pub trait Hub: SessionRegistry + Presence + Calls {}

impl<T: SessionRegistry + Presence + Calls> Hub for T {}

#[derive(Debug)]
struct Entry {
    conn_id: ConnId,
    outbox: Outbox,
    user_status: i32,
    dnd: i32,
    notify: bool,
}

impl Entry {
    fn status(&self, user_id: &str) -> UserStatus {
        UserStatus {
            user_id: user_id.to_owned(),
            user_status: self.user_status,
            dnd_type: self.dnd,
        }
    }
}

/// One tenant's online users (ordered, so the status list comes out sorted) and calls.
#[derive(Debug, Default)]
struct TenantState {
    users: BTreeMap<String, Entry>,
    calls: CallTable,
}

impl TenantState {
    /// Pushes `status` to every subscribed session. A subscriber whose queue is full is closed
    /// by its outbox; the others are unaffected.
    fn broadcast(&self, status: UserStatus) {
        let status_user = status.user_id.clone();
        let out = Out::msg(&ServerMsg::UserStatus(status));
        for e in self.users.values().filter(|e| e.notify) {
            let _ = e.outbox.push_status(&status_user, out.clone());
        }
    }

    fn entry_of(&mut self, user_id: &str, conn_id: ConnId) -> Option<&mut Entry> {
        self.users.get_mut(user_id).filter(|e| e.conn_id == conn_id)
    }

    /// Applies what a call transition decided: messages to the parties, then their new status.
    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Notify { user, msg } => {
                    if let Some(e) = self.users.get(&user) {
                        let _ = e.outbox.push(Out::msg(&msg));
                    }
                }
                Effect::InCall { user, in_call } => {
                    if let Some(e) = self.users.get_mut(&user) {
                        e.user_status = if in_call {
                            STATUS_IN_CALL
                        } else {
                            STATUS_ONLINE
                        };
                        let status = e.status(&user);
                        self.broadcast(status);
                    }
                }
            }
        }
    }

    /// Checks that `user_id`'s session is the one on `conn_id` (12 otherwise).
    fn check(&self, user_id: &str, conn_id: ConnId) -> Result<(), i32> {
        match self.users.get(user_id) {
            Some(e) if e.conn_id == conn_id => Ok(()),
            _ => Err(CRVIDEOSDK_NOT_LOGIN),
        }
    }
}

/// The single-node hub: everything in memory, one lock per tenant.
#[derive(Debug, Default)]
pub struct MemoryHub {
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantState>>>>,
}

impl MemoryHub {
    pub fn new() -> MemoryHub {
        MemoryHub::default()
    }

    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantState>> {
        // Tenants come from the config, so this map stays as small as the config.
        self.tenants
            .lock()
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }
}

impl SessionRegistry for MemoryHub {
    fn login(&self, session: Session) -> Option<ConnId> {
        let tenant = self.tenant(&session.tenant);
        let mut t = tenant.lock();
        let entry = Entry {
            conn_id: session.conn_id,
            outbox: session.outbox,
            user_status: STATUS_ONLINE,
            dnd: 0,
            notify: false,
        };
        // The kicked session's call ends as if that session had gone away.
        let ended = t.calls.vanish(&session.user_id);
        t.apply(ended);
        let old = t.users.insert(session.user_id.clone(), entry);
        let kicked = old.map(|old| {
            old.outbox.close_with(&ServerMsg::Close {
                code: CRVIDEOSDK_USER_BEEN_KICKOUT,
                reason: "logged in elsewhere".into(),
            });
            old.conn_id
        });
        let status = t.users[&session.user_id].status(&session.user_id);
        t.broadcast(status);
        kicked
    }

    fn logout(&self, tenant: &str, user_id: &str, conn_id: ConnId) -> bool {
        let tenant = self.tenant(tenant);
        let mut t = tenant.lock();
        if t.entry_of(user_id, conn_id).is_none() {
            return false;
        }
        let ended = t.calls.vanish(user_id);
        t.apply(ended);
        t.users.remove(user_id);
        t.broadcast(UserStatus {
            user_id: user_id.to_owned(),
            user_status: STATUS_OFFLINE,
            dnd_type: 0,
        });
        true
    }

    fn session_of(&self, tenant: &str, user_id: &str) -> Option<(ConnId, Outbox)> {
        let tenant = self.tenant(tenant);
        let t = tenant.lock();
        t.users.get(user_id).map(|e| (e.conn_id, e.outbox.clone()))
    }

    fn deliver(&self, tenant: &str, user_id: &str, msg: &ServerMsg) -> bool {
        let tenant = self.tenant(tenant);
        let t = tenant.lock();
        match t.users.get(user_id) {
            Some(e) => e.outbox.push(Out::msg(msg)).is_ok(),
            None => false,
        }
    }
}

impl Presence for MemoryHub {
    fn set_dnd(&self, tenant: &str, user_id: &str, conn_id: ConnId, dnd: i32) -> bool {
        let tenant = self.tenant(tenant);
        let mut t = tenant.lock();
        let Some(e) = t.entry_of(user_id, conn_id) else {
            return false;
        };
        e.dnd = dnd;
        let status = e.status(user_id);
        t.broadcast(status);
        true
    }

    fn set_notify(&self, tenant: &str, user_id: &str, conn_id: ConnId, on: bool) -> bool {
        let tenant = self.tenant(tenant);
        let mut t = tenant.lock();
        match t.entry_of(user_id, conn_id) {
            Some(e) => {
                e.notify = on;
                true
            }
            None => false,
        }
    }

    fn statuses(&self, tenant: &str) -> Vec<UserStatus> {
        let tenant = self.tenant(tenant);
        let t = tenant.lock();
        t.users.iter().map(|(id, e)| e.status(id)).collect()
    }
}

impl MemoryHub {
    /// Runs one call transition for `at` under its tenant's lock: checks that `at`'s session is
    /// still the user's (else `not_current`), applies the effects, then queues `at`'s reply.
    fn transition<T>(
        &self,
        at: &Requester<'_>,
        not_current: i32,
        f: impl FnOnce(&mut TenantState) -> Result<(T, Vec<Effect>), i32>,
    ) -> Result<T, i32> {
        let tenant = self.tenant(at.tenant);
        let mut t = tenant.lock();
        t.check(at.user_id, at.conn_id).map_err(|_| not_current)?;
        let (value, effects) = f(&mut t)?;
        t.apply(effects);
        if let Some(e) = t.users.get(at.user_id) {
            let _ = e.outbox.push(Out::msg(&ServerMsg::Reply {
                re: at.re,
                code: CRVIDEOSDK_NOERR,
            }));
        }
        Ok(value)
    }
}

impl Calls for MemoryHub {
    fn call(&self, at: &Requester<'_>, req: &CallRequest<'_>) -> Result<u64, i32> {
        self.transition(at, CRVIDEOSDK_NOT_LOGIN, |t| {
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
        })
    }

    fn accept(
        &self,
        at: &Requester<'_>,
        call_id: &str,
        meet_obj: &str,
        ext: &str,
    ) -> Result<(), i32> {
        self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.accept(at.user_id, call_id, meet_obj, ext)?))
        })
    }

    fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Result<(), i32> {
        self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.reject(at.user_id, call_id, ext)?))
        })
    }

    fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Result<(), i32> {
        self.transition(at, CRVIDEOSDK_INVALID_CALLID, |t| {
            Ok(((), t.calls.hangup(at.user_id, call_id, ext)?))
        })
    }

    fn no_answer(&self, tenant: &str, call_id: &str, serial: u64) {
        let tenant = self.tenant(tenant);
        let mut t = tenant.lock();
        let effects = t.calls.no_answer(call_id, serial);
        t.apply(effects);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::State;

    fn session(conn_id: ConnId, tenant: &str, user_id: &str) -> (Session, Outbox) {
        let outbox = Outbox::default();
        let s = Session {
            conn_id,
            tenant: tenant.into(),
            user_id: user_id.into(),
            outbox: outbox.clone(),
        };
        (s, outbox)
    }

    async fn drain(ob: &Outbox) -> Vec<ServerMsg> {
        ob.take_msgs()
    }

    fn st(user: &str, s: i32, d: i32) -> ServerMsg {
        ServerMsg::UserStatus(UserStatus {
            user_id: user.into(),
            user_status: s,
            dnd_type: d,
        })
    }

    #[tokio::test]
    async fn presence_flow_and_tenant_isolation() {
        let hub = MemoryHub::new();
        let (bob, bob_ob) = session(1, "t1", "bob");
        let (carol, carol_ob) = session(2, "t2", "carol");
        assert_eq!(hub.login(bob), None);
        assert_eq!(hub.login(carol), None);
        assert!(hub.set_notify("t1", "bob", 1, true));
        assert!(hub.set_notify("t2", "carol", 2, true));
        let (alice, _alice_ob) = session(3, "t1", "alice");
        hub.login(alice);
        assert!(hub.set_dnd("t1", "alice", 3, 7));
        assert!(hub.logout("t1", "alice", 3));
        assert!(!hub.logout("t1", "alice", 3));
        assert_eq!(
            drain(&bob_ob).await,
            vec![st("alice", 1, 0), st("alice", 1, 7), st("alice", 0, 0)]
        );
        assert!(drain(&carol_ob).await.is_empty());
        assert_eq!(hub.statuses("t2").len(), 1);
    }

    #[tokio::test]
    async fn kick_keeps_the_new_session() {
        let hub = MemoryHub::new();
        let (a1, a1_ob) = session(1, "t", "alice");
        let (a2, _a2_ob) = session(2, "t", "alice");
        let (bob, bob_ob) = session(3, "t", "bob");
        hub.login(bob);
        hub.set_notify("t", "bob", 3, true);
        hub.login(a1);
        assert_eq!(hub.login(a2), Some(1));
        assert_eq!(a1_ob.state(), State::Closing { code: Some(10) });
        // The kicked connection's teardown changes nothing.
        assert!(!hub.logout("t", "alice", 1));
        assert!(!hub.set_dnd("t", "alice", 1, 1));
        let names: Vec<_> = hub.statuses("t").into_iter().map(|s| s.user_id).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            drain(&bob_ob).await,
            vec![st("alice", 1, 0), st("alice", 1, 0)]
        );
        assert!(hub.deliver("t", "alice", &st("x", 1, 0)));
        assert!(!hub.deliver("t", "nobody", &st("x", 1, 0)));
    }
}
