//! Resumable sessions (docs/API.md §3.6): which connection holds each one, and the sessions whose
//! connection dropped, held for `resume_window_s` with everything they had.
//!
//! A session is a [`crate::handlers::ServerSession`] (its identity in the hub and the relay is
//! its login, which never changes) with its [`crate::outbox::Outbox`] (what is queued for it
//! and what it has not acknowledged). When its link drops, the connection task parks it here
//! ([`ParkedSession`]) instead of ending the session; a resume takes it out and carries on with
//! it on the new connection. A [`ParkEpoch`], bumped on every park and take, fences everything
//! stale: the expiry of an older parking, a connection that was taken over.
//!
//! This module is the registry; [`takeover`] is what a connection does with it: parking a
//! session when its link drops, ending it when the window passes, taking it over on a resume.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crvm_proto::error::{CRVIDEOSDK_CONNECTIONLOST, CRVIDEOSDK_USER_BEEN_KICKOUT};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::auth::ct_eq;
use crate::ids::{ConnId, ParkEpoch};
use crate::limits::Bucket;
use crate::outbox::Outbox;
use crate::random;
use crate::session::ParkedSession;

pub mod takeover;

pub use takeover::{holdable, park, resume};

/// How long a resume waits for the connection it takes over to let go of the session.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// How long a session leaving for another node may take to send its client what is queued,
/// if it logged in less than [`FRESH_LOGIN`] ago.
const FLUSH_BEFORE_LEAVING: Duration = Duration::from_millis(500);
const FRESH_LOGIN: Duration = Duration::from_secs(2);

/// Hex digits of session IDs and resume secrets (128 bits).
const TOKEN_HEX: usize = 32;

/// Where a session is.
enum Where {
    /// On connection `conn`, whose outbox is `outbox`.
    Attached { conn: ConnId, outbox: Outbox },
    /// Parked while its link is down.
    Detached(Box<ParkedSession>),
    /// Ended while its client could not hear it, with the code a resume now gets (10: kicked
    /// by a newer login); forgotten at `until`.
    Gone { code: i32, until: Instant },
    /// Being handed to another node (a drain): a resume waits for the outcome.
    Moving,
    /// Handed to another node, where a resume is sent: `addr`, or `ws_addr` for a browser.
    Moved { addr: String, ws_addr: String },
}

/// A session taken out of the registry to move to another node, with what resuming it needs.
pub struct Leaving {
    pub id: String,
    pub tenant: String,
    pub secret: String,
    pub prev_secret: Option<String>,
    pub session: Box<ParkedSession>,
}

struct Slot {
    tenant: String,
    secret: String,
    /// The secret before the last resume, still good until the client shows it got the new
    /// one (a link cut right after the server's `resumed` leaves the client with the old).
    prev_secret: Option<String>,
    epoch: ParkEpoch,
    at: Where,
    /// A drain is taking the session away: a resume waits until it is gone or stays.
    leaving: bool,
    /// When its login was answered here (`None`: it arrived from another node).
    registered: Option<Instant>,
}

/// Why a resume was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, expired, wrong tenant or wrong secret (no difference is revealed): 207; or
    /// kicked meanwhile: 10.
    Code(i32),
    /// Over the node's resume rate: try again later.
    Busy,
    /// The session moved to another node (`addr`, `ws_addr`): resume there.
    Moved { addr: String, ws_addr: String },
}

/// What [`Sessions::sent_on`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum SentOn {
    /// Sessions logged in since (not among those it was given): they move too.
    New(Vec<String>),
    /// No more logins are admitted; this many moved clients did not come by in time.
    All { missing: usize },
}

/// Logins being admitted: a drain's end waits for them, and admits none after.
#[derive(Default)]
struct Admit {
    in_progress: usize,
    closed: bool,
}

/// A login admitted while the node takes logins: until it is dropped (the session registered,
/// or the login failed), a drain does not end.
pub struct Admitted<'a>(&'a Sessions);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.admit.lock().in_progress -= 1;
        self.0.parked.notify_waiters();
    }
}

