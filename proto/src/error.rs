//! The error table of docs/API.md §6: the one place where every code, its pinned name and its English
//! text live. The library exports the constants into `crvm.h` and answers `crvm_err_str` from
//! [`err_str`]; the server puts the same numbers on the wire.

/// No error.
pub const CRVIDEOSDK_NOERR: i32 = 0;
/// Unknown error.
pub const CRVIDEOSDK_UNKNOWERR: i32 = 1;
/// Out of memory.
pub const CRVIDEOSDK_OUTOF_MEM: i32 = 2;
/// Internal error (also: a Rust panic caught at the C boundary).
pub const CRVIDEOSDK_INNER_ERR: i32 = 3;
/// Client version not supported by the server.
pub const CRVIDEOSDK_MISMATCHCLIENTVER: i32 = 4;
/// Invalid parameter.
pub const CRVIDEOSDK_MEETPARAM_ERR: i32 = 5;
/// Invalid data.
pub const CRVIDEOSDK_ERR_DATA: i32 = 6;
/// Wrong account or password.
pub const CRVIDEOSDK_ANCTPSWD_ERR: i32 = 7;
/// Server error.
pub const CRVIDEOSDK_SERVER_EXCEPTION: i32 = 8;
/// Wrong login state (e.g. login while logged in or logging in).
pub const CRVIDEOSDK_LOGINSTATE_ERROR: i32 = 9;
/// Logged in elsewhere; this session was kicked.
pub const CRVIDEOSDK_USER_BEEN_KICKOUT: i32 = 10;
/// Not initialised.
pub const CRVIDEOSDK_NOT_INIT: i32 = 11;
/// Not logged in.
pub const CRVIDEOSDK_NOT_LOGIN: i32 = 12;
/// Base64 conversion failed.
pub const CRVIDEOSDK_BASE64_COV_ERR: i32 = 13;
/// Custom auth required but none given.
pub const CRVIDEOSDK_CUSTOMAUTH_NOINFO: i32 = 14;
/// Custom auth given but not enabled.
pub const CRVIDEOSDK_CUSTOMAUTH_NOTSUPPORT: i32 = 15;
/// Custom auth service failed.
pub const CRVIDEOSDK_CUSTOMAUTH_EXCEPTION: i32 = 16;
/// Custom auth rejected.
pub const CRVIDEOSDK_CUSTOMAUTH_FAILED: i32 = 17;
/// Token expired.
pub const CRVIDEOSDK_TOKEN_TIMEOUT: i32 = 18;
/// Token auth info invalid.
pub const CRVIDEOSDK_TOKEN_AUTHINFOERR: i32 = 19;
/// App ID does not exist.
pub const CRVIDEOSDK_TOKEN_APPIDNOTEXIST: i32 = 20;
/// Token authentication failed.
pub const CRVIDEOSDK_TOKEN_AUTH_FAILED: i32 = 21;
/// Not a token-auth tenant.
pub const CRVIDEOSDK_TOKEN_NOTTOKENTYPE: i32 = 22;
/// Network init failed.
pub const CRVIDEOSDK_NETWORK_INITFAILED: i32 = 200;
/// No server address.
pub const CRVIDEOSDK_NO_SERVERINFO: i32 = 201;
/// Server did not respond.
pub const CRVIDEOSDK_NOSERVER_RSP: i32 = 202;
/// Could not connect.
pub const CRVIDEOSDK_CREATE_CONN_FAILED: i32 = 203;
/// Socket error.
pub const CRVIDEOSDK_SOCKETEXCEPTION: i32 = 204;
/// Network timeout.
pub const CRVIDEOSDK_SOCKETTIMEOUT: i32 = 205;
/// Connection closed by the server.
pub const CRVIDEOSDK_FORCEDCLOSECONNECTION: i32 = 206;
/// Connection lost.
pub const CRVIDEOSDK_CONNECTIONLOST: i32 = 207;
/// TLS error.
pub const CRVIDEOSDK_SSL_ERR: i32 = 209;
/// Invalid call ID.
pub const CRVIDEOSDK_INVALID_CALLID: i32 = 600;
/// Already in a call.
pub const CRVIDEOSDK_ERR_CALL_EXIST: i32 = 601;
/// Callee busy.
pub const CRVIDEOSDK_ERR_BUSY: i32 = 602;
/// Callee offline.
pub const CRVIDEOSDK_ERR_OFFLINE: i32 = 603;
/// No answer.
pub const CRVIDEOSDK_ERR_NOANSWER: i32 = 604;
/// User not found.
pub const CRVIDEOSDK_ERR_USER_NOT_FOUND: i32 = 605;
/// Callee refused.
pub const CRVIDEOSDK_ERR_REFUSE: i32 = 606;
/// Meeting does not exist.
pub const CRVIDEOSDK_MEETNOTEXIST: i32 = 800;
/// Send failed.
pub const CRVIDEOSDK_SENDFAIL: i32 = 1000;
/// Cmd data too large.
pub const CRVIDEOSDK_SENDCMD_LARGE: i32 = 1100;
/// Buffer too large.
pub const CRVIDEOSDK_SENDBUFFER_LARGE: i32 = 1101;
/// Target user offline or unknown.
pub const CRVIDEOSDK_SENDDATA_TARGETINVALID: i32 = 1102;
/// File error.
pub const CRVIDEOSDK_SENDFILE_FILEINERROR: i32 = 1103;
/// Invalid task ID.
pub const CRVIDEOSDK_TRANSID_INVALID: i32 = 1104;
/// File does not exist.
pub const CRVIDEOSDK_FILE_NOT_EXIST: i32 = 1400;
/// File read failed.
pub const CRVIDEOSDK_FILE_READ_ERR: i32 = 1401;
/// File write failed.
pub const CRVIDEOSDK_FILE_WRITE_ERR: i32 = 1402;
/// File already exists.
pub const CRVIDEOSDK_FILE_ALREADY_EXIST: i32 = 1403;
/// File operation failed.
pub const CRVIDEOSDK_FILE_OPERATOR_ERR: i32 = 1404;

