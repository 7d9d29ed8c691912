//! Cmds and the streams of buffers and files (docs/API.md §3.5): checked here, then handed to the
//! data plane's router ([`crate::route`]), which takes them to this node's relay or over the
//! link to the receiver's node.

use std::borrow::Cow;

use crvm_proto::error::{CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_MEETPARAM_ERR};
use crvm_proto::frame::split_data;
use crvm_proto::{ServerMsg, XferKind};

use super::{End, ServerSession};
use crate::relay::Offer;
use crate::route::endpoint::LocalEnd;
use crate::route::Sending;
use crate::session::{Phase, User};

impl ServerSession {
    /// This session as one side of a cmd or stream.
    pub(super) fn end_of(&self, user: &User) -> LocalEnd {
        LocalEnd {
            gen: user.gen,
            outbox: self.outbox.clone(),
        }
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
        let from = Sending {
            end: self.end_of(user),
            tenant: &user.tenant,
            user: &user.user_id,
        };
        let routed = self
            .ctx
            .router
            .cmd(self.ctx.hub.as_ref(), from, n, to, data);
        match routed.await {
            Ok(()) => None,
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }

    /// An offer (fields already checked): the relay answers `res{offer}` and starts the stream
    /// when its receiver has room; failures are answered at once.
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
        let from = Sending {
            end: self.end_of(user),
            tenant: &user.tenant,
            user: &user.user_id,
        };
        let dir = self.ctx.hub.as_ref();
        self.ctx.router.offer(dir, from, id, &to, offer).await
    }

    /// A data frame of one of this connection's streams (its payload: stream ID, then bytes;
    /// borrowed from the connection's read buffer, or a buffer of its own that is passed on
    /// as it is). `Some` ends the connection.
    pub fn on_data(&self, payload: Cow<'_, [u8]>) -> Option<End> {
        let Phase::LoggedIn(user) = &self.phase else {
            return Some(self.close(
                crvm_proto::error::CRVIDEOSDK_NOT_LOGIN,
                "log in first".into(),
            ));
        };
        let (sid, _) = split_data(&payload);
        match self.ctx.router.data(user.gen, sid, payload) {
            Ok(()) => None,
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }
}
