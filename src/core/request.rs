//! What the app asks of the worker, already validated, and what each request's result event is.

use super::event::Event;
use super::options::Options;
use crvm_proto::msg::ClientMsg;
use crvm_proto::XferKind;

/// A request on its way from an exported function to the worker. `epoch` is the client's login
/// epoch when the request was accepted (see `State::epoch`).
pub(crate) enum Request {
    Login {
        login: Login,
        opts: Options,
        epoch: u64,
    },
    Logout,
    Op {
        op: Op,
        cookie: String,
    },
    /// `cancel_send`: answered by `cancel_send_rlst` whatever happens.
    Cancel {
        task: String,
    },
    /// The client is being destroyed: log out cleanly if needed, then stop.
    Shutdown,
}

pub(crate) struct Login {
    pub app_id: String,
    pub secret: String,
    pub user_id: String,
    pub nick: String,
    pub token: String,
    pub cookie: String,
}

/// A request made while logged in. Each produces exactly one result event.
#[derive(Debug)]
pub(crate) enum Op {
    SetDnd(i32),
    GetUserStatus,
    StartStatusNotify,
    StopStatusNotify,
    CreateMeeting {
        subject: String,
        with_pswd: bool,
    },
    DestroyMeeting(i32),
    GetMeetings,
    Call {
        call_id: String,
        callee: String,
        meet_obj: String,
        ext: String,
    },
    AcceptCall {
        call_id: String,
        meet_obj: String,
        ext: String,
    },
    RejectCall {
        call_id: String,
        ext: String,
    },
    HangupCall {
        call_id: String,
        ext: String,
    },
    /// A cmd, buffer or file transfer; pending until the server gives it a stream.
    Send(Box<SendSpec>),
}

/// What to send, checked and ready (the file already open).
#[derive(Debug)]
pub(crate) struct SendSpec {
    pub task: String,
    pub to: String,
    pub kind: XferKind,
    pub source: Source,
    pub size: u64,
    /// The path as the app gave it (files; reported back in `send_file_rlst`).
    pub path: String,
    /// The app cancelled before the server assigned a stream.
    pub cancel: bool,
}

#[derive(Debug)]
pub(crate) enum Source {
    Bytes(Vec<u8>),
    File(std::fs::File),
}

impl SendSpec {
    /// The result event of this transfer with `code`.
    pub fn result(&self, code: i32) -> Event {
        let task_id = self.task.clone();
        match self.kind {
            XferKind::Cmd => Event::SendCmdRlst { task_id, code },
            XferKind::Buffer => Event::SendBufferRlst { task_id, code },
            XferKind::File => Event::SendFileRlst {
                task_id,
                file_name: self.path.clone(),
                code,
            },
        }
    }
}

impl Op {
    pub fn to_msg(&self, id: u64) -> ClientMsg {
        match self {
            Op::SetDnd(dnd) => ClientMsg::SetDnd { id, dnd: *dnd },
            Op::GetUserStatus => ClientMsg::GetUserStatus { id },
            Op::StartStatusNotify => ClientMsg::StartStatusNotify { id },
            Op::StopStatusNotify => ClientMsg::StopStatusNotify { id },
            Op::CreateMeeting { subject, with_pswd } => ClientMsg::CreateMeeting {
                id,
                subject: subject.clone(),
                with_pswd: *with_pswd,
            },
            Op::DestroyMeeting(meet_id) => ClientMsg::DestroyMeeting {
                id,
                meet_id: *meet_id,
            },
            Op::GetMeetings => ClientMsg::GetMeetings { id },
            Op::Call {
                call_id,
                callee,
                meet_obj,
                ext,
            } => ClientMsg::Call {
                id,
                call_id: call_id.clone(),
                callee: callee.clone(),
                meet_obj: meet_obj.clone(),
                ext: ext.clone(),
            },
            Op::AcceptCall {
                call_id,
                meet_obj,
                ext,
            } => ClientMsg::AcceptCall {
                id,
                call_id: call_id.clone(),
                meet_obj: meet_obj.clone(),
                ext: ext.clone(),
            },
            Op::RejectCall { call_id, ext } => ClientMsg::RejectCall {
                id,
                call_id: call_id.clone(),
                ext: ext.clone(),
            },
            Op::HangupCall { call_id, ext } => ClientMsg::HangupCall {
                id,
                call_id: call_id.clone(),
                ext: ext.clone(),
            },
            Op::Send(spec) => ClientMsg::Offer {
                id,
                task: spec.task.clone(),
                to: spec.to.clone(),
                kind: spec.kind,
                size: spec.size,
                name: match spec.kind {
                    XferKind::File => base_name(&spec.path).to_owned(),
                    _ => String::new(),
                },
            },
        }
    }

