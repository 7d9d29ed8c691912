//! The events of a session, in order, on their way to the app; what the session must remember
//! about them (the calls they opened); and the log of a login, which records each one.
//!
//! Its own module so that the session's parts and the stream engine ([`super::transfer`]) all
//! emit into it without depending on one another.

use super::event::Event;
use std::collections::{HashSet, VecDeque};

/// Where the log lines of a login go (the `log_file` option). The sink stamps each line with
/// the wall-clock time itself: the session has no clock.
pub(crate) trait LogSink: Send {
    fn line(&mut self, what: &str);
}

/// How many ended calls a session remembers, to drop a second end of one.
const ENDED_KEPT: usize = 256;

/// The events of a session, in order, with what each one needs once the app has it.
#[derive(Default)]
pub(crate) struct Events {
    /// Each event with the number of the cmd it delivers (0: none).
    q: VecDeque<(Event, u64)>,
    /// Calls this session is a party of, as told by the events so far: a lost link ends each
    /// of them with `notify_call_hungup` before `line_off`.
    calls: HashSet<String>,
    /// The last [`ENDED_KEPT`] calls that ended for this session, newest last: a second end
    /// of one of them is not passed on (see [`Events::push`]).
    ended: VecDeque<String>,
    /// The log of the current login, if any.
    log: Option<Box<dyn LogSink>>,
}

impl Events {
    pub fn emit(&mut self, ev: Event) {
        self.push(ev, 0);
    }

    /// Queues `ev`, which delivers cmd number `cmd_n` (0: not a cmd).
    ///
    /// A call ends once for each party: a `notify_call_rejected` or `notify_call_hungup` of a
    /// call that already ended for this session (by one of those, by its own reject or hang-up,
    /// or by the end of its link) is dropped. A cluster can tell the end of a call twice: when
    /// a Redis failover loses the write that ended it, the shared state still holds the call,
    /// and ends it again later.
    pub fn push(&mut self, ev: Event, cmd_n: u64) {
        match &ev {
            Event::Call {
                call_id,
                result: Ok(()),
                ..
            }
            | Event::NotifyCallIn { call_id, .. } => {
                self.calls.insert(call_id.clone());
            }
            Event::RejectCall {
                call_id,
                result: Ok(()),
                ..
            }
            | Event::HangupCall {
                call_id,
                result: Ok(()),
                ..
            } => self.call_ended(call_id),
            Event::NotifyCallRejected { call_id, .. } | Event::NotifyCallHungup { call_id, .. } => {
                if self.ended.contains(call_id) {
                    self.log(&format!(
                        "{}: call already ended, not passed on",
                        ev.summary()
                    ));
                    return;
                }
                self.call_ended(call_id);
            }
            _ => {}
        }
        if let Some(log) = &mut self.log {
            // Not built without a log: this runs once per event.
            log.line(&ev.summary());
        }
        self.q.push_back((ev, cmd_n));
    }

    fn call_ended(&mut self, call_id: &str) {
        self.calls.remove(call_id);
        if self.ended.len() == ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(call_id.to_owned());
    }

    /// The oldest event waiting, with the number of the cmd it delivers (0: none).
    pub fn pop(&mut self) -> Option<(Event, u64)> {
        self.q.pop_front()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// The calls still open, in a stable order, forgotten from now on.
    pub fn take_calls(&mut self) -> Vec<String> {
        let mut calls: Vec<String> = self.calls.drain().collect();
        calls.sort();
        calls
    }

    /// Forgets the calls still open (the session ended them on the app's behalf).
    pub fn forget_calls(&mut self) {
        self.calls.clear();
    }

    /// The log of a new login (or none).
    pub fn set_log(&mut self, log: Option<Box<dyn LogSink>>) {
        self.log = log;
    }

    /// Appends a line to the login's log, if it has one.
    pub fn log(&mut self, what: &str) {
        if let Some(log) = &mut self.log {
            log.line(what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hungup(call_id: &str) -> Event {
        Event::NotifyCallHungup {
            call_id: call_id.into(),
            usr_ext_dat: String::new(),
        }
    }

    fn drain(e: &mut Events) -> Vec<Event> {
        std::iter::from_fn(|| e.pop().map(|(ev, _)| ev)).collect()
    }

    #[test]
    fn a_call_ends_once_for_each_party_whatever_the_server_tells_twice() {
        let mut e = Events::default();
        // The callee: rung, hung up by the caller, then told again.
        e.emit(Event::NotifyCallIn {
            call_id: "c1".into(),
            meet_obj: String::new(),
            caller_id: "bob".into(),
            usr_ext_dat: String::new(),
        });
        e.emit(hungup("c1"));
        e.emit(hungup("c1"));
        assert_eq!(drain(&mut e).len(), 2, "rung, then one end");
        // Its own hang-up's result passes; a notification after it does not.
        let hangup = Event::HangupCall {
            call_id: "c2".into(),
            result: Ok(()),
            cookie: String::new(),
        };
        e.emit(hangup.clone());
        e.emit(Event::NotifyCallRejected {
            call_id: "c2".into(),
            reason: crvm_proto::error::code(603),
            usr_ext_dat: String::new(),
        });
        assert_eq!(drain(&mut e), [hangup]);
        // The end of a call never heard of passes (it is its first), as do other calls'.
        e.emit(hungup("c3"));
        e.emit(hungup("c4"));
        assert_eq!(drain(&mut e), [hungup("c3"), hungup("c4")]);
        // The memory is bounded: the oldest ended calls are forgotten.
        for n in 0..ENDED_KEPT {
            e.emit(hungup(&format!("x{n}")));
        }
        drain(&mut e);
        assert_eq!(e.ended.len(), ENDED_KEPT);
        assert!(!e.ended.contains(&"c1".to_string()));
    }
}
