//! `crvm_callbacks`: the app's event functions, copied at `crvm_create`, and the handler that
//! delivers each core [`Event`] as one call of its member. Struct and dispatch are both made
//! from the events table (`src/events.rs`), so they cannot disagree; `build.rs` renders the same
//! table into the header.
//!
//! Conversions happen here and only here: JSON with the pinned keys, base64, C strings. They
//! are written into buffers kept from one event to the next, so delivering an event allocates
//! nothing once the buffers have grown to size.

use crate::core::{Code, Event, EventHandler, Meeting, UserStatus};
use crvm_proto::error::code_of;
use parking_lot::Mutex;
use std::ffi::{c_char, c_void};

/// The C type of an argument of each kind of the table.
macro_rules! c_type {
    (Id) => { *const c_char };
    (Str) => { *const c_char };
    (Json) => { *const c_char };
    (B64) => { *const c_char };
    (Code) => { i32 };
    (Rslt) => { i32 };
    (I32) => { i32 };
    (I64) => { i64 };
}

/// The C value of an argument of each kind, made from the event's field.
macro_rules! c_arg {
    ($s:ident, Id, $e:expr) => {
        $s.str(AsRef::<str>::as_ref($e))
    };
    ($s:ident, Str, $e:expr) => {
        $s.str(AsRef::<str>::as_ref($e))
    };
    ($s:ident, Json, $e:expr) => {
        $s.json($e)
    };
    ($s:ident, B64, $e:expr) => {
        $s.b64(AsRef::<[u8]>::as_ref($e))
    };
    ($s:ident, Code, $e:expr) => {
        Code::get(*$e)
    };
    ($s:ident, Rslt, $e:expr) => {
        code_of($e)
    };
    ($s:ident, I32, $e:expr) => {
        $e
    };
    ($s:ident, I64, $e:expr) => {
        $e
    };
}

macro_rules! define_callbacks {
    (
        $(#[doc = $sdoc:literal])* struct crvm_callbacks;
        $(
            $(#[doc = $vdoc:literal])*
            $variant:ident { $($field:ident : $fty:ty),* $(,)? } on $scrut:tt {
                $(
                    $(#[doc = $cdoc:literal])*
                    $pat:pat => $cb:ident ( $($arg:ident : $kind:ident = $e:expr),* $(,)? )
                ),* $(,)?
            }
        )*
    ) => {
        $(#[doc = $sdoc])*
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        #[allow(non_camel_case_types)]
        pub struct crvm_callbacks {
            $($(
                $(#[doc = $cdoc])*
                pub $cb: Option<unsafe extern "C" fn(ud: *mut c_void, $($arg: c_type!($kind)),*)>,
            )*)*
        }

        /// The member names, in order (for tests of the mirrors and of the layout).
        #[cfg(test)]
        pub(crate) const NAMES: &[&str] = &[$($(stringify!($cb)),*),*];

        /// Calls the member `ev` is delivered through, if the app set it.
        #[allow(unused_variables, clippy::redundant_locals)]
        fn dispatch(c: &crvm_callbacks, ud: *mut c_void, s: &mut Scratch, ev: &Event) {
            match ev {
                $( Event::$variant { $($field),* } => match $scrut {
                    $( $pat => {
                        if let Some(f) = c.$cb {
                            s.reset();
                            let args = ($(c_arg!(s, $kind, $e),)*);
                            // SAFETY: a C function pointer the app registered with this
                            // signature; every string argument lives in `s` until it returns.
                            let ($($arg,)*) = args;
                            unsafe { f(ud, $($arg),*) }
                        }
                    } ),*
                } ),*
            }
        }
    };
}

for_each_event!(define_callbacks);

/// Buffers the C strings of one callback's arguments live in. Each argument gets its own, so
/// that writing one never moves another; they are reused from one event to the next.
#[derive(Default)]
struct Scratch {
    bufs: Vec<Vec<u8>>,
    used: usize,
}

impl Scratch {
    fn reset(&mut self) {
        self.used = 0;
    }

    /// The next buffer, empty.
    fn next(&mut self) -> &mut Vec<u8> {
        if self.used == self.bufs.len() {
            self.bufs.push(Vec::new());
        }
        self.used += 1;
        let b = &mut self.bufs[self.used - 1];
        b.clear();
        b
    }

    /// `s` as a C string. Our strings never contain NUL (they come from C strings or from
    /// serde_json, which escapes control characters); should one ever appear, it is cut there.
    fn str(&mut self, s: &str) -> *const c_char {
        let b = self.next();
        let bytes = s.as_bytes();
        let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
        b.extend_from_slice(&bytes[..end]);
        b.push(0);
        b.as_ptr() as *const c_char
    }

    /// `v` as JSON, with the pinned keys in their order.
    fn json<T: ToJson>(&mut self, v: &T) -> *const c_char {
        let b = self.next();
        v.to_json(b);
        b.push(0);
        b.as_ptr() as *const c_char
    }

    /// `bytes` in base64.
    fn b64(&mut self, bytes: &[u8]) -> *const c_char {
        let b = self.next();
        super::b64::encode_into(bytes, b);
        b.push(0);
        b.as_ptr() as *const c_char
    }
}

/// The JSON the callbacks hand out (docs/API.md §3.2, §3.3).
trait ToJson {
    fn to_json(&self, out: &mut Vec<u8>);
}

/// Statuses by hand: a presence push is the event a busy client gets most.
impl ToJson for UserStatus {
    fn to_json(&self, out: &mut Vec<u8>) {
        self.write_json(out);
    }
}

impl ToJson for Vec<UserStatus> {
    fn to_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            s.write_json(out);
        }
        out.push(b']');
    }
}

macro_rules! serde_json_to_json {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self, out: &mut Vec<u8>) {
                // Serialising plain structs into memory cannot fail.
                let _ = serde_json::to_writer(out, self);
            }
        }
    )*};
}

