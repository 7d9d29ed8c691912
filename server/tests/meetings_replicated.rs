//! Meetings behind Sentinel (docs/CLUSTER.md): a change is answered only once a replica has it,
//! so the failover that promotes that replica cannot lose it (replication is asynchronous).
//! The replica is put to sleep (`DEBUG SLEEP`) before each change: the answer must not come
//! before it wakes up and holds the change.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crvm_server::primary::Primary;
use crvm_server::store::{MeetingDraft, MeetingStore, RedisStore};
use crvm_testkit::sentinel::{cli, Sentinels, MASTER};
use crvm_testkit::TmpDir;

/// Whether the Redis at `port` answers a PING within 200 ms (not asleep).
fn awake(port: u16) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Puts the Redis at `port` to sleep for 1.5 s and returns once it sleeps.
fn put_to_sleep(port: u16) -> std::thread::JoinHandle<()> {
    let sleeper = std::thread::spawn(move || {
        cli(port, &["DEBUG", "SLEEP", "1.5"]);
    });
    while awake(port) {}
    sleeper
}

#[test]
fn a_meeting_change_is_answered_once_a_replica_has_it() {
    let dir = TmpDir::new();
    let ha = Sentinels::start(&dir);
    let replica = ha.data_ports[1];
    let probe = cli(replica, &["DEBUG", "SLEEP", "0"]);
    assert_eq!(probe, "OK", "DEBUG SLEEP on the replica: {probe}");
    let sentinels = ha
        .sentinel_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let primary = Primary::Sentinel {
        sentinels,
        master: MASTER.to_owned(),
    };
    let store = RedisStore::open(primary, Duration::from_secs(10)).unwrap();
    assert!(store.list("t").unwrap().is_empty()); // connected

    let sleeper = put_to_sleep(replica);
    let draft = MeetingDraft {
        pswd: "pw".into(),
        subject: "replicated".into(),
        creator: "alice".into(),
        start_time: 1,
    };
    let m = store.create("t", &draft).unwrap();
    assert!(awake(replica), "create answered while the replica slept");
    let held = cli(replica, &["HEXISTS", "crvm:m:1:t", &m.id.to_string()]);
    assert_eq!(held, "1", "the replica holds the new meeting");
    sleeper.join().unwrap();

    let sleeper = put_to_sleep(replica);
    assert!(store.destroy("t", m.id, "alice").unwrap());
    assert!(awake(replica), "destroy answered while the replica slept");
    let held = cli(replica, &["HEXISTS", "crvm:m:1:t", &m.id.to_string()]);
    assert_eq!(held, "0", "the replica no longer holds it");
    sleeper.join().unwrap();
}