/// Every resumable session of this node.
pub struct Sessions {
    slots: Mutex<HashMap<String, Slot>>,
    /// Taken before `slots` where both are.
    admit: Mutex<Admit>,
    /// Wakes resumes waiting for a taken-over connection to park its session.
    parked: Notify,
    rate: Mutex<Bucket>,
    window: Duration,
}

impl Sessions {
    pub fn new(window: Duration, resumes_per_s: u64) -> Sessions {
        Sessions {
            slots: Mutex::new(HashMap::new()),
            admit: Mutex::new(Admit::default()),
            parked: Notify::new(),
            rate: Mutex::new(Bucket::new(resumes_per_s, 2 * resumes_per_s)),
            window,
        }
    }

    /// How long a dropped session is held.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Admits a login, unless a drain has ended (then `None`: the node is about to stop).
    pub fn admit(&self) -> Option<Admitted<'_>> {
        let mut admit = self.admit.lock();
        if admit.closed {
            return None;
        }
        admit.in_progress += 1;
        Some(Admitted(self))
    }

    /// Admits no more logins (a node alone stopping).
    pub fn close(&self) {
        self.admit.lock().closed = true;
    }

    /// Registers a session just logged in on `conn`; returns its ID and first secret.
    pub fn register(&self, tenant: &str, conn: ConnId, outbox: &Outbox) -> (String, String) {
        let id = random::hex(TOKEN_HEX);
        let secret = random::hex(TOKEN_HEX);
        let mut slots = self.slots.lock();
        let now = Instant::now();
        slots.retain(|_, s| !matches!(s.at, Where::Gone { until, .. } if until <= now));
        slots.insert(
            id.clone(),
            Slot {
                tenant: tenant.to_owned(),
                secret: secret.clone(),
                prev_secret: None,
                epoch: ParkEpoch::default(),
                at: Where::Attached {
                    conn,
                    outbox: outbox.clone(),
                },
                leaving: false,
                registered: Some(now),
            },
        );
        drop(slots);
        // A drain under way moves it too.
        self.parked.notify_waiters();
        (id, secret)
    }

    /// The link of the session on `conn` dropped: parks it. Returns the epoch its expiry must
    /// match, or gives the session back if it is no longer on `conn` (taken over, or ended),
    /// for the caller to end.
    pub fn park(
        &self,
        id: &str,
        conn: ConnId,
        session: Box<ParkedSession>,
    ) -> Result<ParkEpoch, Box<ParkedSession>> {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(id) else {
            return Err(session);
        };
        if !matches!(slot.at, Where::Attached { conn: c, .. } if c == conn) {
            return Err(session);
        }
        slot.epoch = slot.epoch.next();
        slot.at = Where::Detached(session);
        let epoch = slot.epoch;
        drop(slots);
        self.parked.notify_waiters();
        Ok(epoch)
    }

    /// The window of parking `epoch` passed, or its session ended meanwhile (kicked, overflow,
    /// shutdown): takes the session out for the caller to end, exactly once. `kicked` leaves
    /// a tombstone so that the client's resume learns it (10).
    pub fn expire(&self, id: &str, epoch: ParkEpoch, kicked: bool) -> Option<Box<ParkedSession>> {
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(id)?;
        if slot.epoch != epoch || !matches!(slot.at, Where::Detached(_)) {
            return None;
        }
        let at = if kicked {
            Where::Gone {
                code: CRVIDEOSDK_USER_BEEN_KICKOUT,
                until: Instant::now() + self.window,
            }
        } else {
            Where::Gone {
                code: CRVIDEOSDK_CONNECTIONLOST,
                until: Instant::now(),
            }
        };
        let Where::Detached(session) = std::mem::replace(&mut slot.at, at) else {
            unreachable!("checked above")
        };
        if !kicked {
            slots.remove(id);
        }
        Some(session)
    }

    /// The session on `conn` ended while attached (logout, kick, protocol error): forgotten,
    /// or — when kicked — remembered as such for the window, in case its client is resuming.
    pub fn ended(&self, id: &str, conn: ConnId, kicked: bool) {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(id) else {
            return;
        };
        if !matches!(slot.at, Where::Attached { conn: c, .. } if c == conn) {
            return;
        }
        if kicked {
            slot.epoch = slot.epoch.next();
            slot.at = Where::Gone {
                code: CRVIDEOSDK_USER_BEEN_KICKOUT,
                until: Instant::now() + self.window,
            };
        } else {
            slots.remove(id);
        }
    }

    /// A resume of session `id` by a client of `tenant` presenting `secret`, on connection
    /// `conn` whose outbox will be the session's. On success the session is attached to `conn`
    /// and returned with its next secret. A session still attached to another connection (its
    /// drop not noticed here yet) is taken from it.
    pub async fn resume(
        &self,
        tenant: &str,
        id: &str,
        secret: &str,
        conn: ConnId,
    ) -> Result<(Box<ParkedSession>, String), Refused> {
        if !self.rate.lock().take(Instant::now()) {
            return Err(Refused::Busy);
        }
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            let parked = self.parked.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            {
                let mut slots = self.slots.lock();
                let lost = Refused::Code(CRVIDEOSDK_CONNECTIONLOST);
                let Some(slot) = slots.get_mut(id) else {
                    return Err(lost);
                };
                // Compared in full whatever the tenant, so timing tells nothing.
                let prev_ok = slot
                    .prev_secret
                    .as_ref()
                    .is_some_and(|p| ct_eq(p.as_bytes(), secret.as_bytes()));
                let secret_ok = ct_eq(slot.secret.as_bytes(), secret.as_bytes()) | prev_ok;
                if !secret_ok || slot.tenant != tenant {
                    return Err(lost);
                }
                match &slot.at {
                    Where::Gone { code, until } => {
                        let code = if *until > Instant::now() {
                            *code
                        } else {
                            CRVIDEOSDK_CONNECTIONLOST
                        };
                        slots.remove(id);
                        return Err(Refused::Code(code));
                    }
                    Where::Attached { outbox, .. } => {
                        // Its reader stops and parks the session (or ends it, if it was ending).
                        outbox.detach();
                    }
                    Where::Moving => {}
                    // A drain is taking it: its answer comes once it moved (or stays).
                    Where::Detached(_) if slot.leaving => {}
                    Where::Moved { addr, ws_addr } => {
                        // Forgotten once its client has been told ([`Sessions::sent`]).
                        return Err(Refused::Moved {
                            addr: addr.clone(),
                            ws_addr: ws_addr.clone(),
                        });
                    }
                    Where::Detached(session) => {
                        let next = random::hex(TOKEN_HEX);
                        // The one the client presented stays good until it shows it has the
                        // new one (`confirm`); any older one is stale from now on.
                        slot.prev_secret = Some(secret.to_owned());
                        slot.secret = next.clone();
                        slot.epoch = slot.epoch.next();
                        let outbox = session.outbox.clone();
                        let Where::Detached(session) =
                            std::mem::replace(&mut slot.at, Where::Attached { conn, outbox })
                        else {
                            unreachable!("matched above")
                        };
                        return Ok((session, next));
                    }
                }
            }
            if tokio::time::timeout_at(deadline, parked).await.is_err() {
                // A session still on its way to another node (a slow drain) is not lost: the
                // client comes back later, and is then sent on.
                let moving = self.slots.lock().get(id).is_some_and(|s| {
                    matches!(s.at, Where::Moving)
                        || (s.leaving && matches!(s.at, Where::Detached(_)))
                });
                return Err(if moving {
                    Refused::Busy
                } else {
                    Refused::Code(CRVIDEOSDK_CONNECTIONLOST)
                });
            }
        }
    }

    /// Whether session `id` is still held in parking `epoch` (not resumed, not ended since).
    pub fn is_parked(&self, id: &str, epoch: ParkEpoch) -> bool {
        self.slots
            .lock()
            .get(id)
            .is_some_and(|s| s.epoch == epoch && matches!(s.at, Where::Detached(_)))
    }

    /// The client of session `id` sent a frame after its `resumed`: it has the new secret,
    /// and the one before is stale from now on.
    pub fn confirm(&self, id: &str) {
        if let Some(slot) = self.slots.lock().get_mut(id) {
            slot.prev_secret = None;
        }
    }

    /// The IDs of every session here, attached or held (a drain moves them all).
    pub fn ids(&self) -> Vec<String> {
        self.slots
            .lock()
            .iter()
            .filter(|(_, s)| matches!(s.at, Where::Attached { .. } | Where::Detached(_)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes session `id` out to move it to another node: off its connection first, if it is
    /// on one (its reader stops and parks it, within `patience`); a resume meanwhile waits.
    /// `None` unless it is (then) held here.
    pub async fn leave(&self, id: &str, patience: Duration) -> Option<Leaving> {
        let deadline = tokio::time::Instant::now() + patience;
        // A session just logged in first sends its client what is queued for it: the client
        // needs its `resumable` to follow the session. (Only then: a drain of thousands of
        // sessions does not wait for the slow clients among them.)
        let fresh = |s: &Slot| s.registered.is_some_and(|t| t.elapsed() < FRESH_LOGIN);
        let attached = match self.slots.lock().get(id) {
            Some(
                s @ Slot {
                    at: Where::Attached { outbox, .. },
                    ..
                },
            ) if fresh(s) => Some(outbox.clone()),
            _ => None,
        };
        if let Some(outbox) = attached {
            outbox.control_flushed(FLUSH_BEFORE_LEAVING).await;
        }
        loop {
            let parked = self.parked.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            {
                let mut slots = self.slots.lock();
                let slot = slots.get_mut(id)?;
                slot.leaving = true;
                match &slot.at {
                    Where::Attached { outbox, .. } => {
                        outbox.detach();
                    }
                    Where::Detached(_) => return Some(take_leaving(id, slot)),
                    _ => {
                        slot.leaving = false;
                        return None;
                    }
                }
            }
            if tokio::time::timeout_at(deadline, parked).await.is_err() {
                if let Some(slot) = self.slots.lock().get_mut(id) {
                    slot.leaving = false;
                }
                return None;
            }
        }
    }
}

/// Takes the held session of `slot` (named `id`) out for a drain; a resume waits meanwhile.
fn take_leaving(id: &str, slot: &mut Slot) -> Leaving {
    {
        slot.epoch = slot.epoch.next();
        slot.leaving = false;
        let Where::Detached(session) = std::mem::replace(&mut slot.at, Where::Moving) else {
            unreachable!("checked by the caller")
        };
        Leaving {
            id: id.to_owned(),
            tenant: slot.tenant.clone(),
            secret: slot.secret.clone(),
            prev_secret: slot.prev_secret.clone(),
            session,
        }
    }
}

impl Sessions {
    /// Session `id` now lives at another node: a resume here is sent there.
    pub fn moved(&self, id: &str, addr: String, ws_addr: String) {
        if let Some(slot) = self.slots.lock().get_mut(id) {
            slot.at = Where::Moved { addr, ws_addr };
        }
        self.parked.notify_waiters();
    }

    /// Session `id` could not move and is gone: a resume is refused (207).
    pub fn forget(&self, id: &str) {
        self.slots.lock().remove(id);
        self.parked.notify_waiters();
    }

    /// The client of session `id`, which moved away, has been told where it is now: the
    /// session is forgotten here.
    pub fn sent(&self, id: &str) {
        let mut slots = self.slots.lock();
        if slots
            .get(id)
            .is_some_and(|s| matches!(s.at, Where::Moved { .. }))
        {
            slots.remove(id);
        }
        drop(slots);
        self.parked.notify_waiters();
    }

    /// Waits until every client whose session moved away has asked here and been sent on
    /// and no login is under way, or `patience` passes: then admits no more logins. Returns
    /// early with the sessions here that are not in `known` (logged in meanwhile).
    pub async fn sent_on(
        &self,
        patience: Duration,
        known: &std::collections::HashSet<String>,
    ) -> SentOn {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let parked = self.parked.notified();
            tokio::pin!(parked);
            parked.as_mut().enable();
            let left = match self.settled(known) {
                Ok(outcome) => return outcome,
                Err(left) => left,
            };
            if tokio::time::timeout_at(deadline, parked).await.is_err() {
                self.admit.lock().closed = true;
                return SentOn::All { missing: left };
            }
        }
    }

    /// [`Sessions::sent_on`]'s check: its outcome, or how many moved clients it still waits for
    /// (`Err`, with any login under way).
    fn settled(&self, known: &std::collections::HashSet<String>) -> Result<SentOn, usize> {
        let mut admit = self.admit.lock();
        let slots = self.slots.lock();
        let fresh: Vec<String> = slots
            .iter()
            .filter(|(id, s)| {
                matches!(s.at, Where::Attached { .. } | Where::Detached(_)) && !known.contains(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !fresh.is_empty() {
            return Ok(SentOn::New(fresh));
        }
        let left = slots
            .values()
            .filter(|s| matches!(s.at, Where::Moved { .. }))
            .count();
        if left == 0 && admit.in_progress == 0 {
            admit.closed = true;
            return Ok(SentOn::All { missing: 0 });
        }
        Err(left)
    }

    /// A session that arrived from another node ([`Sessions::leave`] there), held here for
    /// its client's resume; returns the epoch its expiry must match.
    pub fn arrive(&self, leaving: Leaving) -> ParkEpoch {
        let epoch = ParkEpoch::default().next();
        self.slots.lock().insert(
            leaving.id,
            Slot {
                tenant: leaving.tenant,
                secret: leaving.secret,
                prev_secret: leaving.prev_secret,
                epoch,
                at: Where::Detached(leaving.session),
                leaving: false,
                registered: None,
            },
        );
        epoch
    }

    /// A resume that took a session failed before the session was back on its connection (the
    /// client claimed frames never sent): the session is parked again under a new epoch, for
    /// its expiry to end it.
    pub fn repark(&self, id: &str, session: Box<ParkedSession>) -> ParkEpoch {
        let mut slots = self.slots.lock();
        let Some(slot) = slots.get_mut(id) else {
            return ParkEpoch::default();
        };
        slot.epoch = slot.epoch.next();
        slot.at = Where::Detached(session);
        slot.epoch
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[tokio::test]
    async fn a_drain_moves_logins_made_meanwhile_and_admits_none_once_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), 100);
        let (first, _) = sessions.register("t", ConnId::default(), &Outbox::default());
        let known: HashSet<String> = [first.clone()].into();
        // A login under way keeps the drain waiting; once registered, it is new.
        let login = sessions.admit().expect("admitted while the drain runs");
        let (late, _) = sessions.register("t", ConnId::default(), &Outbox::default());
        drop(login);
        let outcome = sessions.sent_on(Duration::from_secs(5), &known).await;
        assert_eq!(outcome, SentOn::New(vec![late.clone()]));
        // Both known now, nobody moved away: the drain ends and admits no more logins.
        let known: HashSet<String> = [first, late].into();
        let outcome = sessions.sent_on(Duration::from_secs(5), &known).await;
        assert_eq!(outcome, SentOn::All { missing: 0 });
        assert!(sessions.admit().is_none());
    }

    #[tokio::test]
    async fn a_drain_waits_for_a_login_under_way() {
        let sessions = std::sync::Arc::new(Sessions::new(Duration::from_secs(60), 100));
        let login = sessions.admit().expect("admitted");
        let waiting = {
            let sessions = std::sync::Arc::clone(&sessions);
            tokio::spawn(async move {
                sessions
                    .sent_on(Duration::from_secs(5), &HashSet::new())
                    .await
            })
        };
        tokio::task::yield_now().await;
        let (id, _) = sessions.register("t", ConnId::default(), &Outbox::default());
        drop(login);
        assert_eq!(waiting.await.unwrap(), SentOn::New(vec![id]));
    }
}
