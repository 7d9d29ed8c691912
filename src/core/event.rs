//! Events the core reports to the app, in the order they happened: the typed form of docs/API.md
//! §2.3. A request's success and failure are one event carrying a `Result`; JSON and base64
//! exist only at the C surface. The enum, its names and its log lines come from the one
//! table in `src/events.rs`.

use crvm_proto::error::code_of;
use crvm_proto::{Code, Meeting, UserStatus};
use std::sync::Arc;

/// One line of an [`Event::summary`]: IDs, codes and numbers; never a string the app chose.
macro_rules! summary_arg {
    ($line:ident, Id, $arg:ident, $e:expr) => {
        $line.push_str(&format!(" {}={}", stringify!($arg), $e))
    };
    ($line:ident, Code, $arg:ident, $e:expr) => {
        $line.push_str(&format!(" {}={}", stringify!($arg), $e.get()))
    };
    ($line:ident, Rslt, $arg:ident, $e:expr) => {
        $line.push_str(&format!(" {}={}", stringify!($arg), code_of($e)))
    };
    ($line:ident, I32, $arg:ident, $e:expr) => {
        $line.push_str(&format!(" {}={}", stringify!($arg), $e))
    };
    ($line:ident, I64, $arg:ident, $e:expr) => {
        $line.push_str(&format!(" {}={}", stringify!($arg), $e))
    };
    // Cookies, user data, JSON and payloads stay out of logs.
    ($line:ident, $other:ident, $arg:ident, $e:expr) => {};
}

macro_rules! define_events {
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
        /// One event of a client (docs/API.md §2.3). Requests end in one event each, whose `result`
        /// is `Ok` or the docs/API.md §6 code; pushes and notifications carry their data typed.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $( $(#[doc = $vdoc])* $variant { $( $field: $fty ),* } ),*
        }

        impl Event {
            /// The `crvm_callbacks` member this event is delivered through.
            #[allow(unused_variables)]
            pub fn name(&self) -> &'static str {
                match self {
                    $( Event::$variant { $($field),* } => match $scrut {
                        $( $pat => stringify!($cb) ),*
                    } ),*
                }
            }

            /// A log line: the member's name and its ID, code and number arguments. Never a
            /// cookie, payload, meeting object or other data of the app's.
            #[allow(unused_variables, unused_mut)]
            pub fn summary(&self) -> String {
                match self {
                    $( Event::$variant { $($field),* } => match $scrut {
                        $( $pat => {
                            let mut line = String::from(stringify!($cb));
                            $( summary_arg!(line, $kind, $arg, $e); )*
                            line
                        } ),*
                    } ),*
                }
            }
        }
    };
}

for_each_event!(define_events);

/// Receives events on the dispatching thread (the client's network thread, or the thread
/// inside `poll`). Never called with a library lock held, so it may call back into the client.
pub trait EventHandler: Send + Sync {
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> EventHandler for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crvm_proto::error::code;

    #[test]
    fn names_and_summaries_follow_the_table() {
        let ok = Event::Login {
            result: Ok("alice".into()),
            cookie: "secret-cookie".into(),
        };
        assert_eq!(ok.name(), "login_success");
        assert_eq!(ok.summary(), "login_success usr_id=alice");
        let failed = Event::Call {
            call_id: "c-1".into(),
            result: Err(code(603)),
            cookie: "x".into(),
        };
        assert_eq!(failed.name(), "call_fail");
        assert_eq!(failed.summary(), "call_fail call_id=c-1 sdk_err=603");
        let sent = Event::CmdSent {
            task_id: "t-1".into(),
            result: Ok(()),
        };
        assert_eq!(sent.summary(), "send_cmd_rlst task_id=t-1 sdk_err=0");
        let data = Event::NotifyCmdData {
            from: "bob".into(),
            data: b"payload".to_vec(),
        };
        assert_eq!(data.summary(), "notify_cmd_data source_user_id=bob");
        let p = Event::SendProgress {
            task_id: "t".into(),
            sent: 5,
            total: 9,
        };
        assert_eq!(
            p.summary(),
            "send_progress task_id=t sended_len=5 total_len=9"
        );
    }
}
