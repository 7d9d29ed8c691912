//! Transfers end to end: the real server between two real library clients (docs/API.md §3.5), on one
//! node and across the nodes of a three-node cluster (data straight from node to node over
//! their links).

mod common;

use common::user::{pattern, User};
use common::*;
use crvm::core::Event;
use crvm_proto::error::code;

crvm_testkit::both_topologies!(
    cmd_buffer_and_file_arrive_intact_with_progress,
    cancel_in_flight_and_after_completion,
);

fn cmd_buffer_and_file_arrive_intact_with_progress(kind: Topo) {
    let s = Topology::start(kind, "");
    let dir = s.dir();
    let down = dir.path("bob-downloads");
    std::fs::create_dir(&down).unwrap();
    let alice = User::login(s.node(), "alice", &dir.0);
    let bob = User::login(s.node(), "bob", &down);

    // Many cmds: every one arrives once, in order, and each sender hears of each.
    let n = 3000;
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(
            alice
                .c
                .send_cmd("bob", format!("cmd {i}").as_bytes())
                .unwrap(),
        );
    }
    for i in 0..n {
        match bob.next() {
            Event::NotifyCmdData { from, data } => {
                assert_eq!(from, "alice");
                assert_eq!(data, format!("cmd {i}").as_bytes());
            }
            other => panic!("{other:?}"),
        }
    }
    let mut done = std::collections::HashSet::new();
    while done.len() < n {
        match alice.next() {
            Event::CmdSent { task_id, result } => {
                assert_eq!(result, Ok(()));
                assert!(done.insert(task_id));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(tasks.iter().all(|t| done.contains(t)));

    // cmd: exactly the limit passes, one byte more is refused at once. (The Rust API takes
    // bytes: base64, and its refusal 13, exist only at the C surface.)
    let cmd = pattern(51_200);
    let t = alice.c.send_cmd("bob", &cmd[..]).unwrap();
    assert_eq!(alice.c.send_cmd("bob", pattern(51_201)), Err(code(1100)));
    match bob.next() {
        Event::NotifyCmdData { from, data } => {
            assert_eq!(from, "alice");
            assert!(data == cmd, "cmd differs");
        }
        other => panic!("{}", other.name()),
    }
    assert_eq!(
        alice.next(),
        Event::CmdSent {
            task_id: t,
            result: Ok(())
        }
    );

    // buffer: progress is monotonic and ends at the total.
    let buf = pattern(3 * 1024 * 1024 + 17);
    let t = alice.c.send_buffer("bob", buf.clone()).unwrap();
    match bob.next() {
        Event::NotifyBufferData { from, data } => {
            assert_eq!(from, "alice");
            assert!(data == buf, "buffer differs");
        }
        other => panic!("{}\n{}", other.name(), s.log_text()),
    }
    let evs = alice.until(|e| matches!(e, Event::BufferSent { .. }));
    let mut last = None;
    for e in &evs[..evs.len() - 1] {
        let Event::SendProgress {
            sent,
            total,
            task_id,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!((task_id, *total), (&t, buf.len() as u64));
        assert!(Some(*sent) > last, "{sent} after {last:?}");
        last = Some(*sent);
    }
    assert_eq!(last, Some(buf.len() as u64));
    assert_eq!(
        evs.last(),
        Some(&Event::BufferSent {
            task_id: t,
            result: Ok(())
        })
    );

    // file: streamed, renamed to the sender's base name, byte-identical.
    // (A path through `..`, inside this test's own directory: concurrent runs must not share
    // the file.)
    std::fs::create_dir(dir.path("src")).unwrap();
    let src = dir.path("src").join("../évil name.bin");
    let data = pattern(5 * 1024 * 1024 + 3);
    std::fs::write(&src, &data).unwrap();
    let t = alice.c.send_file("bob", src.to_str().unwrap()).unwrap();
    let (from, path, name) = match bob.next() {
        Event::NotifyFileData { from, path, name } => (from, path, name),
        other => panic!(
            "{other:?}; alice: {:?}",
            alice.rx.try_iter().collect::<Vec<_>>()
        ),
    };
    assert_eq!(from, "alice");
    assert_eq!(name, "évil name.bin");
    assert_eq!(
        std::path::Path::new(&path),
        down.canonicalize().unwrap().join("évil name.bin")
    );
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let evs = alice.until(|e| matches!(e, Event::FileSent { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::FileSent {
            task_id: t,
            path: src.to_str().unwrap().into(),
            result: Ok(())
        })
    );
    // Nothing else was left in the download directory.
    assert_eq!(std::fs::read_dir(&down).unwrap().count(), 1);
    // The other way round.
    let back = pattern(100_000);
    bob.c.send_buffer("alice", back.clone()).unwrap();
    assert!(matches!(alice.next(), Event::NotifyBufferData { data, .. } if data == back));

    // Refusals.
    assert_eq!(alice.c.send_file("bob", "/no/such/file"), Err(code(1400)));
    assert_eq!(
        alice.c.send_file("bob", dir.0.to_str().unwrap()),
        Err(code(1401))
    );
    let t = alice.c.send_cmd("nobody", b"x").unwrap();
    assert_eq!(
        alice.next(),
        Event::CmdSent {
            task_id: t,
            result: Err(code(1102))
        }
    );
}

fn cancel_in_flight_and_after_completion(kind: Topo) {
    let s = Topology::start(kind, "");
    let dir = s.dir();
    let down = dir.path("down");
    std::fs::create_dir(&down).unwrap();
    let alice = User::login(s.node(), "alice", &dir.0);
    let bob = User::login(s.node(), "bob", &down);
    let src = dir.write("big.bin", "");
    std::fs::write(&src, pattern(64 * 1024 * 1024)).unwrap();
    let t = alice.c.send_file("bob", src.to_str().unwrap()).unwrap();
    // Wait until data is moving, then cancel.
    assert!(matches!(alice.next(), Event::SendProgress { .. }));
    alice.c.cancel_send(&t).unwrap();
    let evs = alice.until(|e| matches!(e, Event::CancelSend { .. }));
    assert_eq!(
        evs.last(),
        Some(&Event::CancelSend {
            task_id: t.clone(),
            result: Ok(())
        })
    );
    assert!(evs.iter().all(|e| !matches!(e, Event::FileSent { .. })));
    assert_eq!(bob.next(), Event::NotifyCancelSend { task_id: t.clone() });
    // The partial file is gone.
    let t2 = alice.c.send_cmd("bob", b"sync").unwrap();
    assert!(matches!(bob.next(), Event::NotifyCmdData { .. }));
    assert_eq!(
        alice.until(|e| matches!(e, Event::CmdSent { .. })).last(),
        Some(&Event::CmdSent {
            task_id: t2.clone(),
            result: Ok(())
        })
    );
    assert_eq!(std::fs::read_dir(&down).unwrap().count(), 0);
    // Finished, unknown and cmd tasks: 1104.
    alice.c.cancel_send(&t).unwrap();
    assert_eq!(
        alice.next(),
        Event::CancelSend {
            task_id: t,
            result: Err(code(1104))
        }
    );
    alice.c.cancel_send(&t2).unwrap();
    assert_eq!(
        alice.next(),
        Event::CancelSend {
            task_id: t2,
            result: Err(code(1104))
        }
    );
}
