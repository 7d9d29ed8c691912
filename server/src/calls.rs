//! The call state machine of docs/API.md §3.4, the single source of truth about calls.
//!
//! A call is *ringing* from `start` until the callee accepts (then *connected*) or until it
//! ends: reject, hang-up by either party (the caller's hang-up while ringing cancels), no answer,
//! or a party going away. An ended call is forgotten; any later accept, reject or hang-up of it
//! is 600, as is one by a user who is not the right party.
//!
//! [`CallTable`] is pure state: every transition returns the [`Effect`]s — messages to users and
//! status changes — that the hub applies under the same tenant lock, so that the table, presence
//! and what each party is told can never disagree. Each party of a call gets exactly one terminal
//! event: the result of its own ending request, or a `call_rejected`/`call_hungup` notification.

use std::collections::HashMap;

use crvm_proto::error::*;
use crvm_proto::ServerMsg;

/// Something the hub must do because of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Queue `msg` to `user`'s session.
    Notify { user: String, msg: ServerMsg },
    /// `user` entered (true) or left (false) a call: `userStatus` 2 or 1, pushed to subscribers.
    InCall { user: String, in_call: bool },
}

#[derive(Debug, Clone)]
struct Call {
    caller: String,
    callee: String,
    /// The caller's `meet_obj`, handed back on accept when the callee gives none.
    caller_meet: String,
    connected: bool,
    /// Distinguishes this call from a later one reusing its ID (for the no-answer timer).
    serial: u64,
}

