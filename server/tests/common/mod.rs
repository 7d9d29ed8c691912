//! Helpers shared by the server's integration tests: the launch helpers of `crvm-testkit`, the
//! raw protocol client of crvm-proto, and the few words the tests share on top of them.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crvm_proto::frame::control_prefix;
use crvm_proto::{Kind, ServerMsg, UserStatus};

pub mod effects;
pub mod http;
pub mod user;
pub mod ws;

pub use crvm_testkit::topology::Kind as Topo;
pub use crvm_testkit::{cluster, config, Server, TmpDir, Topology, PATIENCE, TENANTS};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_crvm-server");

/// Runs the binary to completion with `args` (for the failure and `token` cases).
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Mints a token through `crvm-server token`.
pub fn cli_token(config: &Path, app: &str, user: &str, ttl: u64) -> String {
    let out = run(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--app",
        app,
        "--user",
        user,
        "--ttl",
        &ttl.to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap().to_owned();
    assert_eq!(lines.next(), None, "one line only");
    token
}

/// The blocking protocol client of the tests (the project's one raw client).
pub use crvm_proto::raw::{login_op, re_of, RawClient as Client};

/// Says hello and logs in on `c`: 0, or the code the login was refused with.
pub fn login_code(c: &mut Client, app: &str, secret: &str, user: &str) -> i32 {
    c.hello();
    match c.login(app, secret, user, "") {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        } => 0,
        ServerMsg::Res {
            result: crvm_proto::Outcome::Err(code),
            ..
        } => code,
        other => panic!("{other:?}"),
    }
}

/// [`login_code`] on a fresh connection to a server.
pub trait LoginCode {
    fn login_code(&self, app: &str, secret: &str, user: &str) -> i32;
}

impl LoginCode for Server {
    fn login_code(&self, app: &str, secret: &str, user: &str) -> i32 {
        login_code(&mut self.connect(), app, secret, user)
    }
}

/// Asserts that the answer to a status request is the next message on `c`: nothing else (a
/// stray `cmd_in`, `cmd_done`, `start` or `incoming`) was queued to it before.
pub fn assert_nothing_pending(c: &mut Client, who: &str) {
    let id = c.id();
    c.send_req(id, crvm_proto::Op::GetUserStatus);
    match c.msg() {
        ServerMsg::Res {
            re,
            result: crvm_proto::Outcome::Statuses(_),
        } => assert_eq!(re, id),
        other => panic!("{who}: unexpected {other:?}"),
    }
}

/// A `call` request to `callee` (no meeting, no extension data).
pub fn call_op(call_id: &str, callee: &str) -> crvm_proto::Op {
    crvm_proto::Op::Call {
        call_id: call_id.into(),
        callee: callee.into(),
        meet_obj: String::new(),
        ext: String::new(),
    }
}

/// The answer to `caller`'s call request `re` is success, and `callee` rings with `call_id`.
pub fn assert_call_rang(caller: &mut Client, callee: &mut Client, re: u64, call_id: &str) {
    match caller.reply() {
        ServerMsg::Res { re: r, result } if r == re => assert_eq!(result.code(), 0, "the call"),
        other => panic!("caller: {other:?}"),
    }
    match callee.reply() {
        ServerMsg::CallIn { call_id: id, .. } => assert_eq!(id, call_id),
        other => panic!("callee: {other:?}"),
    }
}

/// A status object.
pub fn st(user: &str, status: i32, dnd: i32) -> UserStatus {
    UserStatus::new(user, status, dnd)
}

/// The bytes of a control frame of `c` whose JSON text is `json` as is (malformed, foreign or
/// old-format messages, which [`Client::send`] cannot build). Advances `c`'s sequence number.
pub fn raw_control(c: &mut Client, json: &[u8]) -> Vec<u8> {
    c.codec.frame(Kind::Control, &[&control_prefix(json), json])
}

/// Says hello on `c` and logs `user` of tenant `demo` in, resumable: the session's ID and the
/// secret to resume it with.
pub fn login_resumable(c: &mut crvm_proto::raw::RawClient, user: &str) -> (String, String) {
    c.hello();
    let id = c.id();
    c.send(&crvm_proto::ClientMsg::Req {
        id,
        op: crvm_proto::Op::Login {
            app_id: "demo".into(),
            secret: "demo-secret".into(),
            user_id: user.into(),
            nick: String::new(),
            token: String::new(),
            resume: true,
        },
    });
    assert!(matches!(
        c.msg(),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
    match c.msg() {
        ServerMsg::Resumable {
            session, secret, ..
        } => (session, secret),
        other => panic!("resumable: {other:?}"),
    }
}
