//! Call, accept, reject and hang up (SPEC §3.4). The state machine is [`crate::calls`], run by
//! the hub under the tenant's lock; a successful request is answered by the hub, in order with
//! the notifications it caused, a failed one here.

use std::sync::Arc;
use std::time::Duration;

use crvm_proto::Op;

use super::{clip, Peer, User};
use crate::hub::{CallRequest, Requester};
use crate::log;

impl Peer {
    /// One of the call requests (`op` is `Call`, `AcceptCall`, `RejectCall` or `HangupCall`).
    pub(super) fn call_op(&self, user: &User, id: u64, op: Op) {
        let hub = &self.ctx.hub;
        let at = Requester {
            tenant: &user.tenant,
            user_id: &user.user_id,
            conn_id: self.id,
            re: id,
        };
        let (what, call_id, result) = match &op {
            Op::Call {
                call_id,
                callee,
                meet_obj,
                ext,
            } => {
                let req = CallRequest {
                    call_id,
                    callee,
                    meet_obj,
                    ext,
                };
                let r = hub.call(&at, &req);
                if let Ok(serial) = r {
                    self.arm_no_answer(user, call_id, serial);
                }
                ("call", call_id, r.map(|_| ()))
            }
            Op::AcceptCall {
                call_id,
                meet_obj,
                ext,
            } => ("accept", call_id, hub.accept(&at, call_id, meet_obj, ext)),
            Op::RejectCall { call_id, ext } => ("reject", call_id, hub.reject(&at, call_id, ext)),
            Op::HangupCall { call_id, ext } => ("hangup", call_id, hub.hangup(&at, call_id, ext)),
            _ => unreachable!("call_op gets call requests only"),
        };
        if let Err(code) = result {
            log!("conn {} {what} {:?}: code {code}", self.id, clip(call_id));
            self.reply(id, code);
        }
    }

    /// The no-answer timer of a call that is now ringing.
    fn arm_no_answer(&self, user: &User, call_id: &str, serial: u64) {
        let hub = Arc::clone(&self.ctx.hub);
        let timeout = Duration::from_secs(self.ctx.config.call_timeout_s);
        let (tenant, call_id) = (user.tenant.clone(), call_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            hub.no_answer(&tenant, &call_id, serial);
        });
    }
}
