//! Signalling first on a real link (SPEC §3.5, "Signalling first on any link"): an invite sent
//! while a file streams over a slow link (the link emulator, 40 Mbit/s and 20 ms each way with
//! a 50 ms queue) rings while the transfer is still running, ahead of the data that was queued
//! when it was sent — in both directions: towards the receiver of the file (the data fills its
//! link's downstream, the server's side) and from the sender of the file (the data fills its
//! upstream, the library's side).
//!
//! Functional, not timed: what is compared is how far the transfer got (the bytes the receiver
//! acknowledged, as the sender's `send_progress` reports them) between the call being made and
//! the callee's `notify_call_in`, in one log of every client's events in the order their
//! callbacks ran. Data held in a kernel's send buffer ahead of the invite (up to a whole window
//! of 4 MiB, as before `TCP_NOTSENT_LOWAT`) shows as that much progress before it rings.

mod common;

use std::path::Path;
use std::time::Duration;

use common::user::pattern;
use common::*;
use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use crvm_faultproxy::{Profile, Proxy};

/// Events of every client, tagged with its user, in the order their callbacks ran.
type Log = Receiver<(&'static str, Event)>;

/// The file: long enough that the window (4 MiB) is full well before the call is made and
/// several more windows follow it.
const FILE: usize = 16 * 1024 * 1024;
/// The call is made once the receiver has acknowledged this much.
const CALL_AT: u64 = 5 * 1024 * 1024;
/// Most the transfer may advance between the call and the ring: the emulated link's queue and
/// the bytes in flight on it (~350 KB), one chunk (128 KiB), the kernel's unsent bytes (32 KiB),
/// and the granularity of the reports (an acknowledgement every 512 KiB, a progress event per
/// MiB) — well under the 4 MiB window that waited in a send buffer without the fix.
const MOST_AHEAD: u64 = 2 * 1024 * 1024;

fn login(addr: &str, name: &'static str, dir: &Path, log: &Sender<(&'static str, Event)>) -> Client {
    let tx = log.clone();
    let c = Client::new(
        addr,
        Box::new(move |e: &Event| {
            let _ = tx.send((name, e.clone()));
        }),
    )
    .unwrap();
    c.set_option("download_dir", dir.to_str().unwrap()).unwrap();
    c.login(&LoginParams {
        auth_acnt: "demo",
        auth_pswd: "demo-secret",
        priv_acnt: name,
        ..Default::default()
    })
    .unwrap();
    c
}

fn next(log: &Log) -> (&'static str, Event) {
    log.recv_timeout(Duration::from_secs(60)).expect("an event")
}

/// Which client reaches the server through the emulated link.
#[derive(Clone, Copy, PartialEq)]
enum Slow {
    /// bob, who receives the file and the call.
    Receiver,
    /// alice, who sends the file and makes the call (to carol).
    Sender,
}

fn invite_rings_while_a_file_streams(slow: Slow) {
    let dir = TmpDir::new();
    let server = Server::start(&dir, &config(""));
    let proxy = Proxy::start(server.addr).unwrap();
    proxy.set_profile(Profile::Medium);
    let (direct, through) = (server.addr.to_string(), proxy.addr().to_string());
    let addr = |user| match (slow, user) {
        (Slow::Receiver, "bob") | (Slow::Sender, "alice") => &through,
        _ => &direct,
    };
    let down = dir.path("bob-downloads");
    std::fs::create_dir(&down).unwrap();
    let (tx, log) = crossbeam_channel::unbounded();
    let mut clients = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let d = if user == "bob" { &down } else { &dir.0 };
        clients.push(login(addr(user), user, d, &tx));
        assert!(matches!(next(&log), (u, Event::Login { result: Ok(_), .. }) if u == user));
    }
    let [alice, _bob, carol] = &clients[..] else {
        unreachable!()
    };

    let data = pattern(FILE);
    let src = dir.path("big.bin");
    std::fs::write(&src, &data).unwrap();
    let t = alice.send_file("bob", src.to_str().unwrap()).unwrap();
    let at_call = loop {
        match next(&log) {
            ("alice", Event::SendProgress { sent, .. }) if sent >= CALL_AT => break sent,
            ("alice", Event::SendProgress { .. }) => {}
            other => panic!("before the call: {other:?}"),
        }
    };
    let (caller, callee) = match slow {
        Slow::Receiver => (carol, "bob"),
        Slow::Sender => (alice, "carol"),
    };
    let call_id = caller.call(callee, "", "", "").unwrap();

    // Until it rings: the transfer goes on, and not far.
    let mut progress = at_call;
    loop {
        match next(&log) {
            (u, Event::NotifyCallIn { call_id: c, .. }) if u == callee && c == call_id => break,
            ("alice", Event::SendProgress { sent, .. }) => progress = sent,
            (_, Event::Call { .. }) => {}
            other => panic!("before the ring: {other:?}"),
        }
    }
    eprintln!(
        "{}: the transfer advanced {} KiB between the call and the ring",
        if slow == Slow::Receiver {
            "towards the receiver"
        } else {
            "from the sender"
        },
        (progress - at_call) / 1024
    );
    assert!(
        progress < FILE as u64,
        "the transfer was over before the call rang"
    );
    assert!(
        progress - at_call <= MOST_AHEAD,
        "{} KiB of data went ahead of the invite",
        (progress - at_call) / 1024
    );

    // The file still arrives whole.
    let (mut sent, mut received) = (false, None);
    while !sent || received.is_none() {
        match next(&log) {
            ("alice", Event::FileSent { task_id, result, .. }) => {
                assert_eq!((task_id, result), (t.clone(), Ok(())));
                sent = true;
            }
            ("bob", Event::NotifyFileData { path, .. }) => received = Some(path),
            _ => {}
        }
    }
    assert!(std::fs::read(received.unwrap()).unwrap() == data, "the file differs");
}

#[test]
fn an_invite_towards_the_receiver_of_a_file_rings_while_it_streams() {
    invite_rings_while_a_file_streams(Slow::Receiver);
}

#[test]
fn an_invite_from_the_sender_of_a_file_rings_while_it_streams() {
    invite_rings_while_a_file_streams(Slow::Sender);
}
