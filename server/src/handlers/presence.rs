//! Do-not-disturb, the status list and status subscriptions (docs/API.md §3.2).

use crvm_proto::ServerMsg;

use super::ServerSession;
use crate::hub::{Answer, Requester};
use crate::session::User;

impl ServerSession {
    pub(super) async fn set_dnd(&self, user: &User, id: u64, dnd: i32) {
        let hub = &self.ctx.hub;
        let answer = hub
            .set_dnd(&user.tenant, &user.user_id, user.gen, id, dnd)
            .await;
        if let Answer::ToSend(code) = answer {
            self.reply(id, code);
        }
    }

    pub(super) async fn get_user_status(&self, user: &User, id: u64) {
        match self.ctx.hub.statuses(&user.tenant).await {
            Ok(list) => self.send(&ServerMsg::Res {
                re: id,
                result: crvm_proto::Outcome::Statuses(list),
            }),
            Err(code) => self.reply(id, code),
        }
    }

    /// Answered by the hub once the subscription is in effect (12 if the session was replaced
    /// meanwhile).
    pub(super) async fn set_notify(&self, user: &User, id: u64, on: bool) {
        let at = Requester {
            tenant: &user.tenant,
            user_id: &user.user_id,
            gen: user.gen,
            re: id,
        };
        if let Err(code) = self.ctx.hub.set_notify(&at, on).await {
            self.reply(id, code);
        }
    }
}
