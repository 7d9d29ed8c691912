//! One node or a cluster behind one interface, so that one test body checks both: a test takes
//! a [`Kind`], starts its [`Topology`] and logs its users in through it; [`crate::both_topologies`]
//! makes a `#[test]` of each body for each kind.

use std::cell::Cell;

use crvm_proto::raw::RawClient;

use crate::{config, Cluster, Server, TmpDir};

/// Nodes of the cluster kind: enough that a call's two parties and a third user (a watcher)
/// are each on a node of their own.
pub const CLUSTER_NODES: usize = 3;

/// Node timeout of the cluster kind (the smallest the server allows is 500 ms).
pub const NODE_TIMEOUT_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OneNode,
    Cluster,
}

enum Nodes {
    One(Server, TmpDir),
    Cluster(Cluster),
}

/// Running servers of one [`Kind`], killed on drop.
pub struct Topology {
    nodes: Nodes,
    next: Cell<usize>,
}

impl Topology {
    /// Starts `kind` with the top-level config keys `top` (and the test tenants).
    pub fn start(kind: Kind, top: &str) -> Topology {
        let nodes = match kind {
            Kind::OneNode => {
                let dir = TmpDir::new();
                Nodes::One(Server::start(&dir, &config(top)), dir)
            }
            Kind::Cluster => Nodes::Cluster(Cluster::start(CLUSTER_NODES, NODE_TIMEOUT_MS, top)),
        };
        Topology {
            nodes,
            next: Cell::new(0),
        }
    }

    pub fn kind(&self) -> Kind {
        match self.nodes {
            Nodes::One(..) => Kind::OneNode,
            Nodes::Cluster(_) => Kind::Cluster,
        }
    }

    /// The node for the next user: on one node always the same; on a cluster the next node in
    /// turn, so that users logged in one after another are on different nodes and whatever
    /// passes between them crosses nodes.
    pub fn node(&self) -> &Server {
        match &self.nodes {
            Nodes::One(s, _) => s,
            Nodes::Cluster(c) => {
                let i = self.next.get();
                self.next.set((i + 1) % c.nodes.len());
                &c.nodes[i]
            }
        }
    }

    /// A raw client logged in as `user` of the secret tenant `app`, on [`Topology::node`].
    pub fn login(&self, app: &str, user: &str) -> RawClient {
        self.node().login(app, user)
    }

    /// A directory for the test's files, removed with the topology.
    pub fn dir(&self) -> &TmpDir {
        match &self.nodes {
            Nodes::One(_, d) => d,
            Nodes::Cluster(c) => &c.dir,
        }
    }

    /// Every node's log, one after another.
    pub fn log_text(&self) -> String {
        match &self.nodes {
            Nodes::One(s, _) => s.log_text(),
            Nodes::Cluster(c) => c.nodes.iter().map(Server::log_text).collect(),
        }
    }

    /// Whether some node's log says `needle` within a few seconds (see
    /// [`Server::log_says_within`]).
    pub fn log_says(&self, needle: &str) -> bool {
        match &self.nodes {
            Nodes::One(s, _) => s.log_says(needle),
            Nodes::Cluster(c) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    if c.nodes.iter().any(|n| n.log_text().contains(needle)) {
                        return true;
                    }
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    // Another process's log: polled, there is no other signal.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
    }
}

/// `both_topologies!(a, b)`: for each test body `fn a(kind: Kind)` of the calling module, a
/// `#[test]` `one_node::a` and a `#[test]` `cluster::a`.
#[macro_export]
macro_rules! both_topologies {
    ($($name:ident),* $(,)?) => {
        mod one_node {
            $(#[test]
            fn $name() {
                super::$name($crate::topology::Kind::OneNode)
            })*
        }
        mod cluster {
            $(#[test]
            fn $name() {
                super::$name($crate::topology::Kind::Cluster)
            })*
        }
    };
}
