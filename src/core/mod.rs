//! The Rust core of libcrvm: a [`Client`] whose state machine is a sans-IO [`session`] (no
//! socket, thread, clock or randomness of its own; its parts are listed in its module docs)
//! pumped by a worker thread ([`worker`]). The session's events wait in [`events`], which its
//! stream engine ([`transfer`]) emits into too. It speaks typed Rust only — bytes as `&[u8]`,
//! statuses and meetings as structs, results as `Result<T, Code>` — and never sees a raw
//! pointer, base64 or the C split into `_success` and `_fail`; the C surface in `crate::ffi`
//! does those.
//!
//! Threads of one client: the app's threads call [`Client`] methods, which check, update the
//! session and write what it produced to the socket, then return; the worker thread reads,
//! runs the timers, and delivers events to the [`EventHandler`] (or `poll` does, with
//! `dispatch=manual`).

mod dispatch;
mod event;
mod events;
mod ids;
mod net;
mod options;
mod session;
mod transfer;
mod transport;
mod waker;
mod worker;

pub use crvm_proto::{Code, Meeting, UserStatus};
pub use event::{Event, EventHandler};
pub use options::{DispatchMode, Options};

use crvm_proto::error::*;
use crvm_proto::Op;
use dispatch::{Dispatch, Entry};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use waker::Waker;
use worker::{flush, needs_worker, Fill, Shared};

/// Events delivered per batch by `poll`.
const POLL_BATCH: usize = 1024;

pub(crate) struct Inner {
    addr: String,
    shared: Mutex<Shared>,
    /// Signalled when events wait for a `poll` (manual dispatch).
    events_ready: Condvar,
    /// Shared with the disk writer of received files, which wakes the worker too.
    waker: Arc<Waker>,
    dispatch: Dispatch,
    /// `dispatch=manual`, fixed at the first login.
    manual: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn manual(&self) -> bool {
        self.manual.load(Ordering::Acquire)
    }

    /// After an app's call changed the session: writes what it produced (unless `write` is
    /// false: the worker will, batched with what follows), and wakes the worker (or the
    /// pollers) only if they have something to do. An awake worker needs no wake-up: it looks
    /// at everything under the lock before it sleeps again.
    fn after_call(&self, mut sh: MutexGuard<'_, Shared>, write: bool) {
        if write {
            flush(&mut sh, Instant::now(), Fill::Control);
        }
        let manual = self.manual();
        let wake = sh.sleeping && !sh.woken && needs_worker(&sh, manual);
        if wake {
            sh.woken = true;
        }
        let notify = manual && sh.session.has_events();
        drop(sh);
        if wake {
            self.waker.wake();
        }
        if notify {
            self.events_ready.notify_all();
        }
    }

