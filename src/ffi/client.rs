//! The C surface of a client: lifecycle (`crvm_create`, `crvm_set_option`, `crvm_poll`,
//! `crvm_destroy`) and one export per documented method.
//!
//! Return value rule (docs/API.md §2.2): non-zero means refused before anything was sent, and no event
//! follows; zero means exactly one result event follows (none for `crvm_logout`).

use super::args::{bytes_arg, rc, str_arg, Null};
use super::callbacks::{copy_callbacks, crvm_callbacks, CHandler};
use super::handle::{self, crvm_client};
use crate::core::{Client, Code, LoginParams, ADDR_MAX};
use crvm_proto::error::{
    code, CRVIDEOSDK_BASE64_COV_ERR, CRVIDEOSDK_INNER_ERR, CRVIDEOSDK_MEETPARAM_ERR,
    CRVIDEOSDK_SENDCMD_LARGE,
};
use crvm_proto::msg::limits::*;
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// Size of a buffer that holds any call or task ID with its NUL (IDs are at most 63 bytes).
pub const CRVM_ID_BUF_LEN: usize = 64;

/// Longest option key or value accepted by `crvm_set_option`.
const OPTION_MAX: usize = PATH_MAX;

/// An optional free-text argument (cookie, `meet_obj`, `usr_ext_dat`…): NULL reads as "",
/// at most 8 KiB.
///
/// # Safety
/// As [`str_arg`].
unsafe fn opaque<'a>(p: *const c_char) -> Result<&'a str, Code> {
    str_arg(p, Null::Empty, OPAQUE_MAX)
}

/// Runs `f` on the client behind `c`, inside the panic boundary.
fn with_client(c: *mut crvm_client, f: impl FnOnce(&Client) -> Result<(), Code>) -> i32 {
    guard!(CRVIDEOSDK_INNER_ERR, {
        match handle::get(c) {
            Ok(client) => rc(f(&client)),
            Err(e) => e.get(),
        }
    })
}

/// Decodes a base64 argument (13 if it is not base64).
/// Base64 data argument → bytes: 13 for bad base64, 5 (as for any other argument) for text
/// that is not UTF-8.
fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Code> {
    super::b64::decode(text).ok_or_else(|| match std::str::from_utf8(text) {
        Ok(_) => code(CRVIDEOSDK_BASE64_COV_ERR),
        Err(_) => code(CRVIDEOSDK_MEETPARAM_ERR),
    })
}

/// Creates a client for the server at `server_addr` ("host:port"). `callbacks` is copied
/// (`callbacks_size` bytes of it; NULL members and a NULL struct are ignored); `user_data` is
/// passed to every callback. Nothing is sent until `crvm_login`. On success writes the handle to
/// `*out_client` and returns 0; otherwise returns 5 and leaves `*out_client` untouched.
///
/// # Safety
/// Pointer arguments are NULL or valid for the sizes given.
#[no_mangle]
pub unsafe extern "C" fn crvm_create(
    server_addr: *const c_char,
    callbacks: *const crvm_callbacks,
    callbacks_size: usize,
    user_data: *mut c_void,
    out_client: *mut *mut crvm_client,
) -> i32 {
    guard!(CRVIDEOSDK_INNER_ERR, {
        if out_client.is_null() {
            return CRVIDEOSDK_MEETPARAM_ERR;
        }
        let addr = match str_arg(server_addr, Null::Refuse, ADDR_MAX) {
            Ok(a) => a,
            Err(e) => return e.get(),
        };
        let handler = CHandler::new(copy_callbacks(callbacks, callbacks_size), user_data);
        match Client::new(addr, Box::new(handler)) {
            Ok(client) => {
                *out_client = handle::insert(client);
                0
            }
            Err(e) => e.get(),
        }
    })
}

/// Sets an option, only while logged out (else 9). Keys: `download_dir` (an existing
/// directory; default: the user's own download directory, `$XDG_DOWNLOAD_DIR` or the one
/// `user-dirs.dirs` names, else `$HOME`, else the current directory), `dispatch` (`thread` | `manual`; fixed from the first `crvm_login`),
/// `connect_timeout_ms`, `request_timeout_ms` (1 ms .. 10 min / 1 h), `max_buffer_bytes`
/// (largest buffer sent or accepted, default 100 MiB), `max_pending_bytes` (data accepted and not
/// yet acknowledged end to end beyond which `crvm_send_cmd` and `crvm_send_buffer` return 1000,
/// default 64 MiB), `reconnect` (`on` | `off`: resume the session after a lost connection,
/// default on; docs/API.md §3.6), `tls` (`off` | `on`), `tls_ca_file` (PEM
/// file of the CA certificates the server's certificate must chain to; default: the system's;
/// checked when set), `log_file` (a file the library appends one line per event to: names,
/// codes and IDs, never a secret, token, cookie or payload). With TLS the server's certificate
/// must also name the host of `server_addr`; otherwise the login fails with 209. Unknown key or
/// bad value → 5 and nothing changes.
///
/// # Safety
/// `key` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn crvm_set_option(
    c: *mut crvm_client,
    key: *const c_char,
    value: *const c_char,
) -> i32 {
    with_client(c, |client| {
        let key = str_arg(key, Null::Refuse, OPTION_MAX)?;
        let value = str_arg(value, Null::Refuse, OPTION_MAX)?;
        client.set_option(key, value)
    })
}

