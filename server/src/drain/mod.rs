//! Drain (docs/CLUSTER.md "Drain", docs/DESIGN.md "Drain"): a cluster node asked to stop
//! (SIGTERM, or the admin API) first hands each of its sessions to another live node, which
//! the session's client then resumes at; one node alone just stops.
//!
//! For each session, in turn: its link is taken down (its client starts resuming here, and is
//! answered `moved` with the new node's address once the session is there); the new node is
//! asked to expect it (it holds whatever reaches the session until it arrives); the shared
//! state makes the new node its home, and this node waits for the shared state's last effect
//! for it; the relay hands over the cmds coming in to it (its streams end, 1102); and its
//! state — secrets, sequence numbers, every frame its client has not acknowledged or not been
//! sent — travels over the node link. Finally every node is told where the sessions went, and
//! this node waits (bounded) for their clients to have asked here and been sent on.

mod arrive;
mod state;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::ids::LoginGen;
use crate::link::{Links, Msg};
use crate::resume::{Leaving, SentOn};
use crate::route::endpoint::{Endpoint, RemoteEnd};
use crate::session::Phase;

pub use arrive::take_arrivals;
use state::{CmdState, SessionState};

/// How long a connection may take to let go of its session.
const DETACH_WAIT: Duration = Duration::from_secs(5);
/// How long the shared state may take to deliver its last effect for a moving session.
const MARK_WAIT: Duration = Duration::from_secs(5);
/// How long the node waits, once its sessions moved, for their clients to ask where they are.
const SEND_ON_WAIT: Duration = Duration::from_secs(10);

/// Where one session went, and its senders' cmds now settled there.
struct Moved {
    gen: LoginGen,
    node: String,
    cmds: Vec<(LoginGen, u64, String)>,
}

/// Drains this node if it is a cluster node with other live nodes; returns once its sessions
/// moved (what could not move is left for the shutdown that follows).
pub async fn run(ctx: &Arc<Ctx>) {
    let Some(links) = ctx.router.links().cloned() else {
        return;
    };
    ctx.draining.store(true, Ordering::Release);
    let peers = ctx.hub.peers().await;
    let ids = ctx.sessions.ids();
    if peers.is_empty() {
        ctx.sessions.close();
        tracing::info!("drain: no other live node; {} session(s) end", ids.len());
        return;
    }
    tracing::info!(
        "drain: moving {} session(s) to {} other node(s)",
        ids.len(),
        peers.len()
    );
    // Nodes that did not answer (frozen, or gone since they last beat) are not asked again.
    let mut silent = HashSet::new();
    // Sessions logged in here since the drain began (a client that picked this node just
    // before it was told to stop) move like the others, until every moved client was sent on.
    let mut known: HashSet<String> = ids.iter().cloned().collect();
    let (mut batch, mut count, mut i) = (ids.clone(), 0, 0);
    let mut told;
    let missing = loop {
        let mut moved = Vec::new();
        for id in &batch {
            if let Some(m) = move_one(ctx, &links, id, &peers, i, &mut silent).await {
                moved.push(m);
            }
            i += 1;
        }
        count += moved.len();
        let mut sessions = Vec::new();
        let mut cmds = Vec::new();
        for m in moved {
            sessions.push((m.gen, m.node));
            cmds.extend(m.cmds);
        }
        let live = answering(&peers, &silent);
        told = live.len() - links.rehome(&live, sessions, cmds).await.len();
        match ctx.sessions.sent_on(SEND_ON_WAIT, &known).await {
            SentOn::All { missing } => break missing,
            SentOn::New(fresh) => {
                known.extend(fresh.iter().cloned());
                batch = fresh;
            }
        }
    };
    // What reached this node for the moved sessions until the others were told (results of
    // their streams and cmds, on their way here) was passed on to their new nodes; one more
    // round, which each node answers behind everything this node sent it, makes sure it is
    // there before this node stops (its links close, and the others stop reading them, once
    // it leaves).
    links
        .rehome(&answering(&peers, &silent), Vec::new(), Vec::new())
        .await;
    tracing::info!(
        "drain: {count} of {} session(s) moved, {told} of {} node(s) told, {missing} client(s) did not come by",
        known.len(),
        peers.len()
    );
}