serde_json_to_json!(Meeting, Vec<Meeting>);

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
    /// Held while a callback runs; only one runs at a time per client (the dispatch gate), so
    /// it is never contended.
    scratch: Mutex<Scratch>,
}

// SAFETY: the app hands us `user_data` knowing that callbacks run on the client's thread
// (documented on crvm_create); the library itself never dereferences it.
unsafe impl Send for CHandler {}
unsafe impl Sync for CHandler {}

impl CHandler {
    pub fn new(cbs: crvm_callbacks, ud: *mut c_void) -> Self {
        CHandler {
            cbs,
            ud,
            scratch: Mutex::new(Scratch::default()),
        }
    }
}

impl EventHandler for CHandler {
    fn on_event(&self, ev: &Event) {
        let mut s = self.scratch.lock();
        dispatch(&self.cbs, self.ud, &mut s, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crvm_proto::error::code;
    use std::ffi::CStr;

    #[test]
    fn one_member_per_name_in_the_pinned_order() {
        let member = std::mem::size_of::<Option<unsafe extern "C" fn()>>();
        assert_eq!(std::mem::size_of::<crvm_callbacks>(), NAMES.len() * member);
        // The 36 documented events, then the extensions, appended in their pinned order.
        assert_eq!(NAMES.len(), 38);
        assert_eq!(NAMES[0], "login_success");
        assert_eq!(NAMES[2], "line_off");
        assert_eq!(NAMES[35], "notify_cancel_send");
        assert_eq!(NAMES[36], "line_reconnecting");
        assert_eq!(NAMES[37], "line_resumed");
    }

    #[test]
    fn arguments_are_converted_once_and_live_for_the_call() {
        use std::sync::Mutex as StdMutex;
        static SEEN: StdMutex<Vec<String>> = StdMutex::new(Vec::new());
        unsafe extern "C" fn get_status(
            _: *mut c_void,
            json: *const c_char,
            cookie: *const c_char,
        ) {
            let json = CStr::from_ptr(json).to_str().unwrap().to_owned();
            let cookie = CStr::from_ptr(cookie).to_str().unwrap().to_owned();
            SEEN.lock().unwrap().push(format!("{json} {cookie}"));
        }
        unsafe extern "C" fn cmd(_: *mut c_void, from: *const c_char, b64: *const c_char) {
            let from = CStr::from_ptr(from).to_str().unwrap().to_owned();
            let b64 = CStr::from_ptr(b64).to_str().unwrap().to_owned();
            SEEN.lock().unwrap().push(format!("{from} {b64}"));
        }
        unsafe extern "C" fn call_fail(
            _: *mut c_void,
            id: *const c_char,
            e: i32,
            _: *const c_char,
        ) {
            let id = CStr::from_ptr(id).to_str().unwrap().to_owned();
            SEEN.lock().unwrap().push(format!("{id} {e}"));
        }
        let cbs = crvm_callbacks {
            get_user_status_success: Some(get_status),
            notify_cmd_data: Some(cmd),
            call_fail: Some(call_fail),
            ..Default::default()
        };
        let h = CHandler::new(cbs, std::ptr::null_mut());
        h.on_event(&Event::GetUserStatus {
            result: Ok(vec![
                crvm_proto::UserStatus::new("a\"b", 1, 0),
                crvm_proto::UserStatus {
                    reconnecting: true,
                    ..crvm_proto::UserStatus::new("c", 2, 4)
                },
            ]),
            cookie: "k".into(),
        });
        h.on_event(&Event::NotifyCmdData {
            from: "bob".into(),
            data: vec![0, 255, 7],
        });
        h.on_event(&Event::Call {
            call_id: "c-1".into(),
            result: Err(code(603)),
            cookie: String::new(),
        });
        // No member set: nothing happens.
        h.on_event(&Event::LineOff { code: code(207) });
        assert_eq!(
            *SEEN.lock().unwrap(),
            [
                concat!(
                    r#"[{"userID":"a\"b","userStatus":1,"DNDType":0},"#,
                    r#"{"userID":"c","userStatus":2,"DNDType":4,"reconnecting":true}] k"#
                ),
                "bob AP8H",
                "c-1 603",
            ]
        );
    }
}