/// With `dispatch=manual`: runs this client's pending events on the calling thread, waiting up
/// to `timeout_ms` (0 = don't wait, negative = 0) for the first one. Returns the number of
/// events run, or a negative error code (-5: bad handle, or not in manual mode). A callback
/// calling `crvm_poll` on its own client gets 0. Several threads may poll; events still run
/// one at a time, in order.
#[no_mangle]
pub extern "C" fn crvm_poll(c: *mut crvm_client, timeout_ms: i32) -> i32 {
    guard!(-CRVIDEOSDK_INNER_ERR, {
        let client = match handle::get(c) {
            Ok(client) => client,
            Err(e) => return -e.get(),
        };
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        match client.poll(timeout) {
            Ok(n) => n.min(i32::MAX as usize) as i32,
            Err(e) => -e.get(),
        }
    })
}

/// Destroys the client: logs out cleanly if logged in (waiting at most 5 s for the server),
/// stops its threads, and returns once no callback of it can run again. NULL or an already
/// destroyed handle is a no-op. From inside one of its own callbacks it returns at once and
/// completes when that callback returns.
#[no_mangle]
pub extern "C" fn crvm_destroy(c: *mut crvm_client) {
    guard!((), {
        if let Some(client) = handle::remove(c) {
            client.destroy();
        }
    })
}

/// Logs in: `auth_acnt` is the app ID (required), `auth_pswd` its secret (required; "" for
/// token tenants), `priv_acnt` the user ID (empty: the server assigns one), `priv_auth_code` a
/// per-user token. Result: `login_success` or `login_fail`. 9 if logging in or logged in.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_login(
    c: *mut crvm_client,
    auth_acnt: *const c_char,
    auth_pswd: *const c_char,
    nick_name: *const c_char,
    priv_acnt: *const c_char,
    priv_auth_code: *const c_char,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        let p = LoginParams {
            auth_acnt: str_arg(auth_acnt, Null::Refuse, APP_ID_MAX)?,
            auth_pswd: str_arg(auth_pswd, Null::Refuse, SECRET_MAX)?,
            nick_name: str_arg(nick_name, Null::Empty, NICK_MAX)?,
            priv_acnt: str_arg(priv_acnt, Null::Empty, USER_ID_MAX)?,
            priv_auth_code: opaque(priv_auth_code)?,
            cookie: opaque(cookie)?,
        };
        client.login(&p)
    })
}

/// The app knows the network changed (e.g. Wi-Fi to mobile): the link is dropped at once and
/// the session resumed without waiting for a heartbeat to notice (docs/API.md §3.6). 0, or 12 if not
/// logged in.
#[no_mangle]
pub extern "C" fn crvm_network_changed(c: *mut crvm_client) -> i32 {
    with_client(c, |client| client.network_changed())
}

/// Logs out, or abandons a login in progress (whose `login_fail(9)` still follows). No event
/// for the logout itself. 12 if not logged in.
#[no_mangle]
pub extern "C" fn crvm_logout(c: *mut crvm_client) -> i32 {
    with_client(c, |client| client.logout())
}

/// Sets do-not-disturb (0 off, anything else on). Result: `set_dnd_status_success`/`_fail`.
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_set_dnd_status(
    c: *mut crvm_client,
    dnd_status: i32,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        client.set_dnd_status(dnd_status, opaque(cookie)?)
    })
}

/// Asks for the status of every online user of the tenant.
/// Result: `get_user_status_success`/`_fail`.
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_get_user_status(c: *mut crvm_client, cookie: *const c_char) -> i32 {
    with_client(c, |client| client.get_user_status(opaque(cookie)?))
}

/// Subscribes to status changes of the tenant's users (`notify_user_status`, carrying this
/// `cookie`). Result: `start_user_status_notify_rslt`.
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_start_user_status_notify(
    c: *mut crvm_client,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| client.start_user_status_notify(opaque(cookie)?))
}

/// Ends the subscription. Result: `stop_user_status_notify_rslt`.
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_stop_user_status_notify(
    c: *mut crvm_client,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| client.stop_user_status_notify(opaque(cookie)?))
}

