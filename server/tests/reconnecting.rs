//! A user whose link dropped, as the others see it (docs/API.md §3.2): once the session has been
//! held for `reconnecting_after_ms`, its status carries `"reconnecting": true` until it is
//! resumed or ends; a shorter blip shows nothing; a caller ringing such a user is told so right
//! after its `call_success`. Each test runs on one node and on a cluster with its users on
//! different nodes, and waits on the pushes themselves, never on time.

mod common;

use common::*;
use crvm_proto::raw::RawClient;
use crvm_proto::{ClientMsg, Op, Outcome, ServerMsg, UserStatus};
use crvm_testkit::Server;

crvm_testkit::both_topologies!(
    a_subscriber_sees_reconnecting_then_resumed_and_the_list_says_it,
    a_blip_within_the_grace_period_pushes_nothing,
    a_held_session_that_is_never_resumed_goes_offline,
    a_caller_of_a_reconnecting_user_is_told_after_its_call_success,
);

/// Grace period of these tests: long enough that the marked status is never what a login or
/// resume races with, short enough to keep the tests quick (they wait for the push itself).
const GRACE: &str = "reconnecting_after_ms = 150";

/// `alice`'s status with the reconnecting mark.
fn held(user: &str, status: i32, dnd: i32) -> UserStatus {
    UserStatus {
        reconnecting: true,
        ..st(user, status, dnd)
    }
}

/// A session that may be resumed: where it is, and what its resume needs.
struct Resumable<'a> {
    node: &'a Server,
    client: RawClient,
    session: String,
    secret: String,
}

