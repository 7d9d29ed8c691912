//! The session's timers: one [`Timer`] per kind of deadline, each set or not, in one table.
//! [`super::Session::deadline`] is the table's earliest entry; [`super::Session::tick`] runs
//! the expired ones in the order of [`Timer::ALL`]. Timers that belong to a phase of the
//! session are stopped together when it enters another one ([`TimerTable::stop_phase`]).

use std::time::Instant;

/// A kind of deadline. The order is the order in which expired timers run: what ends the
/// session or the phase first, so that a timer made moot by it never runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Reconnecting: the server no longer holds the session. Farewell: out of budget.
    GiveUp,
    /// Connecting for a login: no connection in time.
    Connect,
    /// Logging in: no answer in time.
    Login,
    /// Logging out: no answer in time (the logout completes anyway).
    Logout,
    /// Logged in: nothing heard from the server for too long.
    Idle,
    /// Reconnecting: the attempt under way (connection, then handshake) is out of time.
    Attempt,
    /// Reconnecting: the pause before the next attempt is over.
    Retry,
    /// Logged in: nothing sent for a heartbeat interval; a ping is due.
    Ping,
    /// The oldest request in flight is out of time (not while the link is being resumed).
    Request,
}

impl Timer {
    pub const ALL: [Timer; 9] = [
        Timer::GiveUp,
        Timer::Connect,
        Timer::Login,
        Timer::Logout,
        Timer::Idle,
        Timer::Attempt,
        Timer::Retry,
        Timer::Ping,
        Timer::Request,
    ];
}

#[derive(Debug, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is set and due at `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The earliest deadline set, if any.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Stops every timer of a phase: all but [`Timer::Request`], which the request table
    /// keeps (requests outlive phases: a resume, a logout).
    pub fn stop_phase(&mut self) {
        for t in Timer::ALL {
            if t != Timer::Request {
                self.stop(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_deadline_is_the_earliest_set_and_a_phase_change_keeps_requests() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Ping, t0 + 3 * s);
        t.set(Timer::Request, t0 + 5 * s);
        t.set(Timer::Idle, t0 + 2 * s);
        assert_eq!(t.next(), Some(t0 + 2 * s));
        assert!(t.is_expired(Timer::Idle, t0 + 2 * s));
        assert!(!t.is_expired(Timer::Ping, t0 + 2 * s));
        t.stop(Timer::Idle);
        assert_eq!(t.next(), Some(t0 + 3 * s));
        t.stop_phase();
        assert_eq!(t.next(), Some(t0 + 5 * s));
        assert!(!t.is_set(Timer::Ping));
        assert_eq!(
            Timer::ALL.iter().position(|x| *x == Timer::Request),
            Some(8)
        );
        for (i, timer) in Timer::ALL.iter().enumerate() {
            assert_eq!(*timer as usize, i, "ALL is in declaration order");
        }
    }
}
