//! `crvm_callbacks`: the app's event functions, copied at `crvm_create`, and the handler that
//! turns each core [`Event`] into one call of the matching member.

use crate::core::{Event, EventHandler};
use std::ffi::{c_char, c_void, CString};

// The members are spelled out in full (no type aliases) so that the header shows each
// callback's exact C signature, as pinned in SPEC §2.3.

/// Event callbacks (SPEC §2.3). Zero-fill the struct and set the members you need: a NULL member
/// ignores that event. Pass `sizeof(crvm_callbacks)` as `callbacks_size` to `crvm_create`;
/// members are only ever appended, so an app built against an older, shorter struct keeps working.
///
/// Every callback runs on the client's dispatcher thread (or inside `crvm_poll` with
/// `dispatch=manual`), one at a time, in the order the events happened, with no library lock
/// held: it may call any `crvm_*` function, including `crvm_destroy` of its own client. String
/// arguments are valid only during the call. `ud` is the `user_data` given to `crvm_create`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct crvm_callbacks {
    /// `crvm_login` succeeded; `usr_id` is the user ID (server-generated if none was given).
    pub login_success:
        Option<unsafe extern "C" fn(ud: *mut c_void, usr_id: *const c_char, cookie: *const c_char)>,
    /// `crvm_login` failed with `sdk_err` (7 wrong app/secret, 14/18/21 token, 202, 203, ...).
    pub login_fail:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// The session ended without `crvm_logout`: 10 kicked by a newer login, 206 server shut
    /// down, 207 connection lost. The client is logged out.
    pub line_off: Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32)>,
    pub set_dnd_status_success:
        Option<unsafe extern "C" fn(ud: *mut c_void, cookie: *const c_char)>,
    pub set_dnd_status_fail:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// `users_status` is a JSON array of `{"userID":..,"userStatus":..,"DNDType":..}` objects,
    /// one per online user of the tenant, the caller included.
    pub get_user_status_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, users_status: *const c_char, cookie: *const c_char),
    >,
    pub get_user_status_fail:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// A user of the tenant changed status; `cookie` is the one given to
    /// `crvm_start_user_status_notify`.
    pub notify_user_status: Option<
        unsafe extern "C" fn(ud: *mut c_void, user_status: *const c_char, cookie: *const c_char),
    >,
    pub start_user_status_notify_rslt:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    pub stop_user_status_notify_rslt:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// `meet_obj` is the meeting's JSON object (`ID`, `pswd`, `subject`, `pubMeetUrl`,
    /// `creator`, `memberCount`, `startTime`).
    pub create_meeting_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, meet_obj: *const c_char, cookie: *const c_char),
    >,
    pub create_meeting_fail:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// 0, or 800 when the meeting does not exist or is not yours.
    pub destroy_meeting_rslt:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    /// JSON array of the tenant's meeting objects.
    pub get_meetings_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, json_meetings: *const c_char, cookie: *const c_char),
    >,
    pub get_meetings_fail:
        Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    pub call_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, call_id: *const c_char, cookie: *const c_char),
    >,
    pub call_fail: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub accept_call_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, call_id: *const c_char, cookie: *const c_char),
    >,
    pub accept_call_fail: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub reject_call_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, call_id: *const c_char, cookie: *const c_char),
    >,
    pub reject_call_fail: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub hungup_call_success: Option<
        unsafe extern "C" fn(ud: *mut c_void, call_id: *const c_char, cookie: *const c_char),
    >,
    pub hungup_call_fail: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub notify_call_in: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            meet_obj: *const c_char,
            caller_id: *const c_char,
            usr_ext_dat: *const c_char,
        ),
    >,
    pub notify_call_accepted: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            usr_ext_dat: *const c_char,
            meet_obj: *const c_char,
        ),
    >,
    pub notify_call_rejected: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            call_id: *const c_char,
            reason: i32,
            usr_ext_dat: *const c_char,
        ),
    >,
    pub notify_call_hungup: Option<
        unsafe extern "C" fn(ud: *mut c_void, call_id: *const c_char, usr_ext_dat: *const c_char),
    >,
    pub send_cmd_rlst: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            task_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub send_buffer_rlst: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            task_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub send_file_rlst: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            task_id: *const c_char,
            file_name: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub send_progress: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            task_id: *const c_char,
            sended_len: i64,
            total_len: i64,
            cookie: *const c_char,
        ),
    >,
    pub cancel_send_rlst: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            task_id: *const c_char,
            sdk_err: i32,
            cookie: *const c_char,
        ),
    >,
    pub notify_cmd_data: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            source_user_id: *const c_char,
            data_base64: *const c_char,
        ),
    >,
    pub notify_buffer_data: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            source_user_id: *const c_char,
            data_base64: *const c_char,
        ),
    >,
    pub notify_file_data: Option<
        unsafe extern "C" fn(
            ud: *mut c_void,
            source_user_id: *const c_char,
            tmp_file: *const c_char,
            org_file_name: *const c_char,
        ),
    >,
    pub notify_cancel_send: Option<unsafe extern "C" fn(ud: *mut c_void, send_id: *const c_char)>,
    // extensions are appended here, never inserted above
}