/// A non-zero error code of docs/API.md §6: the `Err` of every fallible operation of the Rust API and
/// of message validation. Success is never a `Code` (it is `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(std::num::NonZeroI32);

impl Code {
    /// `Some` for any non-zero code.
    pub const fn new(code: i32) -> Option<Code> {
        match std::num::NonZeroI32::new(code) {
            Some(c) => Some(Code(c)),
            None => None,
        }
    }

    /// The number, as the C API and the wire carry it.
    pub const fn get(self) -> i32 {
        self.0.get()
    }

    /// English text (docs/API.md §6).
    pub fn text(self) -> &'static str {
        err_str(self.get())
    }
}

/// The [`Code`] of a non-zero constant (a zero is a bug at the call site).
pub const fn code(c: i32) -> Code {
    match Code::new(c) {
        Some(c) => c,
        None => panic!("0 is success, not an error code"),
    }
}

/// A wire or C result code as a `Result`: 0 is `Ok`.
pub fn check(c: i32) -> Result<(), Code> {
    match Code::new(c) {
        None => Ok(()),
        Some(c) => Err(c),
    }
}

/// The wire or C form of a `Result`: 0 for `Ok`.
pub fn code_of<T>(r: &Result<T, Code>) -> i32 {
    match r {
        Ok(_) => CRVIDEOSDK_NOERR,
        Err(c) => c.get(),
    }
}

impl From<Code> for i32 {
    fn from(c: Code) -> i32 {
        c.get()
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.get(), self.text())
    }
}

impl std::error::Error for Code {}

/// One row of the error table.
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfo {
    pub code: i32,
    pub name: &'static str,
    /// NUL-terminated English text, so the C surface can hand it out without allocating.
    pub text: &'static str,
}

macro_rules! row {
    ($name:ident, $text:literal) => {
        ErrorInfo {
            code: $name,
            name: stringify!($name),
            text: concat!($text, "\0"),
        }
    };
}