/// Moves session `id` to one of `peers` (tried from the `start`th on). `None` if it did not
/// move (gone meanwhile, or no node took it).
async fn move_one(
    ctx: &Arc<Ctx>,
    links: &Arc<Links>,
    id: &str,
    peers: &[String],
    start: usize,
    silent: &mut HashSet<String>,
) -> Option<Moved> {
    let leaving = ctx.sessions.leave(id, DETACH_WAIT).await?;
    let Phase::LoggedIn(user) = &leaving.session.phase else {
        ctx.sessions.forget(id);
        return None;
    };
    let user = user.clone();
    let gen = user.gen;
    let local = ctx.local.get(gen)?;
    let (notify, call) = ctx.local.extras(gen);
    let mut target = None;
    for k in 0..peers.len() {
        let node = &peers[(start + k) % peers.len()];
        if silent.contains(node) {
            continue;
        }
        let call = call.clone().map(Into::into);
        let expect = |token| Msg::Expect {
            token,
            gen,
            tenant: user.tenant.clone(),
            user: user.user_id.clone(),
            dnd: local.dnd,
            notify,
            call,
        };
        match links.ask(node, expect, &[]).await {
            Some(a) if a.ok => {
                target = Some((node.clone(), a));
                break;
            }
            Some(_) => {} // draining too
            None => {
                silent.insert(node.clone());
            }
        }
    }
    let Some((node, at)) = target else {
        tracing::warn!("drain: no node takes session {gen}; it stays");
        stay(ctx, leaving);
        return None;
    };
    let link = links.link(&node).await?;
    let mark = ctx.local.moved_mark(gen);
    match ctx
        .hub
        .move_session(&user.tenant, &user.user_id, gen, &node)
        .await
    {
        Ok(true) => {}
        _ => {
            // Ended meanwhile, or the shared state is out of reach: the other node forgets it.
            link.send(&Msg::Forget { gen }, &[]);
            stay(ctx, leaving);
            return None;
        }
    }
    if tokio::time::timeout(MARK_WAIT, mark).await.is_err() {
        tracing::warn!("drain: the shared state's last effect for session {gen} is late");
    }
    // Whatever the other nodes sent it here before they could know it moved is here once
    // each has answered (their links keep order).
    let live = answering(peers, silent);
    silent.extend(links.rehome(&live, Vec::new(), Vec::new()).await);
    // Nothing reaches it here any more: the relay's cmds go with it, the rest is passed on
    // (from before it is gone from here, so that nothing falls in between).
    links.forward_to(gen, &user.tenant, &user.user_id, &link);
    ctx.local.remove(gen);
    let there = RemoteEnd {
        gen,
        link: link.clone(),
    };
    let inbox = ctx.router.relay().leave(gen, &there);
    let in_flight = links.leaving(gen);
    let mut rehomed = Vec::new();
    let mut cmds = Vec::new();
    for c in inbox.cmds {
        let (sender, from_node) = match &c.sender {
            Endpoint::Here(e) => (e.gen, links.node().to_owned()),
            Endpoint::There(e) => {
                rehomed.push((e.gen, c.n, node.clone()));
                (e.gen, e.link.node().to_owned())
            }
        };
        cmds.push(CmdState {
            sender,
            node: from_node,
            n: c.n,
            len: c.len,
            waiting: c.waiting,
        });
    }
    let Leaving {
        id,
        tenant,
        secret,
        prev_secret,
        session,
    } = leaving;
    let reconnecting = *user.reconnecting.lock().await;
    let mut state = SessionState {
        id: id.clone(),
        tenant,
        secret,
        prev_secret,
        user_id: user.user_id.clone(),
        gen,
        login_conn: session.login_conn.0,
        addr: session.addr,
        reconnecting,
        next: 0,
        handled: 0,
        kept: Vec::new(),
        queued: Vec::new(),
        next_n: inbox.next_n,
        cmds,
        in_flight,
    };
    state.set_outbox(session.outbox.take_for_move());
    let json = match serde_json::to_vec(&state) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("drain: session {gen} cannot be encoded: {e}");
            ctx.sessions.forget(&id);
            return None;
        }
    };
    let sent = links
        .ask(&node, |token| Msg::Handoff { token }, &json)
        .await;
    if !sent.is_some_and(|a| a.ok) {
        tracing::warn!("drain: node {node} did not take session {gen}: it is lost");
        ctx.sessions.forget(&id);
        return None;
    }
    tracing::info!(
        "drain: session of conn {} moved to node {node}",
        session.login_conn
    );
    ctx.sessions.moved(&id, at.addr, at.ws_addr);
    Some(Moved {
        gen,
        node,
        cmds: rehomed,
    })
}

/// The nodes of `peers` that have not failed to answer.
fn answering(peers: &[String], silent: &HashSet<String>) -> Vec<String> {
    let live = peers.iter().filter(|p| !silent.contains(*p));
    live.cloned().collect()
}

/// A session that could not move stays held here, for the shutdown to end.
fn stay(ctx: &Arc<Ctx>, leaving: Leaving) {
    let outbox = leaving.session.outbox.clone();
    let user = match &leaving.session.phase {
        Phase::LoggedIn(u) => Some(u.clone()),
        _ => None,
    };
    let id = leaving.id.clone();
    let epoch = ctx.sessions.arrive(leaving);
    crate::resume::takeover::expire_later(Arc::clone(ctx), id, epoch, outbox, user);
}