/// Reads the app's callbacks: only `size` bytes (rounded down to whole members), the rest NULL.
///
/// # Safety
/// `src` is NULL or points to at least `size` readable bytes.
pub(crate) unsafe fn copy_callbacks(src: *const crvm_callbacks, size: usize) -> crvm_callbacks {
    let mut out = crvm_callbacks::default();
    if !src.is_null() {
        let member = std::mem::size_of::<Option<unsafe extern "C" fn()>>();
        let n = size.min(std::mem::size_of::<crvm_callbacks>()) / member * member;
        std::ptr::copy_nonoverlapping(
            src as *const u8,
            &mut out as *mut crvm_callbacks as *mut u8,
            n,
        );
    }
    out
}

/// The app's callbacks plus its `user_data`, as the core's event handler.
pub(crate) struct CHandler {
    cbs: crvm_callbacks,
    ud: *mut c_void,
}

// SAFETY: the app hands us `user_data` knowing that callbacks run on the client's dispatcher
// thread (documented on crvm_create); the library itself never dereferences it.
unsafe impl Send for CHandler {}
unsafe impl Sync for CHandler {}

impl CHandler {
    pub fn new(cbs: crvm_callbacks, ud: *mut c_void) -> Self {
        CHandler { cbs, ud }
    }
}

/// A C string for a callback argument. Our strings never contain NUL (they come from C strings
/// or from serde_json, which escapes control characters); should one ever appear, it is cut there.
fn cs(s: &str) -> CString {
    let bytes = s.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("no interior NUL after the cut")
}

