//! Control messages: JSON objects tagged by `"t"`. Requests carry a connection-unique `id`;
//! every reply carries it back as `re`. Unknown fields are ignored so that newer peers can add
//! fields without a version bump; unknown `t` values are a protocol error.

use serde::{Deserialize, Serialize};

/// Protocol version spoken by this build. The server refuses any other with code 4.
pub const PROTOCOL_VERSION: u32 = 1;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First frame of every connection.
    Hello {
        ver: u32,
        agent: String,
    },
    /// `secret` is the tenant secret (may be empty in token mode), `token` the per-user token.
    Login {
        id: u64,
        app_id: String,
        secret: String,
        user_id: String,
        nick: String,
        token: String,
    },
    /// Answered with a reply once everything before it was answered; then the server closes.
    Logout {
        id: u64,
    },
    SetDnd {
        id: u64,
        dnd: i32,
    },
    GetUserStatus {
        id: u64,
    },
    StartStatusNotify {
        id: u64,
    },
    StopStatusNotify {
        id: u64,
    },
    CreateMeeting {
        id: u64,
        subject: String,
        with_pswd: bool,
    },
    DestroyMeeting {
        id: u64,
        meet_id: i32,
    },
    GetMeetings {
        id: u64,
    },
    /// Starts a call. `call_id` is chosen by the caller's library (unique, ≤ 63 bytes);
    /// `meet_obj` (empty or a JSON object) and `ext` travel verbatim.
    Call {
        id: u64,
        call_id: String,
        callee: String,
        meet_obj: String,
        ext: String,
    },
    AcceptCall {
        id: u64,
        call_id: String,
        meet_obj: String,
        ext: String,
    },
    RejectCall {
        id: u64,
        call_id: String,
        ext: String,
    },
    HangupCall {
        id: u64,
        call_id: String,
        ext: String,
    },
    /// Sender: starts a transfer of `size` bytes to `to`. A cmd carries its bytes as the
    /// frame's attachment and is complete with it; buffers and files follow as data frames on
    /// the stream ID the server answers with (`offer_ok`).
    Offer {
        id: u64,
        task: String,
        to: String,
        kind: XferKind,
        size: u64,
        /// The file's base name (files only).
        name: String,
    },
    /// Sender: every byte of stream `sid` has been sent; `hash` is their checksum
    /// ([`checksum_hex`]).
    DataEnd {
        sid: u64,
        hash: String,
    },
    /// Sender: abandon stream `sid`. Answered by `cancel_done`.
    Cancel {
        sid: u64,
    },
    /// Receiver: `bytes` of stream `sid` are received and stored (end to end credit).
    Ack {
        sid: u64,
        bytes: u64,
    },
    /// Receiver: stream `sid` is finished: 0 delivered to the app, 1402 could not be stored,
    /// 1103 checksum mismatch.
    Fin {
        sid: u64,
        code: i32,
    },
    /// Receiver: answer to `cancelled`: 0 discarded, 1104 it was already delivered.
    CancelAck {
        sid: u64,
        code: i32,
    },
}