/// Creates a meeting: `meet_subject` at most 50 characters; `create_pswd` > 0 asks for a
/// 6-digit password, 0 for none (negative → 5). Result: `create_meeting_success`/`_fail`.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_create_meeting(
    c: *mut crvm_client,
    meet_subject: *const c_char,
    create_pswd: i32,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        // 50 characters are at most 200 bytes of UTF-8; the core counts the characters.
        let subject = str_arg(meet_subject, Null::Refuse, SUBJECT_MAX_CHARS * 4)?;
        client.create_meeting(subject, create_pswd, opaque(cookie)?)
    })
}

/// Destroys a meeting you created. Result: `destroy_meeting_rslt` (0, or 800 if it does not
/// exist or is not yours).
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_destroy_meeting(
    c: *mut crvm_client,
    meet_id: i32,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| client.destroy_meeting(meet_id, opaque(cookie)?))
}

/// Lists the tenant's meetings. Result: `get_meetings_success`/`_fail`.
///
/// # Safety
/// `cookie` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_get_meetings(c: *mut crvm_client, cookie: *const c_char) -> i32 {
    with_client(c, |client| client.get_meetings(opaque(cookie)?))
}

/// Calls `called_user_id` (required). `meet_obj` is empty or a JSON object (≤ 8 KiB), carried
/// to the callee verbatim; `usr_ext_dat` is free text (≤ 8 KiB). On success writes the new
/// call's ID (NUL-terminated, at most 63 bytes) to `call_id_out`, which must hold
/// `call_id_cap >= CRVM_ID_BUF_LEN` bytes (else 5, nothing sent). Result: `call_success` once
/// the callee has been notified, or `call_fail` (603 offline or unknown, 602 busy or DND on,
/// 601 you are already in a call, 5 calling yourself).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `call_id_out` is NULL or `call_id_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn crvm_call(
    c: *mut crvm_client,
    called_user_id: *const c_char,
    meet_obj: *const c_char,
    usr_ext_dat: *const c_char,
    cookie: *const c_char,
    call_id_out: *mut c_char,
    call_id_cap: usize,
) -> i32 {
    with_client(c, |client| {
        check_id_buf(call_id_out, call_id_cap)?;
        let call_id = client.call(
            str_arg(called_user_id, Null::Refuse, USER_ID_MAX)?,
            opaque(meet_obj)?,
            opaque(usr_ext_dat)?,
            opaque(cookie)?,
        )?;
        write_id(&call_id, call_id_out);
        Ok(())
    })
}

/// Accepts the call `call_id` ringing here. `meet_obj` (empty or a JSON object) is handed to
/// the caller; empty means the caller's own is used. Result: `accept_call_success`, or
/// `accept_call_fail(600)` if the call is unknown, ended, or not ringing for you.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_accept_call(
    c: *mut crvm_client,
    call_id: *const c_char,
    meet_obj: *const c_char,
    usr_ext_dat: *const c_char,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        client.accept_call(
            str_arg(call_id, Null::Refuse, ID_MAX)?,
            opaque(meet_obj)?,
            opaque(usr_ext_dat)?,
            opaque(cookie)?,
        )
    })
}

/// Refuses the call `call_id` ringing here; the caller gets `notify_call_rejected(606)`.
/// Result: `reject_call_success`, or `reject_call_fail(600)`.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_reject_call(
    c: *mut crvm_client,
    call_id: *const c_char,
    usr_ext_dat: *const c_char,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        client.reject_call(
            str_arg(call_id, Null::Refuse, ID_MAX)?,
            opaque(usr_ext_dat)?,
            opaque(cookie)?,
        )
    })
}

/// Hangs up the call `call_id`, ringing or connected (the caller hanging up a ringing call
/// cancels it); the other party gets `notify_call_hungup`. Result: `hungup_call_success`, or
/// `hungup_call_fail(600)` if the call is unknown, ended, or not yours.
///
/// # Safety
/// String arguments are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_hungup_call(
    c: *mut crvm_client,
    call_id: *const c_char,
    usr_ext_dat: *const c_char,
    cookie: *const c_char,
) -> i32 {
    with_client(c, |client| {
        client.hungup_call(
            str_arg(call_id, Null::Refuse, ID_MAX)?,
            opaque(usr_ext_dat)?,
            opaque(cookie)?,
        )
    })
}

/// Longest base64 text accepted for a cmd before decoding; anything longer decodes to more than
/// the 51,200-byte limit anyway and is refused with 1100.
const CMD_TEXT_MAX: usize = 1 << 20;

