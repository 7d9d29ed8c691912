//! Who is online where, their presence and their calls (docs/API.md §3.1, §3.2, §3.4, §4.1), split in
//! two (docs/DESIGN.md, Cluster, "The hub split"):
//!
//! - node-local and synchronous: [`LocalSessions`], each session of this node with its outbox
//!   and whether it wants status pushes;
//! - shared and async, behind traits with one implementation per deployment: [`Directory`]
//!   (user → session, with a generation that fences stale sessions), [`PresenceStore`] and
//!   [`CallStore`] (compare-and-set transitions that own their no-answer timers). The
//!   single-node implementation is [`memory::MemoryHub`]; the cluster's is
//!   [`redis::RedisHub`].
//!
//! **Effects are the only path from a state change to a connection.** A transition decides
//! what must be told to whom as a list of [`Effect`]s; the implementation hands them to
//! [`LocalSessions::apply`] on every node concerned — directly under its lock on one node,
//! through each node's ordered Redis stream in a cluster — so that what a user is told can
//! never disagree with the state, and one node's view of a user's changes keeps their order.

pub mod local;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use crvm_proto::{ServerMsg, UserStatus};
use serde::{Deserialize, Serialize};

use crate::ids::LoginGen;

pub use local::LocalSessions;

/// Something a state change requires a node to do for one of its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Effect {
    /// Queue `msg` to session `gen`.
    Deliver {
        #[serde(with = "as_text")]
        gen: LoginGen,
        msg: ServerMsg,
    },
    /// Queue `reply{re, code}` to session `gen`: a request answered in order with the
    /// notifications of the changes before it. (`re` travels as text: it is the client's
    /// number, any u64.)
    Reply {
        #[serde(with = "as_text")]
        gen: LoginGen,
        re: String,
        #[serde(default)]
        code: i32,
    },
    /// A user's status changed: push it to this node's subscribers of the tenant.
    Status { tenant: String, status: UserStatus },
    /// Session `gen` turns its status pushes on or off, then is answered `reply{re}`: in a
    /// cluster this goes through the node's stream, so that the subscription starts after
    /// every change published before it and never misses or repeats one.
    Notify {
        #[serde(with = "as_text")]
        gen: LoginGen,
        on: bool,
        re: String,
    },
    /// Session `gen` was replaced by a newer login of its user: `close{10}`.
    Kick {
        #[serde(with = "as_text")]
        gen: LoginGen,
    },
    /// An operator ended session `gen` (admin API): `close{206}`.
    Kicked {
        #[serde(with = "as_text")]
        gen: LoginGen,
    },
    /// Node `node` was declared dead: everything in flight with it ends (the node links).
    NodeGone { node: String },
    /// Session `gen` moved to another node (a drain): every effect for it before this one
    /// reached this node, every later one goes to its new node.
    Moved {
        #[serde(with = "as_text")]
        gen: LoginGen,
    },
    /// Session `gen` ended in the shared state without its node asking (the node was thought
    /// dead, or the shared state lost it): `close{207}`.
    Drop {
        #[serde(with = "as_text")]
        gen: LoginGen,
    },
}

/// Generations travel as text: the Redis functions' numbers are doubles, exact only to 2^53.
mod as_text {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::ids::LoginGen;

    pub fn serialize<S: Serializer>(v: &LoginGen, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LoginGen, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A session about to log in, as the shared state records it.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub tenant: &'a str,
    pub user_id: &'a str,
    pub gen: LoginGen,
}

/// Who makes a request, and the request ID to answer.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub tenant: &'a str,
    pub user_id: &'a str,
    pub gen: LoginGen,
    pub re: u64,
}

/// A call request as it arrives (fields already checked against the limits).
#[derive(Debug, Clone)]
pub struct CallRequest<'a> {
    pub call_id: &'a str,
    pub callee: &'a str,
    pub meet_obj: &'a str,
    pub ext: &'a str,
}

