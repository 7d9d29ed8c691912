//! A client's session on this node, apart from what the node shares ([`crate::ctx::Ctx`]):
//! where it is in its life ([`Phase`]), who it is once logged in ([`User`]), and the form
//! parking holds it in while its link is down ([`ParkedSession`]). The handlers work on a
//! [`crate::handlers::ServerSession`], which is this plus the node's context.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::ids::{ConnId, LoginGen};
use crate::outbox::Outbox;

/// Where a connection is in its life.
pub enum Phase {
    AwaitHello,
    LoggedOut,
    LoggedIn(User),
}

/// The user a session is logged in as.
#[derive(Debug, Clone)]
pub struct User {
    /// The tenant's app ID.
    pub tenant: String,
    pub user_id: String,
    /// The login's generation: the session's identity in the shared state ([`crate::hub`]),
    /// the relay and the node links.
    pub gen: LoginGen,
    /// The session's ID when it may be resumed (docs/API.md §3.6).
    pub session: Option<String>,
    /// Whether the shared state shows this session as reconnecting (its link dropped longer
    /// ago than `reconnecting_after_ms`). Held while the mark is set or cleared, so that a
    /// resume's clearing always follows the report it clears ([`crate::resume::takeover`]).
    pub reconnecting: Arc<tokio::sync::Mutex<bool>>,
}

/// A session whose link dropped, held for a resume ([`crate::resume`]): everything a
/// [`crate::handlers::ServerSession`] has but the node's context, which the connection that
/// resumes it brings.
pub struct ParkedSession {
    /// The connection the session logged in on (it names the session in logs).
    pub login_conn: ConnId,
    /// The connection the session was on when its link dropped.
    pub conn: ConnId,
    pub addr: SocketAddr,
    pub outbox: Outbox,
    pub phase: Phase,
}