/// Every code of docs/API.md §6, in ascending order.
pub static ERRORS: &[ErrorInfo] = &[
    row!(CRVIDEOSDK_NOERR, "no error"),
    row!(CRVIDEOSDK_UNKNOWERR, "unknown error"),
    row!(CRVIDEOSDK_OUTOF_MEM, "out of memory"),
    row!(CRVIDEOSDK_INNER_ERR, "internal error"),
    row!(
        CRVIDEOSDK_MISMATCHCLIENTVER,
        "client version not supported by the server"
    ),
    row!(CRVIDEOSDK_MEETPARAM_ERR, "invalid parameter"),
    row!(CRVIDEOSDK_ERR_DATA, "invalid data"),
    row!(CRVIDEOSDK_ANCTPSWD_ERR, "wrong account or password"),
    row!(CRVIDEOSDK_SERVER_EXCEPTION, "server error"),
    row!(CRVIDEOSDK_LOGINSTATE_ERROR, "wrong login state"),
    row!(
        CRVIDEOSDK_USER_BEEN_KICKOUT,
        "logged in elsewhere; this session was kicked"
    ),
    row!(CRVIDEOSDK_NOT_INIT, "not initialised"),
    row!(CRVIDEOSDK_NOT_LOGIN, "not logged in"),
    row!(CRVIDEOSDK_BASE64_COV_ERR, "base64 conversion failed"),
    row!(
        CRVIDEOSDK_CUSTOMAUTH_NOINFO,
        "custom auth required but none given"
    ),
    row!(
        CRVIDEOSDK_CUSTOMAUTH_NOTSUPPORT,
        "custom auth given but not enabled"
    ),
    row!(
        CRVIDEOSDK_CUSTOMAUTH_EXCEPTION,
        "custom auth service failed"
    ),
    row!(CRVIDEOSDK_CUSTOMAUTH_FAILED, "custom auth rejected"),
    row!(CRVIDEOSDK_TOKEN_TIMEOUT, "token expired"),
    row!(CRVIDEOSDK_TOKEN_AUTHINFOERR, "token auth info invalid"),
    row!(CRVIDEOSDK_TOKEN_APPIDNOTEXIST, "app ID does not exist"),
    row!(CRVIDEOSDK_TOKEN_AUTH_FAILED, "token authentication failed"),
    row!(CRVIDEOSDK_TOKEN_NOTTOKENTYPE, "not a token-auth tenant"),
    row!(CRVIDEOSDK_NETWORK_INITFAILED, "network init failed"),
    row!(CRVIDEOSDK_NO_SERVERINFO, "no server address"),
    row!(CRVIDEOSDK_NOSERVER_RSP, "server did not respond"),
    row!(CRVIDEOSDK_CREATE_CONN_FAILED, "could not connect"),
    row!(CRVIDEOSDK_SOCKETEXCEPTION, "socket error"),
    row!(CRVIDEOSDK_SOCKETTIMEOUT, "network timeout"),
    row!(
        CRVIDEOSDK_FORCEDCLOSECONNECTION,
        "connection closed by the server"
    ),
    row!(CRVIDEOSDK_CONNECTIONLOST, "connection lost"),
    row!(CRVIDEOSDK_SSL_ERR, "TLS error"),
    row!(CRVIDEOSDK_INVALID_CALLID, "invalid call ID"),
    row!(CRVIDEOSDK_ERR_CALL_EXIST, "already in a call"),
    row!(CRVIDEOSDK_ERR_BUSY, "callee busy"),
    row!(CRVIDEOSDK_ERR_OFFLINE, "callee offline"),
    row!(CRVIDEOSDK_ERR_NOANSWER, "no answer"),
    row!(CRVIDEOSDK_ERR_USER_NOT_FOUND, "user not found"),
    row!(CRVIDEOSDK_ERR_REFUSE, "callee refused"),
    row!(CRVIDEOSDK_MEETNOTEXIST, "meeting does not exist"),
    row!(CRVIDEOSDK_SENDFAIL, "send failed"),
    row!(CRVIDEOSDK_SENDCMD_LARGE, "cmd data too large"),
    row!(CRVIDEOSDK_SENDBUFFER_LARGE, "buffer too large"),
    row!(
        CRVIDEOSDK_SENDDATA_TARGETINVALID,
        "target user offline or unknown"
    ),
    row!(CRVIDEOSDK_SENDFILE_FILEINERROR, "file error"),
    row!(CRVIDEOSDK_TRANSID_INVALID, "invalid task ID"),
    row!(CRVIDEOSDK_FILE_NOT_EXIST, "file does not exist"),
    row!(CRVIDEOSDK_FILE_READ_ERR, "file read failed"),
    row!(CRVIDEOSDK_FILE_WRITE_ERR, "file write failed"),
    row!(CRVIDEOSDK_FILE_ALREADY_EXIST, "file already exists"),
    row!(CRVIDEOSDK_FILE_OPERATOR_ERR, "file operation failed"),
];

/// The table row of `code`, if it is a known code.
pub fn lookup(code: i32) -> Option<&'static ErrorInfo> {
    ERRORS
        .binary_search_by_key(&code, |e| e.code)
        .ok()
        .map(|i| &ERRORS[i])
}

/// English text of `code` without the trailing NUL; unknown codes read as "unknown error code".
pub fn err_str(code: i32) -> &'static str {
    let with_nul = err_str_nul(code);
    &with_nul[..with_nul.len() - 1]
}

/// English text of `code` with a trailing NUL, for the C surface.
pub fn err_str_nul(code: i32) -> &'static str {
    lookup(code).map_or("unknown error code\0", |e| e.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_complete() {
        assert_eq!(ERRORS.len(), 51);
        for w in ERRORS.windows(2) {
            assert!(w[0].code < w[1].code, "{} !< {}", w[0].name, w[1].name);
        }
        for e in ERRORS {
            assert!(e.name.starts_with("CRVIDEOSDK_"));
            assert!(e.text.ends_with('\0') && e.text.len() > 1);
            assert_eq!(lookup(e.code).unwrap().name, e.name);
        }
    }

    #[test]
    fn unknown_codes_have_text() {
        assert_eq!(err_str(-1), "unknown error code");
        assert_eq!(err_str(CRVIDEOSDK_ERR_BUSY), "callee busy");
        assert_eq!(err_str_nul(CRVIDEOSDK_NOERR), "no error\0");
    }
}
