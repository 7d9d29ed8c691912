//! Event delivery: a queue the worker fills and one consumer at a time drains — the client's
//! dispatcher thread, or `poll` on an app thread. The gate makes "one at a time, in order" and
//! "no callback after destroy returns" hold without holding any lock while a callback runs.

use super::event::{Event, EventHandler};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::{Condvar, Mutex};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::{self, ThreadId};
use std::time::Instant;

/// What travels on the event queue.
pub(crate) enum Queued {
    Event(Event),
    /// Wakes a consumer so it notices that the client is being destroyed.
    Stop,
}

#[derive(Default)]
struct Gate {
    destroyed: bool,
    /// The thread currently delivering an event, if any.
    busy: Option<ThreadId>,
}

pub(crate) struct Dispatch {
    tx: Sender<Queued>,
    rx: Receiver<Queued>,
    gate: Mutex<Gate>,
    idle: Condvar,
    handler: Box<dyn EventHandler>,
}

/// How `enter` went.
enum Entry {
    Entered,
    Destroyed,
    /// The calling thread is already delivering an event of this client (a callback called poll).
    Reentrant,
    TimedOut,
}

impl Dispatch {
    pub fn new(handler: Box<dyn EventHandler>) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Dispatch {
            tx,
            rx,
            gate: Mutex::new(Gate::default()),
            idle: Condvar::new(),
            handler,
        }
    }

    pub fn sender(&self) -> Sender<Queued> {
        self.tx.clone()
    }

    fn enter(&self, deadline: Option<Instant>) -> Entry {
        let me = thread::current().id();
        let mut g = self.gate.lock();
        loop {
            if g.destroyed {
                return Entry::Destroyed;
            }
            match g.busy {
                None => {
                    g.busy = Some(me);
                    return Entry::Entered;
                }
                Some(t) if t == me => return Entry::Reentrant,
                Some(_) => match deadline {
                    Some(d) => {
                        if self.idle.wait_until(&mut g, d).timed_out() {
                            return Entry::TimedOut;
                        }
                    }
                    None => self.idle.wait(&mut g),
                },
            }
        }
    }

    fn leave(&self) {
        self.gate.lock().busy = None;
        self.idle.notify_all();
    }

    fn is_destroyed(&self) -> bool {
        self.gate.lock().destroyed
    }

    fn deliver(&self, ev: &Event) {
        // The handler is the app's code behind the FFI layer; a panic in our conversion code must
        // not take the dispatcher down with it.
        let _ = catch_unwind(AssertUnwindSafe(|| self.handler.on_event(ev)));
    }

    /// Body of the dispatcher thread: delivers events until the client is destroyed.
    pub fn run_thread(&self) {
        while let Ok(q) = self.rx.recv() {
            let Queued::Event(ev) = q else {
                if self.is_destroyed() {
                    return;
                }
                continue;
            };
            match self.enter(None) {
                Entry::Entered => {
                    self.deliver(&ev);
                    self.leave();
                }
                Entry::Destroyed => return,
                Entry::Reentrant | Entry::TimedOut => unreachable!("sole consumer waits forever"),
            }
        }
    }

    /// Manual dispatch: waits up to `deadline` for a first event, then delivers it and whatever
    /// else is already queued. Returns the number of events delivered.
    pub fn poll(&self, deadline: Instant) -> usize {
        match self.enter(Some(deadline)) {
            Entry::Entered => {}
            Entry::Destroyed | Entry::Reentrant | Entry::TimedOut => return 0,
        }
        let mut n = 0;
        loop {
            let q = if n == 0 {
                match self.rx.recv_deadline(deadline) {
                    Ok(q) => q,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.rx.try_recv() {
                    Ok(q) => q,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            if self.is_destroyed() {
                break;
            }
            if let Queued::Event(ev) = q {
                self.deliver(&ev);
                n += 1;
            }
        }
        self.leave();
        n
    }

    /// Marks the client destroyed. Unless the caller is itself delivering an event of this client,
    /// waits for the event in progress (on another thread) to finish. Returns whether the caller
    /// is inside a callback of this client.
    pub fn close(&self) -> bool {
        let me = thread::current().id();
        let mut g = self.gate.lock();
        g.destroyed = true;
        let _ = self.tx.send(Queued::Stop);
        if g.busy == Some(me) {
            return true;
        }
        while g.busy.is_some() {
            self.idle.wait(&mut g);
        }
        false
    }
}
