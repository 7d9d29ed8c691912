//! The sessions of this node: each one's outbox, and who wants status pushes. Synchronous and
//! node-local; the shared state reaches these sessions only through [`LocalSessions::apply`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crvm_proto::error::{
    CRVIDEOSDK_CONNECTIONLOST, CRVIDEOSDK_FORCEDCLOSECONNECTION, CRVIDEOSDK_USER_BEEN_KICKOUT,
};
use crvm_proto::{ServerMsg, UserStatus};
use parking_lot::Mutex;

use super::Effect;
use crate::ids::{FastMap, LoginGen};
use crate::outbox::{Out, Outbox};

/// A session of this node.
#[derive(Debug, Clone)]
pub struct Local {
    pub tenant: String,
    pub user_id: String,
    pub outbox: Outbox,
    /// The session's DND value, kept to restore it if the shared state loses it.
    pub dnd: i32,
}

/// The call a session of this node is in, as far as this node has seen: kept so that the
/// shared state can be rebuilt from the live sessions if it loses it (a cluster's Redis
/// coming back empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCall {
    pub call_id: String,
    /// The other party.
    pub peer: String,
    /// Whether this session placed the call.
    pub caller: bool,
    /// Accepted (else ringing).
    pub connected: bool,
    pub meet_obj: String,
    /// Placed by this session and not answered yet: a re-check meanwhile must not make it in
    /// Redis (the request, waiting for that re-check, would then find its caller busy).
    pub placing: bool,
}

#[derive(Debug)]
struct Entry {
    local: Local,
    /// Effects for a session whose login has not been answered yet, applied once it is
    /// ([`LocalSessions::open`]): its `res{login}` comes before anything about it.
    held: Option<Vec<Effect>>,
    /// The calls whose end this session was told lately, newest last (at most [`ENDED_KEPT`]):
    /// a second end of one is not passed on (see [`LocalSessions::track_call`]).
    ended: VecDeque<String>,
}

/// How many ended calls a session's entry remembers. A session ends its calls one at a time; a
/// second end comes within seconds (a failover lost the write that ended the call, and the
/// shared state ended it again), so a few suffice.
const ENDED_KEPT: usize = 16;

#[derive(Debug, Default)]
struct Inner {
    by_gen: FastMap<LoginGen, Entry>,
    /// The newest session of each user on this node, per tenant (two maps, so that a lookup
    /// allocates nothing: it is on every cmd's path).
    current: FastMap<String, FastMap<String, LoginGen>>,
    /// Per tenant, the sessions that asked for status pushes.
    subscribers: HashMap<String, HashSet<LoginGen>>,
    /// The call each session is in.
    calls: HashMap<LoginGen, LocalCall>,
}

impl Inner {
    /// Session `gen` is out of call `call_id` (if it was in it).
    fn leave_call(&mut self, gen: LoginGen, call_id: &str) {
        if self.calls.get(&gen).is_some_and(|c| c.call_id == call_id) {
            self.calls.remove(&gen);
        }
    }
}

/// Every session of this node, by generation.
#[derive(Debug)]
pub struct LocalSessions {
    inner: Mutex<Inner>,
    /// High bits of every generation this node makes: unique per node in a cluster.
    prefix: AtomicU64,
    next: AtomicU64,
    /// Sessions moving to another node, waiting for the shared state's last effect for them.
    moves: Mutex<HashMap<LoginGen, tokio::sync::oneshot::Sender<()>>>,
}

/// Bits of a generation counted by its node; the rest (the prefix) tell nodes apart.
const COUNTER_BITS: u32 = 40;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
const PREFIX_MASK: u64 = (1 << (64 - COUNTER_BITS)) - 1;

impl LocalSessions {
    /// Generations made here start with `prefix` (0 on a node of its own; in a cluster one
    /// that no other node has).
    pub fn new(prefix: u64) -> LocalSessions {
        LocalSessions {
            inner: Mutex::default(),
            prefix: AtomicU64::new(prefix & PREFIX_MASK),
            next: AtomicU64::new(1),
            moves: Mutex::default(),
        }
    }

    /// A node of a cluster: a random prefix, which the cluster makes sure no other node has.
    pub fn for_cluster() -> LocalSessions {
        let local = LocalSessions::new(0);
        local.new_prefix();
        local
    }

    /// The prefix of this node's generations.
    pub fn prefix(&self) -> u64 {
        self.prefix.load(Ordering::Relaxed)
    }

