//! Cmds and the streams of buffers and files (SPEC §3.5), routed by [`crate::relay`].

use crvm_proto::error::{
    CRVIDEOSDK_ERR_DATA, CRVIDEOSDK_MEETPARAM_ERR, CRVIDEOSDK_SENDDATA_TARGETINVALID,
};
use crvm_proto::{FrameRef, ServerMsg, XferKind};

use super::{Peer, User};
use crate::conn::End;
use crate::relay::{Endpoint, Offer};

impl Peer {
    pub(super) fn endpoint(&self) -> Endpoint {
        Endpoint {
            conn_id: self.id,
            outbox: self.outbox.clone(),
        }
    }

    /// The session `to` is logged in with, as the relay's endpoint.
    fn receiver(&self, user: &User, to: &str) -> Option<Endpoint> {
        let (_, local) = self.ctx.local.find(&user.tenant, to)?;
        Some(Endpoint {
            conn_id: local.conn_id,
            outbox: local.outbox,
        })
    }

    /// The outcome of this connection's cmd `n`.
    pub(super) fn cmd_done(&self, n: u64, code: i32) {
        self.send(&ServerMsg::CmdDone { ns: vec![n], code });
    }

    /// A cmd (fields already checked): routed to its target's session, or answered at once.
    pub(super) fn cmd(&self, user: &User, n: u64, to: &str, data: &[u8]) -> Option<End> {
        if to == user.user_id {
            self.cmd_done(n, CRVIDEOSDK_MEETPARAM_ERR);
            return None;
        }
        let Some(receiver) = self.receiver(user, to) else {
            self.cmd_done(n, CRVIDEOSDK_SENDDATA_TARGETINVALID);
            return None;
        };
        let relay = &self.ctx.relay;
        match relay.cmd(&self.endpoint(), &user.user_id, n, &receiver, data.to_vec()) {
            Ok(Ok(())) => None,
            Ok(Err(code)) => {
                self.cmd_done(n, code);
                None
            }
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }

    /// An offer (fields already checked): the relay answers `offer_ok` and starts the stream
    /// when its receiver has room; failures are answered here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn offer(
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
        let Some(receiver) = self.receiver(user, &to) else {
            return self.reply(id, CRVIDEOSDK_SENDDATA_TARGETINVALID);
        };
        let offer = Offer {
            task,
            from: user.user_id.clone(),
            kind,
            size,
            name,
        };
        if let Err(code) = self.ctx.relay.offer(id, self.endpoint(), receiver, offer) {
            self.reply(id, code);
        }
    }

    /// A data frame of one of this connection's streams. `Some` ends the connection.
    pub fn on_data(&self, frame: FrameRef<'_>) -> Option<End> {
        if !matches!(self.phase, super::Phase::LoggedIn(_)) {
            return Some(self.close(
                crvm_proto::error::CRVIDEOSDK_NOT_LOGIN,
                "log in first".into(),
            ));
        }
        let (sid, _) = frame.data();
        match self.ctx.relay.data(self.id, sid, frame.payload) {
            Ok(()) => None,
            Err(v) => Some(self.close(CRVIDEOSDK_ERR_DATA, v.0.into())),
        }
    }
}