impl EventHandler for CHandler {
    fn on_event(&self, ev: &Event) {
        let ud = self.ud;
        let c = &self.cbs;
        // SAFETY: each member is a C function pointer the app registered with this signature;
        // every string argument lives until the call returns.
        unsafe {
            match ev {
                Event::LoginSuccess { user_id, cookie } => {
                    if let Some(f) = c.login_success {
                        f(ud, cs(user_id).as_ptr(), cs(cookie).as_ptr())
                    }
                }
                Event::LoginFail { code, cookie } => err(c.login_fail, ud, *code, cookie),
                Event::LineOff { code } => {
                    if let Some(f) = c.line_off {
                        f(ud, *code)
                    }
                }
                Event::SetDndStatusSuccess { cookie } => one(c.set_dnd_status_success, ud, cookie),
                Event::SetDndStatusFail { code, cookie } => {
                    err(c.set_dnd_status_fail, ud, *code, cookie)
                }
                Event::GetUserStatusSuccess {
                    users_status,
                    cookie,
                } => {
                    if let Some(f) = c.get_user_status_success {
                        f(ud, cs(users_status).as_ptr(), cs(cookie).as_ptr())
                    }
                }
                Event::GetUserStatusFail { code, cookie } => {
                    err(c.get_user_status_fail, ud, *code, cookie)
                }
                Event::NotifyUserStatus {
                    user_status,
                    cookie,
                } => {
                    if let Some(f) = c.notify_user_status {
                        f(ud, cs(user_status).as_ptr(), cs(cookie).as_ptr())
                    }
                }
                Event::StartUserStatusNotifyRslt { code, cookie } => {
                    err(c.start_user_status_notify_rslt, ud, *code, cookie)
                }
                Event::StopUserStatusNotifyRslt { code, cookie } => {
                    err(c.stop_user_status_notify_rslt, ud, *code, cookie)
                }
                Event::CreateMeetingSuccess { meet_obj, cookie } => {
                    if let Some(f) = c.create_meeting_success {
                        f(ud, cs(meet_obj).as_ptr(), cs(cookie).as_ptr())
                    }
                }
                Event::CreateMeetingFail { code, cookie } => {
                    err(c.create_meeting_fail, ud, *code, cookie)
                }
                Event::DestroyMeetingRslt { code, cookie } => {
                    err(c.destroy_meeting_rslt, ud, *code, cookie)
                }
                Event::GetMeetingsSuccess {
                    json_meetings,
                    cookie,
                } => {
                    if let Some(f) = c.get_meetings_success {
                        f(ud, cs(json_meetings).as_ptr(), cs(cookie).as_ptr())
                    }
                }
                Event::GetMeetingsFail { code, cookie } => {
                    err(c.get_meetings_fail, ud, *code, cookie)
                }
                Event::CallSuccess { call_id, cookie } => {
                    call_ok(c.call_success, ud, call_id, cookie)
                }
                Event::CallFail {
                    call_id,
                    code,
                    cookie,
                } => call_err(c.call_fail, ud, call_id, *code, cookie),
                Event::AcceptCallSuccess { call_id, cookie } => {
                    call_ok(c.accept_call_success, ud, call_id, cookie)
                }
                Event::AcceptCallFail {
                    call_id,
                    code,
                    cookie,
                } => call_err(c.accept_call_fail, ud, call_id, *code, cookie),
                Event::RejectCallSuccess { call_id, cookie } => {
                    call_ok(c.reject_call_success, ud, call_id, cookie)
                }
                Event::RejectCallFail {
                    call_id,
                    code,
                    cookie,
                } => call_err(c.reject_call_fail, ud, call_id, *code, cookie),
                Event::HungupCallSuccess { call_id, cookie } => {
                    call_ok(c.hungup_call_success, ud, call_id, cookie)
                }
                Event::HungupCallFail {
                    call_id,
                    code,
                    cookie,
                } => call_err(c.hungup_call_fail, ud, call_id, *code, cookie),
                Event::NotifyCallIn {
                    call_id,
                    meet_obj,
                    caller_id,
                    usr_ext_dat,
                } => {
                    if let Some(f) = c.notify_call_in {
                        f(
                            ud,
                            cs(call_id).as_ptr(),
                            cs(meet_obj).as_ptr(),
                            cs(caller_id).as_ptr(),
                            cs(usr_ext_dat).as_ptr(),
                        )
                    }
                }
                Event::NotifyCallAccepted {
                    call_id,
                    usr_ext_dat,
                    meet_obj,
                } => {
                    if let Some(f) = c.notify_call_accepted {
                        f(
                            ud,
                            cs(call_id).as_ptr(),
                            cs(usr_ext_dat).as_ptr(),
                            cs(meet_obj).as_ptr(),
                        )
                    }
                }
                Event::NotifyCallRejected {
                    call_id,
                    reason,
                    usr_ext_dat,
                } => {
                    if let Some(f) = c.notify_call_rejected {
                        f(ud, cs(call_id).as_ptr(), *reason, cs(usr_ext_dat).as_ptr())
                    }
                }
                Event::NotifyCallHungup {
                    call_id,
                    usr_ext_dat,
                } => {
                    if let Some(f) = c.notify_call_hungup {
                        f(ud, cs(call_id).as_ptr(), cs(usr_ext_dat).as_ptr())
                    }
                }
                Event::SendCmdRlst { task_id, code } => {
                    task_err(c.send_cmd_rlst, ud, task_id, *code)
                }
                Event::SendBufferRlst { task_id, code } => {
                    task_err(c.send_buffer_rlst, ud, task_id, *code)
                }
                Event::SendFileRlst {
                    task_id,
                    file_name,
                    code,
                } => {
                    if let Some(f) = c.send_file_rlst {
                        f(
                            ud,
                            cs(task_id).as_ptr(),
                            cs(file_name).as_ptr(),
                            *code,
                            cs("").as_ptr(),
                        )
                    }
                }
                Event::SendProgress {
                    task_id,
                    sent,
                    total,
                } => {
                    if let Some(f) = c.send_progress {
                        f(ud, cs(task_id).as_ptr(), *sent, *total, cs("").as_ptr())
                    }
                }
                Event::CancelSendRlst { task_id, code } => {
                    task_err(c.cancel_send_rlst, ud, task_id, *code)
                }
                Event::NotifyCmdData {
                    source_user_id,
                    data_base64,
                } => {
                    if let Some(f) = c.notify_cmd_data {
                        f(ud, cs(source_user_id).as_ptr(), cs(data_base64).as_ptr())
                    }
                }
                Event::NotifyBufferData {
                    source_user_id,
                    data_base64,
                } => {
                    if let Some(f) = c.notify_buffer_data {
                        f(ud, cs(source_user_id).as_ptr(), cs(data_base64).as_ptr())
                    }
                }
                Event::NotifyFileData {
                    source_user_id,
                    tmp_file,
                    org_file_name,
                } => {
                    if let Some(f) = c.notify_file_data {
                        f(
                            ud,
                            cs(source_user_id).as_ptr(),
                            cs(tmp_file).as_ptr(),
                            cs(org_file_name).as_ptr(),
                        )
                    }
                }
                Event::NotifyCancelSend { send_id } => {
                    if let Some(f) = c.notify_cancel_send {
                        f(ud, cs(send_id).as_ptr())
                    }
                }
            }
        }
    }
}

