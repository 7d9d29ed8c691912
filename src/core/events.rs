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

/// The events of a session, in order, with what each one needs once the app has it.
#[derive(Default)]
pub(crate) struct Events {
    /// Each event with the number of the cmd it delivers (0: none).
    q: VecDeque<(Event, u64)>,
    /// Calls this session is a party of, as told by the events so far: a lost link ends each
    /// of them with `notify_call_hungup` before `line_off`.
    calls: HashSet<String>,
    /// The log of the current login, if any.
    log: Option<Box<dyn LogSink>>,
}

impl Events {
    pub fn emit(&mut self, ev: Event) {
        self.push(ev, 0);
    }

    /// Queues `ev`, which delivers cmd number `cmd_n` (0: not a cmd).
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
            }
            | Event::NotifyCallRejected { call_id, .. }
            | Event::NotifyCallHungup { call_id, .. } => {
                self.calls.remove(call_id);
            }
            _ => {}
        }
        if let Some(log) = &mut self.log {
            // Not built without a log: this runs once per event.
            log.line(&ev.summary());
        }
        self.q.push_back((ev, cmd_n));
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
