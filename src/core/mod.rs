//! The Rust core of libcrvm: a [`Client`] owning a worker thread (connection and state machine)
//! and an event dispatcher. It speaks Rust types only; the C surface in `crate::ffi` converts
//! and validates raw pointers before anything reaches here.
//!
//! Threads of one client: the app's threads call [`Client`] methods, which validate, enqueue a
//! [`Request`] and return; the worker thread does all I/O; events are delivered by the
//! dispatcher thread (or inside [`Client::poll`] with `dispatch=manual`).

mod conn;
mod dispatch;
mod event;
mod ids;
mod options;
mod request;
mod transfer;
mod transport;
mod waker;
mod worker;

pub use event::{Event, EventHandler};
pub use options::{DispatchMode, Options};

use crossbeam_channel::Sender;
use crvm_proto::error::*;
use crvm_proto::msg::xfer;
use crvm_proto::msg::{limits, valid_meet_obj};
use crvm_proto::XferKind;
use dispatch::Dispatch;
use parking_lot::Mutex;
use request::{Login, Op, Request, SendSpec, Source};
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use waker::Waker;

/// Login state as the app sees it; changed by the exported functions at once and by the worker
/// when a login or session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Public {
    LoggedOut,
    LoggingIn,
    LoggedIn,
}

pub(crate) struct State {
    pub public: Public,
    /// Bumped by every login, logout and destroy. The worker changes `public` only for the
    /// epoch of the login it is working on, so a late event of an old session can never undo a
    /// newer call of the app.
    pub epoch: u64,
    pub destroyed: bool,
    pub opts: Options,
    /// Set at the first login: the dispatch mode is fixed from then on.
    pub dispatch_fixed: bool,
    /// The server's transfer limits, from its `welcome`.
    pub server_max_buffer: u64,
    pub server_max_file: u64,
}

pub(crate) struct Inner {
    addr: String,
    pub state: Mutex<State>,
    req_tx: Sender<Request>,
    pub waker: Waker,
    pub dispatch: Dispatch,
    worker: Mutex<Option<JoinHandle<()>>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    /// Enqueues a request; the caller holds the state lock so that the worker's link-lost drain
    /// sees either the whole request or none of it.
    fn send(&self, _st: &State, req: Request) {
        // The receiver lives as long as the worker, which outlives every accepted request.
        let _ = self.req_tx.send(req);
        self.waker.wake();
    }

    fn join_worker(&self) {
        let h = self.worker.lock().take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

/// A crvm client: one user session at a time against one server.
///
/// Every method returns at once. `Ok(())` means exactly one result event will follow (except for
/// [`Client::logout`]); `Err(code)` means nothing was sent and no event follows.
pub struct Client {
    inner: Arc<Inner>,
}

/// Parameters of [`Client::login`], named as in the SPEC.
#[derive(Debug, Clone, Default)]
pub struct LoginParams<'a> {
    pub auth_acnt: &'a str,
    pub auth_pswd: &'a str,
    pub nick_name: &'a str,
    pub priv_acnt: &'a str,
    pub priv_auth_code: &'a str,
    pub cookie: &'a str,
}

fn check_len(s: &str, max: usize) -> Result<(), i32> {
    if s.len() > max {
        Err(CRVIDEOSDK_MEETPARAM_ERR)
    } else {
        Ok(())
    }
}

fn decode_base64(data: &str) -> Result<Vec<u8>, i32> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| CRVIDEOSDK_BASE64_COV_ERR)
}

/// Call and task IDs: 1 to 63 bytes.
fn check_call_id(call_id: &str) -> Result<(), i32> {
    if call_id.is_empty() {
        return Err(CRVIDEOSDK_MEETPARAM_ERR);
    }
    check_len(call_id, limits::ID_MAX)
}

/// Checks a `host:port` address without resolving it.
fn valid_addr(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && addr.len() <= 1024 && port.parse::<u16>().is_ok_and(|p| p != 0)
}

