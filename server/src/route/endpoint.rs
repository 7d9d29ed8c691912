//! One side of a cmd or stream, wherever its session is ([`Endpoint`]): a session of this node,
//! reached through its outbox, or one of another node, reached through the link to that node.
//! The relay keeps its senders and receivers as these, and its effects name them; telling one
//! something is the same call either way.

use crvm_proto::ServerMsg;

use crate::ids::{LoginGen, SessionKey};
use crate::link::node_link::NodeLink;
use crate::outbox::Outbox;

/// A session of this node: its login and its outbox (which follows it from connection to
/// connection). A receiver is always one of these: the relay state of a transfer lives at the
/// receiver's node.
#[derive(Debug, Clone)]
pub struct LocalEnd {
    pub gen: LoginGen,
    pub outbox: Outbox,
}

impl LocalEnd {
    pub fn tell(&self, msg: &ServerMsg) {
        // A full or closing outbox takes care of its own connection.
        let _ = self.outbox.push_msg(msg);
    }
}

/// A session of another node of the cluster, told through the link to its node.
#[derive(Debug, Clone)]
pub struct RemoteEnd {
    /// The session's login on its node.
    pub gen: LoginGen,
    pub link: NodeLink,
}

/// A session here or on another node, as one side of a transfer.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Here(LocalEnd),
    There(RemoteEnd),
}

impl Endpoint {
    /// Its key in the relay's books.
    pub fn key(&self) -> SessionKey {
        match self {
            Endpoint::Here(e) => SessionKey::Here(e.gen),
            Endpoint::There(e) => SessionKey::There(e.gen),
        }
    }

    /// Queues `msg` to the session (dropped if its outbox or link is gone: their ends take
    /// care of what was in flight).
    pub fn tell(&self, msg: ServerMsg) {
        match self {
            Endpoint::Here(e) => e.tell(&msg),
            Endpoint::There(e) => e.link.deliver(e.gen, msg),
        }
    }

    /// The outcome of its cmd `n`.
    pub fn tell_done(&self, n: u64, code: i32) {
        self.tell(ServerMsg::CmdDone { ns: vec![n], code });
    }

    /// The failed outcome of its request `re`.
    pub fn tell_reply(&self, re: u64, code: i32) {
        self.tell(ServerMsg::reply(re, code));
    }
}

impl From<LocalEnd> for Endpoint {
    fn from(e: LocalEnd) -> Endpoint {
        Endpoint::Here(e)
    }
}
