//! The requests in flight: the table of what was sent and not yet answered, its timer, and the
//! one result event each request gets — from its answer, its timeout, or the end of the link.

use super::super::event::Event;
use super::timers::{Timer, TimerTable};
use super::State;
use crvm_proto::error::*;
use crvm_proto::{ClientMsg, Code, Op, Out, Outcome};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a request in flight is.
pub(super) enum Pending {
    Op {
        op: Op,
        cookie: String,
    },
    /// The offer of the stream of this task.
    Offer(String),
}

/// Requests sent and not yet answered, and the numbering of requests (logins and logouts
/// included). Keeps [`Timer::Request`] at the oldest one's deadline, except while paused.
#[derive(Default)]
pub(super) struct Requests {
    /// By request ID (ascending = order sent), with deadlines. The deadlines ascend with the
    /// IDs: every request gets the same timeout, and a resume shifts them all alike.
    map: BTreeMap<u64, (Pending, Instant)>,
    last_id: u64,
    /// The link is being resumed: no request times out meanwhile (docs/API.md §3.6).
    paused: bool,
}

impl Requests {
    /// A fresh request ID.
    pub fn id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    pub fn insert(&mut self, id: u64, p: Pending, deadline: Instant, timers: &mut TimerTable) {
        self.map.insert(id, (p, deadline));
        self.arm(timers);
    }

    pub fn remove(&mut self, id: u64, timers: &mut TimerTable) -> Option<Pending> {
        let p = self.map.remove(&id).map(|(p, _)| p);
        self.arm(timers);
        p
    }

    /// Every request still in flight, in the order sent; the table starts afresh.
    pub fn take_all(&mut self, timers: &mut TimerTable) -> Vec<Pending> {
        self.paused = false;
        let all = std::mem::take(&mut self.map);
        self.arm(timers);
        all.into_values().map(|(p, _)| p).collect()
    }

    /// The requests out of time at `now`, in the order sent.
    pub fn expired(&mut self, now: Instant, timers: &mut TimerTable) -> Vec<Pending> {
        let ids: Vec<u64> = self
            .map
            .iter()
            .filter(|(_, (_, d))| now >= *d)
            .map(|(id, _)| *id)
            .collect();
        let out = ids
            .iter()
            .filter_map(|id| self.map.remove(id).map(|(p, _)| p))
            .collect();
        self.arm(timers);
        out
    }

    /// The link is down: the timeouts stop running.
    pub fn pause(&mut self, timers: &mut TimerTable) {
        self.paused = true;
        self.arm(timers);
    }

    /// The link is back after `offline`: the timeouts go on from where they were.
    pub fn resume(&mut self, offline: Duration, timers: &mut TimerTable) {
        self.paused = false;
        for (_, deadline) in self.map.values_mut() {
            *deadline += offline;
        }
        self.arm(timers);
    }

    fn arm(&self, timers: &mut TimerTable) {
        match self.map.values().next() {
            Some((_, d)) if !self.paused => timers.set(Timer::Request, *d),
            _ => timers.stop(Timer::Request),
        }
    }

    #[cfg(test)]
    pub fn deadlines(&self) -> Vec<Instant> {
        self.map.values().map(|(_, d)| *d).collect()
    }
}

impl State {
    pub(super) fn id(&mut self) -> u64 {
        self.requests.id()
    }

    /// Sends request `op` with a fresh ID.
    pub(super) fn send_request(&mut self, op: Op, cookie: String, now: Instant) {
        let id = self.id();
        let msg = ClientMsg::Req { id, op };
        self.out.push(Out::msg(&msg));
        let ClientMsg::Req { op, .. } = msg else {
            unreachable!("built above")
        };
        let deadline = now + self.opts.request_timeout;
        let p = Pending::Op { op, cookie };
        self.requests.insert(id, p, deadline, &mut self.timers);
    }

    /// Sends the offers of the streams whose turn has come.
    pub(super) fn pump_offers(&mut self, now: Instant) {
        loop {
            let (xfers, mut io) = self.xio(now);
            let Some((task, op)) = xfers.next_offer(&mut io) else {
                break;
            };
            let id = self.id();
            self.out.push(Out::msg(&ClientMsg::Req { id, op }));
            let deadline = now + self.opts.request_timeout;
            let p = Pending::Offer(task);
            self.requests.insert(id, p, deadline, &mut self.timers);
        }
    }