    /// The lowest generation under the current prefix (other numberings of this node, such
    /// as its relay's stream IDs, start there too, apart from every other node's).
    pub fn base(&self) -> u64 {
        self.prefix() << COUNTER_BITS
    }

    /// Draws another prefix (another node of the cluster has this one).
    pub fn new_prefix(&self) {
        // Never 0: that prefix is a server of its own's.
        let p = 1 + crate::random::below(PREFIX_MASK);
        self.prefix.store(p, Ordering::Relaxed);
    }

    /// A generation for a new login, unique in the cluster.
    pub fn next_gen(&self) -> LoginGen {
        LoginGen(self.base() | (self.next.fetch_add(1, Ordering::Relaxed) & COUNTER_MASK))
    }

    /// The range of generations that logins from now on get, as decimal text: `[from, to)`.
    pub fn newer_than_now(&self) -> (String, String) {
        let prefix = u128::from(self.prefix());
        let next = u128::from(self.next.load(Ordering::Relaxed) & COUNTER_MASK);
        let from = (prefix << COUNTER_BITS) | next;
        let to = (prefix + 1) << COUNTER_BITS;
        (from.to_string(), to.to_string())
    }

    /// Records session `gen`'s DND value.
    pub fn set_dnd(&self, gen: LoginGen, dnd: i32) {
        if let Some(e) = self.inner.lock().by_gen.get_mut(&gen) {
            e.local.dnd = dnd;
        }
    }

    /// Adds session `gen`, which becomes its user's current one on this node. What reaches it
    /// is held until [`LocalSessions::open`].
    pub fn add(&self, gen: LoginGen, local: Local) {
        let mut s = self.inner.lock();
        s.current
            .entry(local.tenant.clone())
            .or_default()
            .insert(local.user_id.clone(), gen);
        s.by_gen.insert(
            gen,
            Entry {
                local,
                held: Some(Vec::new()),
                ended: VecDeque::new(),
            },
        );
    }

    /// Session `gen`'s login was answered: what was held for it is applied, in order.
    pub fn open(&self, gen: LoginGen) {
        let held = match self.inner.lock().by_gen.get_mut(&gen) {
            Some(e) => e.held.take().unwrap_or_default(),
            None => return,
        };
        for effect in held {
            self.apply(effect);
        }
    }

    /// Holds `effect` if it is for a session whose login is unanswered; else gives it back.
    fn hold(&self, effect: Effect) -> Option<Effect> {
        let gen = match &effect {
            Effect::Deliver { gen, .. }
            | Effect::Reply { gen, .. }
            | Effect::Kick { gen }
            | Effect::Kicked { gen }
            | Effect::Drop { gen }
            | Effect::Notify { gen, .. } => *gen,
            Effect::Status { .. } | Effect::NodeGone { .. } | Effect::Moved { .. } => {
                return Some(effect)
            }
        };
        let mut s = self.inner.lock();
        match s.by_gen.get_mut(&gen).and_then(|e| e.held.as_mut()) {
            Some(held) => {
                held.push(effect);
                None
            }
            None => Some(effect),
        }
    }

    /// Forgets session `gen` (no more pushes reach it). Returns it if it was here.
    pub fn remove(&self, gen: LoginGen) -> Option<Local> {
        let mut s = self.inner.lock();
        let e = s.by_gen.remove(&gen)?;
        s.calls.remove(&gen);
        if let Some(users) = s.current.get_mut(&e.local.tenant) {
            if users.get(&e.local.user_id) == Some(&gen) {
                users.remove(&e.local.user_id);
                if users.is_empty() {
                    s.current.remove(&e.local.tenant);
                }
            }
        }
        if let Some(subs) = s.subscribers.get_mut(&e.local.tenant) {
            subs.remove(&gen);
            if subs.is_empty() {
                s.subscribers.remove(&e.local.tenant);
            }
        }
        Some(e.local)
    }

    /// Turns status pushes to session `gen` on or off. False if it is no longer here.
    pub fn set_notify(&self, gen: LoginGen, on: bool) -> bool {
        let mut s = self.inner.lock();
        let Some(e) = s.by_gen.get(&gen) else {
            return false;
        };
        let tenant = e.local.tenant.clone();
        if on {
            s.subscribers.entry(tenant).or_default().insert(gen);
        } else if let Some(subs) = s.subscribers.get_mut(&tenant) {
            subs.remove(&gen);
        }
        true
    }

