//! The receiving side of a drain: a session another node hands to this one is expected (a
//! stand-in outbox holds what reaches it meanwhile), then arrives and is held here for its
//! client's resume, as if its link had just dropped.

use std::sync::{Arc, Weak};

use crate::ctx::Ctx;
use crate::hub::local::Local;
use crate::ids::{ConnId, LoginGen, SessionKey};
use crate::link::moving::{Arrivals, Expected};
use crate::link::Links;
use crate::outbox::Outbox;
use crate::relay::{MovingCmd, MovingInbox};
use crate::resume::Leaving;
use crate::route::endpoint::{LocalEnd, RemoteEnd};
use crate::session::{ParkedSession, Phase, User};

use super::state::SessionState;

/// This node's [`Arrivals`].
struct Arrive {
    ctx: Weak<Ctx>,
    links: Weak<Links>,
}

/// Lets `links` hand arriving sessions to this node.
pub fn take_arrivals(ctx: &Arc<Ctx>, links: &Arc<Links>) {
    links.set_arrivals(Arc::new(Arrive {
        ctx: Arc::downgrade(ctx),
        links: Arc::downgrade(links),
    }));
}

#[async_trait::async_trait]
impl Arrivals for Arrive {
    fn expect(&self, e: Expected) -> Option<(String, String)> {
        let ctx = self.ctx.upgrade()?;
        if ctx.is_draining() {
            return None;
        }
        let outbox = Outbox::for_move();
        ctx.local.add(
            e.gen,
            Local {
                tenant: e.tenant,
                user_id: e.user,
                outbox: outbox.clone(),
                dnd: e.dnd,
            },
        );
        if e.notify {
            ctx.local.set_notify(e.gen, true);
        }
        if let Some(call) = e.call {
            ctx.local.set_call(e.gen, call);
        }
        ctx.router.relay().expect(&LocalEnd { gen: e.gen, outbox });
        Some((ctx.resume_addr.clone(), ctx.ws_resume_addr.clone()))
    }

    fn forget(&self, gen: LoginGen) {
        if let Some(ctx) = self.ctx.upgrade() {
            ctx.local.remove(gen);
            ctx.router.relay().session_ended(SessionKey::Here(gen));
        }
    }

    async fn arrive(&self, from: &str, state: &[u8]) -> bool {
        let (Some(ctx), Some(links)) = (self.ctx.upgrade(), self.links.upgrade()) else {
            return false;
        };
        let mut st: SessionState = match serde_json::from_slice(state) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("drain: a session from node {from} cannot be read: {e}");
                return false;
            }
        };
        let gen = st.gen;
        let Some(outbox) = ctx.local.outbox(gen) else {
            return false;
        };
        outbox.adopt(st.take_outbox());
        let here = LocalEnd {
            gen,
            outbox: outbox.clone(),
        };
        let mut cmds = Vec::new();
        for c in std::mem::take(&mut st.cmds) {
            // A sender out of reach is answered through the node the session came from.
            let sender = match links.sender_of(c.sender, &c.node).await {
                Some(s) => s,
                None => match links.link(from).await {
                    Some(link) => crate::route::endpoint::Endpoint::There(RemoteEnd {
                        gen: c.sender,
                        link,
                    }),
                    None => continue,
                },
            };
            cmds.push(MovingCmd {
                sender,
                n: c.n,
                len: c.len,
                waiting: c.waiting,
            });
        }
        let relay = ctx.router.relay();
        relay.localise(&here, links.link(from).await.as_ref());
        relay.arrive(
            &here,
            MovingInbox {
                next_n: st.next_n,
                cmds,
            },
        );
        links.arrived(gen, std::mem::take(&mut st.in_flight)).await;
        let user = User {
            tenant: st.tenant.clone(),
            user_id: st.user_id.clone(),
            gen,
            session: Some(st.id.clone()),
            reconnecting: Arc::new(tokio::sync::Mutex::new(st.reconnecting)),
        };
        let parked = ParkedSession {
            login_conn: ConnId(st.login_conn),
            conn: ConnId(st.login_conn),
            addr: st.addr,
            outbox: outbox.clone(),
            phase: Phase::LoggedIn(user.clone()),
        };
        let id = st.id.clone();
        let epoch = ctx.sessions.arrive(Leaving {
            id: st.id,
            tenant: st.tenant,
            secret: st.secret,
            prev_secret: st.prev_secret,
            session: Box::new(parked),
        });
        crate::resume::takeover::expire_later(Arc::clone(&ctx), id, epoch, outbox, Some(user));
        ctx.local.open(gen);
        tracing::info!(
            "drain: session of conn {} arrived from node {from}",
            st.login_conn
        );
        true
    }
}
