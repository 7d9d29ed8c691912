//! Call, accept, reject and hang up (docs/API.md §3.4). The state machine belongs to the hub's
//! [`crate::hub::CallStore`], which also owns the no-answer timer; a successful request is
//! answered by the store, in order with the notifications it caused, a failed one here.

use crvm_proto::Op;

use super::{clip, ServerSession};
use crate::hub::{Answer, CallRequest, Requester};
use crate::session::User;

impl ServerSession {
    /// One of the call requests (`op` is `Call`, `AcceptCall`, `RejectCall` or `HangupCall`).
    pub(super) async fn call_op(&self, user: &User, id: u64, op: Op) {
        let hub = &self.ctx.hub;
        let at = Requester {
            tenant: &user.tenant,
            user_id: &user.user_id,
            gen: user.gen,
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
                ("call", call_id, hub.call(&at, &req).await)
            }
            Op::AcceptCall {
                call_id,
                meet_obj,
                ext,
            } => {
                let r = hub.accept(&at, call_id, meet_obj, ext).await;
                ("accept", call_id, r)
            }
            Op::RejectCall { call_id, ext } => {
                ("reject", call_id, hub.reject(&at, call_id, ext).await)
            }
            Op::HangupCall { call_id, ext } => {
                ("hangup", call_id, hub.hangup(&at, call_id, ext).await)
            }
            _ => unreachable!("call_op gets call requests only"),
        };
        let (code, ours) = match result {
            Answer::Sent(code) => (code, false),
            Answer::ToSend(code) => (code, true),
        };
        if code != 0 {
            tracing::info!(
                "conn {} {what} {:?}: code {code}",
                self.login_conn,
                clip(call_id)
            );
        }
        if ours {
            self.reply(id, code);
        }
    }
}
