//! Event delivery: one thread at a time runs the app's handler — the client's worker thread,
//! or `poll` on an app thread with `dispatch=manual`. The gate makes "one at a time, in order"
//! and "no callback after destroy returns" hold without holding any lock while a callback
//! runs.

use super::event::{Event, EventHandler};
use parking_lot::{Condvar, Mutex};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, ThreadId};
use std::time::Instant;

/// How [`Dispatch::enter`] went.
pub(crate) enum Entry {
    Entered,
    Destroyed,
    /// The calling thread is already delivering an event of this client (a callback called
    /// poll).
    Reentrant,
    TimedOut,
}

pub(crate) struct Dispatch {
    /// The thread currently delivering, if any.
    busy: Mutex<Option<ThreadId>>,
    idle: Condvar,
    destroyed: AtomicBool,
    handler: Box<dyn EventHandler>,
}

impl Dispatch {
    pub fn new(handler: Box<dyn EventHandler>) -> Self {
        Dispatch {
            busy: Mutex::new(None),
            idle: Condvar::new(),
            destroyed: AtomicBool::new(false),
            handler,
        }
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// Takes the right to deliver, waiting (until `deadline`, or for ever) while another thread
    /// has it.
    pub fn enter(&self, deadline: Option<Instant>) -> Entry {
        let me = thread::current().id();
        let mut busy = self.busy.lock();
        loop {
            if self.is_destroyed() {
                return Entry::Destroyed;
            }
            match *busy {
                None => {
                    *busy = Some(me);
                    return Entry::Entered;
                }
                Some(t) if t == me => return Entry::Reentrant,
                Some(_) => match deadline {
                    Some(d) => {
                        if self.idle.wait_until(&mut busy, d).timed_out() {
                            return Entry::TimedOut;
                        }
                    }
                    None => self.idle.wait(&mut busy),
                },
            }
        }
    }

    pub fn leave(&self) {
        *self.busy.lock() = None;
        self.idle.notify_all();
    }

    /// Delivers `events` in order (the caller has entered); stops once the client is
    /// destroyed. Returns how many were delivered.
    pub fn run(&self, events: &[Event]) -> usize {
        let mut n = 0;
        for ev in events {
            if self.is_destroyed() {
                break;
            }
            // The handler is the app's code behind the FFI layer; a panic in our conversion
            // code must not take the client's thread down with it.
            let _ = catch_unwind(AssertUnwindSafe(|| self.handler.on_event(ev)));
            n += 1;
        }
        n
    }

    /// Enters, delivers `events`, leaves (the worker's delivery).
    pub fn deliver(&self, events: &[Event]) {
        if let Entry::Entered = self.enter(None) {
            self.run(events);
            self.leave();
        }
    }

    /// From now on no callback starts (one running on another thread finishes).
    pub fn stop(&self) {
        self.destroyed.store(true, Ordering::Release);
    }

    /// Marks the client destroyed. Unless the caller is itself delivering an event of this
    /// client, waits for the event in progress (on another thread) to finish. Returns whether
    /// the caller is inside a callback of this client.
    pub fn close(&self) -> bool {
        let me = thread::current().id();
        let mut busy = self.busy.lock();
        self.destroyed.store(true, Ordering::Release);
        if *busy == Some(me) {
            return true;
        }
        while busy.is_some() {
            self.idle.wait(&mut busy);
        }
        false
    }
}
