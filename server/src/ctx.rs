//! What every connection shares ([`Ctx`]), built once at start-up ([`crate::app`]): the
//! configuration and tenants, the shared state and this node's sessions, the meeting store, the
//! data plane's router (relay and node links), the resumable sessions, and the set of live connections.

use std::collections::HashMap;
use std::sync::Arc;

use crvm_proto::ServerMsg;
use parking_lot::Mutex;

use crate::config::{Config, Tenants};
use crate::hub::{Hub, LocalSessions};
use crate::ids::ConnId;
use crate::limits::LoginLimiter;
use crate::outbox::Outbox;
use crate::resume::Sessions;
use crate::route::Router;
use crate::store::MeetingStore;

/// What every connection shares.
pub struct Ctx {
    pub config: Arc<Config>,
    /// The tenants in force (the config's, until a reload replaces them).
    pub tenants: Tenants,
    pub hub: Arc<dyn Hub>,
    /// This node's sessions, which the hub's effects reach.
    pub local: Arc<LocalSessions>,
    pub store: Arc<dyn MeetingStore>,
    /// Where cmds and streams go: this node's relay, or the links to the other nodes.
    pub router: Router,
    /// Where clients resume their sessions: this node's advertised address in a cluster,
    /// empty on one server (wherever they connected).
    pub resume_addr: String,
    /// Where browsers resume their sessions in a cluster: this node's `ws_advertise` (empty
    /// without a WebSocket listener, or on one server).
    pub ws_resume_addr: String,
    /// The node is draining (docs/CLUSTER.md "Drain"): it takes no sessions from other nodes,
    /// and only logins its drain can move.
    pub draining: std::sync::atomic::AtomicBool,
    /// Asked to drain (admin API).
    pub drain_request: tokio::sync::Notify,
    pub conns: Connections,
    /// Set when the server speaks TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub logins: LoginLimiter,
    /// Resumable sessions, attached or held (docs/API.md §3.6).
    pub sessions: Sessions,
}

impl Ctx {
    /// Resolves when the admin API asks this node to drain.
    pub async fn drain_asked(&self) {
        self.drain_request.notified().await
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Every live connection, logged in or not, so shutdown can reach them all.
#[derive(Debug, Default)]
pub struct Connections {
    inner: Mutex<ConnsInner>,
}

#[derive(Debug, Default)]
struct ConnsInner {
    open: HashMap<ConnId, Outbox>,
    closing: bool,
}

impl Connections {
    pub fn new() -> Connections {
        Connections::default()
    }

    /// Registers a connection. False once shutdown has begun: the caller closes it itself.
    pub fn add(&self, id: ConnId, outbox: &Outbox) -> bool {
        let mut c = self.inner.lock();
        if c.closing {
            return false;
        }
        c.open.insert(id, outbox.clone());
        true
    }

    pub fn remove(&self, id: ConnId) {
        self.inner.lock().open.remove(&id);
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.inner.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses new registrations and queues `msg` as the last frame of every connection.
    /// Returns how many were told.
    pub fn close_all(&self, msg: &ServerMsg) -> usize {
        let mut c = self.inner.lock();
        c.closing = true;
        c.open.values().filter(|o| o.close_with(msg)).count()
    }
}
