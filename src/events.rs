// The one table of events (docs/API.md §2.3). Every row is a variant of the core's typed `Event`
// (its fields), matched on one of its fields (`on`), and the C callback each outcome is
// delivered through, with how each C argument is made (`name: kind = expression`).
//
// Kinds: `Id` a string that is safe to log (user, call and task IDs), `Str` any other string,
// `Json` a value serialised with the pinned keys (docs/API.md §3.2, §3.3), `B64` bytes as base64,
// `Code` an error `Code`, `Rslt` a `Result<(), Code>` as 0 or its code, `I32`/`I64` integers.
//
// The table is read by macros in three places, so that nothing is kept by hand twice:
// - `core::event` makes the `Event` enum, `Event::name` and `Event::summary` (log lines);
// - `ffi::callbacks` makes the `#[repr(C)] crvm_callbacks` struct and the dispatch of each
//   event to its member;
// - `codegen/mirrors.rs`, run by `build.rs`, renders the struct into `include/crvm.h`
//   (cbindgen does not expand macros), the C++ wrapper's `crvm::Event`, `crvm::Handlers`, its
//   trampolines and `on_<event>` setters into marked regions of `include/crvm.hpp`, and the Python binding's `EVENTS` into
//   `bindings/python/crvm/_abi.py`; `tests/mirrors.rs` fails if a committed copy is stale.
// The C members come out in row order: the pinned order of docs/API.md §2.3. New rows go at the end
// (members are only ever appended); each gives its callbacks to C, C++ and Python at once.
//
// This file holds nothing but the macro: `build.rs` includes it as it is.