/// Sends a small message: `data_base64` decodes to at most 51,200 bytes (else 1100; bad base64
/// 13). Writes the task ID to `task_id_out` (`task_id_cap >= CRVM_ID_BUF_LEN`, else 5).
/// Result: `send_cmd_rlst(task, 0)` once the target's app has it, or 1102 if the target is
/// offline or unknown. The target gets `notify_cmd_data`. Not cancellable. Never refused for
/// volume: cmds beyond the flow-control window wait their turn, and cmds to one target arrive
/// in the order they were sent; only when `max_pending_bytes` would be exceeded is it refused
/// (1000, nothing sent).
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `task_id_out` is NULL or `task_id_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn crvm_send_cmd(
    c: *mut crvm_client,
    target_user_id: *const c_char,
    data_base64: *const c_char,
    task_id_out: *mut c_char,
    task_id_cap: usize,
) -> i32 {
    with_client(c, |client| {
        check_id_buf(task_id_out, task_id_cap)?;
        let target = str_arg(target_user_id, Null::Refuse, USER_ID_MAX)?;
        let text = bytes_arg(data_base64, Null::Refuse, CMD_TEXT_MAX).map_err(|e| {
            // Over-long text is over-size data, not a malformed argument.
            if data_base64.is_null() {
                e
            } else {
                code(CRVIDEOSDK_SENDCMD_LARGE)
            }
        })?;
        let task = client.send_cmd(target, decode_base64(text)?)?;
        write_id(&task, task_id_out);
        Ok(())
    })
}

/// Sends a block of data: `data_base64` decodes to at most `max_buffer_bytes` (client option and
/// server limit, default 100 MiB; else 1101; bad base64 13). Task ID as for `crvm_send_cmd`.
/// Progress: `send_progress` as the target stores data; result: `send_buffer_rlst`. The target
/// gets one `notify_buffer_data` with the whole buffer. Cancellable with `crvm_cancel_send`.
/// Buffers beyond those sent at once wait their turn; 1000 when `max_pending_bytes` would be
/// exceeded.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `task_id_out` is NULL or `task_id_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn crvm_send_buffer(
    c: *mut crvm_client,
    target_user_id: *const c_char,
    data_base64: *const c_char,
    task_id_out: *mut c_char,
    task_id_cap: usize,
) -> i32 {
    with_client(c, |client| {
        check_id_buf(task_id_out, task_id_cap)?;
        let target = str_arg(target_user_id, Null::Refuse, USER_ID_MAX)?;
        let text = bytes_arg(data_base64, Null::Refuse, usize::MAX - 1)?;
        let task = client.send_buffer(target, decode_base64(text)?)?;
        write_id(&task, task_id_out);
        Ok(())
    })
}

/// Sends the file at path `file_name`, streamed from disk. Refused at once: missing 1400,
/// unreadable or not a regular file 1401, larger than the server's `max_file_bytes` 1103.
/// Task ID as for `crvm_send_cmd`. Progress: `send_progress`; result: `send_file_rlst(task,
/// file_name, code)`: 0 once the target has the whole file with a matching checksum, 1102
/// target offline or gone, 1402 the target could not store it, 207 connection lost. The target
/// gets `notify_file_data` with the file's path in its `download_dir`. Cancellable.
///
/// # Safety
/// String arguments are NULL or NUL-terminated; `task_id_out` is NULL or `task_id_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn crvm_send_file(
    c: *mut crvm_client,
    target_user_id: *const c_char,
    file_name: *const c_char,
    task_id_out: *mut c_char,
    task_id_cap: usize,
) -> i32 {
    with_client(c, |client| {
        check_id_buf(task_id_out, task_id_cap)?;
        let task = client.send_file(
            str_arg(target_user_id, Null::Refuse, USER_ID_MAX)?,
            str_arg(file_name, Null::Refuse, PATH_MAX)?,
        )?;
        write_id(&task, task_id_out);
        Ok(())
    })
}

/// Cancels a buffer or file transfer in flight. Result: `cancel_send_rlst(task, 0)`, after which
/// no `send_*_rlst` follows and the target gets `notify_cancel_send` and discards what it had; or
/// `cancel_send_rlst(task, 1104)` for an unknown or finished task, or a cmd.
///
/// # Safety
/// `task_id` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn crvm_cancel_send(c: *mut crvm_client, task_id: *const c_char) -> i32 {
    with_client(c, |client| {
        client.cancel_send(str_arg(task_id, Null::Refuse, ID_MAX)?)
    })
}

fn check_id_buf(out: *mut c_char, cap: usize) -> Result<(), Code> {
    if out.is_null() || cap < CRVM_ID_BUF_LEN {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    Ok(())
}

/// Copies an ID and its NUL into a caller buffer already checked to hold `CRVM_ID_BUF_LEN`.
///
/// # Safety
/// `out` is valid for `CRVM_ID_BUF_LEN` bytes and `id` is shorter than that.
unsafe fn write_id(id: &str, out: *mut c_char) {
    debug_assert!(id.len() < CRVM_ID_BUF_LEN);
    std::ptr::copy_nonoverlapping(id.as_ptr() as *const c_char, out, id.len());
    *out.add(id.len()) = 0;
}