    fn join_worker(&self) {
        let h = self.worker.lock().take();
        if let Some(h) = h {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// A crvm client: one user session at a time against one server.
///
/// Every method returns at once. `Ok` means exactly one result event will follow (except for
/// [`Client::logout`]); `Err(code)` means nothing was sent and no event follows.
pub struct Client {
    inner: Arc<Inner>,
}

/// Parameters of [`Client::login`], named as in the C API (docs/API.md §2.2).
#[derive(Debug, Clone, Default)]
pub struct LoginParams<'a> {
    pub auth_acnt: &'a str,
    pub auth_pswd: &'a str,
    pub nick_name: &'a str,
    pub priv_acnt: &'a str,
    pub priv_auth_code: &'a str,
    pub cookie: &'a str,
}

/// Longest server address accepted.
pub(crate) const ADDR_MAX: usize = 1024;

/// `host:port` with a non-empty host and a port in 1..=65535 (resolution happens at login).
fn valid_addr(addr: &str) -> bool {
    if addr.len() > ADDR_MAX {
        return false;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

impl Client {
    /// A client for `addr` (`host:port`) whose events go to `handler`.
    pub fn new(addr: &str, handler: Box<dyn EventHandler>) -> Result<Client, Code> {
        if !valid_addr(addr) {
            return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
        }
        let waker = Arc::new(Waker::new().map_err(|_| code(CRVIDEOSDK_NETWORK_INITFAILED))?);
        let mut shared = Shared::new(Instant::now());
        let disk_wake = Arc::clone(&waker);
        shared
            .session
            .set_disk_wake(Arc::new(move || disk_wake.wake()));
        let inner = Arc::new(Inner {
            addr: addr.to_owned(),
            shared: Mutex::new(shared),
            events_ready: Condvar::new(),
            waker,
            dispatch: Dispatch::new(handler),
            manual: AtomicBool::new(false),
            worker: Mutex::new(None),
        });
        let w = Arc::clone(&inner);
        let h = std::thread::Builder::new()
            .name("crvm-worker".into())
            .spawn(move || worker::run(w))
            .map_err(|_| code(CRVIDEOSDK_OUTOF_MEM))?;
        *inner.worker.lock() = Some(h);
        Ok(Client { inner })
    }

    /// Runs `f` on the session under the lock, then lets what it produced go.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut session::Session, Instant) -> Result<T, Code>,
    ) -> Result<T, Code> {
        let mut sh = self.inner.shared.lock();
        let r = f(&mut sh.session, Instant::now());
        self.inner.after_call(sh, true);
        r
    }

    /// Sets one option (see [`Options::set`]); only while logged out.
    pub fn set_option(&self, key: &str, value: &str) -> Result<(), Code> {
        self.with(|s, _| s.set_option(key, value))
    }

    pub fn login(&self, p: &LoginParams<'_>) -> Result<(), Code> {
        let op = Op::Login {
            app_id: p.auth_acnt.to_owned(),
            secret: p.auth_pswd.to_owned(),
            user_id: p.priv_acnt.to_owned(),
            nick: p.nick_name.to_owned(),
            token: p.priv_auth_code.to_owned(),
            // Set from the `reconnect` option when the login starts.
            resume: false,
        };
        self.with(|s, now| {
            s.login(op, p.cookie, now)?;
            let manual = s.opts().dispatch == DispatchMode::Manual;
            self.inner.manual.store(manual, Ordering::Release);
            Ok(())
        })
    }

    /// The network changed (docs/API.md §3.6): the link is dropped and the session resumed at once.
    pub fn network_changed(&self) -> Result<(), Code> {
        self.with(|s, now| s.network_changed(now))
    }

    /// Logs out (or abandons a login in progress). No event follows for the logout itself.
    pub fn logout(&self) -> Result<(), Code> {
        self.with(|s, now| s.logout(now))
    }

    fn request(&self, op: Op, cookie: &str) -> Result<(), Code> {
        self.with(|s, now| s.request(op, cookie, now))
    }

    pub fn set_dnd_status(&self, dnd_status: i32, cookie: &str) -> Result<(), Code> {
        self.request(Op::SetDnd { dnd: dnd_status }, cookie)
    }

    pub fn get_user_status(&self, cookie: &str) -> Result<(), Code> {
        self.request(Op::GetUserStatus, cookie)
    }

    pub fn start_user_status_notify(&self, cookie: &str) -> Result<(), Code> {
        self.request(Op::StartStatusNotify, cookie)
    }

    pub fn stop_user_status_notify(&self, cookie: &str) -> Result<(), Code> {
        self.request(Op::StopStatusNotify, cookie)
    }

    /// `create_pswd > 0` asks the server for a 6-digit password; negative values are refused.
    pub fn create_meeting(
        &self,
        subject: &str,
        create_pswd: i32,
        cookie: &str,
    ) -> Result<(), Code> {
        if create_pswd < 0 {
            return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
        }
        let op = Op::CreateMeeting {
            subject: subject.to_owned(),
            with_pswd: create_pswd > 0,
        };
        self.request(op, cookie)
    }

    pub fn destroy_meeting(&self, meet_id: i32, cookie: &str) -> Result<(), Code> {
        self.request(Op::DestroyMeeting { meet_id }, cookie)
    }

    pub fn get_meetings(&self, cookie: &str) -> Result<(), Code> {
        self.request(Op::GetMeetings, cookie)
    }

    /// Calls `called_user_id`, returning the new call's ID at once. `meet_obj` is empty or a
    /// JSON object (≤ 8 KiB) passed to the callee verbatim. Result: [`Event::Call`], `Ok` once
    /// the callee has been notified (603 offline, 602 busy or DND, 601 already in a call, 5
    /// calling yourself).
    pub fn call(
        &self,
        called_user_id: &str,
        meet_obj: &str,
        usr_ext_dat: &str,
        cookie: &str,
    ) -> Result<String, Code> {
        let call_id = ids::new_id("c-");
        let op = Op::Call {
            call_id: call_id.clone(),
            callee: called_user_id.to_owned(),
            meet_obj: meet_obj.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.request(op, cookie)?;
        Ok(call_id)
    }

    /// Accepts a call ringing here. `meet_obj` (empty or a JSON object) goes to the caller;
    /// empty means "use the caller's". Result: [`Event::AcceptCall`] (600: unknown, ended, or
    /// not ringing for you).
    pub fn accept_call(
        &self,
        call_id: &str,
        meet_obj: &str,
        usr_ext_dat: &str,
        cookie: &str,
    ) -> Result<(), Code> {
        let op = Op::AcceptCall {
            call_id: call_id.to_owned(),
            meet_obj: meet_obj.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.request(op, cookie)
    }

    /// Refuses a call ringing here; the caller gets [`Event::NotifyCallRejected`] (606).
    pub fn reject_call(&self, call_id: &str, usr_ext_dat: &str, cookie: &str) -> Result<(), Code> {
        let op = Op::RejectCall {
            call_id: call_id.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.request(op, cookie)
    }

    /// Hangs up (or, as the caller of a ringing call, cancels); the other party gets
    /// [`Event::NotifyCallHungup`].
    pub fn hungup_call(&self, call_id: &str, usr_ext_dat: &str, cookie: &str) -> Result<(), Code> {
        let op = Op::HangupCall {
            call_id: call_id.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.request(op, cookie)
    }

    /// Sends a cmd (≤ 51,200 bytes) to `target_user_id`; returns the task ID. Never refused for
    /// volume (only past `max_pending_bytes`, 1000): cmds beyond the flow-control window wait
    /// their turn, in order. Result: [`Event::CmdSent`], `Ok` once the target's app has it, or
    /// 1102 if the target is offline or unknown. Not cancellable. An owned `Vec` is queued as
    /// it is (no copy).
    pub fn send_cmd(&self, target_user_id: &str, data: impl Into<Vec<u8>>) -> Result<String, Code> {
        let mut sh = self.inner.shared.lock();
        // A cmd alone is written at once (its latency is what counts); one of a burst — cmds
        // already in flight — is left to the worker, which writes the burst in few system calls
        // (its throughput is what counts).
        let burst = sh.session.cmds_in_flight();
        let r = sh
            .session
            .send_cmd(target_user_id, data.into(), Instant::now());
        self.inner.after_call(sh, !burst);
        r
    }

    /// Sends a buffer (≤ `max_buffer_bytes`, the smaller of this client's option and the
    /// server's limit) in chunks, with progress; returns the task ID. Result:
    /// [`Event::BufferSent`].
    pub fn send_buffer(&self, target_user_id: &str, data: Vec<u8>) -> Result<String, Code> {
        self.with(|s, now| s.send_buffer(target_user_id, data, now))
    }

    /// Streams the file at `file_name` (≤ the server's `max_file_bytes`) with progress;
    /// returns the task ID. Refused at once: missing file 1400, unreadable (or a directory)
    /// 1401, too large 1103. Result: [`Event::FileSent`].
    pub fn send_file(&self, target_user_id: &str, file_name: &str) -> Result<String, Code> {
        self.with(|s, now| s.send_file(target_user_id, file_name, now))
    }

    /// Cancels a buffer or file transfer. Result: [`Event::CancelSend`]: `Ok` and the target
    /// discards what it had (no result of the transfer follows), or 1104 for an unknown or
    /// finished task, or a cmd.
    pub fn cancel_send(&self, task_id: &str) -> Result<(), Code> {
        self.with(|s, now| s.cancel_send(task_id, now))
    }

    /// Manual dispatch: runs queued events on this thread, waiting up to `timeout` for the
    /// first. Returns how many ran. Only with `dispatch=manual`.
    pub fn poll(&self, timeout: Duration) -> Result<usize, Code> {
        let inner = &self.inner;
        let deadline = Instant::now() + timeout;
        {
            let sh = inner.shared.lock();
            if inner.dispatch.is_destroyed() || sh.session.opts().dispatch != DispatchMode::Manual {
                return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
            }
        }
        match inner.dispatch.enter(Some(deadline)) {
            Entry::Entered => {}
            Entry::Destroyed | Entry::Reentrant | Entry::TimedOut => return Ok(0),
        }
        let mut n = 0;
        let mut batch = Vec::new();
        loop {
            let mut sh = inner.shared.lock();
            if !sh.session.has_events() {
                if n > 0 || inner.events_ready.wait_until(&mut sh, deadline).timed_out() {
                    break;
                }
                continue;
            }
            sh.session.take_events(&mut batch, POLL_BATCH);
            drop(sh);
            n += inner.dispatch.run(&batch);
            batch.clear();
            let mut sh = inner.shared.lock();
            sh.session.delivered();
            inner.after_call(sh, true);
            if inner.dispatch.is_destroyed() {
                break;
            }
        }
        inner.dispatch.leave();
        if inner.dispatch.is_destroyed() {
            // Destroyed from inside one of the callbacks just run: finish the job now that the
            // callback has returned.
            inner.join_worker();
        }
        Ok(n)
    }

    /// Logs out cleanly if needed, stops the worker, and guarantees that no callback runs once
    /// it returns. Called from inside a callback of this client, it returns at once and the
    /// rest happens as soon as that callback returns. Idempotent.
    pub fn destroy(&self) {
        {
            let mut sh = self.inner.shared.lock();
            if sh.session.finished() || self.inner.dispatch.is_destroyed() {
                return;
            }
            // First, so that nothing the logout below settles (a pending login's result, say)
            // reaches the app: the worker may deliver the moment the events are queued.
            self.inner.dispatch.stop();
            sh.session.destroy(Instant::now());
            self.inner.after_call(sh, true);
        }
        self.inner.waker.wake();
        if self.inner.dispatch.close() {
            return;
        }
        self.inner.join_worker();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["127.0.0.1:5210", "localhost:1", "[::1]:80", "h:65535"] {
            assert!(valid_addr(ok), "{ok}");
        }
        for bad in ["", "host", ":80", "host:", "host:0", "host:65536", "host:x"] {
            assert!(!valid_addr(bad), "{bad}");
        }
    }
}
