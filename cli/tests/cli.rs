//! The `crvm` CLI against a real `crvm-server --dev`, one server per test on a free port. Two
//! `crvm` processes talk to each other where the feature needs two parties; a process waiting
//! for its peer is only started on once it has printed its `ready` line.

mod common;

use common::{crvm_cmd, Server, TmpDir};
use serde_json::Value;

fn is_event(line: &str, event: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == event)
}

#[test]
fn login_success_and_wrong_secret() {
    let srv = Server::start();
    let r = srv.run("alice", &["login"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "logged in as alice\n");

    // Global flags after the command, and the flag beats the environment.
    let r = srv.run("alice", &["login", "--secret", "wrong"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("7 wrong account or password"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");

    let r = srv.run("alice", &["--json", "login"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["event"], "logged_in");
    assert_eq!(v[0]["user"], "alice");

    let r = srv.run("alice", &["--json", "--app-id", "nope", "login"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!(v[0]["event"], "error");
    assert_eq!(v[0]["code"], 7);
    assert_eq!(v[0]["text"], "wrong account or password");
    assert_eq!(v[0]["exit"], 1);

    // No user: the server picks one.
    let r = srv.run("", &["--json", "login"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.json()[0]["user"].as_str().unwrap().is_empty());
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let addr = "127.0.0.1:9"; // never contacted: every case fails before connecting
    for args in [
        &[][..],
        &["frobnicate"],
        &["call"],
        &["call", "a", "b"],
        &["login", "--bogus"],
        &["--timeout", "soon", "login"],
        &["dnd", "maybe"],
        &["receive", "--count", "0"],
        &["meetings", "destroy", "not-a-number"],
        &["meetings", "rename"],
        &["login", "--server", "no-port"],
        &["answer", "--hangup-after"],
    ] {
        let r = common::Run::from(crvm_cmd(addr).args(args).output().unwrap());
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(!r.stderr.is_empty(), "{args:?}");
    }
    // No credentials at all.
    let r = common::Run::from(
        crvm_cmd(addr)
            .env_remove("CRVM_APP_ID")
            .arg("login")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("CRVM_APP_ID"), "{}", r.stderr);

    let r = common::Run::from(crvm_cmd(addr).arg("--help").output().unwrap());
    assert_eq!(r.code, 0);
    for needle in ["Exit codes", "CRVM_SERVER", "send-file", "130"] {
        assert!(r.stdout.contains(needle), "{needle}");
    }
    for cmd in [
        "login",
        "status",
        "dnd",
        "call",
        "answer",
        "send-cmd",
        "send-file",
        "receive",
        "meetings",
    ] {
        let r = common::Run::from(crvm_cmd(addr).args([cmd, "--help"]).output().unwrap());
        assert_eq!(r.code, 0, "{cmd}");
        assert!(r.stdout.starts_with("Usage: crvm "), "{cmd}: {}", r.stdout);
    }
}

#[test]
fn unreachable_server_exits_3() {
    // A port that was free a moment ago and has nobody listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let r = common::Run::from(crvm_cmd(&addr).arg("login").output().unwrap());
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("203 could not connect"), "{}", r.stderr);
    let r = common::Run::from(crvm_cmd(&addr).args(["--json", "status"]).output().unwrap());
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()[0]["code"], 203);
}

/// A file that is not all one byte, a few chunks long.
fn test_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn file_transfer_between_two_cli_processes() {
    let srv = Server::start();
    let tmp = TmpDir::new();
    let src = tmp.path("report.bin");
    let data = test_bytes(3 * 1024 * 1024 + 123);
    std::fs::write(&src, &data).unwrap();
    let inbox = tmp.path("inbox"); // created by `receive`

    let mut rx = srv.spawn(
        "bob",
        &[
            "receive",
            "--dir",
            inbox.to_str().unwrap(),
            "--count",
            "1",
            "--json",
        ],
    );
    let ready = rx.expect_json("ready", |_| true);
    assert_eq!(ready["user"], "bob");

    let r = srv.run("alice", &["send-file", "bob", src.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with(&format!("sent {} to bob: 3.0 MiB", src.display())),
        "{}",
        r.stdout
    );
    // stderr is not a terminal here: no progress bar.
    assert_eq!(r.stderr, "");

    let file = rx.expect_json("file", |_| true);
    assert_eq!(rx.finish(), 0, "{:?} {}", rx.seen, rx.stderr());
    assert_eq!(file["from"], "alice");
    assert_eq!(file["name"], "report.bin");
    assert_eq!(file["bytes"], data.len());
    let path = std::path::PathBuf::from(file["path"].as_str().unwrap());
    assert_eq!(path, inbox.canonicalize().unwrap().join("report.bin"));
    assert!(std::fs::read(&path).unwrap() == data, "bytes differ");
}

#[test]
fn send_file_json_progress_and_failures() {
    let srv = Server::start();
    let tmp = TmpDir::new();
    let src = tmp.path("data.bin");
    let data = test_bytes(2 * 1024 * 1024);
    std::fs::write(&src, &data).unwrap();
    let mut rx = srv.spawn(
        "bob",
        &["receive", "--dir", tmp.path("in").to_str().unwrap()],
    );
    rx.expect("ready line", |l| {
        l.starts_with("ready: bob is receiving into ")
    });

    let r = srv.run(
        "alice",
        &["--json", "send-file", "bob", src.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let lines = r.json();
    let (last, progress) = lines.split_last().unwrap();
    assert_eq!(last["event"], "sent");
    assert_eq!(last["bytes"], data.len());
    assert!(!progress.is_empty());
    let mut prev = 0;
    for p in progress {
        assert_eq!(p["event"], "progress");
        assert_eq!(p["total"], data.len());
        let sent = p["sent"].as_u64().unwrap();
        assert!(sent >= prev);
        prev = sent;
    }
    assert_eq!(prev, data.len() as u64, "a final progress line");
    rx.expect("the file", |l| {
        l.starts_with("file from alice: data.bin (2.0 MiB)")
    });

    // Human output of cmds on the receiving side.
    let r = srv.run("alice", &["send-cmd", "bob", "hello bob"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "cmd delivered to bob (9 bytes)\n");
    rx.expect("the cmd", |l| l == "cmd from alice: hello bob");

    // Offline target, missing file.
    let r = srv.run("alice", &["send-file", "carol", src.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("1102 target user offline"),
        "{}",
        r.stderr
    );
    let missing = tmp.path("missing.bin");
    let r = srv.run(
        "alice",
        &["--json", "send-file", "bob", missing.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()[0]["code"], 1400);

    // Without --count, SIGTERM is the normal end of `receive`.
    rx.signal(libc::SIGTERM);
    assert_eq!(rx.finish(), 0, "{}", rx.stderr());
}

#[test]
fn call_and_answer_then_caller_hangs_up_with_ctrl_c() {
    let srv = Server::start();
    let mut callee = srv.spawn("bob", &["answer", "--json"]);
    callee.expect_json("ready", |v| v["waiting"] == "call");

    let mut caller = srv.spawn("alice", &["call", "bob", "--json"]);
    let ringing = caller.expect_json("ringing", |_| true);
    let call_id = ringing["call_id"].as_str().unwrap().to_owned();
    let incoming = callee.expect_json("incoming", |_| true);
    assert_eq!(incoming["call_id"], call_id.as_str());
    assert_eq!(incoming["peer"], "alice");
    callee.expect_json("connected", |v| v["call_id"] == call_id.as_str());
    caller.expect_json("connected", |v| v["peer"] == "bob");

    // Ctrl-C on the caller hangs up; both sides end with 0.
    caller.signal(libc::SIGINT);
    assert_eq!(caller.finish(), 0, "{}", caller.stderr());
    assert!(caller
        .seen
        .iter()
        .any(|l| is_event(l, "hungup") && l.contains("\"me\"")));
    callee.expect_json("hungup", |v| v["by"] == "peer");
    assert_eq!(callee.finish(), 0, "{}", callee.stderr());
}

#[test]
fn rejected_and_unanswered_calls() {
    let srv = Server::start();
    let mut callee = srv.spawn("bob", &["answer", "--reject", "--from", "alice"]);
    callee.expect("ready line", |l| l == "ready: bob is waiting for a call");

    // Someone else is turned away, and the wait goes on.
    let r = srv.run("carol", &["call", "bob"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("606 callee refused"), "{}", r.stderr);
    callee.expect("carol turned away", |l| l == "rejected a call from carol");

    let r = srv.run("alice", &["--json", "call", "bob"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v = r.json();
    assert_eq!(v.last().unwrap()["code"], 606);
    assert_eq!(callee.finish(), 0, "{}", callee.stderr());
    assert!(callee
        .seen
        .contains(&"rejected the call from alice".to_owned()));

    // Calling someone offline.
    let r = srv.run("alice", &["call", "bob"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("603 callee offline"), "{}", r.stderr);
}

#[test]
fn timeouts_exit_4_and_interrupts_exit_130() {
    let srv = Server::start();
    // Nobody calls: --timeout ends the wait.
    let r = srv.run("bob", &["answer", "--timeout", "0.3"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("timed out waiting for a call"),
        "{}",
        r.stderr
    );

    // Interrupted before its goal (one file): 130 for SIGINT, 143 for SIGTERM.
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let tmp = TmpDir::new();
        let mut rx = srv.spawn(
            "bob",
            &[
                "receive",
                "--count",
                "1",
                "--json",
                "--dir",
                tmp.0.to_str().unwrap(),
            ],
        );
        rx.expect_json("ready", |_| true);
        rx.signal(sig);
        assert_eq!(rx.finish(), code);
        let err = rx.seen.last().unwrap();
        assert!(
            is_event(err, "error") && err.contains(&format!("\"exit\":{code}")),
            "{err}"
        );
    }
}

#[test]
fn status_watch_sees_dnd_from_another_process() {
    let srv = Server::start();
    let mut watch = srv.spawn("alice", &["status", "--watch", "--json"]);
    let me = watch.expect_json("status", |_| true);
    assert_eq!(me["userID"], "alice");
    assert_eq!(me["userStatus"], 1);
    watch.expect_json("ready", |v| v["watching"] == true);

    let r = srv.run("bob", &["dnd", "on"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "dnd on\n");
    let v = watch.expect_json("status_changed", |v| {
        v["userID"] == "bob" && v["DNDType"] == 1
    });
    assert_eq!(v["userStatus"], 1);

    // The plain list shows who is online right now.
    let r = srv.run("carol", &["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("alice: online, dnd off\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("carol: online, dnd off\n"),
        "{}",
        r.stdout
    );

    watch.signal(libc::SIGINT);
    assert_eq!(watch.finish(), 0, "{}", watch.stderr());
}

#[test]
fn watch_exits_3_when_the_server_goes_away() {
    let srv = Server::start();
    let mut watch = srv.spawn("alice", &["status", "--watch"]);
    watch.expect("ready line", |l| l.starts_with("ready: alice is watching"));
    srv.signal(libc::SIGTERM); // the server says close{206} to everyone
    assert_eq!(watch.finish(), 3);
    assert!(
        watch
            .stderr()
            .contains("206 connection closed by the server"),
        "{}",
        watch.stderr()
    );
}

#[test]
fn meetings_create_list_destroy() {
    let srv = Server::start();
    let r = srv.run(
        "alice",
        &["--json", "meetings", "create", "weekly sync", "--password"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let m = &r.json()[0];
    assert_eq!(m["event"], "meeting_created");
    assert_eq!(m["subject"], "weekly sync");
    assert_eq!(m["creator"], "alice");
    let pswd = m["pswd"].as_str().unwrap();
    assert!(
        pswd.len() == 6 && pswd.bytes().all(|b| b.is_ascii_digit()),
        "{pswd}"
    );
    let id = m["ID"].as_i64().unwrap();

    let r = srv.run("bob", &["meetings", "create", "no password"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("created "), "{}", r.stdout);

    let r = srv.run("bob", &["meetings", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let list = r.json();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|v| v["event"] == "meeting"));
    assert!(list
        .iter()
        .any(|v| v["ID"] == id && v["subject"] == "weekly sync"));

    // Only the creator may destroy it.
    let id_arg = id.to_string();
    let r = srv.run("bob", &["meetings", "destroy", &id_arg]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("800 meeting does not exist"),
        "{}",
        r.stderr
    );
    let r = srv.run("alice", &["meetings", "destroy", &id_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, format!("destroyed meeting {id}\n"));

    let r = srv.run("alice", &["meetings", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.contains("\"no password\"  by bob"), "{}", r.stdout);
}

#[test]
fn answer_hangs_up_after_the_given_time() {
    let srv = Server::start();
    let mut callee = srv.spawn("bob", &["answer", "--hangup-after", "0.2"]);
    callee.expect("ready line", |l| l == "ready: bob is waiting for a call");
    let r = srv.run("alice", &["call", "bob"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "ringing bob...\nconnected with bob (Ctrl-C hangs up)\nbob hung up\n"
    );
    assert_eq!(callee.finish(), 0, "{}", callee.stderr());
    assert_eq!(
        callee.seen[1..],
        [
            "incoming call from alice",
            "connected with alice (Ctrl-C hangs up)",
            "hung up"
        ]
    );
}
