//! Meetings (docs/API.md §3.3), durability across restarts, and graceful shutdown (docs/API.md §4).

mod common;

use common::*;
use crvm_proto::{Meeting, Op, ServerMsg};

fn create(c: &mut Client, subject: &str, with_pswd: bool) -> Result<Meeting, i32> {
    match c.request(Op::CreateMeeting {
        subject: subject.into(),
        with_pswd,
    }) {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Meeting(meeting),
            ..
        } => Ok(meeting),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Err(code),
            ..
        } => Err(code),
        other => panic!("{other:?}"),
    }
}

fn list(c: &mut Client) -> Vec<Meeting> {
    match c.request(Op::GetMeetings) {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Meetings(list),
            ..
        } => list,
        other => panic!("{other:?}"),
    }
}

fn destroy(c: &mut Client, meet_id: i32) -> i32 {
    c.code(Op::DestroyMeeting { meet_id })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn create_list_destroy() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    let mut carol = s.login("acme", "carol");

    let before = now();
    let m1 = create(&mut alice, "weekly", true).unwrap();
    assert!(m1.id >= 10_000_000, "{m1:?}");
    assert_eq!(m1.pswd.len(), 6);
    assert!(m1.pswd.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(m1.subject, "weekly");
    assert_eq!(m1.creator, "alice");
    assert_eq!(m1.member_count, 0);
    assert_eq!(m1.pub_meet_url, format!("https://meet.test/m/{}", m1.id));
    assert!(m1.start_time >= before && m1.start_time <= now());
    let m2 = create(&mut bob, "", false).unwrap();
    assert_eq!(m2.pswd, "");
    assert_ne!(m1.id, m2.id);

    let mut expected = vec![m1.clone(), m2.clone()];
    expected.sort_by_key(|m| (m.start_time, m.id));
    assert_eq!(list(&mut alice), expected);
    assert_eq!(list(&mut carol), vec![]);

    // Not yours, not your tenant, not there: all 800.
    assert_eq!(destroy(&mut bob, m1.id), 800);
    assert_eq!(destroy(&mut carol, m1.id), 800);
    assert_eq!(destroy(&mut alice, 12_345), 800);
    assert_eq!(destroy(&mut alice, -1), 800);
    assert_eq!(destroy(&mut alice, m1.id), 0);
    assert_eq!(destroy(&mut alice, m1.id), 800);
    assert_eq!(list(&mut bob), vec![m2]);
}

#[test]
fn subject_is_limited_to_50_characters() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut alice = s.login("demo", "alice");
    // 50 two-byte characters are fine: the limit counts characters, not bytes.
    let fifty = "é".repeat(50);
    assert_eq!(create(&mut alice, &fifty, false).unwrap().subject, fifty);
    assert_eq!(create(&mut alice, &"a".repeat(51), false), Err(5));
    assert_eq!(list(&mut alice).len(), 1);
}

#[test]
fn meetings_survive_a_restart() {
    let dir = TmpDir::new();
    let text = config("");
    let mut s = Server::start(&dir, &text);
    let mut alice = s.login("demo", "alice");
    let m = create(&mut alice, "kept", true).unwrap();
    drop(alice);
    // A hard kill: what was acknowledged must already be on disk.
    s.proc.kill().unwrap();
    s.wait();
    let s2 = Server::start(&dir, &text);
    let mut bob = s2.login("demo", "bob");
    assert_eq!(list(&mut bob), vec![m.clone()]);
    drop(s2);
    drop(s);
    // And once more after a clean stop.
    let mut s3 = Server::start(&dir, &text);
    let mut alice = s3.login("demo", "alice");
    assert_eq!(destroy(&mut alice, m.id), 0);
    s3.signal("-TERM");
    assert_eq!(s3.wait().code(), Some(0));
    let s4 = Server::start(&dir, &text);
    let mut bob = s4.login("demo", "bob");
    assert_eq!(list(&mut bob), vec![]);
}

#[test]
fn sigterm_closes_every_connection_with_206_and_exits_0() {
    let dir = TmpDir::new();
    let mut s = Server::start(&dir, &config(""));
    let mut bare = s.connect();
    let mut greeted = s.connect();
    greeted.hello();
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("acme", "bob");
    // Connections are accepted in order, so once bob is answered the bare one was accepted.
    assert_eq!(bob.statuses().len(), 1);
    s.signal("-TERM");
    for c in [&mut bare, &mut greeted, &mut alice, &mut bob] {
        c.expect_close(206);
    }
    assert_eq!(s.wait().code(), Some(0));
    let log = s.log_text();
    assert!(log.contains("SIGTERM"), "{log}");
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let dir = TmpDir::new();
    let mut s = Server::start(&dir, &config(""));
    let mut alice = s.login("demo", "alice");
    s.signal("-INT");
    alice.expect_close(206);
    assert_eq!(s.wait().code(), Some(0));
}