impl<'a> Resumable<'a> {
    /// `user` of the `demo` tenant, logged in on `node` with resumption on.
    fn login(node: &'a Server, user: &str) -> Resumable<'a> {
        let mut client = node.connect();
        client.hello();
        let mut op = crvm_proto::raw::login_op("demo", "demo-secret", user, "");
        if let Op::Login { resume, .. } = &mut op {
            *resume = true;
        }
        assert!(matches!(
            client.request(op),
            ServerMsg::Res {
                result: Outcome::Login { .. },
                ..
            }
        ));
        let ServerMsg::Resumable {
            session, secret, ..
        } = client.msg()
        else {
            panic!("resumable")
        };
        Resumable {
            node,
            client,
            session,
            secret,
        }
    }

    /// The link drops (the server sees the connection close): the session is held.
    fn drop_link(&mut self) -> u64 {
        let last = self.client.codec.last_seq();
        self.client
            .stream
            .shutdown(std::net::Shutdown::Both)
            .expect("shutdown");
        last
    }

    /// Resumes the session on a new connection to its node, from frame `last`.
    fn resume(&mut self, last: u64) {
        let mut client = self.node.connect();
        client.hello();
        client.send(&ClientMsg::Resume {
            app_id: "demo".into(),
            session: self.session.clone(),
            secret: self.secret.clone(),
            last,
        });
        client.codec.received_up_to(last);
        match client.msg() {
            ServerMsg::Resumed { secret, .. } => self.secret = secret,
            other => panic!("resume: {other:?}"),
        }
        self.client = client;
    }
}

fn subscribe(c: &mut RawClient) {
    assert_eq!(c.code(Op::StartStatusNotify), 0);
}

fn a_subscriber_sees_reconnecting_then_resumed_and_the_list_says_it(kind: Topo) {
    let s = Topology::start(kind, GRACE);
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    let mut alice = Resumable::login(s.node(), "alice");
    assert_eq!(alice.client.code(Op::SetDnd { dnd: 2 }), 0);
    assert_eq!(bob.push(), st("alice", 1, 0));
    assert_eq!(bob.push(), st("alice", 1, 2));
    let last = alice.drop_link();
    // Past the grace period: marked, the rest of the status as it was.
    assert_eq!(bob.push(), held("alice", 1, 2));
    let mut carol = s.login("demo", "carol");
    assert_eq!(
        carol.statuses(),
        vec![held("alice", 1, 2), st("bob", 1, 0), st("carol", 1, 0)]
    );
    assert_eq!(bob.push(), st("carol", 1, 0));
    alice.resume(last);
    // Back: the same status without the mark, once.
    assert_eq!(bob.push(), st("alice", 1, 2));
    assert_eq!(carol.statuses()[0], st("alice", 1, 2));
    assert_eq!(carol.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(bob.push(), st("carol", 1, 1));
    assert_eq!(bob.pending_pushes(), 0);
}

fn a_blip_within_the_grace_period_pushes_nothing(kind: Topo) {
    let s = Topology::start(kind, "reconnecting_after_ms = 600000");
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    let mut alice = Resumable::login(s.node(), "alice");
    assert_eq!(bob.push(), st("alice", 1, 0));
    for _ in 0..3 {
        let last = alice.drop_link();
        alice.resume(last);
    }
    // The next change anyone makes is the next push: the drops and resumes showed nothing.
    let mut carol = s.login("demo", "carol");
    assert_eq!(bob.push(), st("carol", 1, 0));
    assert_eq!(carol.statuses()[0], st("alice", 1, 0));
    assert_eq!(bob.pending_pushes(), 0);
}

fn a_held_session_that_is_never_resumed_goes_offline(kind: Topo) {
    let s = Topology::start(kind, &format!("{GRACE}\nresume_window_s = 1"));
    let mut bob = s.login("demo", "bob");
    subscribe(&mut bob);
    let mut alice = Resumable::login(s.node(), "alice");
    assert_eq!(bob.push(), st("alice", 1, 0));
    alice.drop_link();
    assert_eq!(bob.push(), held("alice", 1, 0));
    // The window passes: the usual offline push, with no mark.
    assert_eq!(bob.push(), st("alice", 0, 0));
    assert_eq!(bob.statuses(), vec![st("bob", 1, 0)]);
}

fn a_caller_of_a_reconnecting_user_is_told_after_its_call_success(kind: Topo) {
    let s = Topology::start(kind, GRACE);
    let mut watcher = s.login("demo", "watcher");
    subscribe(&mut watcher);
    let mut alice = Resumable::login(s.node(), "alice");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    let last = alice.drop_link();
    assert_eq!(watcher.push(), held("alice", 1, 0));
    // The caller does not subscribe to presence, and is told all the same.
    let mut carol = s.login("demo", "carol");
    assert_eq!(watcher.push(), st("carol", 1, 0));
    let call = Op::Call {
        call_id: "c1".into(),
        callee: "alice".into(),
        meet_obj: String::new(),
        ext: "hi".into(),
    };
    assert_eq!(carol.code(call), 0);
    assert_eq!(carol.pending_pushes(), 0, "nothing before call_success");
    assert_eq!(carol.push(), held("alice", 2, 0));
    // Subscribers see both parties ringing, the callee still marked.
    let mut ringing = [watcher.push(), watcher.push()];
    ringing.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(ringing, [held("alice", 2, 0), st("carol", 2, 0)]);
    // A call to a user who is not reconnecting tells its caller nothing more.
    let mut dan = s.login("demo", "dan");
    assert_eq!(watcher.push(), st("dan", 1, 0));
    let _erin = s.login("demo", "erin");
    assert_eq!(watcher.push(), st("erin", 1, 0));
    let call = Op::Call {
        call_id: "c2".into(),
        callee: "erin".into(),
        meet_obj: String::new(),
        ext: String::new(),
    };
    assert_eq!(dan.code(call), 0);
    let mut ringing = [watcher.push(), watcher.push()];
    ringing.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(ringing, [st("dan", 2, 0), st("erin", 2, 0)]);
    // The call rings as for anyone: alice hears it once she is back, and is no longer marked.
    alice.resume(last);
    match alice.client.msg() {
        ServerMsg::CallIn {
            call_id, caller, ..
        } => assert_eq!((call_id.as_str(), caller.as_str()), ("c1", "carol")),
        other => panic!("call_in: {other:?}"),
    }
    assert_eq!(watcher.push(), st("alice", 2, 0));
    // Neither caller heard anything else (a request's answer comes after what preceded it).
    for caller in [&mut carol, &mut dan] {
        assert_eq!(caller.statuses().len(), 5);
        assert_eq!(caller.pending_pushes(), 0);
    }
}