impl ClientMsg {
    /// The request ID, for every message but `Hello`.
    pub fn id(&self) -> Option<u64> {
        use ClientMsg::*;
        match self {
            Hello { .. } => None,
            Login { id, .. }
            | Logout { id }
            | SetDnd { id, .. }
            | GetUserStatus { id }
            | StartStatusNotify { id }
            | StopStatusNotify { id }
            | CreateMeeting { id, .. }
            | DestroyMeeting { id, .. }
            | GetMeetings { id }
            | Call { id, .. }
            | AcceptCall { id, .. }
            | RejectCall { id, .. }
            | HangupCall { id, .. }
            | Offer { id, .. } => Some(*id),
            DataEnd { .. } | Cancel { .. } | Ack { .. } | Fin { .. } | CancelAck { .. } => None,
        }
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
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
    /// Result of a request without a payload, or the failure of any request.
    Reply { re: u64, code: i32 },
    /// Successful login.
    LoginOk { re: u64, user_id: String },
    /// Successful `GetUserStatus`: every online user of the tenant.
    Statuses { re: u64, list: Vec<UserStatus> },
    /// Successful `CreateMeeting`.
    MeetingCreated { re: u64, meeting: Meeting },
    /// Successful `GetMeetings`.
    Meetings { re: u64, list: Vec<Meeting> },
    /// Presence push, sent only to subscribed sessions.
    UserStatus { status: UserStatus },
    /// Someone calls this user (SPEC §3.4 `notify_call_in`).
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
    /// Answer to `offer`: the transfer's stream ID (data frames and every later message of the
    /// transfer use it).
    OfferOk { re: u64, sid: u64 },
    /// To the receiver: a transfer starts (a cmd's bytes are the attachment).
    Incoming {
        sid: u64,
        task: String,
        from: String,
        kind: XferKind,
        size: u64,
        name: String,
    },
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

/// What a transfer carries (SPEC §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XferKind {
    Cmd,
    Buffer,
    File,
}

/// Flow control and sizes of transfers, shared by both ends and the server.
pub mod xfer {
    /// Largest cmd, in bytes after base64 decoding (SPEC §3.5).
    pub const CMD_MAX: usize = 51_200;
    /// Bytes of data per data frame.
    pub const CHUNK: usize = 64 * 1024;
    /// Bytes a sender may have sent beyond what the receiver acknowledged. The server refuses
    /// (closes) a sender that exceeds it, so the relay never holds more than this per transfer.
    pub const WINDOW: u64 = 2 * 1024 * 1024;
    /// The receiver acknowledges at least every this many bytes (and at the end), so the
    /// window reopens in steps while the acknowledgement traffic stays small.
    pub const ACK_EVERY: u64 = 512 * 1024;
    /// Transfers one session may be receiving at once; further offers to it get 1000.
    pub const MAX_INCOMING: usize = 32;
}

/// The end-to-end checksum of a transfer's bytes, as sent in `data_end`: XXH3-128 in hex.
pub fn checksum_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// Status of one user (SPEC §3.2, pinned keys and order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    #[serde(rename = "userID")]
    pub user_id: String,
    /// 0 offline, 1 online and idle, 2 in a call, 3 in a meeting (reserved).
    #[serde(rename = "userStatus")]
    pub user_status: i32,
    #[serde(rename = "DNDType")]
    pub dnd_type: i32,
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

/// A meeting (SPEC §3.3, pinned keys and order).
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

/// Field limits of SPEC §5, enforced by the library (synchronously) and again by the server.
pub mod limits {
    /// User ID and nick name, in bytes.
    pub const USER_ID_MAX: usize = 128;
    pub const NICK_MAX: usize = 128;
    /// App ID, in bytes (the SPEC is silent; documented in docs/PROTOCOL.md).
    pub const APP_ID_MAX: usize = 128;
    /// Tenant secret, in bytes (the SPEC is silent; documented in docs/PROTOCOL.md).
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
        let s = UserStatus {
            user_id: "alice".into(),
            user_status: 1,
            dnd_type: 0,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"userID":"alice","userStatus":1,"DNDType":0}"#
        );
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
        let m = ClientMsg::SetDnd { id: 3, dnd: 2 };
        let j = to_json(&m);
        assert_eq!(j, br#"{"t":"set_dnd","id":3,"dnd":2}"#);
        assert_eq!(serde_json::from_slice::<ClientMsg>(&j).unwrap(), m);
        let extra = br#"{"t":"get_meetings","id":9,"future":true}"#;
        assert_eq!(
            serde_json::from_slice::<ClientMsg>(extra).unwrap(),
            ClientMsg::GetMeetings { id: 9 }
        );
        assert!(serde_json::from_slice::<ClientMsg>(br#"{"t":"nope","id":1}"#).is_err());
    }
}