/// How a call ends.
enum Ending<'a> {
    Rejected { ext: &'a str },
    HungUp { by: &'a str, ext: &'a str },
    NoAnswer,
    Vanished { user: &'a str },
}

/// The calls of one tenant.
#[derive(Debug, Default)]
pub struct CallTable {
    calls: HashMap<String, Call>,
    /// The call each user is in (a user is in at most one).
    by_user: HashMap<String, String>,
    next_serial: u64,
}

impl CallTable {
    /// The calls in progress, sorted by call ID.
    pub fn list(&self) -> Vec<crate::hub::CallInfo> {
        let mut v: Vec<crate::hub::CallInfo> = self
            .calls
            .iter()
            .map(|(id, c)| crate::hub::CallInfo {
                call_id: id.clone(),
                caller: c.caller.clone(),
                callee: c.callee.clone(),
                connected: c.connected,
            })
            .collect();
        v.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        v
    }

    pub fn in_call(&self, user: &str) -> bool {
        self.by_user.contains_key(user)
    }

    /// Rings `callee`. On success returns the call's serial (for [`CallTable::no_answer`]) and
    /// the effects: both parties in a call, the callee notified.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        call_id: &str,
        caller: &str,
        callee: &str,
        meet_obj: &str,
        ext: &str,
        callee_online: bool,
        callee_dnd: bool,
    ) -> Result<(u64, Vec<Effect>), i32> {
        if callee == caller {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if self.in_call(caller) {
            return Err(CRVIDEOSDK_ERR_CALL_EXIST);
        }
        if self.calls.contains_key(call_id) {
            // Call IDs are random 128-bit values; a clash means a misbehaving client.
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if !callee_online {
            return Err(CRVIDEOSDK_ERR_OFFLINE);
        }
        if callee_dnd || self.in_call(callee) {
            return Err(CRVIDEOSDK_ERR_BUSY);
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.calls.insert(
            call_id.to_owned(),
            Call {
                caller: caller.to_owned(),
                callee: callee.to_owned(),
                caller_meet: meet_obj.to_owned(),
                connected: false,
                serial,
            },
        );
        self.by_user.insert(caller.to_owned(), call_id.to_owned());
        self.by_user.insert(callee.to_owned(), call_id.to_owned());
        let effects = vec![
            in_call(caller, true),
            in_call(callee, true),
            notify(
                callee,
                ServerMsg::CallIn {
                    call_id: call_id.to_owned(),
                    caller: caller.to_owned(),
                    meet_obj: meet_obj.to_owned(),
                    ext: ext.to_owned(),
                },
            ),
        ];
        Ok((serial, effects))
    }

    /// The ringing call `call_id` of which `user` is the callee.
    fn ringing_for_callee(&self, user: &str, call_id: &str) -> Result<&Call, i32> {
        match self.calls.get(call_id) {
            Some(c) if c.callee == user && !c.connected => Ok(c),
            _ => Err(CRVIDEOSDK_INVALID_CALLID),
        }
    }

    pub fn accept(
        &mut self,
        user: &str,
        call_id: &str,
        meet_obj: &str,
        ext: &str,
    ) -> Result<Vec<Effect>, i32> {
        self.ringing_for_callee(user, call_id)?;
        let call = self.calls.get_mut(call_id).expect("checked above");
        call.connected = true;
        let meet_obj = if meet_obj.is_empty() {
            call.caller_meet.clone()
        } else {
            meet_obj.to_owned()
        };
        Ok(vec![notify(
            &call.caller,
            ServerMsg::CallAccepted {
                call_id: call_id.to_owned(),
                ext: ext.to_owned(),
                meet_obj,
            },
        )])
    }

    pub fn reject(&mut self, user: &str, call_id: &str, ext: &str) -> Result<Vec<Effect>, i32> {
        self.ringing_for_callee(user, call_id)?;
        Ok(self.end(call_id, Ending::Rejected { ext }))
    }

    pub fn hangup(&mut self, user: &str, call_id: &str, ext: &str) -> Result<Vec<Effect>, i32> {
        match self.calls.get(call_id) {
            Some(c) if c.caller == user || c.callee == user => {
                Ok(self.end(call_id, Ending::HungUp { by: user, ext }))
            }
            _ => Err(CRVIDEOSDK_INVALID_CALLID),
        }
    }

    /// The no-answer timer of call `serial` fired: ends it if it is still ringing.
    pub fn no_answer(&mut self, call_id: &str, serial: u64) -> Vec<Effect> {
        match self.calls.get(call_id) {
            Some(c) if c.serial == serial && !c.connected => self.end(call_id, Ending::NoAnswer),
            _ => Vec::new(),
        }
    }

    /// `user`'s session ended (logout, disconnect, kick): ends the call they are in, if any.
    pub fn vanish(&mut self, user: &str) -> Vec<Effect> {
        match self.by_user.get(user).cloned() {
            Some(call_id) => self.end(&call_id, Ending::Vanished { user }),
            None => Vec::new(),
        }
    }

    fn end(&mut self, call_id: &str, how: Ending<'_>) -> Vec<Effect> {
        let call = self.calls.remove(call_id).expect("ending a known call");
        self.by_user.remove(&call.caller);
        self.by_user.remove(&call.callee);
        let id = call_id.to_owned();
        let rejected = |reason: i32, ext: &str| {
            notify(
                &call.caller,
                ServerMsg::CallRejected {
                    call_id: id.clone(),
                    reason,
                    ext: ext.to_owned(),
                },
            )
        };
        let hungup = |user: &str, ext: &str| {
            notify(
                user,
                ServerMsg::CallHungup {
                    call_id: id.clone(),
                    ext: ext.to_owned(),
                },
            )
        };
        let other = |user: &str| {
            if user == call.caller {
                call.callee.as_str()
            } else {
                call.caller.as_str()
            }
        };
        let mut effects = match how {
            Ending::Rejected { ext } => vec![rejected(CRVIDEOSDK_ERR_REFUSE, ext)],
            Ending::HungUp { by, ext } => vec![hungup(other(by), ext)],
            Ending::NoAnswer => vec![
                rejected(CRVIDEOSDK_ERR_NOANSWER, ""),
                hungup(&call.callee, ""),
            ],
            Ending::Vanished { user } if user == call.callee && !call.connected => {
                vec![rejected(CRVIDEOSDK_ERR_OFFLINE, "")]
            }
            Ending::Vanished { user } => vec![hungup(other(user), "")],
        };
        effects.push(in_call(&call.caller, false));
        effects.push(in_call(&call.callee, false));
        effects
    }
}

fn notify(user: &str, msg: ServerMsg) -> Effect {
    Effect::Notify {
        user: user.to_owned(),
        msg,
    }
}

fn in_call(user: &str, in_call: bool) -> Effect {
    Effect::InCall {
        user: user.to_owned(),
        in_call,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs_to(effects: &[Effect], who: &str) -> Vec<ServerMsg> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify { user, msg } if user == who => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn start(t: &mut CallTable, id: &str, a: &str, b: &str) -> Result<u64, i32> {
        t.start(id, a, b, r#"{"ID":1}"#, "x", true, false)
            .map(|(s, _)| s)
    }

    #[test]
    fn refusals() {
        let mut t = CallTable::default();
        assert_eq!(start(&mut t, "c1", "a", "a"), Err(5));
        assert_eq!(
            t.start("c1", "a", "b", "", "", false, false).err(),
            Some(603)
        );
        assert_eq!(t.start("c1", "a", "b", "", "", true, true).err(), Some(602));
        assert!(start(&mut t, "c1", "a", "b").is_ok());
        assert_eq!(start(&mut t, "c2", "a", "c"), Err(601));
        assert_eq!(start(&mut t, "c2", "c", "b"), Err(602));
        assert_eq!(start(&mut t, "c1", "c", "d"), Err(5));
        // Glare: b, being rung by a, calls a: b is already in a call.
        assert_eq!(start(&mut t, "c3", "b", "a"), Err(601));
    }

    #[test]
    fn only_the_callee_answers_and_only_parties_hang_up() {
        let mut t = CallTable::default();
        start(&mut t, "c1", "a", "b").unwrap();
        assert_eq!(t.accept("a", "c1", "", "").err(), Some(600));
        assert_eq!(t.reject("c", "c1", "").err(), Some(600));
        assert_eq!(t.hangup("c", "c1", "").err(), Some(600));
        assert_eq!(t.accept("b", "nope", "", "").err(), Some(600));
        let fx = t.accept("b", "c1", "", "ok").unwrap();
        // The callee gave no meeting: the caller's comes back.
        assert_eq!(
            msgs_to(&fx, "a"),
            [ServerMsg::CallAccepted {
                call_id: "c1".into(),
                ext: "ok".into(),
                meet_obj: r#"{"ID":1}"#.into()
            }]
        );
        assert_eq!(t.accept("b", "c1", "", "").err(), Some(600));
        assert_eq!(t.reject("b", "c1", "").err(), Some(600));
        let fx = t.hangup("b", "c1", "bye").unwrap();
        assert_eq!(
            msgs_to(&fx, "a"),
            [ServerMsg::CallHungup {
                call_id: "c1".into(),
                ext: "bye".into()
            }]
        );
        assert!(msgs_to(&fx, "b").is_empty());
        assert_eq!(t.hangup("a", "c1", "").err(), Some(600));
        assert!(!t.in_call("a") && !t.in_call("b"));
    }

    #[test]
    fn no_answer_tells_both_and_ignores_stale_timers() {
        let mut t = CallTable::default();
        let s1 = start(&mut t, "c1", "a", "b").unwrap();
        t.hangup("a", "c1", "").unwrap();
        let s2 = start(&mut t, "c1", "a", "b").unwrap();
        assert!(t.no_answer("c1", s1).is_empty(), "timer of the first call");
        let fx = t.no_answer("c1", s2);
        assert_eq!(
            msgs_to(&fx, "a"),
            [ServerMsg::CallRejected {
                call_id: "c1".into(),
                reason: 604,
                ext: "".into()
            }]
        );
        assert_eq!(
            msgs_to(&fx, "b"),
            [ServerMsg::CallHungup {
                call_id: "c1".into(),
                ext: "".into()
            }]
        );
        assert_eq!(t.accept("b", "c1", "", "").err(), Some(600));
        let s3 = start(&mut t, "c2", "a", "b").unwrap();
        t.accept("b", "c2", "", "").unwrap();
        assert!(
            t.no_answer("c2", s3).is_empty(),
            "connected calls do not time out"
        );
    }

    #[test]
    fn vanishing_parties() {
        let mut t = CallTable::default();
        start(&mut t, "c1", "a", "b").unwrap();
        let fx = t.vanish("b");
        assert_eq!(
            msgs_to(&fx, "a"),
            [ServerMsg::CallRejected {
                call_id: "c1".into(),
                reason: 603,
                ext: "".into()
            }]
        );
        start(&mut t, "c2", "a", "b").unwrap();
        let fx = t.vanish("a");
        assert_eq!(
            msgs_to(&fx, "b"),
            [ServerMsg::CallHungup {
                call_id: "c2".into(),
                ext: "".into()
            }]
        );
        start(&mut t, "c3", "a", "b").unwrap();
        t.accept("b", "c3", "", "").unwrap();
        let fx = t.vanish("b");
        assert_eq!(
            msgs_to(&fx, "a"),
            [ServerMsg::CallHungup {
                call_id: "c3".into(),
                ext: "".into()
            }]
        );
        assert!(t.vanish("a").is_empty());
        assert!(t.by_user.is_empty() && t.calls.is_empty());
    }
}