    /// The generation and outbox of a user's current session on this node (a receiver).
    pub fn find(&self, tenant: &str, user_id: &str) -> Option<(LoginGen, Outbox)> {
        let s = self.inner.lock();
        let gen = *s.current.get(tenant)?.get(user_id)?;
        s.by_gen.get(&gen).map(|e| (gen, e.local.outbox.clone()))
    }

    /// The generation of the user's current session on this node.
    pub fn current(&self, tenant: &str, user_id: &str) -> Option<LoginGen> {
        self.inner.lock().current.get(tenant)?.get(user_id).copied()
    }

    /// Ends every session of `tenant` on this node with `close{code}`; how many.
    pub fn end_tenant(&self, tenant: &str, code: i32, reason: &str) -> usize {
        let gens: Vec<LoginGen> = match self.inner.lock().current.get(tenant) {
            Some(users) => users.values().copied().collect(),
            None => return 0,
        };
        for &gen in &gens {
            self.end(gen, code, reason);
        }
        gens.len()
    }

    /// How many sessions each tenant has on this node (tenants with none left out).
    pub fn count_by_tenant(&self) -> Vec<(String, usize)> {
        let s = self.inner.lock();
        s.current
            .iter()
            .map(|(t, u)| (t.clone(), u.len()))
            .collect()
    }

    /// The outbox of session `gen`, if it is on this node.
    pub fn outbox(&self, gen: LoginGen) -> Option<Outbox> {
        self.inner
            .lock()
            .by_gen
            .get(&gen)
            .map(|e| e.local.outbox.clone())
    }

    /// Session `gen`, if it is on this node.
    pub fn get(&self, gen: LoginGen) -> Option<Local> {
        self.inner.lock().by_gen.get(&gen).map(|e| e.local.clone())
    }

    /// Every session of this node.
    pub fn all(&self) -> Vec<(LoginGen, Local)> {
        let s = self.inner.lock();
        s.by_gen
            .iter()
            .map(|(g, e)| (*g, e.local.clone()))
            .collect()
    }

