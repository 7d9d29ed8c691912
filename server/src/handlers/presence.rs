//! Do-not-disturb, the status list and status subscriptions (SPEC §3.2).

use crvm_proto::error::{CRVIDEOSDK_NOERR, CRVIDEOSDK_NOT_LOGIN};
use crvm_proto::ServerMsg;

use super::{Peer, User};

/// `false` from the hub means this session was replaced meanwhile (it is being kicked).
fn code(current: bool) -> i32 {
    if current {
        CRVIDEOSDK_NOERR
    } else {
        CRVIDEOSDK_NOT_LOGIN
    }
}

impl Peer {
    pub(super) fn set_dnd(&self, user: &User, id: u64, dnd: i32) {
        let ok = self
            .ctx
            .hub
            .set_dnd(&user.tenant, &user.user_id, self.id, dnd);
        self.reply(id, code(ok));
    }

    pub(super) fn get_user_status(&self, user: &User, id: u64) {
        let list = self.ctx.hub.statuses(&user.tenant);
        self.send(&ServerMsg::Statuses { re: id, list });
    }

    pub(super) fn set_notify(&self, user: &User, id: u64, on: bool) {
        let ok = self
            .ctx
            .hub
            .set_notify(&user.tenant, &user.user_id, self.id, on);
        self.reply(id, code(ok));
    }
}
