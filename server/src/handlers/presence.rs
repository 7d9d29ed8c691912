//! Do-not-disturb, the status list and status subscriptions (SPEC §3.2).

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_NOT_LOGIN};
use crvm_proto::ServerMsg;

use super::{Peer, User};

impl Peer {
    pub(super) async fn set_dnd(&self, user: &User, id: u64, dnd: i32) {
        let hub = &self.ctx.hub;
        let r = hub
            .set_dnd(&user.tenant, &user.user_id, user.gen, dnd)
            .await;
        self.reply(id, r.err().unwrap_or(CRVIDEOSDK_NOERR));
    }

    pub(super) async fn get_user_status(&self, user: &User, id: u64) {
        match self.ctx.hub.statuses(&user.tenant).await {
            Ok(list) => self.send(&ServerMsg::Statuses { re: id, list }),
            Err(code) => self.reply(id, code),
        }
    }

    /// Subscriptions belong to this node's session; `false` means it was replaced meanwhile
    /// (it is being kicked).
    pub(super) fn set_notify(&self, user: &User, id: u64, on: bool) {
        let code = if self.ctx.local.set_notify(user.gen, on) {
            CRVIDEOSDK_NOERR
        } else {
            CRVIDEOSDK_NOT_LOGIN
        };
        self.reply(id, code);
    }
}