/// Which session each logged-in user has. Errors are crvm error codes (8 when the shared state
/// cannot be reached).
#[async_trait]
pub trait Directory: Send + Sync {
    /// Makes session `login.gen` (already in this node's [`LocalSessions`]) its user's only
    /// one and marks the user online (status 1, DND 0), pushed to subscribers. An older
    /// session, wherever it is, has its call ended and is kicked (`close{10}`).
    async fn login(&self, login: Login<'_>) -> Result<(), i32>;

    /// Ends session `gen` if it is still its user's (a kicked session's teardown must not log
    /// out its successor): its call ends, the user goes offline for subscribers.
    async fn logout(&self, tenant: &str, user_id: &str, gen: LoginGen);

    /// The node the user's session is on, if online ("" on a server of its own).
    async fn locate(&self, tenant: &str, user_id: &str) -> Result<Option<String>, i32>;

    /// This node stops (its sessions were closed): the shared state forgets it at once, rather
    /// than after it has been silent for the node timeout.
    async fn leave(&self) {}
}

/// Who answers a request that a store ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The store queued `reply{re, code}` itself, in order with the notifications of the change
    /// (and, in a cluster, of the changes before it).
    Sent(i32),
    /// The caller answers `code` (any change it made is already pushed: one node, one lock).
    ToSend(i32),
}

/// Do-not-disturb, subscriptions (kept by [`LocalSessions`]) and the status list.
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Stores the DND value of session `gen` and pushes the new status; 12 if that session is
    /// no longer its user's.
    async fn set_dnd(
        &self,
        tenant: &str,
        user_id: &str,
        gen: LoginGen,
        re: u64,
        dnd: i32,
    ) -> Answer;

    /// Turns status pushes to session `gen` of the user on or off and answers request `re`
    /// (through an [`Effect::Notify`]). In a cluster, the tenant's status changes reach this
    /// node from then on, and only while it has a subscriber in the tenant.
    async fn set_notify(&self, at: &Requester<'_>, on: bool) -> Result<(), i32>;

    /// Status of every online user of the tenant, sorted by user ID.
    async fn statuses(&self, tenant: &str) -> Result<Vec<UserStatus>, i32>;

    /// Marks session `gen` as reconnecting (its link dropped and it is held for a resume) or
    /// not any more, if it is still its user's; a change is pushed to subscribers, the user's
    /// `userStatus` staying what it was. Best effort: an unreachable shared state changes
    /// nothing.
    async fn set_reconnecting(&self, tenant: &str, user_id: &str, gen: LoginGen, on: bool);
}

/// One-to-one calls (docs/API.md §3.4), one state machine wherever the parties are. Every method
/// acts for session `at.gen`, which must still be its user's; a success is always
/// [`Answer::Sent`], so that nothing about the call reaches the requester before its answer.
/// Codes are those of §3.4, or 8. A call's no-answer timer belongs to the store and fires
/// once. A call that rings a reconnecting callee also queues to the caller, right after its
/// answer, the callee's status with its `reconnecting` mark.
#[async_trait]
pub trait CallStore: Send + Sync {
    async fn call(&self, at: &Requester<'_>, req: &CallRequest<'_>) -> Answer;
    async fn accept(&self, at: &Requester<'_>, call_id: &str, meet_obj: &str, ext: &str) -> Answer;
    async fn reject(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer;
    async fn hangup(&self, at: &Requester<'_>, call_id: &str, ext: &str) -> Answer;
}

/// A call in progress, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallInfo {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// Accepted (else ringing).
    pub connected: bool,
}

/// What an operator reads and does (docs/API.md §4.2: the monitor and admin API).
#[async_trait]
pub trait Operations: Send + Sync {
    /// Whether the shared state can serve (in a cluster: Redis reachable, this node a member).
    fn healthy(&self) -> bool;

    /// Resolves once the shared state can serve for the first time (in a cluster: this node
    /// joined), so that the server announces itself only then.
    async fn ready(&self) {}

    /// The calls of `tenant` in progress, sorted by call ID.
    async fn calls(&self, tenant: &str) -> Result<Vec<CallInfo>, i32>;

    /// Makes node `to` the home of session `gen` of the user, which this node hands over (a
    /// drain): from now on its effects go there, and this node gets [`Effect::Moved`] after
    /// the last one it had. Whether it moved; 8 when the shared state cannot be reached.
    async fn move_session(
        &self,
        _tenant: &str,
        _user_id: &str,
        _gen: LoginGen,
        _to: &str,
    ) -> Result<bool, i32> {
        Ok(false)
    }

    /// The other live nodes of the cluster (none on one server).
    async fn peers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Ends the user's session wherever it is with `close{206}` (its teardown then runs as
    /// for any other end). Whether the user had one.
    async fn kick(&self, tenant: &str, user_id: &str) -> Result<bool, i32>;
}

/// Everything a connection needs from the shared state.
pub trait Hub: Directory + PresenceStore + CallStore + Operations {}

impl<T: Directory + PresenceStore + CallStore + Operations> Hub for T {}
