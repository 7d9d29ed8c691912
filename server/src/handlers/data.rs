//! Cmds and the streams of buffers and files (SPEC §3.5), routed by [`crate::relay`] — or, when
//! the receiver is on another node of a cluster, over the link to that node
//! ([`crate::link`]), whose relay then runs the transfer.

use crvm_proto::error::{
    CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_MEETPARAM_ERR, CRVIDEOSDK_SENDDATA_TARGETINVALID,
};
use crvm_proto::{FrameRef, ServerMsg, XferKind};

use super::{End, ServerSession};
use crate::ids::SessionKey;
use crate::link::{Msg, NodeLink};
use crate::relay::{Endpoint, Offer, Sender};
use crate::session::{Phase, User};

/// Where a receiver is.
enum Route {
    Here(Endpoint),
    /// On another node, reached through its link.
    There(NodeLink),
}

impl ServerSession {
    /// This session as the sender of a cmd or stream (only a logged-in session sends).
    pub(super) fn sender(&self) -> Sender {
        let Phase::LoggedIn(user) = &self.phase else {
            unreachable!("handled for logged-in sessions only")
        };
        Sender::Local(Endpoint {
            gen: user.gen,
            outbox: self.outbox.clone(),
        })
    }

    /// Where `to`'s session is, if anywhere.
    async fn route(&self, user: &User, to: &str) -> Option<Route> {
        if let Some((gen, outbox)) = self.ctx.local.find(&user.tenant, to) {
            return Some(Route::Here(Endpoint { gen, outbox }));
        }
        let links = self.ctx.links.as_ref()?;
        let node = links.route(self.ctx.hub.as_ref(), &user.tenant, to).await?;
        Some(Route::There(links.link(&node).await?))
    }

    /// The outcome of this connection's cmd `n`.
    pub(super) fn cmd_done(&self, n: u64, code: i32) {
        self.send(&ServerMsg::CmdDone { ns: vec![n], code });
    }

    /// A cmd (fields already checked): routed to its target's session, or answered at once.
    pub(super) async fn cmd(&self, user: &User, n: u64, to: &str, data: &[u8]) -> Option<End> {
        if to == user.user_id {
            self.cmd_done(n, CRVIDEOSDK_MEETPARAM_ERR);
            return None;
        }
        let receiver = match self.route(user, to).await {
            None => {
                self.cmd_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID);
                return None;
            }
            Some(Route::There(link)) => {
                let links = self.ctx.links.as_ref().expect("routed over a link");
                links.cmd(&link, user.gen, &user.tenant, &user.user_id, to, n, data);
                return None;
            }
            Some(Route::Here(receiver)) => receiver,
        };
        let relay = &self.ctx.relay;
        match relay.cmd(&self.sender(), &user.user_id, n, &receiver, data.to_vec()) {
            Ok(Ok(())) => None,
            Ok(Err(code)) => {
                self.cmd_done(n, code);
                None
            }
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }

    /// An offer (fields already checked): the relay answers `res{offer}` and starts the stream
    /// when its receiver has room; failures are answered here.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn offer(
        &self,
        user: &User,
        id: u64,
        task: String,
        to: String,
        kind: XferKind,
        size: u64,
        name: String,
    ) {
        // Cmds are not streams; and nobody sends to themselves.
        if kind == XferKind::Cmd || to == user.user_id {
            return self.reply(id, CRVIDEOSDK_MEETPARAM_ERR);
        }
        let offer = Offer {
            task,
            from: user.user_id.clone(),
            kind,
            size,
            name,
        };
        match self.route(user, &to).await {
            None => self.reply(id, CRVIDEOSDK_SENDDATA_TARGETINVALID),
            Some(Route::There(link)) => {
                let links = self.ctx.links.as_ref().expect("routed over a link");
                links.offer(&link, user.gen, &user.tenant, &to, id, offer);
            }
            Some(Route::Here(receiver)) => {
                if let Err(code) = self.ctx.relay.offer(id, self.sender(), receiver, offer) {
                    self.reply(id, code);
                }
            }
        }
    }

    /// A stream message of this session for another node's relay: forwarded, and `true`.
    pub(super) fn forwarded(&self, user: &User, sid: u64, msg: impl FnOnce() -> Msg) -> bool {
        self.forwarded_with(user, sid, msg, &[])
    }

    fn forwarded_with(&self, user: &User, sid: u64, msg: impl FnOnce() -> Msg, att: &[u8]) -> bool {
        match &self.ctx.links {
            Some(links) => links.forward(user.gen, sid, msg, att),
            None => false,
        }
    }

    /// A data frame of one of this connection's streams. `Some` ends the connection.
    pub fn on_data(&self, frame: FrameRef<'_>) -> Option<End> {
        let Phase::LoggedIn(user) = &self.phase else {
            return Some(self.close(
                crvm_proto::error::CRVIDEOSDK_NOT_LOGIN,
                "log in first".into(),
            ));
        };
        let (sid, _) = frame.data();
        let from = user.gen;
        if self.forwarded_with(user, sid, || Msg::Data { from, sid }, frame.payload) {
            return None;
        }
        match self
            .ctx
            .relay
            .data(SessionKey::Here(user.gen), sid, frame.payload)
        {
            Ok(()) => None,
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }
}