    /// Bytes that travel with the request: a cmd's data.
    pub fn attachment(&self) -> &[u8] {
        match self {
            Op::Send(spec) if spec.kind == XferKind::Cmd => match &spec.source {
                Source::Bytes(b) => b,
                Source::File(_) => &[],
            },
            _ => &[],
        }
    }

    /// The result event for a plain reply with `code` (0 = success for ops without a payload).
    /// Ops whose success carries a payload get their success event elsewhere; a bare success
    /// reply for them is a server fault.
    pub fn result(&self, code: i32, cookie: String) -> Event {
        use crvm_proto::error::CRVIDEOSDK_SERVER_EXCEPTION as SERVER_FAULT;
        match (self, code) {
            (Op::SetDnd(_), 0) => Event::SetDndStatusSuccess { cookie },
            (Op::SetDnd(_), code) => Event::SetDndStatusFail { code, cookie },
            (Op::GetUserStatus, code) => Event::GetUserStatusFail {
                code: if code == 0 { SERVER_FAULT } else { code },
                cookie,
            },
            (Op::StartStatusNotify, code) => Event::StartUserStatusNotifyRslt { code, cookie },
            (Op::StopStatusNotify, code) => Event::StopUserStatusNotifyRslt { code, cookie },
            (Op::CreateMeeting { .. }, code) => Event::CreateMeetingFail {
                code: if code == 0 { SERVER_FAULT } else { code },
                cookie,
            },
            (Op::DestroyMeeting(_), code) => Event::DestroyMeetingRslt { code, cookie },
            (Op::GetMeetings, code) => Event::GetMeetingsFail {
                code: if code == 0 { SERVER_FAULT } else { code },
                cookie,
            },
            (Op::Call { call_id, .. }, code) => call_event(
                call_id,
                code,
                cookie,
                |call_id, cookie| Event::CallSuccess { call_id, cookie },
                |call_id, code, cookie| Event::CallFail {
                    call_id,
                    code,
                    cookie,
                },
            ),
            (Op::AcceptCall { call_id, .. }, code) => call_event(
                call_id,
                code,
                cookie,
                |call_id, cookie| Event::AcceptCallSuccess { call_id, cookie },
                |call_id, code, cookie| Event::AcceptCallFail {
                    call_id,
                    code,
                    cookie,
                },
            ),
            (Op::RejectCall { call_id, .. }, code) => call_event(
                call_id,
                code,
                cookie,
                |call_id, cookie| Event::RejectCallSuccess { call_id, cookie },
                |call_id, code, cookie| Event::RejectCallFail {
                    call_id,
                    code,
                    cookie,
                },
            ),
            (Op::Send(spec), code) => spec.result(if code == 0 { SERVER_FAULT } else { code }),
            (Op::HangupCall { call_id, .. }, code) => call_event(
                call_id,
                code,
                cookie,
                |call_id, cookie| Event::HungupCallSuccess { call_id, cookie },
                |call_id, code, cookie| Event::HungupCallFail {
                    call_id,
                    code,
                    cookie,
                },
            ),
        }
    }
}

/// The success or failure event of a call request.
fn call_event(
    call_id: &str,
    code: i32,
    cookie: String,
    ok: fn(String, String) -> Event,
    fail: fn(String, i32, String) -> Event,
) -> Event {
    let call_id = call_id.to_owned();
    if code == 0 {
        ok(call_id, cookie)
    } else {
        fail(call_id, code, cookie)
    }
}

/// The last component of a path (what the receiver is told the file is called).
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