/// Calls `$m!` with the table.
macro_rules! for_each_event {
    ($m:ident) => {
        $m! {
            /// Event callbacks (docs/API.md §2.3). Zero-fill the struct and set the members you need:
            /// a NULL member ignores that event. Pass `sizeof(crvm_callbacks)` as
            /// `callbacks_size` to `crvm_create`; members are only ever appended, so an app
            /// built against an older, shorter struct keeps working.
            ///
            /// Every callback runs on the client's own network thread (or inside `crvm_poll`
            /// with `dispatch=manual`), one at a time, in the order the events happened, with
            /// no library lock held: it may call any `crvm_*` function, including
            /// `crvm_destroy` of its own client. A callback that blocks holds up this client's
            /// network traffic (not other clients'), so return promptly; copy what you keep,
            /// as string arguments are valid only during the call. `ud` is the `user_data`
            /// given to `crvm_create`.
            struct crvm_callbacks;

            /// The end of a `login`.
            Login { result: Result<String, Code>, cookie: String } on result {
                /// `crvm_login` succeeded; `usr_id` is the user ID (server-generated if none
                /// was given).
                Ok(user_id) => login_success(usr_id: Id = user_id, cookie: Str = cookie),
                /// `crvm_login` failed with `sdk_err` (7 wrong app or secret, 14/18/21 token,
                /// 9 a logout came first, 202 no answer, 203 no connection, 209 TLS).
                Err(e) => login_fail(sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The session ended without a logout.
            LineOff { code: Code } on () {
                /// The session ended without `crvm_logout`: 10 kicked by a newer login, 206
                /// server shut down, 207 connection lost. The client is logged out.
                _ => line_off(sdk_err: Code = code),
            }
            /// The end of a `set_dnd_status`.
            SetDndStatus { result: Result<(), Code>, cookie: String } on result {
                /// Do-not-disturb is set and pushed to subscribers.
                Ok(()) => set_dnd_status_success(cookie: Str = cookie),
                Err(e) => set_dnd_status_fail(sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of a `get_user_status`: every online user of the tenant.
            GetUserStatus { result: Result<Vec<UserStatus>, Code>, cookie: String } on result {
                /// `users_status` is a JSON array of `{"userID":..,"userStatus":..,"DNDType":..}`
                /// objects, one per online user of the tenant, the caller included (with
                /// `"reconnecting":true` for a user whose link is down, docs/API.md §3.2).
                Ok(list) => get_user_status_success(users_status: Json = list, cookie: Str = cookie),
                Err(e) => get_user_status_fail(sdk_err: Code = e, cookie: Str = cookie),
            }
            /// A user of the tenant changed status (after `start_user_status_notify`), or the
            /// callee of a call just made is reconnecting; the cookie is the subscription's,
            /// shared by all its pushes.
            NotifyUserStatus { status: UserStatus, cookie: Arc<str> } on () {
                /// A user of the tenant changed status: `user_status` is its status object
                /// (`"reconnecting":true` while its link is down, docs/API.md §3.2), also sent
                /// right after `call_success` when the callee is reconnecting; `cookie` is the
                /// one given to `crvm_start_user_status_notify` ("" without one).
                _ => notify_user_status(user_status: Json = status, cookie: Str = cookie),
            }
            /// The end of a `start_user_status_notify`.
            StartUserStatusNotify { result: Result<(), Code>, cookie: String } on () {
                /// 0: status pushes (`notify_user_status`) follow from now on.
                _ => start_user_status_notify_rslt(sdk_err: Rslt = result, cookie: Str = cookie),
            }
            /// The end of a `stop_user_status_notify`.
            StopUserStatusNotify { result: Result<(), Code>, cookie: String } on () {
                /// 0: no more status pushes.
                _ => stop_user_status_notify_rslt(sdk_err: Rslt = result, cookie: Str = cookie),
            }
            /// The end of a `create_meeting`.
            CreateMeeting { result: Result<Meeting, Code>, cookie: String } on result {
                /// `meet_obj` is the meeting's JSON object (`ID`, `pswd`, `subject`,
                /// `pubMeetUrl`, `creator`, `memberCount`, `startTime`).
                Ok(m) => create_meeting_success(meet_obj: Json = m, cookie: Str = cookie),
                Err(e) => create_meeting_fail(sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of a `destroy_meeting`.
            DestroyMeeting { result: Result<(), Code>, cookie: String } on () {
                /// 0, or 800 when the meeting does not exist or is not yours.
                _ => destroy_meeting_rslt(sdk_err: Rslt = result, cookie: Str = cookie),
            }
            /// The end of a `get_meetings`.
            GetMeetings { result: Result<Vec<Meeting>, Code>, cookie: String } on result {
                /// `json_meetings` is a JSON array of the tenant's meeting objects.
                Ok(list) => get_meetings_success(json_meetings: Json = list, cookie: Str = cookie),
                Err(e) => get_meetings_fail(sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of a `call`.
            Call { call_id: String, result: Result<(), Code>, cookie: String } on result {
                /// The callee has been notified (`notify_call_in`) and is ringing.
                Ok(()) => call_success(call_id: Id = call_id, cookie: Str = cookie),
                /// 603 callee offline or unknown, 602 busy or DND on, 601 you are already in a
                /// call, 5 calling yourself.
                Err(e) => call_fail(call_id: Id = call_id, sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of an `accept_call`.
            AcceptCall { call_id: String, result: Result<(), Code>, cookie: String } on result {
                /// The call is connected; the caller got `notify_call_accepted`.
                Ok(()) => accept_call_success(call_id: Id = call_id, cookie: Str = cookie),
                /// 600: unknown, ended, or not ringing for you.
                Err(e) => accept_call_fail(call_id: Id = call_id, sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of a `reject_call`.
            RejectCall { call_id: String, result: Result<(), Code>, cookie: String } on result {
                /// Refused; the caller got `notify_call_rejected(606)`.
                Ok(()) => reject_call_success(call_id: Id = call_id, cookie: Str = cookie),
                Err(e) => reject_call_fail(call_id: Id = call_id, sdk_err: Code = e, cookie: Str = cookie),
            }
            /// The end of a `hungup_call`.
            HangupCall { call_id: String, result: Result<(), Code>, cookie: String } on result {
                /// Ended; the other party got `notify_call_hungup`.
                Ok(()) => hungup_call_success(call_id: Id = call_id, cookie: Str = cookie),
                Err(e) => hungup_call_fail(call_id: Id = call_id, sdk_err: Code = e, cookie: Str = cookie),
            }
            /// Someone calls this user.
            NotifyCallIn { call_id: String, meet_obj: String, caller_id: String, usr_ext_dat: String } on () {
                /// `caller_id` calls you; answer with `crvm_accept_call` or `crvm_reject_call`.
                _ => notify_call_in(call_id: Id = call_id, meet_obj: Str = meet_obj, caller_id: Id = caller_id, usr_ext_dat: Str = usr_ext_dat),
            }
            /// The callee accepted this user's call.
            NotifyCallAccepted { call_id: String, usr_ext_dat: String, meet_obj: String } on () {
                /// `meet_obj` is the callee's, or your own when the callee gave none.
                _ => notify_call_accepted(call_id: Id = call_id, usr_ext_dat: Str = usr_ext_dat, meet_obj: Str = meet_obj),
            }
            /// This user's call ended before it was accepted.
            NotifyCallRejected { call_id: String, reason: Code, usr_ext_dat: String } on () {
                /// `reason`: 606 refused, 604 no answer, 603 the callee went away.
                _ => notify_call_rejected(call_id: Id = call_id, reason: Code = reason, usr_ext_dat: Str = usr_ext_dat),
            }
            /// The other party ended the call.
            NotifyCallHungup { call_id: String, usr_ext_dat: String } on () {
                /// The other party hung up or cancelled, went away, or the call timed out.
                _ => notify_call_hungup(call_id: Id = call_id, usr_ext_dat: Str = usr_ext_dat),
            }
            /// The end of a `send_cmd`.
            CmdSent { task_id: String, result: Result<(), Code> } on () {
                /// 0 once the target's app has the cmd; 1102 target offline or gone, 207
                /// connection lost, 12 logged out.
                _ => send_cmd_rlst(task_id: Id = task_id, sdk_err: Rslt = result, cookie: Str = ""),
            }
            /// The end of a `send_buffer`.
            BufferSent { task_id: String, result: Result<(), Code> } on () {
                /// 0 once the target's app has the whole buffer; 1102, 207, 12 as for cmds.
                _ => send_buffer_rlst(task_id: Id = task_id, sdk_err: Rslt = result, cookie: Str = ""),
            }
            /// The end of a `send_file`.
            FileSent { task_id: String, path: String, result: Result<(), Code> } on () {
                /// `file_name` is the path given to `crvm_send_file`. 0 once the target has
                /// the whole file with a matching checksum; 1102 target offline or gone, 1402
                /// the target could not store it, 1401 the file became unreadable, 207
                /// connection lost, 12 logged out.
                _ => send_file_rlst(task_id: Id = task_id, file_name: Str = path, sdk_err: Rslt = result, cookie: Str = ""),
            }
            /// Bytes of a buffer or file the target has stored.
            SendProgress { task_id: String, sent: u64, total: u64 } on () {
                /// The target has stored `sended_len` of `total_len` bytes: monotonic, at least
                /// every 1 MiB or 250 ms while data moves, and a last one with both equal.
                _ => send_progress(task_id: Id = task_id, sended_len: I64 = *sent as i64, total_len: I64 = *total as i64, cookie: Str = ""),
            }
            /// The end of a `cancel_send`.
            CancelSend { task_id: String, result: Result<(), Code> } on () {
                /// 0: cancelled, no `send_*_rlst` follows; 1104 unknown or finished task, or a
                /// cmd.
                _ => cancel_send_rlst(task_id: Id = task_id, sdk_err: Rslt = result, cookie: Str = ""),
            }
            /// A cmd for this user.
            NotifyCmdData { from: String, data: Vec<u8> } on () {
                /// A cmd from `source_user_id`; `data_base64` is its bytes in base64.
                _ => notify_cmd_data(source_user_id: Id = from, data_base64: B64 = data),
            }
            /// A buffer for this user.
            NotifyBufferData { from: String, data: Vec<u8> } on () {
                /// A whole buffer from `source_user_id`, in base64.
                _ => notify_buffer_data(source_user_id: Id = from, data_base64: B64 = data),
            }
            /// A file for this user, complete and checked.
            NotifyFileData { from: String, path: String, name: String } on () {
                /// `tmp_file` is the absolute path of the received file in `download_dir`,
                /// which the app now owns; `org_file_name` the sender's base name, sanitised.
                _ => notify_file_data(source_user_id: Id = from, tmp_file: Str = path, org_file_name: Str = name),
            }
            /// A transfer to this user was cancelled by its sender.
            NotifyCancelSend { task_id: String } on () {
                /// The sender cancelled (or lost) the transfer `send_id`; what had arrived of
                /// it is discarded.
                _ => notify_cancel_send(send_id: Id = task_id),
            }
            /// The link was lost and the session is being resumed (docs/API.md §3.6).
            LineReconnecting { code: Code } on () {
                /// The connection was lost (`sdk_err`: why, e.g. 207) and the library is
                /// resuming the session: requests are accepted and queued meanwhile, calls and
                /// transfers carry on. `line_resumed` follows, or — if the session cannot be
                /// resumed — each outstanding request's result with 207, then `line_off`.
                _ => line_reconnecting(sdk_err: Code = code),
            }
            /// The session is resumed (docs/API.md §3.6).
            LineResumed { offline_ms: u64 } on () {
                /// The session is resumed after `offline_ms` milliseconds without a link;
                /// nothing was lost and nothing will arrive twice.
                _ => line_resumed(offline_ms: I64 = *offline_ms as i64),
            }
        }
    };
}
