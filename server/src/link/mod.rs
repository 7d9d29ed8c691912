//! Node-to-node links of a cluster (docs/API.md §4.1): cmds, buffers and files between users on
//! different nodes go straight from node to node, never through Redis, with the same flow
//! control as on one node.
//!
//! The relay state of a transfer lives at the **receiver's** node: the sender's node forwards
//! what its session sends (`cmd`, `offer`, data, `data_end`, `cancel`) over its link to that
//! node, whose relay treats the sender as an [`Endpoint::There`] and tells it everything
//! (`cmd_done`, `res{offer}`, `start`, progress, `xfer_end`, …) back over the link in the other
//! direction. The windows are enforced there, by the same code as for local senders.
//!
//! Each node sends only on connections it dialled (one per peer node, so what one session sends
//! keeps its order) and reads those it accepted; a connection opens with the dialler's name and
//! the key the accepting node published in Redis. When either direction to a node breaks, or
//! the cluster declares the node dead, both directions are closed and everything in flight
//! with that node ends once: this node's senders hear 1102 for their cmds, offers and streams
//! towards it; its senders' streams to receivers here are cancelled.
//!
//! Which side a cmd or stream goes to is the router's decision ([`crate::route`]); this module
//! carries it: it keeps the books of what each local session has in flight towards each node
//! (which also say which streams are another node's), and runs the relay's side for senders of
//! other nodes.
//!
//! Messages and frames: [`frame`]; the sending half of a link: [`node_link`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crvm_proto::error::{CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_SENDDATA_TARGETINVALID};
use crvm_proto::ServerMsg;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::auth::ct_eq;
use crate::hub::{Directory, LocalSessions};
use crate::ids::{LoginGen, SessionKey};
use crate::relay::{Offer, Relay};
use crate::route::endpoint::{Endpoint, LocalEnd, RemoteEnd};

pub mod frame;
pub mod moving;
pub mod node_link;

pub use frame::Msg;
pub use node_link::NodeLink;

/// Largest frame a link accepts: a data chunk or a cmd with its message.
const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Largest first frame (the hello) of a connection, and how long it may take.
const HELLO_MAX: usize = 4096;
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long dialling a node may take.
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What an accepted connection from a node remembers between its frames.
#[derive(Default)]
struct Inbound {
    /// The link back to that node, once dialled.
    back: Option<NodeLink>,
    /// Its sessions recorded as remote senders here.
    known: HashSet<LoginGen>,
}

/// What this node's sessions have in flight towards one other node.
#[derive(Debug, Default)]
struct Towards {
    /// Cmd numbers sent and not yet done.
    cmds: HashSet<u64>,
    /// Offers sent and not yet answered (their request IDs).
    offers: Vec<u64>,
    /// Streams the other node's relay numbered for us.
    streams: HashSet<u64>,
}

impl Towards {
    fn is_empty(&self) -> bool {
        self.cmds.is_empty() && self.offers.is_empty() && self.streams.is_empty()
    }

    /// Whether `msg` settles something of these books.
    fn settled_by(&self, msg: &ServerMsg) -> bool {
        match msg {
            ServerMsg::CmdDone { ns, .. } => ns.iter().any(|n| self.cmds.contains(n)),
            ServerMsg::Res { re, .. } => self.offers.contains(re),
            ServerMsg::XferEnd { sid, .. } | ServerMsg::CancelDone { sid, .. } => {
                self.streams.contains(sid)
            }
            _ => false,
        }
    }
}

/// Where to reach a node's links, from Redis.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// The link address and key of `node`, if it is a live member.
    async fn lookup(&self, node: &str) -> Option<(String, String)>;
}

/// The links of this node.
pub struct Links {
    node: String,
    /// What a dialler must present.
    key: String,
    /// Where this node's links listen.
    pub addr: SocketAddr,
    local: Arc<LocalSessions>,
    relay: Arc<Relay>,
    registry: OnceLock<Arc<dyn Registry>>,
    /// The links this node dialled, by node.
    dialled: Mutex<HashMap<String, NodeLink>>,
    /// Per accepted connection's node: a way to close it.
    accepted: Mutex<HashMap<String, Arc<Notify>>>,
    /// Per local sending session, what it has in flight towards each node.
    senders: Mutex<HashMap<LoginGen, HashMap<String, Towards>>>,
    /// Per node, its sessions that have relay state here.
    proxies: Mutex<HashMap<String, HashSet<LoginGen>>>,
    /// The node is stopping: no more links.
    closing: AtomicBool,
    /// Sessions that left this node (a drain), and the senders of cmds passed on to them, by
    /// the link to where they are.
    moved: Mutex<HashMap<LoginGen, NodeLink>>,
    /// Users whose session left this node, by tenant and user: the link to its new node.
    moved_users: Mutex<HashMap<(String, String), NodeLink>>,
    /// Answers awaited from other nodes during a drain, by token.
    waiters: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<moving::Answer>>>,
    next_token: std::sync::atomic::AtomicU64,
    /// What takes the sessions other nodes hand to this one.
    arrivals: OnceLock<Arc<dyn moving::Arrivals>>,
    /// Held (shared) by each cmd from its routing to its write on a link; a drain's `rehome`
    /// takes it whole before answering, so that every cmd routed to the draining node before
    /// then is on its link ahead of the answer (docs/DESIGN.md, "Drain").
    routing: tokio::sync::RwLock<()>,
}