    /// Resolves once the shared state's [`Effect::Moved`] for session `gen` is applied (call
    /// before moving it).
    pub fn moved_mark(&self, gen: LoginGen) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.moves.lock().insert(gen, tx);
        rx
    }

    /// What this node keeps of session `gen` besides its outbox: whether it wants status
    /// pushes, and its call.
    pub fn extras(&self, gen: LoginGen) -> (bool, Option<LocalCall>) {
        let s = self.inner.lock();
        let notify = s.by_gen.get(&gen).is_some_and(|e| {
            s.subscribers
                .get(&e.local.tenant)
                .is_some_and(|subs| subs.contains(&gen))
        });
        (notify, s.calls.get(&gen).cloned())
    }

    /// Session `gen` is in `call` (a call it placed, or one it accepted).
    pub fn set_call(&self, gen: LoginGen, call: LocalCall) {
        let mut s = self.inner.lock();
        if s.by_gen.contains_key(&gen) {
            s.calls.insert(gen, call);
        }
    }

    /// Session `gen`'s call `call_id` was accepted; nothing if it is in no such call (it ended
    /// meanwhile).
    pub fn call_connected(&self, gen: LoginGen, call_id: &str) {
        if let Some(c) = self.inner.lock().calls.get_mut(&gen) {
            if c.call_id == call_id {
                c.connected = true;
            }
        }
    }

    /// Session `gen`'s call `call_id` was placed (its request answered 0).
    pub fn call_placed(&self, gen: LoginGen, call_id: &str) {
        if let Some(c) = self.inner.lock().calls.get_mut(&gen) {
            if c.call_id == call_id {
                c.placing = false;
            }
        }
    }

    /// Session `gen` is out of call `call_id` (if it was in it).
    pub fn call_ended(&self, gen: LoginGen, call_id: &str) {
        self.inner.lock().leave_call(gen, call_id);
    }

    /// The call session `gen` is in.
    pub fn call_of(&self, gen: LoginGen) -> Option<LocalCall> {
        self.inner.lock().calls.get(&gen).cloned()
    }

    /// Follows what a message tells session `gen` about its call; false for the end of a call
    /// the session was told the end of already, which must not reach it again. Each party of
    /// a call gets exactly one terminal event; the shared state of a cluster can end a call a
    /// second time when a failover lost the write that ended it (the end was delivered from the
    /// old primary, the new one still has the call and ends it again: its no-answer timer, a
    /// restored call's deadline for its parties). The node that delivered the first end keeps
    /// it from the session, whatever its client.
    fn track_call(&self, gen: LoginGen, msg: &ServerMsg) -> bool {
        match msg {
            ServerMsg::CallIn {
                call_id,
                caller,
                meet_obj,
                ..
            } => {
                let call = LocalCall {
                    call_id: call_id.clone(),
                    peer: caller.clone(),
                    caller: false,
                    connected: false,
                    meet_obj: meet_obj.clone(),
                    placing: false,
                };
                self.set_call(gen, call);
            }
            ServerMsg::CallAccepted { call_id, .. } => self.call_connected(gen, call_id),
            ServerMsg::CallRejected { call_id, .. } | ServerMsg::CallHungup { call_id, .. } => {
                return self.end_of_call(gen, call_id)
            }
            _ => {}
        }
        true
    }

    /// Session `gen` is told that call `call_id` ended: it is out of it. False when it was told
    /// so already.
    fn end_of_call(&self, gen: LoginGen, call_id: &str) -> bool {
        let mut s = self.inner.lock();
        s.leave_call(gen, call_id);
        let Some(e) = s.by_gen.get_mut(&gen) else {
            return true;
        };
        if e.ended.iter().any(|c| c == call_id) {
            tracing::warn!(
                "call {call_id}: a second end for session {gen} not passed on (the shared \
                 state ended the call again)"
            );
            return false;
        }
        if e.ended.len() == ENDED_KEPT {
            e.ended.pop_front();
        }
        e.ended.push_back(call_id.to_owned());
        true
    }

    /// Whether session `gen` of `tenant` wants status pushes.
    pub fn is_subscribed(&self, tenant: &str, gen: LoginGen) -> bool {
        let s = self.inner.lock();
        s.subscribers
            .get(tenant)
            .is_some_and(|subs| subs.contains(&gen))
    }

    /// The tenants that have subscribers on this node.
    pub fn subscribed_tenants(&self) -> Vec<String> {
        let s = self.inner.lock();
        s.subscribers
            .iter()
            .filter(|(_, subs)| !subs.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Does what a state change requires of this node. Pushes never block: a subscriber
    /// whose queue is full is closed by its outbox; the others are unaffected.
    pub fn apply(&self, effect: Effect) {
        let Some(effect) = self.hold(effect) else {
            return;
        };
        match effect {
            Effect::Deliver { gen, msg } => {
                if self.track_call(gen, &msg) {
                    count_call_event(&msg);
                    self.push(gen, &msg)
                }
            }
            Effect::Reply { gen, re, code } => {
                if let Ok(re) = re.parse() {
                    self.push(gen, &ServerMsg::reply(re, code));
                }
            }
            Effect::Status { tenant, status } => self.push_status(&tenant, status),
            Effect::Notify { gen, on, re } => {
                let code = if self.set_notify(gen, on) {
                    0
                } else {
                    crvm_proto::error::CRVIDEOSDK_NOT_LOGIN
                };
                if let Ok(re) = re.parse() {
                    self.push(gen, &ServerMsg::reply(re, code));
                }
            }
            Effect::Kick { gen } => {
                self.end(gen, CRVIDEOSDK_USER_BEEN_KICKOUT, "logged in elsewhere")
            }
            Effect::Drop { gen } => self.end(gen, CRVIDEOSDK_CONNECTIONLOST, "session lost"),
            Effect::Kicked { gen } => self.end(
                gen,
                CRVIDEOSDK_FORCEDCLOSECONNECTION,
                "closed by the operator",
            ),
            // The node links' business (see `RedisHub`); nothing for a session.
            Effect::NodeGone { .. } => {}
            Effect::Moved { gen } => {
                if let Some(tx) = self.moves.lock().remove(&gen) {
                    let _ = tx.send(());
                }
            }
        }
    }

    /// Queues `msg` to session `gen`, if it is here.
    fn push(&self, gen: LoginGen, msg: &ServerMsg) {
        if let Some(outbox) = self.outbox(gen) {
            let _ = outbox.push(Out::msg(msg));
        }
    }

    fn push_status(&self, tenant: &str, status: UserStatus) {
        let s = self.inner.lock();
        let Some(subs) = s.subscribers.get(tenant) else {
            return;
        };
        let user = status.user_id.clone();
        let out = Out::msg(&ServerMsg::UserStatus(status));
        for gen in subs {
            if let Some(e) = s.by_gen.get(gen) {
                let _ = e.local.outbox.push_status(&user, out.clone());
            }
        }
    }

    /// Ends session `gen` with `close{code}`; its connection's teardown (or its resume
    /// window's expiry) then finds it gone from the shared state and changes nothing there.
    fn end(&self, gen: LoginGen, code: i32, reason: &str) {
        if let Some(local) = self.remove(gen) {
            local.outbox.close_with(&ServerMsg::Close {
                code,
                reason: reason.into(),
            });
        }
    }
}

/// Each call event reaches exactly one party, so counting them where they are delivered counts
/// every call once over the cluster.
fn count_call_event(msg: &ServerMsg) {
    use crvm_proto::error::{CRVIDEOSDK_ERR_NOANSWER, CRVIDEOSDK_ERR_OFFLINE};
    let outcome = match msg {
        ServerMsg::CallIn { .. } => "rang",
        ServerMsg::CallAccepted { .. } => "accepted",
        ServerMsg::CallRejected { reason, .. } => match *reason {
            CRVIDEOSDK_ERR_NOANSWER => "no_answer",
            CRVIDEOSDK_ERR_OFFLINE => "callee_left",
            _ => "rejected",
        },
        ServerMsg::CallHungup { .. } => "hung_up",
        _ => return,
    };
    crate::metrics::get().call(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(local: &LocalSessions, user: &str) -> (LoginGen, Outbox) {
        let outbox = Outbox::default();
        let gen = local.next_gen();
        local.add(
            gen,
            Local {
                tenant: "t".into(),
                user_id: user.into(),
                outbox: outbox.clone(),
                dnd: 0,
            },
        );
        local.open(gen);
        (gen, outbox)
    }

    fn deliver(local: &LocalSessions, gen: LoginGen, msg: &ServerMsg) {
        local.apply(Effect::Deliver {
            gen,
            msg: msg.clone(),
        });
    }

    #[test]
    fn a_session_is_told_a_calls_end_once_whatever_the_shared_state_sends() {
        let local = LocalSessions::new(0);
        let (bob, bob_ob) = session(&local, "bob");
        let (alice, alice_ob) = session(&local, "alice");
        let call_in = |c: &str| ServerMsg::CallIn {
            call_id: c.into(),
            caller: "alice".into(),
            meet_obj: String::new(),
            ext: String::new(),
        };
        let hungup = |c: &str| ServerMsg::CallHungup {
            call_id: c.into(),
            ext: String::new(),
        };
        let rejected = |c: &str, reason| ServerMsg::CallRejected {
            call_id: c.into(),
            reason,
            ext: String::new(),
        };
        // bob's call c1 is hung up; a failover makes the shared state end it again later.
        deliver(&local, bob, &call_in("c1"));
        deliver(&local, bob, &hungup("c1"));
        assert_eq!(local.call_of(bob), None);
        deliver(&local, bob, &hungup("c1"));
        // Another call of his still rings and ends.
        deliver(&local, bob, &call_in("c2"));
        deliver(&local, bob, &hungup("c2"));
        assert_eq!(
            bob_ob.take_msgs(),
            vec![call_in("c1"), hungup("c1"), call_in("c2"), hungup("c2")]
        );
        // alice's call is rejected by its callee (606), then ends again as the callee's
        // vanishing (603): she hears the first only.
        deliver(&local, alice, &rejected("c3", 606));
        deliver(&local, alice, &rejected("c3", 603));
        assert_eq!(alice_ob.take_msgs(), vec![rejected("c3", 606)]);
        // The memory is bounded: the oldest ended calls are forgotten first.
        for i in 0..ENDED_KEPT {
            deliver(&local, alice, &rejected(&format!("x{i}"), 606));
        }
        assert_eq!(alice_ob.take_msgs().len(), ENDED_KEPT);
        // c3 is forgotten now; the newest is not.
        deliver(&local, alice, &rejected("c3", 603));
        deliver(
            &local,
            alice,
            &rejected(&format!("x{}", ENDED_KEPT - 1), 606),
        );
        assert_eq!(alice_ob.take_msgs(), vec![rejected("c3", 603)]);
    }
}
