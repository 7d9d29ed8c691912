//! Control messages: JSON objects `{"t": type, "c": content}` (serde's adjacent tagging, tag
//! first, so a message is parsed in one pass without buffering). A request travels in a
//! `req {id, op}` envelope: [`Op`] is the request body on the wire and in both ends' code, and
//! every answer carries the `id` back as `re`. Unknown fields are ignored so that newer peers
//! can add fields without a version bump; unknown types are a protocol error.
//!
//! [`ClientMsg::validate`] and [`Op::validate`] are the one place the field limits of docs/API.md §5
//! and the protocol's own are checked: the library calls them before sending (a synchronous
//! refusal), the server on receipt (the answer's code).

use serde::{Deserialize, Serialize};

use crate::error::*;

/// Protocol version spoken by this build. The server refuses any other with code 4.
/// Version 4 answers every request with one `res` envelope (version 3 had six reply types);
/// version 6 adds `moved`, the answer to a `resume` whose session moved to another node.
pub const PROTOCOL_VERSION: u32 = 6;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First frame of every connection (unnumbered).
    Hello { ver: u32, agent: String },
    /// Second frame of a connection that resumes a session instead of logging in (unnumbered):
    /// the session and its current secret (from `resumable` or the last `resumed`), and the
    /// last numbered frame this side handled from the server.
    Resume {
        app_id: String,
        session: String,
        secret: String,
        last: u64,
    },
    /// A request, answered by exactly one `res` carrying `id` as `re` (none for a logout the
    /// server closes after; see docs/PROTOCOL.md).
    Req { id: u64, op: Op },
    /// A cmd to `to`; its bytes are the frame's attachment. `n` numbers the connection's cmds
    /// 1, 2, 3, …; `cmd_done` reports each one's outcome. At most [`xfer::CMD_WINDOW`] cmds
    /// (and [`xfer::CMD_WINDOW_BYTES`]) may be unfinished at once.
    Cmd { n: u64, to: String },
    /// Receiver: every `cmd_in` numbered up to `upto` has been handed to the app.
    CmdAck { upto: u64 },
    /// Sender: every byte of stream `sid` has been sent; `hash` is their checksum
    /// ([`checksum_hex`]).
    DataEnd { sid: u64, hash: String },
    /// Sender: abandon stream `sid`. Answered by `cancel_done`.
    Cancel { sid: u64 },
    /// Receiver: `bytes` of stream `sid` are received and stored (end to end credit).
    Ack { sid: u64, bytes: u64 },
    /// Receiver: stream `sid` is finished: 0 delivered to the app, 1402 could not be stored,
    /// 1103 checksum mismatch.
    Fin { sid: u64, code: i32 },
    /// Receiver: answer to `cancelled`: 0 discarded, 1104 it was already delivered.
    CancelAck { sid: u64, code: i32 },
}

/// The body of a request (`req`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum Op {
    /// `secret` is the tenant secret (may be empty in token mode), `token` the per-user token.
    Login {
        app_id: String,
        secret: String,
        user_id: String,
        nick: String,
        token: String,
        /// The client will resume the session after a lost connection (docs/API.md §3.6): the server
        /// answers `resumable` after `res{login}` and holds the session when its link drops.
        #[serde(default)]
        resume: bool,
    },
    /// Answered once everything before it was answered; then the server closes.
    Logout,
    SetDnd {
        dnd: i32,
    },
    GetUserStatus,
    StartStatusNotify,
    StopStatusNotify,
    CreateMeeting {
        subject: String,
        with_pswd: bool,
    },
    DestroyMeeting {
        meet_id: i32,
    },
    GetMeetings,
    /// Starts a call. `call_id` is chosen by the caller's library (unique, ≤ 63 bytes);
    /// `meet_obj` (empty or a JSON object) and `ext` travel verbatim.
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
    /// Starts a buffer or file transfer of `size` bytes to `to`, answered by `res{offer}` with
    /// the stream ID; data may flow once `start` for it arrives.
    Offer {
        task: String,
        to: String,
        kind: XferKind,
        size: u64,
        /// The file's base name (files only).
        name: String,
    },
}