impl Links {
    /// Binds the link listener on `ip` (any port) and starts accepting.
    pub async fn start(
        node: String,
        ip: std::net::IpAddr,
        local: Arc<LocalSessions>,
        relay: Arc<Relay>,
    ) -> std::io::Result<Arc<Links>> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let links = Arc::new(Links {
            node,
            key: crate::random::hex(32),
            addr: listener.local_addr()?,
            local,
            relay,
            registry: OnceLock::new(),
            dialled: Mutex::default(),
            accepted: Mutex::default(),
            senders: Mutex::default(),
            proxies: Mutex::default(),
            closing: AtomicBool::new(false),
            moved: Mutex::default(),
            moved_users: Mutex::default(),
            waiters: Mutex::default(),
            next_token: std::sync::atomic::AtomicU64::new(1),
            arrivals: OnceLock::new(),
            routing: tokio::sync::RwLock::new(()),
        });
        tokio::spawn(Arc::clone(&links).accept(listener));
        Ok(links)
    }

    /// Held while a cmd is routed and written: see [`Links::routing`]'s field.
    pub async fn routing(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.routing.read().await
    }

    /// The key a node dialling this one must present.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn set_registry(&self, registry: Arc<dyn Registry>) {
        let _ = self.registry.set(registry);
    }

    async fn accept(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(Arc::clone(&self).serve(stream));
                }
                Err(e) => {
                    tracing::warn!("cluster: accepting a node link failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Reads an accepted connection: a hello, then messages until it ends.
    async fn serve(self: Arc<Self>, stream: TcpStream) {
        let (rd, _wr) = stream.into_split();
        let mut rd = tokio::io::BufReader::with_capacity(256 * 1024, rd);
        // The hello is small and comes at once; anything else is not a node of this cluster.
        let hello = tokio::time::timeout(HELLO_TIMEOUT, frame::read(&mut rd, HELLO_MAX)).await;
        let node = match hello {
            Ok(Some((Msg::Hello { node, key }, _)))
                if ct_eq(key.as_bytes(), self.key.as_bytes()) =>
            {
                node
            }
            _ => return,
        };
        let stop = Arc::new(Notify::new());
        if let Some(old) = self.accepted.lock().insert(node.clone(), Arc::clone(&stop)) {
            old.notify_one();
        }
        let stopped = stop.notified();
        tokio::pin!(stopped);
        let mut via = Inbound::default();
        loop {
            tokio::select! {
                f = frame::read(&mut rd, MAX_FRAME) => match f {
                    Some((msg, att)) => self.handle(&node, &mut via, msg, att).await,
                    None => break,
                },
                _ = &mut stopped => return,
            }
        }
        self.lost(&node);
    }

    /// The link to `node`, dialled if there is none.
    pub async fn link(self: &Arc<Self>, node: &str) -> Option<NodeLink> {
        if let Some(p) = self.dialled.lock().get(node) {
            return Some(p.clone());
        }
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        let (addr, key) = self.registry.get()?.lookup(node).await?;
        let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr.as_str()));
        let stream = dial.await.ok()?.ok()?;
        let _ = stream.set_nodelay(true);
        let link = NodeLink::new(node, stream);
        let mut dialled = self.dialled.lock();
        if let Some(p) = dialled.get(node) {
            return Some(p.clone()); // dialled meanwhile by another task
        }
        link.send(
            &Msg::Hello {
                node: self.node.clone(),
                key,
            },
            &[],
        );
        dialled.insert(node.to_owned(), link.clone());
        drop(dialled);
        let (links, name, writer) = (Arc::clone(self), node.to_owned(), link.writer());
        tokio::spawn(async move {
            writer.await;
            links.lost(&name);
        });
        Some(link)
    }

    /// `node` is gone (a link to it broke, or the cluster declared it dead): both directions
    /// close, and everything in flight with it ends, once.
    pub fn lost(&self, node: &str) {
        // Results held for sessions that came from it: nothing more comes that way.
        self.relay.fences_lost(node);
        let dialled = self.dialled.lock().remove(node);
        if let Some(p) = &dialled {
            p.close();
        }
        if let Some(stop) = self.accepted.lock().remove(node) {
            stop.notify_one();
        }
        // Our senders' cmds, offers and streams towards it.
        let mut failed = Vec::new();
        {
            let mut senders = self.senders.lock();
            for (gen, towards) in senders.iter_mut() {
                if let Some(t) = towards.remove(node) {
                    failed.push((*gen, t));
                }
            }
            senders.retain(|_, t| !t.is_empty());
        }
        let code = CRVIDEOSDK_SENDDATA_TARGETINVALID;
        for (gen, t) in failed {
            let Some(sender) = self.local_end(gen) else {
                continue;
            };
            if !t.cmds.is_empty() {
                let mut ns: Vec<u64> = t.cmds.into_iter().collect();
                ns.sort_unstable();
                sender.tell(&ServerMsg::CmdDone { ns, code });
            }
            for re in t.offers {
                sender.tell(&ServerMsg::reply(re, code));
            }
            let mut sids: Vec<u64> = t.streams.into_iter().collect();
            sids.sort_unstable();
            for sid in sids {
                sender.tell(&ServerMsg::XferEnd { sid, code });
            }
        }
        // Its senders' streams and cmds here.
        let proxies = self.proxies.lock().remove(node).unwrap_or_default();
        for gen in proxies {
            self.relay.session_ended(SessionKey::There(gen));
        }
        if dialled.is_some() {
            tracing::info!("cluster: link to node {node} closed");
        }
    }

    /// The node is stopping: every link closes, and no new one is dialled.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let nodes: Vec<String> = self.dialled.lock().keys().cloned().collect();
        for n in nodes {
            self.lost(&n);
        }
    }

    fn towards<R>(&self, gen: LoginGen, node: &str, f: impl FnOnce(&mut Towards) -> R) -> R {
        let mut senders = self.senders.lock();
        let by_node = senders.entry(gen).or_default();
        // No allocation for the common case, a node already in the books.
        if let Some(t) = by_node.get_mut(node) {
            return f(t);
        }
        f(by_node.entry(node.to_owned()).or_default())
    }

    /// The node user `to` of `tenant` is on, if another: asked of the directory every time.
    /// (Not remembered: nothing tells every node when a user moves — status changes reach only
    /// the nodes with subscribers in the tenant — and a stale route would answer a send 1102.)
    pub async fn route(&self, dir: &dyn Directory, tenant: &str, to: &str) -> Option<Arc<str>> {
        let node = dir.locate(tenant, to).await.ok()??;
        if node == self.node {
            return None; // leaving or arriving here: not a session to route to
        }
        Some(node.into())
    }

    /// Local session `gen` (user `user` of `tenant`) sends cmd `n` to user `to` on `link`'s node.
    #[allow(clippy::too_many_arguments)]
    pub fn cmd(
        &self,
        link: &NodeLink,
        gen: LoginGen,
        tenant: &str,
        user: &str,
        to: &str,
        n: u64,
        data: &[u8],
    ) {
        self.towards(gen, link.node(), |t| t.cmds.insert(n));
        link.send_with(|f| frame::put_cmd(f, gen, n, [tenant, user, to], data));
    }

    /// Local session `gen` offers a stream to user `to` of `tenant` on `link`'s node.
    pub fn offer(
        &self,
        link: &NodeLink,
        gen: LoginGen,
        tenant: &str,
        to: &str,
        re: u64,
        offer: Offer,
    ) {
        self.towards(gen, link.node(), |t| t.offers.push(re));
        let msg = Msg::Offer {
            from: gen,
            tenant: tenant.to_owned(),
            to: to.to_owned(),
            re,
            task: offer.task,
            user: offer.from,
            kind: offer.kind,
            size: offer.size,
            name: offer.name,
        };
        link.send(&msg, &[]);
    }

    /// Forwards a stream message of local session `gen` if its stream is another node's (the
    /// books of what it has in flight say which). Returns whether the stream was another
    /// node's (else it is this node's relay's). With no link to that node — being torn down,
    /// or never dialled because the node was out of reach when the session arrived here — the
    /// stream ends with 8 (the receiver's node cannot be reached), as [`Links::lost`] ends it:
    /// whichever takes it off the books reports it, so the sender hears once.
    pub fn forward(&self, gen: LoginGen, sid: u64, msg: impl FnOnce() -> Msg, att: &[u8]) -> bool {
        let link = {
            let mut senders = self.senders.lock();
            let Some(by_node) = senders.get_mut(&gen) else {
                return false;
            };
            let Some((node, towards)) = by_node.iter_mut().find(|(_, t)| t.streams.contains(&sid))
            else {
                return false;
            };
            // `senders`, then `dialled`: nothing takes them the other way round.
            let link = self.dialled.lock().get(node.as_str()).cloned();
            if link.is_none() {
                towards.streams.remove(&sid);
                by_node.retain(|_, t| !t.is_empty());
                if by_node.is_empty() {
                    senders.remove(&gen);
                }
            }
            link
        };
        match link {
            Some(link) => link.send(&msg(), att),
            None => {
                if let Some(sender) = self.local_end(gen) {
                    let code = CRVIDEOSDK_SENDDATA_TARGETINVALID;
                    sender.tell(&ServerMsg::XferEnd { sid, code });
                }
            }
        }
        true
    }

    /// Local session `gen` ended: the nodes it has streams or cmds with are told.
    pub fn session_ended(&self, gen: LoginGen) {
        let Some(towards) = self.senders.lock().remove(&gen) else {
            return;
        };
        let dialled = self.dialled.lock();
        for node in towards.keys() {
            if let Some(p) = dialled.get(node) {
                p.send(&Msg::Ended { gen }, &[]);
            }
        }
    }

    /// Something for local session `gen` from `node`'s relay: it passes, and what it settles is
    /// struck from the books of what is in flight towards that node.
    fn delivered(&self, node: &str, gen: LoginGen, msg: &ServerMsg) {
        {
            let mut senders = self.senders.lock();
            // Normally the books of `node`; after a drain moved the other side, another's.
            let node = match senders.get(&gen) {
                Some(m) if !m.contains_key(node) => m
                    .iter()
                    .find(|(_, t)| t.settled_by(msg))
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| node.to_owned()),
                _ => node.to_owned(),
            };
            let node = node.as_str();
            if let Some(t) = senders.get_mut(&gen).and_then(|m| m.get_mut(node)) {
                match msg {
                    ServerMsg::CmdDone { ns, .. } => {
                        for n in ns {
                            t.cmds.remove(n);
                        }
                    }
                    ServerMsg::Res {
                        re,
                        result: crvm_proto::Outcome::Offer { sid },
                    } => {
                        t.offers.retain(|r| r != re);
                        t.streams.insert(*sid);
                    }
                    ServerMsg::Res {
                        re,
                        result: crvm_proto::Outcome::Ok | crvm_proto::Outcome::Err(_),
                    } => t.offers.retain(|r| r != re),
                    ServerMsg::XferEnd { sid, .. } | ServerMsg::CancelDone { sid, .. } => {
                        t.streams.remove(sid);
                    }
                    _ => {}
                }
                if t.is_empty() {
                    if let Some(m) = senders.get_mut(&gen) {
                        m.remove(node);
                        if m.is_empty() {
                            senders.remove(&gen);
                        }
                    }
                }
            }
        }
        // A session moving away (a drain) is still found here until it is removed, and its
        // outbox closes once its frames are taken for the move: what reaches it in between
        // (this thread found it, the drain took its frames before this push) is passed on to
        // its new node, behind those frames, instead of being dropped.
        let missed = match self.local_end(gen) {
            Some(end) => end.outbox.push_msg(msg) == Err(crate::outbox::PushError::Closed),
            None => true,
        };
        if missed {
            self.pass_on(gen, msg);
        }
    }

    /// Remote sender `gen` of `node`, over the link back to that node, recorded (once per
    /// accepted connection) so that the node's loss ends its relay state here. `None` if the
    /// link back cannot be dialled or is closing.
    async fn sender(
        self: &Arc<Self>,
        node: &str,
        gen: LoginGen,
        via: &mut Inbound,
    ) -> Option<Endpoint> {
        let link = match &via.back {
            Some(p) => p.clone(),
            None => {
                let p = self.link(node).await?;
                via.back = Some(p.clone());
                p
            }
        };
        if !via.known.contains(&gen) {
            // Under the lock `lost` takes after it closes the link: either it finds this
            // session to end, or this finds the link closed.
            let mut proxies = self.proxies.lock();
            if link.is_closed() {
                return None;
            }
            match proxies.get_mut(node) {
                Some(p) => {
                    p.insert(gen);
                }
                None => {
                    proxies.entry(node.to_owned()).or_default().insert(gen);
                }
            }
            via.known.insert(gen);
        } else if link.is_closed() {
            return None;
        }
        Some(Endpoint::There(RemoteEnd { gen, link }))
    }

    /// Session `gen` of this node, if it is still here.
    fn local_end(&self, gen: LoginGen) -> Option<LocalEnd> {
        let outbox = self.local.outbox(gen)?;
        Some(LocalEnd { gen, outbox })
    }

    /// The session of user `to` of `tenant` on this node, as a receiver.
    fn receiver(&self, tenant: &str, to: &str) -> Option<LocalEnd> {
        let (gen, outbox) = self.local.find(tenant, to)?;
        Some(LocalEnd { gen, outbox })
    }

    async fn handle(self: &Arc<Self>, node: &str, via: &mut Inbound, msg: Msg, att: Vec<u8>) {
        match msg {
            Msg::Hello { .. } => {}
            msg @ (Msg::Expect { .. }
            | Msg::Handoff { .. }
            | Msg::Forget { .. }
            | Msg::Rehome { .. }
            | Msg::Fence { .. }
            | Msg::FenceBack { .. }
            | Msg::Answer { .. }) => self.on_moving(node, msg, att).await,
            Msg::Deliver { gen, msg } => self.delivered(node, gen, &msg),
            Msg::CmdDone { gen, ns, code } => {
                self.delivered(node, gen, &ServerMsg::CmdDone { ns, code })
            }
            Msg::Violation { gen, what } => {
                if let Some(outbox) = self.local.outbox(gen) {
                    outbox.close_with(&ServerMsg::Close {
                        code: CRVIDEOSDK_ERR_DATA,
                        reason: what,
                    });
                }
            }
            Msg::Cmd {
                from,
                tenant,
                user,
                to,
                n,
            } => {
                // The answer goes back over our own link to that node.
                let Some(sender) = self.sender(node, from, via).await else {
                    return;
                };
                let Some(receiver) = self.receiver(&tenant, &to) else {
                    // Sent just before its receiver moved away (a drain): passed on there.
                    if !self.pass_cmd_on(&sender, [&tenant, &user, &to], n, &att) {
                        sender.tell_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID);
                    }
                    return;
                };
                match self
                    .relay
                    .cmd_unless_left(&sender, &user, n, &receiver, att)
                {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(code))) => sender.tell_done(n, code),
                    Ok(Err(v)) => self.violation(&sender, v.0),
                    // Its receiver left this node meanwhile (a drain): passed on there.
                    Err(att) => {
                        if !self.pass_cmd_on(&sender, [&tenant, &user, &to], n, &att) {
                            sender.tell_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID);
                        }
                    }
                }
            }
            Msg::Offer {
                from,
                tenant,
                to,
                re,
                task,
                user,
                kind,
                size,
                name,
            } => {
                let Some(sender) = self.sender(node, from, via).await else {
                    return;
                };
                let Some(receiver) = self.receiver(&tenant, &to) else {
                    sender.tell_reply(re, CRVIDEOSDK_SENDDATA_TARGETINVALID);
                    return;
                };
                let offer = Offer {
                    task,
                    from: user,
                    kind,
                    size,
                    name,
                };
                if let Err(code) = self.relay.offer(re, sender.clone(), receiver, offer) {
                    sender.tell_reply(re, code);
                }
            }
            Msg::Data { from, sid } => {
                if let Err(v) = self.relay.data(SessionKey::There(from), sid, att) {
                    if let Some(sender) = self.sender(node, from, via).await {
                        self.violation(&sender, v.0);
                    }
                }
            }
            Msg::DataEnd { from, sid, hash } => {
                self.relay.data_end(SessionKey::There(from), sid, hash)
            }
            Msg::Cancel { from, sid } => {
                if let Some(sender) = self.sender(node, from, via).await {
                    self.relay.cancel(&sender, sid);
                }
            }
            Msg::Ended { gen } => {
                via.known.remove(&gen);
                if let Some(p) = self.proxies.lock().get_mut(node) {
                    p.remove(&gen);
                }
                self.relay.session_ended(SessionKey::There(gen));
            }
        }
    }

    fn violation(&self, sender: &Endpoint, what: &str) {
        if let Endpoint::There(RemoteEnd { gen, link }) = sender {
            link.send(
                &Msg::Violation {
                    gen: *gen,
                    what: what.to_owned(),
                },
                &[],
            );
        }
    }
}

#[cfg(test)]
mod tests;
