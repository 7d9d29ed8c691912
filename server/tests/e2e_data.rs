//! Transfers end to end: the real server between two real library clients (SPEC §3.5).

mod common;

use base64::Engine as _;
use common::*;
use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

struct User {
    c: Client,
    rx: Receiver<Event>,
}

impl User {
    fn login(s: &Server, name: &str, dir: &std::path::Path) -> User {
        let (tx, rx): (Sender<Event>, Receiver<Event>) = crossbeam_channel::unbounded();
        let c = Client::new(
            &s.addr.to_string(),
            Box::new(move |e: &Event| {
                let _ = tx.send(e.clone());
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
        let u = User { c, rx };
        assert!(matches!(u.next(), Event::LoginSuccess { .. }));
        u
    }

    fn next(&self) -> Event {
        self.rx.recv_timeout(WAIT).expect("an event")
    }

    /// Events up to and including the first that `stop` accepts.
    fn until(&self, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut v = Vec::new();
        loop {
            let e = self.next();
            let done = stop(&e);
            v.push(e);
            if done {
                return v;
            }
        }
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn cmd_buffer_and_file_arrive_intact_with_progress() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let down = dir.path("bob-downloads");
    std::fs::create_dir(&down).unwrap();
    let alice = User::login(&s, "alice", &dir.0);
    let bob = User::login(&s, "bob", &down);

    // cmd: exactly the limit passes, one byte more is refused at once.
    let cmd = pattern(51_200);
    let t = alice.c.send_cmd("bob", &b64(&cmd)).unwrap();
    assert_eq!(alice.c.send_cmd("bob", &b64(&pattern(51_201))), Err(1100));
    assert_eq!(alice.c.send_cmd("bob", "not base64!"), Err(13));
    match bob.next() {
        Event::NotifyCmdData {
            source_user_id,
            data_base64,
        } => {
            assert_eq!(source_user_id, "alice");
            assert!(data_base64 == b64(&cmd), "cmd differs");
        }
        other => panic!("{}", other.name()),
    }
    assert_eq!(
        alice.next(),
        Event::SendCmdRlst {
            task_id: t,
            code: 0
        }
    );

    // buffer: progress is monotonic and ends at the total.
    let buf = pattern(3 * 1024 * 1024 + 17);
    let t = alice.c.send_buffer("bob", &b64(&buf)).unwrap();
    match bob.next() {
        Event::NotifyBufferData {
            source_user_id,
            data_base64,
        } => {
            assert_eq!(source_user_id, "alice");
            assert!(data_base64 == b64(&buf), "buffer differs");
        }
        other => panic!("{}\n{}", other.name(), s.log_text()),
    }
    let evs = alice.until(|e| matches!(e, Event::SendBufferRlst { .. }));
    let mut last = -1;
    for e in &evs[..evs.len() - 1] {
        let Event::SendProgress {
            sent,
            total,
            task_id,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((task_id, *total), (&t, buf.len() as i64));
        assert!(*sent > last);
        last = *sent;
    }
    assert_eq!(last, buf.len() as i64);
    assert_eq!(
        evs.last(),
        Some(&Event::SendBufferRlst {
            task_id: t,
            code: 0
        })
    );

    // file: streamed, renamed to the sender's base name, byte-identical.
    let src = dir.write("../évil name.bin", "");
    let data = pattern(5 * 1024 * 1024 + 3);
    std::fs::write(&src, &data).unwrap();
    let t = alice.c.send_file("bob", src.to_str().unwrap()).unwrap();
    let Event::NotifyFileData {
        source_user_id,
        tmp_file,
        org_file_name,
    } = bob.next()
    else {
        panic!()
    };
    assert_eq!(source_user_id, "alice");
    assert_eq!(org_file_name, "évil name.bin");
    assert_eq!(
        std::path::Path::new(&tmp_file),
        down.canonicalize().unwrap().join("évil name.bin")
    );
    assert_eq!(std::fs::read(&tmp_file).unwrap(), data);
    let evs = alice.until(|e| matches!(e, Event::SendFileRlst { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::SendFileRlst {
            task_id: t,
            file_name: src.to_str().unwrap().into(),
            code: 0
        })
    );
    // Nothing else was left in the download directory.
    assert_eq!(std::fs::read_dir(&down).unwrap().count(), 1);

    // Refusals.
    assert_eq!(alice.c.send_file("bob", "/no/such/file"), Err(1400));
    assert_eq!(alice.c.send_file("bob", dir.0.to_str().unwrap()), Err(1401));
    let t = alice.c.send_cmd("nobody", &b64(b"x")).unwrap();
    assert_eq!(
        alice.next(),
        Event::SendCmdRlst {
            task_id: t,
            code: 1102
        }
    );
}

#[test]
fn cancel_in_flight_and_after_completion() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let down = dir.path("down");
    std::fs::create_dir(&down).unwrap();
    let alice = User::login(&s, "alice", &dir.0);
    let bob = User::login(&s, "bob", &down);
    let src = dir.write("big.bin", "");
    std::fs::write(&src, pattern(64 * 1024 * 1024)).unwrap();
    let t = alice.c.send_file("bob", src.to_str().unwrap()).unwrap();
    // Wait until data is moving, then cancel.
    assert!(matches!(alice.next(), Event::SendProgress { .. }));
    alice.c.cancel_send(&t).unwrap();
    let evs = alice.until(|e| matches!(e, Event::CancelSendRlst { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::CancelSendRlst {
            task_id: t.clone(),
            code: 0
        })
    );
    assert!(evs.iter().all(|e| !matches!(e, Event::SendFileRlst { .. })));
    assert_eq!(bob.next(), Event::NotifyCancelSend { send_id: t.clone() });
    // The partial file is gone.
    let t2 = alice.c.send_cmd("bob", &b64(b"sync")).unwrap();
    assert!(matches!(bob.next(), Event::NotifyCmdData { .. }));
    assert_eq!(
        alice
            .until(|e| matches!(e, Event::SendCmdRlst { .. }))
            .last(),
        Some(&Event::SendCmdRlst {
            task_id: t2.clone(),
            code: 0
        })
    );
    assert_eq!(std::fs::read_dir(&down).unwrap().count(), 0);
    // Finished, unknown and cmd tasks: 1104.
    alice.c.cancel_send(&t).unwrap();
    assert_eq!(
        alice.next(),
        Event::CancelSendRlst {
            task_id: t,
            code: 1104
        }
    );
    alice.c.cancel_send(&t2).unwrap();
    assert_eq!(
        alice.next(),
        Event::CancelSendRlst {
            task_id: t2,
            code: 1104
        }
    );
}
