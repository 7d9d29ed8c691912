//! The node links' part in a drain (docs/DESIGN.md, "Drain"): a draining node asks another to
//! expect a session, hands it over, and tells every node where its sessions went; meanwhile
//! whatever reaches it for a session it handed over is passed on to the session's new node.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use super::frame::CallState;
use super::{Links, Msg, NodeLink, Towards};
use crate::hub::local::LocalCall;
use crate::ids::{LoginGen, SessionKey};
use crate::route::endpoint::RemoteEnd;
use crvm_proto::ServerMsg;

/// How long a node waits for another's answer during a drain.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

impl From<LocalCall> for CallState {
    fn from(c: LocalCall) -> CallState {
        CallState {
            call_id: c.call_id,
            peer: c.peer,
            caller: c.caller,
            connected: c.connected,
            meet_obj: c.meet_obj,
        }
    }
}

impl From<CallState> for LocalCall {
    fn from(c: CallState) -> LocalCall {
        LocalCall {
            call_id: c.call_id,
            peer: c.peer,
            caller: c.caller,
            connected: c.connected,
            meet_obj: c.meet_obj,
            // Whatever placing there was is the old node's: at the new node the call is one
            // its re-checks may restore.
            placing: false,
        }
    }
}

/// A session another node will hand to this one.
#[derive(Debug, Clone)]
pub struct Expected {
    pub gen: LoginGen,
    pub tenant: String,
    pub user: String,
    pub dnd: i32,
    pub notify: bool,
    pub call: Option<LocalCall>,
}

/// An answer to `expect`, `handoff` or `rehome`.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub ok: bool,
    pub addr: String,
    pub ws_addr: String,
}

/// What a node does with sessions handed to it (the server's side, [`crate::drain`]).
#[async_trait::async_trait]
pub trait Arrivals: Send + Sync {
    /// Prepares for session `e`: where its client will resume, or `None` if this node takes
    /// no sessions (it is draining too).
    fn expect(&self, e: Expected) -> Option<(String, String)>;

    /// Session `gen` was expected but will not come.
    fn forget(&self, gen: LoginGen);

    /// Session state `state` (JSON) from node `from` arrives. Whether it was taken.
    async fn arrive(&self, from: &str, state: &[u8]) -> bool;
}

/// What a session had in flight towards other nodes' relays when it left (its cmd numbers
/// and streams by node).
pub type InFlight = Vec<(String, Vec<u64>, Vec<u64>)>;

impl Links {
    pub fn set_arrivals(&self, arrivals: Arc<dyn Arrivals>) {
        let _ = self.arrivals.set(arrivals);
    }