/// Transfer sizes a request is checked against: the server's configured limits (and, in the
/// library, the smaller of those and the client's own options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    pub max_buffer: u64,
    pub max_file: u64,
}

impl SizeLimits {
    /// No limit beyond the protocol's own.
    pub const NONE: SizeLimits = SizeLimits {
        max_buffer: u64::MAX,
        max_file: u64::MAX,
    };
}

fn within(s: &str, max: usize) -> Result<(), Code> {
    if s.len() > max {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    Ok(())
}

fn present(s: &str, max: usize) -> Result<(), Code> {
    if s.is_empty() {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    within(s, max)
}

fn meet_obj_ok(meet_obj: &str) -> Result<(), Code> {
    if !valid_meet_obj(meet_obj) {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    Ok(())
}

impl Op {
    /// Checks the request's fields (docs/API.md §5 and the limits of docs/PROTOCOL.md): `Err` is the
    /// code to refuse it with. Checks that need state (calling yourself, a call you are not
    /// part of) are the handler's.
    pub fn validate(&self, sizes: &SizeLimits) -> Result<(), Code> {
        use limits::*;
        match self {
            Op::Login {
                app_id,
                secret,
                user_id,
                nick,
                token,
                ..
            } => {
                present(app_id, APP_ID_MAX)?;
                within(secret, SECRET_MAX)?;
                within(user_id, USER_ID_MAX)?;
                within(nick, NICK_MAX)?;
                within(token, OPAQUE_MAX)
            }
            Op::Logout
            | Op::SetDnd { .. }
            | Op::GetUserStatus
            | Op::StartStatusNotify
            | Op::StopStatusNotify
            | Op::DestroyMeeting { .. }
            | Op::GetMeetings => Ok(()),
            Op::CreateMeeting { subject, .. } => {
                if subject.chars().count() > SUBJECT_MAX_CHARS {
                    return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
                }
                Ok(())
            }
            Op::Call {
                call_id,
                callee,
                meet_obj,
                ext,
            } => {
                present(call_id, ID_MAX)?;
                present(callee, USER_ID_MAX)?;
                within(ext, OPAQUE_MAX)?;
                meet_obj_ok(meet_obj)
            }
            Op::AcceptCall {
                call_id,
                meet_obj,
                ext,
            } => {
                present(call_id, ID_MAX)?;
                within(ext, OPAQUE_MAX)?;
                meet_obj_ok(meet_obj)
            }
            Op::RejectCall { call_id, ext } | Op::HangupCall { call_id, ext } => {
                present(call_id, ID_MAX)?;
                within(ext, OPAQUE_MAX)
            }
            Op::Offer {
                task,
                to,
                kind,
                size,
                name,
            } => {
                present(task, ID_MAX)?;
                present(to, USER_ID_MAX)?;
                within(name, PATH_MAX)?;
                match kind {
                    XferKind::Buffer if *size > sizes.max_buffer => {
                        Err(code(CRVIDEOSDK_SENDBUFFER_LARGE))
                    }
                    XferKind::File if *size > sizes.max_file => {
                        Err(code(CRVIDEOSDK_SENDFILE_FILEINERROR))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl ClientMsg {
    /// Whether this message belongs to a connection's handshake (sent unnumbered).
    pub fn is_handshake(&self) -> bool {
        matches!(self, ClientMsg::Hello { .. } | ClientMsg::Resume { .. })
    }

    /// Checks a message's fields, `attachment` included; `Err` is the code to refuse it with.
    /// For a request, the code its reply carries; for a cmd, its `cmd_done`'s.
    pub fn validate(&self, attachment: &[u8], sizes: &SizeLimits) -> Result<(), Code> {
        match self {
            ClientMsg::Req { op, .. } => op.validate(sizes),
            ClientMsg::Cmd { to, .. } => validate_cmd(to, attachment.len()),
            ClientMsg::DataEnd { hash, .. } => within(hash, HASH_MAX),
            ClientMsg::Resume {
                app_id,
                session,
                secret,
                ..
            } => {
                present(app_id, limits::APP_ID_MAX)?;
                present(session, SECRET_TEXT_MAX)?;
                present(secret, SECRET_TEXT_MAX)
            }
            _ => Ok(()),
        }
    }
}

/// The checks of a cmd of `len` bytes to `to` (docs/API.md §3.5).
pub fn validate_cmd(to: &str, len: usize) -> Result<(), Code> {
    if len > xfer::CMD_MAX {
        return Err(code(CRVIDEOSDK_SENDCMD_LARGE));
    }
    present(to, limits::USER_ID_MAX)
}

/// Longest checksum text accepted (an XXH3-128 is 32 hex digits).
pub const HASH_MAX: usize = 64;
/// Longest session ID or resume secret accepted (the server makes 32 hex digits).
pub const SECRET_TEXT_MAX: usize = 64;

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `Hello`: the connection may now log in.
    Welcome {
        ver: u32,
        /// The client pings after this much silence; either side drops the link after three
        /// intervals without a frame from its peer.
        heartbeat_ms: u64,
        max_buffer_bytes: u64,
        max_file_bytes: u64,
    },
    /// The answer to request `re` (the `id` of its `req`).
    Res { re: u64, result: Outcome },
    /// Right after the successful answer to a login that asked to be resumable: how to resume
    /// the session (`secret` changes on every resume) and how long the server holds it once its
    /// link drops.
    /// `addr` (a cluster node's advertised `HOST:PORT`; absent on one server) is where to
    /// resume: the node that holds the session, whatever address the client logged in through.
    Resumable {
        session: String,
        secret: String,
        window_s: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        addr: String,
    },
    /// Answer to `resume` (unnumbered): the session is back; `last` is the last numbered frame
    /// the server handled from the client, `secret` the one for the next resume. The server's
    /// unacknowledged frames follow, then new traffic.
    Resumed { secret: String, last: u64 },
    /// Answer to `resume` (unnumbered) when the session cannot be resumed: 207 unknown, expired
    /// or wrong secret (no difference is revealed), 10 kicked by a newer login meanwhile. The
    /// server then closes.
    ResumeFailed { code: i32 },
    /// Answer to `resume` (unnumbered) when the server takes no resumes right now (rate
    /// limit): try again after `after_ms`. The server then closes; the session is kept.
    Retry { after_ms: u64 },
    /// Answer to `resume` (unnumbered) when the session moved to another node of the cluster
    /// (its node is draining, docs/CLUSTER.md "Drain"): resume there, at `addr` (its advertised
    /// `HOST:PORT`) or, for a browser, `ws_addr` (its WebSocket `HOST:PORT`, when it has one),
    /// with the same session ID and secret. The server then closes; the session is kept.
    Moved {
        addr: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        ws_addr: String,
    },
    /// Presence push, sent only to subscribed sessions; the content is the status object.
    UserStatus(UserStatus),
    /// Someone calls this user (docs/API.md §3.4 `notify_call_in`).
    CallIn {
        call_id: String,
        caller: String,
        meet_obj: String,
        ext: String,
    },
    /// The callee accepted this user's call; `meet_obj` is the callee's, or the caller's own
    /// when the callee gave none.
    CallAccepted {
        call_id: String,
        ext: String,
        meet_obj: String,
    },
    /// This user's call ended before being accepted: 606 refused, 604 no answer, 603 the callee
    /// went away.
    CallRejected {
        call_id: String,
        reason: i32,
        ext: String,
    },
    /// The other party hung up, cancelled, went away, or the call timed out.
    CallHungup { call_id: String, ext: String },
    /// A cmd for this user (its bytes are the attachment), numbered 1, 2, 3, … per connection;
    /// acknowledged with `cmd_ack` once the app has it.
    CmdIn { n: u64, from: String },
    /// To the sender: the cmds numbered `ns` ended with `code` (0 delivered, 1102 target
    /// offline or gone, 5 to yourself, …).
    CmdDone { ns: Vec<u64>, code: i32 },
    /// To the receiver: a transfer starts.
    Incoming {
        sid: u64,
        task: String,
        from: String,
        kind: XferKind,
        size: u64,
        name: String,
    },
    /// To the sender: the receiver has room for stream `sid`; its data may flow.
    Start { sid: u64 },
    /// To the receiver: the sender's checksum of stream `sid`.
    DataEnd { sid: u64, hash: String },
    /// To the sender: the receiver has `bytes` of stream `sid`.
    Progress { sid: u64, bytes: u64 },
    /// To the sender: the transfer ended with `code` (the receiver's `fin`, or 1102 when the
    /// receiver went away).
    XferEnd { sid: u64, code: i32 },
    /// To the receiver: the sender cancelled stream `sid` or went away.
    Cancelled { sid: u64 },
    /// To the sender: the outcome of its `cancel` (0 cancelled, 1104 already delivered).
    CancelDone { sid: u64, code: i32 },
    /// The server is closing this connection for `code` (10 kicked, 206 shutting down, 4 version,
    /// 6 malformed input, 12 request before login…). Nothing follows.
    Close { code: i32, reason: String },
}

/// How a request ended: a failure code, or success with the payload its kind has. Each
/// request kind has one success variant (docs/PROTOCOL.md lists which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c", rename_all = "snake_case")]
pub enum Outcome {
    /// The request failed with this code (never 0).
    Err(i32),
    /// Success without a payload.
    Ok,
    /// Successful `login`: the user ID as the server knows it.
    Login { user_id: String },
    /// Successful `get_user_status`: every online user of the tenant.
    Statuses(Vec<UserStatus>),
    /// Successful `create_meeting`.
    Meeting(Meeting),
    /// Successful `get_meetings`.
    Meetings(Vec<Meeting>),
    /// Successful `offer`: the transfer's stream ID (every later message of the transfer and
    /// its data frames use it). Data waits for `start`.
    Offer { sid: u64 },
}

impl Outcome {
    /// `Ok` for code 0, else the failure.
    pub fn of_code(code: i32) -> Outcome {
        match code {
            0 => Outcome::Ok,
            c => Outcome::Err(c),
        }
    }

    /// The code of the outcome: the failure's, or 0 for any success.
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Err(c) => *c,
            _ => 0,
        }
    }
}

impl ServerMsg {
    /// The answer to request `re` with `code`: success without a payload (0) or a failure.
    pub fn reply(re: u64, code: i32) -> ServerMsg {
        ServerMsg::Res {
            re,
            result: Outcome::of_code(code),
        }
    }

    /// Whether this message belongs to a connection's handshake (sent unnumbered).
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            ServerMsg::Welcome { .. }
                | ServerMsg::Resumed { .. }
                | ServerMsg::ResumeFailed { .. }
                | ServerMsg::Retry { .. }
                | ServerMsg::Moved { .. }
        )
    }
}

/// What a transfer carries (docs/API.md §3.5). Cmds are not transfers on the wire (see
/// [`ClientMsg::Cmd`]); the kind exists for the library's own bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XferKind {
    Cmd,
    Buffer,
    File,
}

/// Flow control and sizes of cmds and transfers, shared by both ends and the server.
pub mod xfer {
    /// Largest cmd, in bytes after base64 decoding (docs/API.md §3.5).
    pub const CMD_MAX: usize = 51_200;
    /// Cmds a sender may have unfinished (sent, no `cmd_done` yet) at once; the library queues
    /// the rest, the server closes a connection that exceeds it.
    pub const CMD_WINDOW: usize = 2048;
    /// Bytes of cmd data a sender may have unfinished at once (same rules).
    pub const CMD_WINDOW_BYTES: usize = 4 * 1024 * 1024;
    /// Cmds the server has handed to one receiver and not yet had acknowledged; the rest wait
    /// in the server, in order.
    pub const CMD_RECV_WINDOW: usize = 4096;
    /// Bytes of cmd data the server has handed to one receiver unacknowledged (same rules).
    pub const CMD_RECV_WINDOW_BYTES: usize = 4 * 1024 * 1024;
    /// Whether a sender with `cmds` unfinished cmds holding `bytes` may send one of `len` more
    /// (the rule of [`CMD_WINDOW`] and [`CMD_WINDOW_BYTES`]; one cmd always fits).
    pub fn cmd_fits(cmds: usize, bytes: usize, len: usize) -> bool {
        cmds == 0 || (cmds < CMD_WINDOW && bytes + len <= CMD_WINDOW_BYTES)
    }

    /// Most bytes of data per data frame (senders choose smaller chunks on slower paths).
    pub const CHUNK: usize = 128 * 1024;
    /// Most bytes a sender may have sent beyond what the receiver acknowledged. The server
    /// refuses (closes) a sender that exceeds it, so the relay never holds more than this per
    /// transfer. Senders keep less in flight on paths that cannot carry that much (the
    /// library sizes its window from the measured path).
    pub const WINDOW: u64 = 4 * 1024 * 1024;
    /// The receiver acknowledges at least every this many bytes…
    pub const ACK_EVERY: u64 = 512 * 1024;
    /// …or every this many chunks of the size of the last one it received, whichever is
    /// fewer bytes (and at the end), so that a sender whose window holds this many chunks
    /// always hears back; the acknowledgement traffic stays a fraction of the data's.
    pub const ACK_CHUNKS: u64 = 2;
    /// Transfers one session may be receiving at once; the server queues further offers to it
    /// and starts each as one of these ends.
    pub const MAX_INCOMING: usize = 32;
    /// Buffers and files one session may have offered and not finished; the library queues
    /// the rest, the server refuses more with 1000.
    pub const MAX_OUTGOING: usize = 8;
}

/// The end-to-end checksum of a transfer's bytes, as sent in `data_end`: XXH3-128 in hex.
pub fn checksum_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// Status of one user (docs/API.md §3.2, pinned keys and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    #[serde(rename = "userID")]
    pub user_id: String,
    /// 0 offline, 1 online and idle, 2 in a call, 3 in a meeting (reserved).
    #[serde(rename = "userStatus")]
    pub user_status: i32,
    #[serde(rename = "DNDType")]
    pub dnd_type: i32,
    /// The user's link dropped and the server holds the session for its resume (the status
    /// is what it was before). Written only when true, and absent means false, so that peers
    /// that predate it parse the object as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reconnecting: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl UserStatus {
    /// A status without the `reconnecting` mark.
    pub fn new(user_id: impl Into<String>, user_status: i32, dnd_type: i32) -> UserStatus {
        UserStatus {
            user_id: user_id.into(),
            user_status,
            dnd_type,
            reconnecting: false,
        }
    }

    /// Appends the pinned JSON object — exactly what serde_json writes for it, escapes
    /// included — without serde's machinery (a presence push is the event a busy client gets
    /// most).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"userID":""#);
        write_json_str(&self.user_id, out);
        out.extend_from_slice(br#"","userStatus":"#);
        write_i32(self.user_status, out);
        out.extend_from_slice(br#","DNDType":"#);
        write_i32(self.dnd_type, out);
        if self.reconnecting {
            out.extend_from_slice(br#","reconnecting":true"#);
        }
        out.push(b'}');
    }

    /// The status of a push written exactly as the server writes it
    /// (`{"t":"user_status","c":{"userID":"…","userStatus":N,"DNDType":M}}`, no escape in the
    /// user ID, no `reconnecting` mark); `None` for anything else, which the general parser
    /// then takes.
    pub fn parse_push(json: &[u8]) -> Option<UserStatus> {
        let rest = json.strip_prefix(br#"{"t":"user_status","c":{"userID":""#)?;
        let end = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        let user_id = std::str::from_utf8(&rest[..end]).ok()?.to_owned();
        let rest = rest[end..].strip_prefix(br#"","userStatus":"#)?;
        let (user_status, rest) = parse_i32(rest)?;
        let rest = rest.strip_prefix(br#","DNDType":"#)?;
        let (dnd_type, rest) = parse_i32(rest)?;
        if rest != b"}}" {
            return None;
        }
        Some(UserStatus::new(user_id, user_status, dnd_type))
    }
}

/// A JSON integer at the start of `b` that fits an `i32`, and the rest.
pub(crate) fn parse_i32(b: &[u8]) -> Option<(i32, &[u8])> {
    let neg = b.first() == Some(&b'-');
    let digits = &b[usize::from(neg)..];
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).count();
    // JSON numbers have no leading zeros ("01"), and "-" alone is none.
    if n == 0 || n > 10 || (n > 1 && digits[0] == b'0') {
        return None;
    }
    let magnitude = digits[..n]
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    let v = i32::try_from(if neg { -magnitude } else { magnitude }).ok()?;
    Some((v, &digits[n..]))
}

/// Appends `v` in decimal.
pub(crate) fn write_i32(v: i32, out: &mut Vec<u8>) {
    let mut digits = [0u8; 11];
    let mut at = digits.len();
    let mut m = i64::from(v).unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `s` as the inside of a JSON string, escaped as serde_json escapes it: `"` and `\`,
/// and control characters (the short forms for \b \t \n \f \r, `\u00XX` for the rest).
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0a => b'n',
            0x0c => b'f',
            0x0d => b'r',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        from = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
    out.extend_from_slice(&bytes[from..]);
}

/// `userStatus` values.
pub const STATUS_OFFLINE: i32 = 0;
pub const STATUS_ONLINE: i32 = 1;
pub const STATUS_IN_CALL: i32 = 2;

/// Whether `meet_obj` is acceptable for a call: empty, or a JSON object of at most 8 KiB.
pub fn valid_meet_obj(meet_obj: &str) -> bool {
    meet_obj.is_empty()
        || (meet_obj.len() <= limits::OPAQUE_MAX
            && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(meet_obj).is_ok())
}

/// A meeting (docs/API.md §3.3, pinned keys and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    #[serde(rename = "ID")]
    pub id: i32,
    pub pswd: String,
    pub subject: String,
    #[serde(rename = "pubMeetUrl")]
    pub pub_meet_url: String,
    pub creator: String,
    #[serde(rename = "memberCount")]
    pub member_count: i32,
    #[serde(rename = "startTime")]
    pub start_time: i64,
}

/// Field limits of docs/API.md §5, enforced by the library (synchronously) and again by the server.
pub mod limits {
    /// User ID and nick name, in bytes.
    pub const USER_ID_MAX: usize = 128;
    pub const NICK_MAX: usize = 128;
    /// App ID, in bytes (documented in docs/API.md §5 and docs/PROTOCOL.md).
    pub const APP_ID_MAX: usize = 128;
    /// Tenant secret, in bytes (documented in docs/API.md §5 and docs/PROTOCOL.md).
    pub const SECRET_MAX: usize = 1024;
    /// Cookie, `usr_ext_dat`, `meet_obj`, `priv_auth_code`, in bytes.
    pub const OPAQUE_MAX: usize = 8 * 1024;
    /// Meeting subject, in characters.
    pub const SUBJECT_MAX_CHARS: usize = 50;
    /// File path, in bytes.
    pub const PATH_MAX: usize = 4096;
    /// Call and task IDs, in bytes (`CRVM_ID_BUF_LEN` - 1).
    pub const ID_MAX: usize = 63;
}

/// Encodes a message as the JSON of a control frame.
pub fn to_json<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec(msg).expect("control messages always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meet_obj_must_be_empty_or_an_object() {
        assert!(valid_meet_obj(""));
        assert!(valid_meet_obj(r#"{"ID":1,"subject":"x"}"#));
        assert!(valid_meet_obj(" { } "));
        for bad in ["[]", "1", "\"s\"", "{", "null", "{}x"] {
            assert!(!valid_meet_obj(bad), "{bad}");
        }
        let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(limits::OPAQUE_MAX));
        assert!(!valid_meet_obj(&big));
    }

    #[test]
    fn status_keys_are_pinned() {
        let s = UserStatus::new("alice", 1, 0);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"userID":"alice","userStatus":1,"DNDType":0}"#
        );
        // A push's content is exactly the status object.
        assert_eq!(
            to_json(&ServerMsg::UserStatus(s.clone())),
            br#"{"t":"user_status","c":{"userID":"alice","userStatus":1,"DNDType":0}}"#
        );
        // The reconnecting mark is there only when set, and optional when read.
        let held = UserStatus {
            reconnecting: true,
            ..s.clone()
        };
        assert_eq!(
            serde_json::to_string(&held).unwrap(),
            r#"{"userID":"alice","userStatus":1,"DNDType":0,"reconnecting":true}"#
        );
        let read = |j: &str| serde_json::from_str::<UserStatus>(j).unwrap();
        assert_eq!(read(r#"{"userID":"alice","userStatus":1,"DNDType":0}"#), s);
        assert_eq!(
            read(r#"{"userID":"alice","userStatus":1,"DNDType":0,"reconnecting":false}"#),
            s
        );
        assert_eq!(
            read(r#"{"userID":"alice","userStatus":1,"DNDType":0,"reconnecting":true}"#),
            held
        );
    }

    #[test]
    fn status_json_by_hand_is_serdes_to_the_byte() {
        let tricky = [
            "alice",
            "",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline",
            "\u{0}\u{1f}\u{7f}",
            "é€😀",
            "\u{8}\u{c}\r",
        ];
        for (i, id) in tricky.iter().enumerate() {
            let st = UserStatus {
                user_id: (*id).into(),
                user_status: [i32::MIN, -7, 0, 1, 9, 10, 12345, i32::MAX][i],
                dnd_type: i32::MAX - i as i32,
                reconnecting: i % 3 == 0,
            };
            let mut mine = Vec::new();
            st.write_json(&mut mine);
            assert_eq!(mine, serde_json::to_vec(&st).unwrap(), "{id:?}");
            // A push as the server writes it parses back the same by hand or by serde.
            let push = to_json(&ServerMsg::UserStatus(st.clone()));
            let general = match serde_json::from_slice::<ServerMsg>(&push).unwrap() {
                ServerMsg::UserStatus(s) => s,
                other => panic!("{other:?}"),
            };
            assert_eq!(general, st);
            match UserStatus::parse_push(&push) {
                Some(fast) => assert_eq!(fast, st),
                // Only IDs that need escapes, and marked statuses, go the general way.
                None => assert!(
                    st.reconnecting || id.chars().any(|c| c == '"' || c == '\\' || c < ' '),
                    "{id:?}"
                ),
            }
        }
        for bad in [
            &br#"{"t":"user_status","c":{"userID":"a","userStatus":01,"DNDType":0}}"#[..],
            br#"{"t":"user_status","c":{"userID":"a","userStatus":-,"DNDType":0}}"#,
            br#"{"t":"user_status","c":{"userID":"a","userStatus":1,"DNDType":0}} "#,
            br#"{"t":"user_status","c":{"userID":"a","userStatus":99999999999,"DNDType":0}}"#,
            b"{\"t\":\"user_status\",\"c\":{\"userID\":\"\xff\",\"userStatus\":1,\"DNDType\":0}}",
        ] {
            assert_eq!(
                UserStatus::parse_push(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn meeting_keys_are_pinned() {
        let m = Meeting {
            id: 12345678,
            pswd: String::new(),
            subject: "weekly".into(),
            pub_meet_url: "u".into(),
            creator: "alice".into(),
            member_count: 0,
            start_time: 1764000000,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"ID":12345678,"pswd":"","subject":"weekly","pubMeetUrl":"u","creator":"alice","memberCount":0,"startTime":1764000000}"#
        );
    }

    #[test]
    fn messages_round_trip_and_ignore_unknown_fields() {
        let m = ClientMsg::Req {
            id: 3,
            op: Op::SetDnd { dnd: 2 },
        };
        let j = to_json(&m);
        assert_eq!(
            j,
            br#"{"t":"req","c":{"id":3,"op":{"t":"set_dnd","c":{"dnd":2}}}}"#
        );
        assert_eq!(serde_json::from_slice::<ClientMsg>(&j).unwrap(), m);
        let unit = to_json(&ClientMsg::Req {
            id: 9,
            op: Op::GetMeetings,
        });
        assert_eq!(
            unit,
            br#"{"t":"req","c":{"id":9,"op":{"t":"get_meetings"}}}"#
        );
        let extra = br#"{"t":"req","c":{"id":9,"op":{"t":"get_meetings"},"future":true},"z":1}"#;
        assert_eq!(
            serde_json::from_slice::<ClientMsg>(extra).unwrap(),
            ClientMsg::Req {
                id: 9,
                op: Op::GetMeetings
            }
        );
        assert!(serde_json::from_slice::<ClientMsg>(br#"{"t":"nope","c":{}}"#).is_err());
        assert!(serde_json::from_slice::<ClientMsg>(
            br#"{"t":"req","c":{"id":1,"op":{"t":"nope"}}}"#
        )
        .is_err());
    }

    #[test]
    fn answers_travel_in_one_envelope() {
        let wire = |m: ServerMsg| String::from_utf8(to_json(&m)).unwrap();
        assert_eq!(
            wire(ServerMsg::reply(4, 0)),
            r#"{"t":"res","c":{"re":4,"result":{"t":"ok"}}}"#
        );
        assert_eq!(
            wire(ServerMsg::reply(4, 7)),
            r#"{"t":"res","c":{"re":4,"result":{"t":"err","c":7}}}"#
        );
        let login = ServerMsg::Res {
            re: 1,
            result: Outcome::Login {
                user_id: "alice".into(),
            },
        };
        let j = wire(login.clone());
        assert_eq!(
            j,
            r#"{"t":"res","c":{"re":1,"result":{"t":"login","c":{"user_id":"alice"}}}}"#
        );
        assert_eq!(serde_json::from_str::<ServerMsg>(&j).unwrap(), login);
        assert_eq!(
            wire(ServerMsg::Res {
                re: 2,
                result: Outcome::Offer { sid: 9 }
            }),
            r#"{"t":"res","c":{"re":2,"result":{"t":"offer","c":{"sid":9}}}}"#
        );
        assert_eq!(Outcome::of_code(0).code(), 0);
        assert_eq!(Outcome::of_code(12).code(), 12);
        // A version 3 reply is not a version 4 message.
        assert!(
            serde_json::from_str::<ServerMsg>(r#"{"t":"reply","c":{"re":1,"code":0}}"#).is_err()
        );
    }

    #[test]
    fn validation_codes() {
        let s = SizeLimits::NONE;
        let call = |call_id: &str, callee: &str, meet_obj: &str| Op::Call {
            call_id: call_id.into(),
            callee: callee.into(),
            meet_obj: meet_obj.into(),
            ext: String::new(),
        };
        assert_eq!(call("c1", "bob", "").validate(&s), Ok(()));
        for bad in [
            call("", "bob", ""),
            call(&"x".repeat(64), "bob", ""),
            call("c1", "", ""),
            call("c1", &"b".repeat(129), ""),
            call("c1", "bob", "[]"),
        ] {
            assert_eq!(
                bad.validate(&s),
                Err(code(CRVIDEOSDK_MEETPARAM_ERR)),
                "{bad:?}"
            );
        }
        let subject = |n: usize| Op::CreateMeeting {
            subject: "é".repeat(n),
            with_pswd: false,
        };
        assert_eq!(subject(50).validate(&s), Ok(()));
        assert!(subject(51).validate(&s).is_err());
        let offer = |kind, size| Op::Offer {
            task: "t".into(),
            to: "bob".into(),
            kind,
            size,
            name: String::new(),
        };
        let small = SizeLimits {
            max_buffer: 10,
            max_file: 20,
        };
        assert_eq!(offer(XferKind::Buffer, 10).validate(&small), Ok(()));
        assert_eq!(
            offer(XferKind::Buffer, 11)
                .validate(&small)
                .unwrap_err()
                .get(),
            1101
        );
        assert_eq!(
            offer(XferKind::File, 21)
                .validate(&small)
                .unwrap_err()
                .get(),
            1103
        );
        assert_eq!(validate_cmd("bob", xfer::CMD_MAX), Ok(()));
        assert_eq!(
            validate_cmd("bob", xfer::CMD_MAX + 1).unwrap_err().get(),
            1100
        );
        assert_eq!(validate_cmd("", 1).unwrap_err().get(), 5);
    }
}
