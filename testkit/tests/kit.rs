//! The kit itself: what it promises about cleanup, its fake server against the client's codec,
//! and its topologies.

use std::path::Path;
use std::process::Command;

use crvm_proto::msg::{ClientMsg, Op, ServerMsg, PROTOCOL_VERSION};
use crvm_proto::raw::{Codec, Incoming};
use crvm_testkit::fake::{self, FakeCodec};
use crvm_testkit::topology::Kind;
use crvm_testkit::{Proc, Server, TmpDir, Topology};

#[test]
fn a_temp_dir_goes_on_drop_unless_kept_and_a_dead_process_s_goes_at_the_next() {
    let dir = TmpDir::new();
    let p = dir.write("a.txt", "x");
    drop(dir);
    assert!(!p.exists());

    let mut kept = TmpDir::new();
    kept.keep();
    let path = kept.0.clone();
    drop(kept);
    assert!(path.is_dir());
    std::fs::remove_dir_all(&path).unwrap();

    // A directory of this prefix whose process is gone (no PID reaches u32::MAX).
    let parent = TmpDir::new();
    let stale = parent.path(&format!("kit-{}-0-0", u32::MAX));
    std::fs::create_dir(&stale).unwrap();
    let fresh = TmpDir::under(&parent.0, "kit").unwrap();
    assert!(!stale.exists());
    assert!(fresh.0.is_dir());
}

#[test]
fn a_child_is_killed_and_reaped_on_drop() {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    let p = Proc::spawn(cmd, "sleep").unwrap();
    let proc_dir = Path::new("/proc").join(p.pid().to_string());
    assert!(proc_dir.exists());
    drop(p);
    // Reaped: not even a zombie is left.
    assert!(!proc_dir.exists());
    assert!(Proc::spawn(Command::new("/no/such/program"), "nothing").is_err());
}

#[test]
fn a_server_that_does_not_start_is_an_error_with_its_log() {
    let dir = TmpDir::new();
    let r = Server::launch(
        Path::new("sh"),
        &["-c", "echo broken >&2"],
        &[],
        dir.path("log"),
        dir.path("none.toml"),
    );
    let e = r.err().expect("an error");
    assert!(e.contains("broken"), "{e}");
}

/// The fake server and the client's codec, without a socket: each side's bytes are the
/// other's input.
#[test]
fn the_fake_codec_speaks_with_the_client_codec() {
    let (mut client, mut server) = (Codec::new(), FakeCodec::new());
    let hello = ClientMsg::Hello {
        ver: PROTOCOL_VERSION,
        agent: "kit".into(),
    };
    server.feed(&client.msg(&hello, &[]));
    let (id, login) = client.request(Op::StartStatusNotify);
    server.feed(&login);
    assert_eq!(server.next_msg().unwrap(), Some((hello, Vec::new())));
    assert_eq!(
        server.next_msg().unwrap(),
        Some((
            ClientMsg::Req {
                id,
                op: Op::StartStatusNotify
            },
            Vec::new()
        ))
    );
    assert_eq!(server.next_msg().unwrap(), None);

    let welcome = fake::welcome(5000, 1, 2);
    client.feed(&server.encode(&welcome, &[]));
    let reply = ServerMsg::reply(id, 0);
    client.feed(&server.encode(&reply, b"att"));
    assert_eq!(
        client.next_incoming().unwrap(),
        Some(Incoming::Msg(welcome, Vec::new()))
    );
    assert_eq!(
        client.next_incoming().unwrap(),
        Some(Incoming::Msg(reply, b"att".to_vec()))
    );
    // The server acknowledged the client's two frames.
    assert_eq!(client.last_ack, server.last_seq());
}

#[test]
fn one_node_hands_out_one_server_and_a_cluster_each_node_in_turn() {
    let one = Topology::start(Kind::OneNode, "");
    assert_eq!(one.node().addr, one.node().addr);
    let mut a = one.login("demo", "alice");
    assert_eq!(a.statuses().len(), 1);

    let c = Topology::start(Kind::Cluster, "");
    let addrs: Vec<_> = (0..4).map(|_| c.node().addr).collect();
    assert_ne!(addrs[0], addrs[1]);
    assert_ne!(addrs[1], addrs[2]);
    assert_eq!(addrs[0], addrs[3]);
    // Users on different nodes see each other.
    let _alice = c.login("demo", "alice");
    let mut bob = c.login("demo", "bob");
    assert_eq!(bob.statuses().len(), 2);
    assert!(c.log_text().contains("joined"));
}