unsafe fn one(
    f: Option<unsafe extern "C" fn(ud: *mut c_void, cookie: *const c_char)>,
    ud: *mut c_void,
    cookie: &str,
) {
    if let Some(f) = f {
        f(ud, cs(cookie).as_ptr())
    }
}

unsafe fn err(
    f: Option<unsafe extern "C" fn(ud: *mut c_void, sdk_err: i32, cookie: *const c_char)>,
    ud: *mut c_void,
    code: i32,
    cookie: &str,
) {
    if let Some(f) = f {
        f(ud, code, cs(cookie).as_ptr())
    }
}

/// The signature shared by every `*_success` of a call request.
type CallOk = Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char)>;
/// The signature shared by every `*_fail` of a call request.
type CallErr = Option<unsafe extern "C" fn(*mut c_void, *const c_char, i32, *const c_char)>;

/// `send_cmd_rlst`, `send_buffer_rlst` and `cancel_send_rlst` share the shape of a call failure;
/// their cookie is always "" (the methods take none).
unsafe fn task_err(f: CallErr, ud: *mut c_void, task_id: &str, code: i32) {
    call_err(f, ud, task_id, code, "")
}

unsafe fn call_ok(f: CallOk, ud: *mut c_void, call_id: &str, cookie: &str) {
    if let Some(f) = f {
        f(ud, cs(call_id).as_ptr(), cs(cookie).as_ptr())
    }
}

unsafe fn call_err(f: CallErr, ud: *mut c_void, call_id: &str, code: i32, cookie: &str) {
    if let Some(f) = f {
        f(ud, cs(call_id).as_ptr(), code, cs(cookie).as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_has_36_pointer_members() {
        let member = std::mem::size_of::<usize>();
        assert_eq!(std::mem::size_of::<crvm_callbacks>(), 36 * member);
    }

    #[test]
    fn short_struct_reads_only_its_members() {
        unsafe extern "C" fn ok(_: *mut c_void, _: *const c_char, _: *const c_char) {}
        let full = crvm_callbacks {
            login_success: Some(ok),
            set_dnd_status_success: None,
            get_user_status_success: Some(ok),
            ..Default::default()
        };
        let member = std::mem::size_of::<usize>();
        // An app that only knew the first member; a size that is not a whole member rounds down.
        let c = unsafe { copy_callbacks(&full, member + 3) };
        assert!(c.login_success.is_some());
        assert!(c.get_user_status_success.is_none());
        let c = unsafe { copy_callbacks(std::ptr::null(), 1000) };
        assert!(c.login_success.is_none());
        let c = unsafe { copy_callbacks(&full, usize::MAX) };
        assert!(c.get_user_status_success.is_some());
    }
}
