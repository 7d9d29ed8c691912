//! Events the core reports to the app, in the order they happened. The FFI layer turns each into
//! one call of the matching `crvm_callbacks` member; Rust users match on them directly.

/// One documented event (SPEC §2.3). Strings are owned; JSON payloads are already serialised with
/// the pinned key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LoginSuccess {
        user_id: String,
        cookie: String,
    },
    LoginFail {
        code: i32,
        cookie: String,
    },
    LineOff {
        code: i32,
    },
    SetDndStatusSuccess {
        cookie: String,
    },
    SetDndStatusFail {
        code: i32,
        cookie: String,
    },
    GetUserStatusSuccess {
        users_status: String,
        cookie: String,
    },
    GetUserStatusFail {
        code: i32,
        cookie: String,
    },
    NotifyUserStatus {
        user_status: String,
        cookie: String,
    },
    StartUserStatusNotifyRslt {
        code: i32,
        cookie: String,
    },
    StopUserStatusNotifyRslt {
        code: i32,
        cookie: String,
    },
    CreateMeetingSuccess {
        meet_obj: String,
        cookie: String,
    },
    CreateMeetingFail {
        code: i32,
        cookie: String,
    },
    DestroyMeetingRslt {
        code: i32,
        cookie: String,
    },
    GetMeetingsSuccess {
        json_meetings: String,
        cookie: String,
    },
    GetMeetingsFail {
        code: i32,
        cookie: String,
    },
    CallSuccess {
        call_id: String,
        cookie: String,
    },
    CallFail {
        call_id: String,
        code: i32,
        cookie: String,
    },
    AcceptCallSuccess {
        call_id: String,
        cookie: String,
    },
    AcceptCallFail {
        call_id: String,
        code: i32,
        cookie: String,
    },
    RejectCallSuccess {
        call_id: String,
        cookie: String,
    },
    RejectCallFail {
        call_id: String,
        code: i32,
        cookie: String,
    },
    HungupCallSuccess {
        call_id: String,
        cookie: String,
    },
    HungupCallFail {
        call_id: String,
        code: i32,
        cookie: String,
    },
    NotifyCallIn {
        call_id: String,
        meet_obj: String,
        caller_id: String,
        usr_ext_dat: String,
    },
    NotifyCallAccepted {
        call_id: String,
        usr_ext_dat: String,
        meet_obj: String,
    },
    NotifyCallRejected {
        call_id: String,
        reason: i32,
        usr_ext_dat: String,
    },
    NotifyCallHungup {
        call_id: String,
        usr_ext_dat: String,
    },
    SendCmdRlst {
        task_id: String,
        code: i32,
    },
    SendBufferRlst {
        task_id: String,
        code: i32,
    },
    SendFileRlst {
        task_id: String,
        file_name: String,
        code: i32,
    },
    SendProgress {
        task_id: String,
        sent: i64,
        total: i64,
    },
    CancelSendRlst {
        task_id: String,
        code: i32,
    },
    NotifyCmdData {
        source_user_id: String,
        data_base64: String,
    },
    NotifyBufferData {
        source_user_id: String,
        data_base64: String,
    },
    NotifyFileData {
        source_user_id: String,
        tmp_file: String,
        org_file_name: String,
    },
    NotifyCancelSend {
        send_id: String,
    },
}

