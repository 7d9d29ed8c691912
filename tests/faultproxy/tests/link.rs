//! The link emulator end to end, on loopback. Functional, not timed: bytes arrive intact and in
//! order, the queue and a receiver that does not read push back on the sender (seen in the
//! proxy's state), and delays are lower bounds (asserted only as `>=`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crvm_faultproxy::{Direction, LinkSpec, Loss, Profile, Proxy};

const WAIT: Duration = Duration::from_secs(60);

/// The byte at stream offset `i`: a shift, a drop or a doubling anywhere shows.
fn pat(i: u64) -> u8 {
    ((i % 251) ^ (i / 251 % 256)) as u8
}

fn send_pattern(s: &mut TcpStream, total: u64, progress: Option<&AtomicU64>) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < total {
        let n = (total - off).min(chunk.len() as u64) as usize;
        for (k, b) in chunk[..n].iter_mut().enumerate() {
            *b = pat(off + k as u64);
        }
        s.write_all(&chunk[..n]).unwrap();
        off += n as u64;
        if let Some(p) = progress {
            p.store(off, Ordering::SeqCst);
        }
    }
}

/// Reads exactly `total` bytes of the pattern; the instant the first read returned and how
/// much it returned.
fn expect_pattern(s: &mut TcpStream, total: u64) -> (Instant, u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    let mut first = None;
    while off < total {
        let want = (total - off).min(buf.len() as u64) as usize;
        let n = s.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "the stream ended after {off} of {total} bytes");
        first.get_or_insert((Instant::now(), n as u64));
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pat(off + k as u64), "byte {} is wrong", off + k as u64);
        }
        off += n as u64;
    }
    first.unwrap()
}

/// An upstream that sends back what it gets.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                let mut back = s.try_clone().unwrap();
                let _ = std::io::copy(&mut s, &mut back);
                let _ = back.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A proxy in front of `upstream` with `spec` both ways, and a client connected through it
/// (the link is set before connecting, as a benchmark does).
fn linked(upstream: SocketAddr, up: LinkSpec, down: LinkSpec) -> (Proxy, TcpStream) {
    let p = Proxy::start(upstream).unwrap();
    p.set_link(Direction::Up, up);
    p.set_link(Direction::Down, down);
    let c = TcpStream::connect(p.addr()).unwrap();
    (p, c)
}

#[test]
fn a_transfer_on_every_profile_arrives_intact_and_in_order_both_ways_at_once() {
    let echo = echo_server();
    for profile in Profile::ALL {
        let (proxy, mut c) = linked(echo, profile.spec(), profile.spec());
        // A quarter of a second of the link's rate, up and (echoed) down at the same time.
        let total = profile.spec().rate_bps / 8 / 4;
        let mut w = c.try_clone().unwrap();
        let sender = thread::spawn(move || send_pattern(&mut w, total, None));
        expect_pattern(&mut c, total);
        sender.join().unwrap();
        for d in Direction::BOTH {
            // (The proxy counts a write once it returned, maybe after the reader saw it.)
            let s = proxy.wait_link(d, WAIT, |s| s.written == total).unwrap();
            assert_eq!(s.read, total, "{profile}, {d:?}");
            assert!(
                s.max_backlog <= profile.spec().queue_bytes,
                "{profile}: {s:?}"
            );
        }
    }
}

#[test]
fn a_full_queue_stops_the_reading_and_never_grows_past_its_bound() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = LinkSpec::new(
        40_000_000,
        Duration::from_millis(5),
        Duration::from_millis(10),
    );
    let (proxy, mut c) = linked(sink.local_addr().unwrap(), spec, LinkSpec::default());
    let total = 1_000_000;
    let sender = thread::spawn(move || send_pattern(&mut c, total, None));
    let (mut s, _) = sink.accept().unwrap();
    let full = proxy
        .wait_link(Direction::Up, WAIT, |s| s.queue_full > 0)
        .expect("the queue never filled");
    // What the proxy holds is what it may: the sender keeps the rest (in its socket buffers).
    assert!(
        full.read - full.written <= spec.queue_bytes + 64 * 1024,
        "{full:?}"
    );
    expect_pattern(&mut s, total);
    sender.join().unwrap();
    let st = proxy.link_stats(Direction::Up);
    assert!(st.max_backlog <= spec.queue_bytes, "{st:?}");
}

#[test]
fn a_receiver_that_does_not_read_stops_the_sender() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = LinkSpec::new(
        400_000_000,
        Duration::from_millis(1),
        Duration::from_millis(50),
    );
    let (proxy, mut c) = linked(sink.local_addr().unwrap(), spec, LinkSpec::default());
    // More than every buffer on the way can hold: the proxy's own (the queue, the wire) and
    // the kernel's (at most 4 MiB to send and 1 MiB to receive on the proxy's side, 4 MiB
    // each for the client's and the sink's sockets here).
    let total: u64 = 32 << 20;
    let progress = Arc::new(AtomicU64::new(0));
    let p = Arc::clone(&progress);
    let sender = thread::spawn(move || send_pattern(&mut c, total, Some(&p)));
    let (mut s, _) = sink.accept().unwrap();
    let stalled = proxy
        .wait_link(Direction::Up, WAIT, |s| s.receiver_full > 0)
        .expect("the receiver never pushed back");
    // The proxy is blocked writing to the sink and reads nothing meanwhile: the sender cannot
    // finish, and the proxy holds no more than the link does.
    assert!(progress.load(Ordering::SeqCst) < total);
    assert!(!sender.is_finished());
    let on_wire = spec.rate_bps / 8 / 1000;
    assert!(
        stalled.read - stalled.written <= spec.queue_bytes + on_wire + 2 * 64 * 1024,
        "{stalled:?}"
    );
    // The sink reads at last: everything arrives, and the sender finishes.
    expect_pattern(&mut s, total);
    sender.join().unwrap();
}

