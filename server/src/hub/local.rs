//! The sessions of this node: each one's outbox, and who wants status pushes. Synchronous and
//! node-local; the shared state reaches these sessions only through [`LocalSessions::apply`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use crvm_proto::error::{CRVIDEOSDK_CONNECTIONLOST, CRVIDEOSDK_USER_BEEN_KICKOUT};
use crvm_proto::{ServerMsg, UserStatus};
use parking_lot::Mutex;

use super::{ConnId, Effect, Gen};
use crate::outbox::{Out, Outbox};

/// A session of this node.
#[derive(Debug, Clone)]
pub struct Local {
    pub conn_id: ConnId,
    pub tenant: String,
    pub user_id: String,
    pub outbox: Outbox,
}

#[derive(Debug)]
struct Entry {
    local: Local,
    notify: bool,
}

#[derive(Debug, Default)]
struct Inner {
    by_gen: HashMap<Gen, Entry>,
    /// The newest session of each (tenant, user) on this node.
    current: HashMap<(String, String), Gen>,
    /// Per tenant, the sessions that asked for status pushes.
    subscribers: HashMap<String, HashSet<Gen>>,
}

/// Every session of this node, by generation.
#[derive(Debug)]
pub struct LocalSessions {
    inner: Mutex<Inner>,
    /// High bits of every generation this node makes: unique per node in a cluster.
    prefix: u64,
    next: AtomicU64,
}

/// Bits of a generation counted by its node; the rest tell nodes apart.
const COUNTER_BITS: u32 = 40;

impl LocalSessions {
    /// `node_seq` is this node's number in its cluster (0 on its own); generations made here
    /// never collide with another node's.
    pub fn new(node_seq: u64) -> LocalSessions {
        LocalSessions {
            inner: Mutex::default(),
            prefix: node_seq << COUNTER_BITS,
            next: AtomicU64::new(1),
        }
    }

    /// A generation for a new login, unique in the cluster.
    pub fn next_gen(&self) -> Gen {
        let n = self.next.fetch_add(1, Ordering::Relaxed) & ((1 << COUNTER_BITS) - 1);
        self.prefix | n
    }

    /// Adds session `gen`, which becomes its user's current one on this node.
    pub fn add(&self, gen: Gen, local: Local) {
        let mut s = self.inner.lock();
        s.current
            .insert((local.tenant.clone(), local.user_id.clone()), gen);
        s.by_gen.insert(
            gen,
            Entry {
                local,
                notify: false,
            },
        );
    }

    /// Forgets session `gen` (no more pushes reach it). Returns it if it was here.
    pub fn remove(&self, gen: Gen) -> Option<Local> {
        let mut s = self.inner.lock();
        let e = s.by_gen.remove(&gen)?;
        let key = (e.local.tenant.clone(), e.local.user_id.clone());
        if s.current.get(&key) == Some(&gen) {
            s.current.remove(&key);
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
    pub fn set_notify(&self, gen: Gen, on: bool) -> bool {
        let mut s = self.inner.lock();
        let Some(e) = s.by_gen.get_mut(&gen) else {
            return false;
        };
        e.notify = on;
        let tenant = e.local.tenant.clone();
        if on {
            s.subscribers.entry(tenant).or_default().insert(gen);
        } else if let Some(subs) = s.subscribers.get_mut(&tenant) {
            subs.remove(&gen);
        }
        true
    }

    /// The current session of a user on this node.
    pub fn find(&self, tenant: &str, user_id: &str) -> Option<(Gen, Local)> {
        let s = self.inner.lock();
        let gen = *s.current.get(&(tenant.to_owned(), user_id.to_owned()))?;
        s.by_gen.get(&gen).map(|e| (gen, e.local.clone()))
    }

    /// Session `gen`, if it is on this node.
    pub fn get(&self, gen: Gen) -> Option<Local> {
        self.inner.lock().by_gen.get(&gen).map(|e| e.local.clone())
    }

    /// Every session of this node.
    pub fn all(&self) -> Vec<(Gen, Local)> {
        let s = self.inner.lock();
        s.by_gen
            .iter()
            .map(|(g, e)| (*g, e.local.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_gen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Does what a state change requires of this node. Pushes never block: a subscriber
    /// whose queue is full is closed by its outbox; the others are unaffected.
    pub fn apply(&self, effect: Effect) {
        match effect {
            Effect::Deliver { gen, msg, .. } => {
                if let Some(e) = self.inner.lock().by_gen.get(&gen) {
                    let _ = e.local.outbox.push(Out::msg(&msg));
                }
            }
            Effect::Reply { gen, re } => {
                let Ok(re) = re.parse() else { return };
                if let Some(e) = self.inner.lock().by_gen.get(&gen) {
                    let _ = e
                        .local
                        .outbox
                        .push(Out::msg(&ServerMsg::Reply { re, code: 0 }));
                }
            }
            Effect::Status { tenant, status } => self.push_status(&tenant, status),
            Effect::Kick { gen } => {
                self.end(gen, CRVIDEOSDK_USER_BEEN_KICKOUT, "logged in elsewhere")
            }
            Effect::Drop { gen } => self.end(gen, CRVIDEOSDK_CONNECTIONLOST, "session lost"),
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
    fn end(&self, gen: Gen, code: i32, reason: &str) {
        if let Some(local) = self.remove(gen) {
            local.outbox.close_with(&ServerMsg::Close {
                code,
                reason: reason.into(),
            });
        }
    }
}