    /// [`Timer::Request`] expired: every request out of time fails with 202.
    pub(super) fn requests_timed_out(&mut self, now: Instant) {
        for p in self.requests.expired(now, &mut self.timers) {
            self.fail(p, code(CRVIDEOSDK_NOSERVER_RSP), now);
        }
    }

    /// Request `p` failed with `code` (timeout, lost link, logout).
    pub(super) fn fail(&mut self, p: Pending, code: Code, now: Instant) {
        match p {
            Pending::Op { op, cookie } => {
                let ev = op_result(op, Err(code), cookie);
                self.events.emit(ev);
            }
            Pending::Offer(task) => {
                let (xfers, mut io) = self.xio(now);
                xfers.offer_failed(&task, code, code, &mut io);
            }
        }
    }

    /// The answer to request `re`. An answer to a request that already timed out is dropped:
    /// it had its one result.
    pub(super) fn on_answer(&mut self, re: u64, result: Outcome, now: Instant) {
        let Some(p) = self.requests.remove(re, &mut self.timers) else {
            return;
        };
        match (p, result) {
            (Pending::Op { op, cookie }, result) => {
                let ev = op_result(op, Ok(result), cookie);
                self.events.emit(ev);
            }
            (Pending::Offer(task), Outcome::Offer { sid }) => {
                let (xfers, mut io) = self.xio(now);
                xfers.offered(&task, sid, &mut io);
            }
            (Pending::Offer(task), result) => {
                // Refused by the server; any other success is a server fault.
                let c = Code::new(result.code()).unwrap_or(code(CRVIDEOSDK_SERVER_EXCEPTION));
                let (xfers, mut io) = self.xio(now);
                xfers.offer_failed(&task, c, code(CRVIDEOSDK_TRANSID_INVALID), &mut io);
            }
        }
    }
}

/// The result event of request `op`: its answer, or the code it failed with. A success of
/// another kind than the request's (a bare one where a payload was due) is a server fault (8).
fn op_result(op: Op, answer: Result<Outcome, Code>, cookie: String) -> Event {
    let fault = code(CRVIDEOSDK_SERVER_EXCEPTION);
    let done = match &answer {
        Ok(Outcome::Ok) => Ok(()),
        Ok(Outcome::Err(c)) => check(*c),
        Ok(_) => Err(fault),
        Err(e) => Err(*e),
    };
    match op {
        Op::SetDnd { .. } => Event::SetDndStatus {
            result: done,
            cookie,
        },
        Op::GetUserStatus => Event::GetUserStatus {
            result: match answer {
                Ok(Outcome::Statuses(list)) => Ok(list),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::StartStatusNotify => Event::StartUserStatusNotify {
            result: done,
            cookie,
        },
        Op::StopStatusNotify => Event::StopUserStatusNotify {
            result: done,
            cookie,
        },
        Op::CreateMeeting { .. } => Event::CreateMeeting {
            result: match answer {
                Ok(Outcome::Meeting(m)) => Ok(m),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::DestroyMeeting { .. } => Event::DestroyMeeting {
            result: done,
            cookie,
        },
        Op::GetMeetings => Event::GetMeetings {
            result: match answer {
                Ok(Outcome::Meetings(list)) => Ok(list),
                _ => Err(done.err().unwrap_or(fault)),
            },
            cookie,
        },
        Op::Call { call_id, .. } => Event::Call {
            call_id,
            result: done,
            cookie,
        },
        Op::AcceptCall { call_id, .. } => Event::AcceptCall {
            call_id,
            result: done,
            cookie,
        },
        Op::RejectCall { call_id, .. } => Event::RejectCall {
            call_id,
            result: done,
            cookie,
        },
        Op::HangupCall { call_id, .. } => Event::HangupCall {
            call_id,
            result: done,
            cookie,
        },
        Op::Login { .. } | Op::Logout | Op::Offer { .. } => {
            unreachable!("logins, logouts and offers are not ops of `request`")
        }
    }
}