#[test]
fn a_small_write_after_a_backlog_arrives_after_all_of_it_and_not_before_the_rate_allows() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = LinkSpec::new(
        40_000_000,
        Duration::from_millis(5),
        Duration::from_millis(50),
    );
    let (_proxy, mut c) = linked(sink.local_addr().unwrap(), spec, LinkSpec::default());
    c.set_nodelay(true).unwrap();
    let bulk = 1_000_000;
    let marker = b"CONTROL AFTER BULK";
    let sender = thread::spawn(move || {
        send_pattern(&mut c, bulk, None);
        c.write_all(marker).unwrap();
        c
    });
    let (mut s, _) = sink.accept().unwrap();
    let (t0, first) = expect_pattern(&mut s, bulk);
    let mut got = [0u8; 18];
    s.read_exact(&mut got).unwrap();
    let t1 = Instant::now();
    assert_eq!(&got, marker);
    drop(sender.join().unwrap());
    // Everything after the first read (less a segment, which may have been cut across it)
    // went through the wire at its rate before the marker could arrive.
    let after = bulk + 18 - first - 64 * 1024;
    let min = Duration::from_secs_f64(after as f64 * 8.0 / spec.rate_bps as f64);
    assert!(t1 - t0 >= min, "{:?} < {min:?}", t1 - t0);
}

#[test]
fn a_round_trip_takes_at_least_both_delays_and_set_delay_adds_to_them() {
    let echo = echo_server();
    let one_way = |ms| {
        LinkSpec::new(
            100_000_000,
            Duration::from_millis(ms),
            Duration::from_millis(50),
        )
    };
    let (proxy, mut c) = linked(echo, one_way(30), one_way(20));
    c.set_nodelay(true).unwrap();
    let mut ping = |n: u8| {
        let t = Instant::now();
        c.write_all(&[n]).unwrap();
        let mut b = [0u8];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b[0], n);
        t.elapsed()
    };
    let rtt = ping(1);
    assert!(rtt >= Duration::from_millis(50), "{rtt:?}");
    proxy.set_delay(Duration::from_millis(25));
    let rtt = ping(2);
    assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
}

#[test]
fn a_lossy_link_stalls_the_stream_but_loses_and_reorders_nothing() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let loss = Loss {
        prob: 0.01,
        seed: 21,
        penalty: Duration::from_millis(10),
    };
    let spec = LinkSpec::new(
        200_000_000,
        Duration::from_millis(1),
        Duration::from_millis(20),
    )
    .with_loss(loss);
    let (proxy, mut c) = linked(sink.local_addr().unwrap(), spec, LinkSpec::default());
    let total = 4_000_000;
    let sender = thread::spawn(move || send_pattern(&mut c, total, None));
    let (mut s, _) = sink.accept().unwrap();
    expect_pattern(&mut s, total);
    sender.join().unwrap();
    // About 1 % of 2,762 packets, each in a segment of its own or sharing one.
    let lost = proxy.link_stats(Direction::Up).lost;
    assert!(lost > 0, "nothing was lost");
}

#[test]
fn a_reset_drops_what_the_link_still_holds() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = LinkSpec {
        delay: Duration::from_secs(30),
        ..LinkSpec::default()
    };
    let (proxy, mut c) = linked(sink.local_addr().unwrap(), slow, LinkSpec::default());
    c.write_all(b"held").unwrap();
    let (mut s, _) = sink.accept().unwrap();
    proxy
        .wait_link(Direction::Up, WAIT, |s| s.read == 4)
        .expect("the proxy never read");
    proxy.reset();
    let mut buf = [0u8; 4];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "held bytes came through"
    );
    assert_eq!(proxy.link_stats(Direction::Up).written, 0);
}

/// The binary's line protocol sets links too.
#[test]
fn the_line_protocol_sets_links_and_profiles() {
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crvm-faultproxy"))
        .arg(sink.local_addr().unwrap().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("crvm-faultproxy listening on "), "{line}");
    let mut ask = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        let mut a = String::new();
        out.read_line(&mut a).unwrap();
        a.trim_end().to_string()
    };
    assert_eq!(ask("link up 8000000 10 20000"), "ok");
    assert_eq!(ask("link down 8000000 10 20000 0.01 7 200"), "ok");
    assert_eq!(ask("link both off"), "ok");
    assert_eq!(ask("profile 40m20"), "ok");
    assert_eq!(ask("delay 5"), "ok");
    assert!(ask("link sideways 1 2 3").starts_with("error"));
    assert!(ask("link up 1 2").starts_with("error"));
    assert!(
        ask("link up 1 2 3 1.5 7 9").starts_with("error"),
        "loss above 1"
    );
    assert!(ask("profile 5g").starts_with("error"));
    assert_eq!(ask("stats"), "accepted 0 resets 0 bytes 0 live 0");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