    /// This node's name in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Sends `msg(token)` to `node` and waits for its answer (`None`: no link, or no answer
    /// in time).
    pub async fn ask(
        self: &Arc<Self>,
        node: &str,
        msg: impl FnOnce(u64) -> Msg,
        att: &[u8],
    ) -> Option<Answer> {
        let link = self.link(node).await?;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters.lock().insert(token, tx);
        link.send(&msg(token), att);
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, rx).await;
        self.waiters.lock().remove(&token);
        answer.ok()?.ok()
    }

    async fn answer(self: &Arc<Self>, node: &str, token: u64, a: Answer) {
        if let Some(link) = self.link(node).await {
            link.send(
                &Msg::Answer {
                    token,
                    ok: a.ok,
                    addr: a.addr,
                    ws_addr: a.ws_addr,
                },
                &[],
            );
        }
    }

    /// Local session `gen` (user `user` of `tenant`) leaves for the node of `to`: from now on
    /// what reaches this node for it and finds it gone is passed on there.
    pub fn forward_to(&self, gen: LoginGen, tenant: &str, user: &str, to: &NodeLink) {
        self.moved.lock().insert(gen, to.clone());
        self.moved_users
            .lock()
            .insert((tenant.to_owned(), user.to_owned()), to.clone());
    }

    /// What local session `gen`, which is leaving, has in flight towards other nodes: it
    /// takes it along.
    pub fn leaving(&self, gen: LoginGen) -> InFlight {
        let towards = self.senders.lock().remove(&gen).unwrap_or_default();
        towards
            .into_iter()
            .map(|(node, t)| {
                let mut cmds: Vec<u64> = t.cmds.into_iter().collect();
                cmds.sort_unstable();
                let mut sids: Vec<u64> = t.streams.into_iter().collect();
                sids.sort_unstable();
                (node, cmds, sids)
            })
            .collect()
    }

    /// Session `gen` arrived here with what it had in flight elsewhere: its books here, and a
    /// link to each of those nodes (its streams' chunks go there from now on, and this node
    /// may never have had reason to dial it: without a link they would be dropped). What it
    /// had in flight with this node's relay is a local sender's now.
    pub async fn arrived(self: &Arc<Self>, gen: LoginGen, in_flight: InFlight) {
        let mut books: HashMap<String, Towards> = HashMap::new();
        for (node, cmds, sids) in in_flight {
            if node == self.node {
                continue;
            }
            let t = books.entry(node).or_default();
            t.cmds.extend(cmds);
            t.streams.extend(sids);
        }
        books.retain(|_, t| !t.is_empty());
        for node in books.keys() {
            // A node out of reach ends what it had with it when its loss is noticed.
            if self.link(node).await.is_none() {
                tracing::warn!("drain: no link to node {node} for an arriving session's transfers");
            }
        }
        if !books.is_empty() {
            self.senders.lock().insert(gen, books);
        }
    }

    /// Passes `msg` for session `gen`, which left this node, on to its new node. False if
    /// it did not leave.
    pub(super) fn pass_on(&self, gen: LoginGen, msg: &ServerMsg) -> bool {
        let Some(link) = self.moved.lock().get(&gen).cloned() else {
            return false;
        };
        link.deliver(gen, msg.clone());
        true
    }

    /// The link to the node user `to` of `tenant` moved to, if its session left this node.
    fn moved_to(&self, tenant: &str, to: &str) -> Option<NodeLink> {
        let key = (tenant.to_owned(), to.to_owned());
        self.moved_users.lock().get(&key).cloned()
    }

    /// A cmd from `sender` (of another node) to a user whose session left this node is passed
    /// on to its new node, and what becomes of it comes back through here. False if the user
    /// did not leave.
    pub(super) fn pass_cmd_on(
        &self,
        sender: &crate::route::endpoint::Endpoint,
        [tenant, user, to]: [&str; 3],
        n: u64,
        data: &[u8],
    ) -> bool {
        use crate::route::endpoint::Endpoint;
        let Some(link) = self.moved_to(tenant, to) else {
            return false;
        };
        let Endpoint::There(back) = sender else {
            return false;
        };
        self.moved
            .lock()
            .entry(back.gen)
            .or_insert_with(|| back.link.clone());
        link.send_with(|f| super::frame::put_cmd(f, back.gen, n, [tenant, user, to], data));
        true
    }

    /// Cmd `n` of local session `gen` to a user whose session left this node, sent on to its
    /// new node as to any other node's user. False if the user did not leave.
    pub fn send_on(
        &self,
        gen: LoginGen,
        [tenant, user, to]: [&str; 3],
        n: u64,
        data: &[u8],
    ) -> bool {
        let Some(link) = self.moved_to(tenant, to) else {
            return false;
        };
        self.cmd(&link, gen, tenant, user, to, n, data);
        true
    }

    /// Tells every other live node where the sessions that left this node went, and waits
    /// (bounded) until each has answered: nothing more for them comes here after that. Returns
    /// the nodes that did not answer.
    pub async fn rehome(
        self: &Arc<Self>,
        peers: &[String],
        sessions: Vec<(LoginGen, String)>,
        cmds: Vec<(LoginGen, u64, String)>,
    ) -> Vec<String> {
        let mut asked = Vec::new();
        for node in peers {
            let (s, c) = (sessions.clone(), cmds.clone());
            let links = Arc::clone(self);
            let node = node.clone();
            let name = node.clone();
            asked.push((
                name,
                tokio::spawn(async move {
                    links
                        .ask(
                            &node,
                            |token| Msg::Rehome {
                                token,
                                sessions: s,
                                cmds: c,
                            },
                            &[],
                        )
                        .await
                        .is_some_and(|a| a.ok)
                }),
            ));
        }
        let mut silent = Vec::new();
        for (node, a) in asked {
            if !a.await.unwrap_or(false) {
                silent.push(node);
            }
        }
        silent
    }

    /// The drain messages of a link from `node`.
    pub(super) async fn on_moving(self: &Arc<Self>, node: &str, msg: Msg, att: Vec<u8>) {
        match msg {
            Msg::Expect {
                token,
                gen,
                tenant,
                user,
                dnd,
                notify,
                call,
            } => {
                let e = Expected {
                    gen,
                    tenant,
                    user,
                    dnd,
                    notify,
                    call: call.map(Into::into),
                };
                let at = self.arrivals.get().and_then(|a| a.expect(e));
                let a = match at {
                    Some((addr, ws_addr)) => Answer {
                        ok: true,
                        addr,
                        ws_addr,
                    },
                    None => Answer::default(),
                };
                self.answer(node, token, a).await;
            }
            Msg::Handoff { token } => {
                let ok = match self.arrivals.get() {
                    Some(a) => a.arrive(node, &att).await,
                    None => false,
                };
                let a = Answer {
                    ok,
                    ..Answer::default()
                };
                self.answer(node, token, a).await;
            }
            Msg::Forget { gen } => {
                if let Some(a) = self.arrivals.get() {
                    a.forget(gen);
                }
            }
            Msg::Rehome {
                token,
                sessions,
                cmds,
            } => {
                // Every cmd routed before now is on its link first (a cmd routed to the
                // draining node and written after this answer would reach it once the
                // session's inbox is gone, and be passed on behind later ones).
                drop(self.routing.write().await);
                for (gen, to) in sessions {
                    self.rehome_session(node, gen, &to).await;
                }
                {
                    let mut senders = self.senders.lock();
                    for (gen, n, to) in cmds {
                        let Some(by_node) = senders.get_mut(&gen) else {
                            continue;
                        };
                        let had = by_node.values_mut().any(|t| t.cmds.remove(&n));
                        if had {
                            by_node.entry(to).or_default().cmds.insert(n);
                        }
                        by_node.retain(|_, t| !t.is_empty());
                    }
                }
                let a = Answer {
                    ok: true,
                    ..Answer::default()
                };
                self.answer(node, token, a).await;
            }
            Msg::Fence { gen } => {
                // Behind everything passed on to it so far, on the same link.
                let on = self.moved.lock().get(&gen).cloned();
                let back = match on {
                    Some(link) => Some(link),
                    None => self.link(node).await,
                };
                if let Some(link) = back {
                    link.send(&Msg::FenceBack { gen }, &[]);
                }
            }
            Msg::FenceBack { gen } => self.relay.fence_passed(gen),
            Msg::Answer {
                token,
                ok,
                addr,
                ws_addr,
            } => {
                if let Some(tx) = self.waiters.lock().remove(&token) {
                    let _ = tx.send(Answer { ok, addr, ws_addr });
                }
            }
            _ => {}
        }
    }

    /// Session `gen` of node `from` lives at node `to` now: the relay here reaches it there.
    async fn rehome_session(self: &Arc<Self>, from: &str, gen: LoginGen, to: &str) {
        if let Some(p) = self.proxies.lock().get_mut(from) {
            p.remove(&gen);
        }
        if to == self.node {
            return; // it arrived here: a local session now
        }
        let Some(link) = self.link(to).await else {
            return;
        };
        self.proxies
            .lock()
            .entry(to.to_owned())
            .or_default()
            .insert(gen);
        self.relay.rehome(gen, &RemoteEnd { gen, link });
    }

    /// A remote sender as a session moving here named it: a session of this node, or of
    /// another reached through its link (recorded so that its node's loss ends it here).
    pub async fn sender_of(
        self: &Arc<Self>,
        gen: LoginGen,
        node: &str,
    ) -> Option<crate::route::endpoint::Endpoint> {
        use crate::route::endpoint::{Endpoint, LocalEnd};
        if node == self.node {
            let outbox = self.local.outbox(gen)?;
            return Some(Endpoint::Here(LocalEnd { gen, outbox }));
        }
        let link = self.link(node).await?;
        self.proxies
            .lock()
            .entry(node.to_owned())
            .or_default()
            .insert(gen);
        Some(Endpoint::There(RemoteEnd { gen, link }))
    }

    /// The key of a sender named by node: this node's or another's.
    pub fn key_of(&self, gen: LoginGen, node: &str) -> SessionKey {
        if node == self.node {
            SessionKey::Here(gen)
        } else {
            SessionKey::There(gen)
        }
    }
}
