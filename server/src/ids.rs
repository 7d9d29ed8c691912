//! The identities the server deals in, each a type of its own so that one is never passed for
//! another:
//!
//! - [`ConnId`]: a connection (node-unique). A resumed session moves from one to the next.
//! - [`LoginGen`]: a login (cluster-unique): a session's identity in the shared state
//!   ([`crate::hub`]), in the relay and on the node links, for as long as the session lives.
//! - [`ParkEpoch`]: one parking of a session while its link is down ([`crate::resume`]); a
//!   later park or take makes the older ones stale.
//! - [`SessionKey`]: a session as the relay and the node links know it, of this node or of
//!   another.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A hash map for the maps on every cmd's path (sessions by user, the relay's books): keyed
/// by IDs and by the names of logged-in users, hashed with foldhash (seeded at random per
/// process) at a fraction of SipHash's cost.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Node-unique ID of a connection, for logs, the set of live connections and resumption.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Cluster-unique generation of one login: a session's identity in the shared state, the relay
/// and the node links. A request or a teardown carrying a generation that is no longer its
/// user's current one changes nothing. On the node links it travels as a JSON number or eight
/// bytes; to and from Redis as decimal text (see [`crate::hub::Effect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LoginGen(pub u64);

impl fmt::Display for LoginGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for LoginGen {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<LoginGen, Self::Err> {
        s.parse().map(LoginGen)
    }
}

/// One parking of a resumable session: bumped on every park and take, so that the expiry of
/// an older parking finds its epoch stale and does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParkEpoch(u64);

impl ParkEpoch {
    /// The epoch after this one.
    pub fn next(self) -> ParkEpoch {
        ParkEpoch(self.0 + 1)
    }
}

/// A session as the relay and the node links know it. The relay state of a transfer lives at
/// the receiver's node, so a receiver is always [`SessionKey::Here`]; a sender is `Here`, or
/// `There` when it is a session of another node whose cmds and streams reach this node's relay
/// over a link. Both are known by their login, whichever connection they are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKey {
    /// A session of this node.
    Here(LoginGen),
    /// A session of another node of the cluster.
    There(LoginGen),
}
