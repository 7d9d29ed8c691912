//! The data plane's routing layer: the one place that decides whether the other side of a cmd or
//! stream is a session of this node or of another. A sender's cmd or offer goes to this node's
//! [`Relay`] when its receiver is here, or over the link to the receiver's node, whose relay
//! runs the transfer ([`crate::link`]); what the sender sends later on a stream follows the
//! stream. Receivers' messages (acknowledgements, `fin`, …) always belong to this node's relay.
//!
//! Both sides are [`endpoint::Endpoint`]s: a local session's outbox, or a node link and the
//! session's login on that node. The handlers ([`crate::handlers`]) talk to [`Router`] only.

pub mod endpoint;

use std::borrow::Cow;
use std::sync::Arc;

use crvm_proto::error::CRVIDEOSDK_SENDDATA_TARGETINVALID;

use crate::hub::{Directory, LocalSessions};
use crate::ids::{LoginGen, SessionKey};
use crate::link::node_link::NodeLink;
use crate::link::{Links, Msg};
use crate::relay::{Offer, Relay, Violation};
use endpoint::{Endpoint, LocalEnd};

/// Where a user's session is, seen from a sender here.
pub enum Target {
    Here(LocalEnd),
    /// On another node, reached through its link (its relay knows the session).
    There(NodeLink),
}

/// A local session that sends: its endpoint and who it is.
pub struct Sending<'a> {
    pub end: LocalEnd,
    pub tenant: &'a str,
    pub user: &'a str,
}

/// Routes this node's cmds and streams.
pub struct Router {
    local: Arc<LocalSessions>,
    relay: Arc<Relay>,
    /// The links to the other nodes, in a cluster.
    links: Option<Arc<Links>>,
}

impl Router {
    pub fn new(local: Arc<LocalSessions>, relay: Arc<Relay>, links: Option<Arc<Links>>) -> Router {
        Router {
            local,
            relay,
            links,
        }
    }

    /// The links to the other nodes, in a cluster.
    pub fn links(&self) -> Option<&Arc<Links>> {
        self.links.as_ref()
    }

    /// This node's relay, where the transfers to its sessions run.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Where `to`'s session of `tenant` is, if anywhere: here, else (in a cluster) the node
    /// the directory names.
    pub async fn locate(&self, dir: &dyn Directory, tenant: &str, to: &str) -> Option<Target> {
        if let Some((gen, outbox)) = self.local.find(tenant, to) {
            return Some(Target::Here(LocalEnd { gen, outbox }));
        }
        let links = self.links.as_ref()?;
        let node = links.route(dir, tenant, to).await?;
        Some(Target::There(links.link(&node).await?))
    }

    /// Cmd `n` of `from` to user `to`: to this node's relay or over a link, or answered 1102
    /// when `to` is nowhere. A sender over its window is a violation.
    pub async fn cmd(
        &self,
        dir: &dyn Directory,
        from: Sending<'_>,
        n: u64,
        to: &str,
        data: &[u8],
    ) -> Result<(), Violation> {
        let gen = from.end.gen;
        let sender = Endpoint::Here(from.end);
        // From the route's lookup to the write on a link: a drain's barrier waits for it.
        let _routing = match &self.links {
            Some(links) => Some(links.routing().await),
            None => None,
        };
        match self.locate(dir, from.tenant, to).await {
            None => sender.tell_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID),
            Some(Target::There(link)) => {
                let links = self.links.as_ref().expect("located over a link");
                links.cmd(&link, gen, from.tenant, from.user, to, n, data);
            }
            Some(Target::Here(receiver)) => {
                let taken =
                    self.relay
                        .cmd_unless_left(&sender, from.user, n, &receiver, data.to_vec());
                match taken {
                    Ok(done) => {
                        if let Err(code) = done? {
                            sender.tell_done(n, code);
                        }
                    }
                    // The receiver left this node meanwhile (a drain): sent on to its new one.
                    Err(data) => {
                        let sent = self.links.as_ref().is_some_and(|links| {
                            links.send_on(gen, [from.tenant, from.user, to], n, &data)
                        });
                        if !sent {
                            sender.tell_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Offer `re` of `from` to user `to`: the relay (here or at `to`'s node) answers
    /// `res{offer}` and starts the stream when its receiver has room; failures are answered
    /// here.
    pub async fn offer(
        &self,
        dir: &dyn Directory,
        from: Sending<'_>,
        re: u64,
        to: &str,
        offer: Offer,
    ) {
        let gen = from.end.gen;
        let sender = Endpoint::Here(from.end);
        match self.locate(dir, from.tenant, to).await {
            None => sender.tell_reply(re, CRVIDEOSDK_SENDDATA_TARGETINVALID),
            Some(Target::There(link)) => {
                let links = self.links.as_ref().expect("located over a link");
                links.offer(&link, gen, from.tenant, to, re, offer);
            }
            Some(Target::Here(receiver)) => {
                // The relay keeps the sender (offers are few: a clone is cheap here).
                let back = sender.clone();
                if let Err(code) = self.relay.offer(re, sender, receiver, offer) {
                    back.tell_reply(re, code);
                }
            }
        }
    }

    /// Forwards a stream message of local session `gen` to the node whose relay numbered the
    /// stream, if another. Returns whether it did.
    fn forwarded(&self, gen: LoginGen, sid: u64, msg: impl FnOnce() -> Msg, att: &[u8]) -> bool {
        self.links
            .as_ref()
            .is_some_and(|links| links.forward(gen, sid, msg, att))
    }

    /// A data frame (payload: stream ID then bytes) of local session `gen`'s stream `sid`.
    pub fn data<'p>(
        &self,
        gen: LoginGen,
        sid: u64,
        payload: impl Into<Cow<'p, [u8]>>,
    ) -> Result<(), Violation> {
        let payload = payload.into();
        if self.forwarded(gen, sid, || Msg::Data { from: gen, sid }, &payload) {
            return Ok(());
        }
        self.relay.data(SessionKey::Here(gen), sid, payload)
    }

    /// The checksum after the last chunk of local session `gen`'s stream `sid`.
    pub fn data_end(&self, gen: LoginGen, sid: u64, hash: String) {
        let h = hash.clone();
        if !self.forwarded(
            gen,
            sid,
            || Msg::DataEnd {
                from: gen,
                sid,
                hash: h,
            },
            &[],
        ) {
            self.relay.data_end(SessionKey::Here(gen), sid, hash);
        }
    }

    /// Local session `sender` abandons its stream `sid`.
    pub fn cancel(&self, sender: LocalEnd, sid: u64) {
        let gen = sender.gen;
        if !self.forwarded(gen, sid, || Msg::Cancel { from: gen, sid }, &[]) {
            self.relay.cancel(&sender.into(), sid);
        }
    }

    /// Local session `gen` ended: its transfers here end, and the nodes it has cmds or
    /// streams with are told.
    pub fn session_ended(&self, gen: LoginGen) {
        self.relay.session_ended(SessionKey::Here(gen));
        if let Some(links) = &self.links {
            links.session_ended(gen);
        }
    }
}

#[cfg(test)]
mod tests;
