//! Faults between a real library client and the server: a network that silently stops
//! delivering (no FIN, no RST) is detected by heartbeats on both sides, on one node and on a
//! cluster (where the one who sees the user go offline is on another node).

mod common;

use common::*;
use crossbeam_channel::Receiver;
use crvm::core::{Client as Lib, Event, LoginParams};
use crvm_proto::error::code;
use crvm_proto::Op;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP proxy to `to` that forwards until `cut` is set, then silently drops everything while
/// keeping both connections open, as a broken network path would.
fn proxy(to: SocketAddr, cut: Arc<AtomicBool>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in l.incoming() {
            let client = client.unwrap();
            let server = TcpStream::connect(to).unwrap();
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let cut = Arc::clone(&cut);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    let mut held = Vec::new(); // kept open, never closed
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if !cut.load(Ordering::SeqCst) && into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    held.push(into);
                    // Hold the sockets open until the test process ends.
                    loop {
                        std::thread::park();
                    }
                });
            }
        }
    });
    addr
}

fn lib_client(addr: SocketAddr) -> (Lib, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = Lib::new(
        &addr.to_string(),
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    (c, rx)
}

fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(Duration::from_secs(30)).expect("an event")
}

crvm_testkit::both_topologies!(a_silent_partition_is_detected_by_both_sides);

fn a_silent_partition_is_detected_by_both_sides(kind: Topo) {
    // Pings every 200 ms: silence is declared after 600 ms (the same rule caps it at 30 s).
    let s = Topology::start(kind, "heartbeat_ms = 200");
    let cut = Arc::new(AtomicBool::new(false));
    let via = proxy(s.node().addr, Arc::clone(&cut));
    let (alice, rx) = lib_client(via);
    // Without resumption, so that the detection itself is what is seen (tests/resume.rs has
    // the resumed case).
    alice.set_option("reconnect", "off").unwrap();
    alice
        .login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: "alice",
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(next(&rx), Event::Login { result: Ok(_), .. }));
    let mut watcher = s.login("demo", "watcher");
    assert_eq!(watcher.code(Op::StartStatusNotify), 0);
    // The watcher waits for alice's status on its own thread: reading answers the server's
    // pings, so its own silence cannot get it dropped along with alice's (it would be, at the
    // same moment, if it only read once the library had spoken).
    let watching = std::thread::spawn(move || loop {
        let push = watcher.push();
        if push.user_id == "alice" {
            return push;
        }
    });
    let t0 = Instant::now();
    cut.store(true, Ordering::SeqCst);
    alice.get_meetings("lost").unwrap();
    // The client: the request in flight fails with 207, then line_off(207).
    assert_eq!(
        next(&rx),
        Event::GetMeetings {
            result: Err(code(207)),
            cookie: "lost".into()
        }
    );
    assert_eq!(next(&rx), Event::LineOff { code: code(207) });
    let detected = t0.elapsed();
    assert!(detected < Duration::from_secs(30), "{detected:?}");
    // The server: alice's session is dropped and her subscribers see her go offline.
    assert_eq!(watching.join().unwrap(), st("alice", 0, 0));
    // Her connection's end is logged after her session's teardown, which the watcher may
    // hear of first (on another node, through Redis).
    assert!(
        s.log_says(r#"user "alice": nothing received for"#),
        "{}",
        s.log_text()
    );
    let log = s.log_text();
    assert!(
        !log.contains(r#"user "watcher": nothing received"#),
        "{log}"
    );
}