impl Client {
    /// Creates a client for the server at `addr` (`host:port`) and starts its worker thread.
    pub fn new(addr: &str, handler: Box<dyn EventHandler>) -> Result<Client, i32> {
        if !valid_addr(addr) {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        let waker = Waker::new().map_err(|_| CRVIDEOSDK_NETWORK_INITFAILED)?;
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        let inner = Arc::new(Inner {
            addr: addr.to_owned(),
            state: Mutex::new(State {
                public: Public::LoggedOut,
                epoch: 0,
                destroyed: false,
                opts: Options::default(),
                dispatch_fixed: false,
                server_max_buffer: u64::MAX,
                server_max_file: u64::MAX,
            }),
            req_tx,
            waker,
            dispatch: Dispatch::new(handler),
            worker: Mutex::new(None),
            dispatcher: Mutex::new(None),
        });
        let w = worker::Worker::new(Arc::clone(&inner), req_rx);
        let h = std::thread::Builder::new()
            .name("crvm-worker".into())
            .spawn(move || w.run())
            .map_err(|_| CRVIDEOSDK_OUTOF_MEM)?;
        *inner.worker.lock() = Some(h);
        Ok(Client { inner })
    }

    /// Sets one option (see [`Options::set`]); only while logged out.
    pub fn set_option(&self, key: &str, value: &str) -> Result<(), i32> {
        let mut st = self.inner.state.lock();
        if st.destroyed {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if st.public != Public::LoggedOut || (key == "dispatch" && st.dispatch_fixed) {
            return Err(CRVIDEOSDK_LOGINSTATE_ERROR);
        }
        st.opts.set(key, value)
    }

    pub fn login(&self, p: &LoginParams<'_>) -> Result<(), i32> {
        if p.auth_acnt.is_empty() {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        check_len(p.auth_acnt, limits::APP_ID_MAX)?;
        check_len(p.auth_pswd, limits::SECRET_MAX)?;
        check_len(p.nick_name, limits::NICK_MAX)?;
        check_len(p.priv_acnt, limits::USER_ID_MAX)?;
        check_len(p.priv_auth_code, limits::OPAQUE_MAX)?;
        check_len(p.cookie, limits::OPAQUE_MAX)?;
        let mut st = self.inner.state.lock();
        if st.destroyed {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if st.public != Public::LoggedOut {
            return Err(CRVIDEOSDK_LOGINSTATE_ERROR);
        }
        if !st.dispatch_fixed {
            st.dispatch_fixed = true;
            if st.opts.dispatch == DispatchMode::Thread {
                self.start_dispatcher()?;
            }
        }
        st.public = Public::LoggingIn;
        st.epoch += 1;
        let req = Request::Login {
            login: Login {
                app_id: p.auth_acnt.to_owned(),
                secret: p.auth_pswd.to_owned(),
                user_id: p.priv_acnt.to_owned(),
                nick: p.nick_name.to_owned(),
                token: p.priv_auth_code.to_owned(),
                cookie: p.cookie.to_owned(),
            },
            opts: st.opts.clone(),
            epoch: st.epoch,
        };
        self.inner.send(&st, req);
        Ok(())
    }

    fn start_dispatcher(&self) -> Result<(), i32> {
        let inner = Arc::clone(&self.inner);
        let h = std::thread::Builder::new()
            .name("crvm-dispatch".into())
            .spawn(move || {
                let _ = catch_unwind(AssertUnwindSafe(|| inner.dispatch.run_thread()));
                // Reached when the client is destroyed; if that happened inside a callback, the
                // destroying call left the worker for us to join.
                inner.join_worker();
            })
            .map_err(|_| CRVIDEOSDK_OUTOF_MEM)?;
        *self.inner.dispatcher.lock() = Some(h);
        Ok(())
    }

    /// Logs out (or abandons a login in progress). No event follows for the logout itself.
    pub fn logout(&self) -> Result<(), i32> {
        let mut st = self.inner.state.lock();
        if st.destroyed {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if st.public == Public::LoggedOut {
            return Err(CRVIDEOSDK_NOT_LOGIN);
        }
        st.public = Public::LoggedOut;
        st.epoch += 1;
        self.inner.send(&st, Request::Logout);
        Ok(())
    }

    fn op(&self, op: Op, cookie: &str) -> Result<(), i32> {
        check_len(cookie, limits::OPAQUE_MAX)?;
        let st = self.inner.state.lock();
        if st.destroyed {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if st.public != Public::LoggedIn {
            return Err(CRVIDEOSDK_NOT_LOGIN);
        }
        let cookie = cookie.to_owned();
        self.inner.send(&st, Request::Op { op, cookie });
        Ok(())
    }

    pub fn set_dnd_status(&self, dnd_status: i32, cookie: &str) -> Result<(), i32> {
        self.op(Op::SetDnd(dnd_status), cookie)
    }

    pub fn get_user_status(&self, cookie: &str) -> Result<(), i32> {
        self.op(Op::GetUserStatus, cookie)
    }

    pub fn start_user_status_notify(&self, cookie: &str) -> Result<(), i32> {
        self.op(Op::StartStatusNotify, cookie)
    }

    pub fn stop_user_status_notify(&self, cookie: &str) -> Result<(), i32> {
        self.op(Op::StopStatusNotify, cookie)
    }

    /// `create_pswd > 0` asks the server for a 6-digit password; negative values are refused.
    pub fn create_meeting(&self, subject: &str, create_pswd: i32, cookie: &str) -> Result<(), i32> {
        if subject.chars().count() > limits::SUBJECT_MAX_CHARS || create_pswd < 0 {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        let op = Op::CreateMeeting {
            subject: subject.to_owned(),
            with_pswd: create_pswd > 0,
        };
        self.op(op, cookie)
    }

    pub fn destroy_meeting(&self, meet_id: i32, cookie: &str) -> Result<(), i32> {
        self.op(Op::DestroyMeeting(meet_id), cookie)
    }

    pub fn get_meetings(&self, cookie: &str) -> Result<(), i32> {
        self.op(Op::GetMeetings, cookie)
    }

    /// Calls `called_user_id`, returning the new call's ID at once. `meet_obj` is empty or a
    /// JSON object (≤ 8 KiB) passed to the callee verbatim. Result: `call_success` once the
    /// callee has been notified, or `call_fail` (603 offline, 602 busy or DND, 601 already in a
    /// call, 5 calling yourself).
    pub fn call(
        &self,
        called_user_id: &str,
        meet_obj: &str,
        usr_ext_dat: &str,
        cookie: &str,
    ) -> Result<String, i32> {
        if called_user_id.is_empty() || !valid_meet_obj(meet_obj) {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        check_len(called_user_id, limits::USER_ID_MAX)?;
        check_len(usr_ext_dat, limits::OPAQUE_MAX)?;
        let call_id = ids::new_id("c-");
        let op = Op::Call {
            call_id: call_id.clone(),
            callee: called_user_id.to_owned(),
            meet_obj: meet_obj.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.op(op, cookie)?;
        Ok(call_id)
    }

    /// Accepts a call ringing here. `meet_obj` (empty or a JSON object) goes to the caller;
    /// empty means "use the caller's". Result: `accept_call_success`/`_fail` (600: unknown,
    /// ended, or not ringing for you).
    pub fn accept_call(
        &self,
        call_id: &str,
        meet_obj: &str,
        usr_ext_dat: &str,
        cookie: &str,
    ) -> Result<(), i32> {
        check_call_id(call_id)?;
        if !valid_meet_obj(meet_obj) {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        check_len(usr_ext_dat, limits::OPAQUE_MAX)?;
        let op = Op::AcceptCall {
            call_id: call_id.to_owned(),
            meet_obj: meet_obj.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.op(op, cookie)
    }

    /// Refuses a call ringing here; the caller gets `notify_call_rejected(606)`.
    pub fn reject_call(&self, call_id: &str, usr_ext_dat: &str, cookie: &str) -> Result<(), i32> {
        check_call_id(call_id)?;
        check_len(usr_ext_dat, limits::OPAQUE_MAX)?;
        let op = Op::RejectCall {
            call_id: call_id.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.op(op, cookie)
    }

    /// Hangs up (or, as the caller of a ringing call, cancels); the other party gets
    /// `notify_call_hungup`.
    pub fn hungup_call(&self, call_id: &str, usr_ext_dat: &str, cookie: &str) -> Result<(), i32> {
        check_call_id(call_id)?;
        check_len(usr_ext_dat, limits::OPAQUE_MAX)?;
        let op = Op::HangupCall {
            call_id: call_id.to_owned(),
            ext: usr_ext_dat.to_owned(),
        };
        self.op(op, cookie)
    }

    /// Sends a cmd (≤ 51,200 bytes after decoding `data_base64`) to `target_user_id`; returns
    /// the task ID. Result: `send_cmd_rlst(task, 0)` once the target's library has it, or an
    /// error (1102 target offline or unknown). Not cancellable.
    pub fn send_cmd(&self, target_user_id: &str, data_base64: &str) -> Result<String, i32> {
        let data = decode_base64(data_base64)?;
        if data.len() > xfer::CMD_MAX {
            return Err(CRVIDEOSDK_SENDCMD_LARGE);
        }
        let size = data.len() as u64;
        self.send(
            target_user_id,
            XferKind::Cmd,
            Source::Bytes(data),
            size,
            String::new(),
        )
    }

    /// Sends a buffer (≤ `max_buffer_bytes`, the smaller of this client's option and the
    /// server's limit) in chunks, with progress; returns the task ID. Result: `send_buffer_rlst`.
    pub fn send_buffer(&self, target_user_id: &str, data_base64: &str) -> Result<String, i32> {
        let data = decode_base64(data_base64)?;
        let max = {
            let st = self.inner.state.lock();
            st.opts.max_buffer_bytes.min(st.server_max_buffer)
        };
        if data.len() as u64 > max {
            return Err(CRVIDEOSDK_SENDBUFFER_LARGE);
        }
        let size = data.len() as u64;
        self.send(
            target_user_id,
            XferKind::Buffer,
            Source::Bytes(data),
            size,
            String::new(),
        )
    }

    /// Streams the file at `file_name` (≤ the server's `max_file_bytes`) with progress; returns
    /// the task ID. Refused at once: missing file 1400, unreadable (or a directory) 1401, too
    /// large 1103. Result: `send_file_rlst`.
    pub fn send_file(&self, target_user_id: &str, file_name: &str) -> Result<String, i32> {
        if file_name.is_empty() {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        check_len(file_name, limits::PATH_MAX)?;
        // Non-blocking, so that opening a FIFO or a device cannot hang the caller; regular
        // files ignore the flag, and anything else is refused just below.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(file_name)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CRVIDEOSDK_FILE_NOT_EXIST,
                _ => CRVIDEOSDK_FILE_READ_ERR,
            })?;
        let meta = file.metadata().map_err(|_| CRVIDEOSDK_FILE_READ_ERR)?;
        if !meta.is_file() {
            return Err(CRVIDEOSDK_FILE_READ_ERR);
        }
        if meta.len() > self.inner.state.lock().server_max_file {
            return Err(CRVIDEOSDK_SENDFILE_FILEINERROR);
        }
        let (source, size) = (Source::File(file), meta.len());
        self.send(
            target_user_id,
            XferKind::File,
            source,
            size,
            file_name.to_owned(),
        )
    }

    fn send(
        &self,
        target: &str,
        kind: XferKind,
        source: Source,
        size: u64,
        path: String,
    ) -> Result<String, i32> {
        if target.is_empty() {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        check_len(target, limits::USER_ID_MAX)?;
        let task = ids::new_id("t-");
        let spec = SendSpec {
            task: task.clone(),
            to: target.to_owned(),
            kind,
            source,
            size,
            path,
            cancel: false,
        };
        self.op(Op::Send(Box::new(spec)), "")?;
        Ok(task)
    }

    /// Cancels a buffer or file transfer. Result: `cancel_send_rlst(task, 0)` and the target
    /// discards what it had (no `send_*_rlst` follows), or `cancel_send_rlst(task, 1104)` for
    /// an unknown or finished task, or a cmd.
    pub fn cancel_send(&self, task_id: &str) -> Result<(), i32> {
        check_call_id(task_id)?;
        let st = self.inner.state.lock();
        if st.destroyed {
            return Err(CRVIDEOSDK_MEETPARAM_ERR);
        }
        if st.public != Public::LoggedIn {
            return Err(CRVIDEOSDK_NOT_LOGIN);
        }
        let task = task_id.to_owned();
        self.inner.send(&st, Request::Cancel { task });
        Ok(())
    }

    /// Manual dispatch: runs queued events on this thread, waiting up to `timeout` for the
    /// first. Returns how many ran. Only with `dispatch=manual`.
    pub fn poll(&self, timeout: Duration) -> Result<usize, i32> {
        {
            let st = self.inner.state.lock();
            if st.destroyed || st.opts.dispatch != DispatchMode::Manual {
                return Err(CRVIDEOSDK_MEETPARAM_ERR);
            }
        }
        let n = self.inner.dispatch.poll(Instant::now() + timeout);
        if self.inner.state.lock().destroyed {
            // Destroyed from inside one of the callbacks just run: finish the job now that the
            // callback has returned.
            self.inner.join_worker();
        }
        Ok(n)
    }

    /// Logs out cleanly if needed, stops the threads, and guarantees that no callback runs once
    /// it returns. Called from inside a callback of this client, it returns at once and the
    /// rest happens as soon as that callback returns. Idempotent.
    pub fn destroy(&self) {
        {
            let mut st = self.inner.state.lock();
            if st.destroyed {
                return;
            }
            st.destroyed = true;
            st.epoch += 1;
            st.public = Public::LoggedOut;
            self.inner.send(&st, Request::Shutdown);
        }
        if self.inner.dispatch.close() {
            return;
        }
        self.inner.join_worker();
        let d = self.inner.dispatcher.lock().take();
        if let Some(d) = d {
            let _ = d.join();
        }
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