impl Event {
    /// The event's name as in `crvm_callbacks`, for logs and tests.
    pub fn name(&self) -> &'static str {
        use Event::*;
        match self {
            LoginSuccess { .. } => "login_success",
            LoginFail { .. } => "login_fail",
            LineOff { .. } => "line_off",
            SetDndStatusSuccess { .. } => "set_dnd_status_success",
            SetDndStatusFail { .. } => "set_dnd_status_fail",
            GetUserStatusSuccess { .. } => "get_user_status_success",
            GetUserStatusFail { .. } => "get_user_status_fail",
            NotifyUserStatus { .. } => "notify_user_status",
            StartUserStatusNotifyRslt { .. } => "start_user_status_notify_rslt",
            StopUserStatusNotifyRslt { .. } => "stop_user_status_notify_rslt",
            CreateMeetingSuccess { .. } => "create_meeting_success",
            CreateMeetingFail { .. } => "create_meeting_fail",
            DestroyMeetingRslt { .. } => "destroy_meeting_rslt",
            GetMeetingsSuccess { .. } => "get_meetings_success",
            GetMeetingsFail { .. } => "get_meetings_fail",
            CallSuccess { .. } => "call_success",
            CallFail { .. } => "call_fail",
            AcceptCallSuccess { .. } => "accept_call_success",
            AcceptCallFail { .. } => "accept_call_fail",
            RejectCallSuccess { .. } => "reject_call_success",
            RejectCallFail { .. } => "reject_call_fail",
            HungupCallSuccess { .. } => "hungup_call_success",
            HungupCallFail { .. } => "hungup_call_fail",
            NotifyCallIn { .. } => "notify_call_in",
            NotifyCallAccepted { .. } => "notify_call_accepted",
            NotifyCallRejected { .. } => "notify_call_rejected",
            NotifyCallHungup { .. } => "notify_call_hungup",
            SendCmdRlst { .. } => "send_cmd_rlst",
            SendBufferRlst { .. } => "send_buffer_rlst",
            SendFileRlst { .. } => "send_file_rlst",
            SendProgress { .. } => "send_progress",
            CancelSendRlst { .. } => "cancel_send_rlst",
            NotifyCmdData { .. } => "notify_cmd_data",
            NotifyBufferData { .. } => "notify_buffer_data",
            NotifyFileData { .. } => "notify_file_data",
            NotifyCancelSend { .. } => "notify_cancel_send",
        }
    }
}

impl Event {
    /// A log line's worth: the event's name, its code and the call or task it is about. Never
    /// a cookie, payload, meeting object or user data.
    pub fn summary(&self) -> String {
        use Event::*;
        let (code, id): (Option<i32>, Option<&str>) = match self {
            LoginSuccess { user_id, .. } => (None, Some(user_id)),
            LoginFail { code, .. }
            | LineOff { code }
            | SetDndStatusFail { code, .. }
            | GetUserStatusFail { code, .. }
            | StartUserStatusNotifyRslt { code, .. }
            | StopUserStatusNotifyRslt { code, .. }
            | CreateMeetingFail { code, .. }
            | DestroyMeetingRslt { code, .. }
            | GetMeetingsFail { code, .. } => (Some(*code), None),
            CallSuccess { call_id, .. }
            | AcceptCallSuccess { call_id, .. }
            | RejectCallSuccess { call_id, .. }
            | HungupCallSuccess { call_id, .. }
            | NotifyCallIn { call_id, .. }
            | NotifyCallAccepted { call_id, .. }
            | NotifyCallHungup { call_id, .. } => (None, Some(call_id)),
            CallFail { call_id, code, .. }
            | AcceptCallFail { call_id, code, .. }
            | RejectCallFail { call_id, code, .. }
            | HungupCallFail { call_id, code, .. } => (Some(*code), Some(call_id)),
            NotifyCallRejected {
                call_id, reason, ..
            } => (Some(*reason), Some(call_id)),
            SendCmdRlst { task_id, code }
            | SendBufferRlst { task_id, code }
            | SendFileRlst { task_id, code, .. }
            | CancelSendRlst { task_id, code } => (Some(*code), Some(task_id)),
            SendProgress { task_id, .. } => (None, Some(task_id)),
            NotifyCancelSend { send_id } => (None, Some(send_id)),
            _ => (None, None),
        };
        let mut line = self.name().to_owned();
        if let Some(code) = code {
            line.push_str(&format!(" code={code}"));
        }
        if let Some(id) = id {
            line.push_str(&format!(" id={id}"));
        }
        line
    }
}

/// Receives events on the dispatching thread (the client's dispatcher thread, or the thread
/// inside `poll`). Never called with a library lock held, so it may call back into the client.
pub trait EventHandler: Send + Sync {
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventHandler for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}
