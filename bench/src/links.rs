//! (k) Signalling and bulk on emulated links (issue 21): bob reaches crvm-server through the
//! test tree's link emulator, on each of its three profiles, while alice is on loopback. Per
//! profile: invite latency (alice's `call` → bob's `notify_call_in`) idle, while alice sends bob
//! a file (bob downloads) and while bob sends alice one (bob uploads); and the rate of each
//! transfer next to plain TCP through socat and the same emulated link, in crvm's topology
//! (bob → emulator → socat → alice). Every row is printed beside its target.

use crate::peer::During;
use crate::procs::{start_server, Peer};
use crate::relay::{self, Way};
use crate::{calls, check_copy, loadavg, make_file, pct_us, transfer_patience, Cfg, Res, MIB};
use crvm_faultproxy::{Profile, Proxy};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A transfer's rate, at least, against plain TCP through the same link.
const RATE_TARGET: f64 = 0.9;

/// Calls made before the idle row, not counted: the first ones pay for cold paths.
const WARMUP_CALLS: u64 = 5;

/// One profile's figures.
struct Rows {
    idle: Vec<u64>,
    /// Invite latencies and the transfer's rate (bits/s) with crvm, then socat's rate.
    busy: Vec<(Way, Vec<u64>, f64, Option<f64>)>,
}

/// The file of one profile: `cfg.link_secs` at its rate (`--quick`: at most 8 MiB).
fn file_size(cfg: &Cfg, p: Profile) -> u64 {
    let size = (p.spec().rate_bps as f64 / 8.0 * cfg.link_secs) as u64;
    let size = size.max(256 * 1024);
    if cfg.quick {
        size.min(8 * MIB)
    } else {
        size
    }
}

/// Pause between two calls: the calls of a row spread over about half of a transfer at the
/// link's rate (at least 2 ms).
fn call_gap_ms(cfg: &Cfg) -> u64 {
    ((cfg.link_secs * 1000.0 / 2.0 / cfg.link_calls as f64) as u64).max(2)
}

pub fn section_k(cfg: &Cfg, tmp: &Path, socat: bool) -> Res<()> {
    let gap = call_gap_ms(cfg);
    println!(
        "(k) emulated links: bob reaches crvm-server through the link emulator (crvm-faultproxy, \
         the same link each way), alice on loopback. Invite: alice's call → bob's \
         notify_call_in, each call hung up at once, up to {} per row, {gap} ms apart, idle and \
         during a transfer of a file of {} s at the link's rate, alice → bob (bob downloads) and \
         bob → alice (bob uploads). Transfer: from send_file to the file synced at the receiver \
         and send_file_rlst at the sender, vs plain TCP through socat and the same link in \
         crvm's topology (bob → emulator → socat → alice; the receiver writes and fsyncs as \
         crvm's does). Targets: invite p99 during a transfer <= idle p99 + one round trip; \
         rate >= {RATE_TARGET:.1}x socat",
        cfg.link_calls, cfg.link_secs
    );
    if !socat {
        crate::skipped("socat");
    }
    let chosen = Profile::ALL
        .into_iter()
        .filter(|p| cfg.links.iter().any(|k| k == p.key()));
    for (i, p) in chosen.enumerate() {
        let size = file_size(cfg, p);
        println!(
            "  {p} ({}): {:.1} MB file, load average {}",
            p.key(),
            size as f64 / 1e6,
            loadavg()
        );
        let rows = profile(cfg, &tmp.join(format!("k-{}", p.key())), p, size, socat, i)?;
        print_rows(p, &rows);
    }
    Ok(())
}

/// Runs one profile: a server of its own, bob behind a fresh emulator.
fn profile(cfg: &Cfg, dir: &Path, p: Profile, size: u64, socat: bool, round: usize) -> Res<Rows> {
    std::fs::create_dir_all(dir)?;
    let src = dir.join("src.bin");
    make_file(&src, size)?;
    let server = start_server(&cfg.server, dir, (size + 1).max(MIB), "")?;
    let link = Proxy::start(server.addr)?;
    // Before bob logs in: the emulator fixes its MSS and receive buffer at the handshake.
    link.set_profile(p);
    let (down_alice, down_bob) = (dir.join("down-alice"), dir.join("down-bob"));
    std::fs::create_dir_all(&down_alice)?;
    std::fs::create_dir_all(&down_bob)?;
    let mut alice = Peer::start(&server.addr.to_string(), "alice", &down_alice)?;
    let mut bob = Peer::start(&link.addr().to_string(), "bob", &down_bob)?;

    let gap = call_gap_ms(cfg);
    let patience = transfer_patience(size) + Duration::from_secs(60);
    calls(
        &mut alice,
        &mut bob,
        WARMUP_CALLS,
        gap,
        During::Always,
        patience,
    )?;
    let (_, idle) = calls(
        &mut alice,
        &mut bob,
        cfg.link_calls,
        gap,
        During::Always,
        patience,
    )?;

    let mut busy = Vec::new();
    for (k, way) in [Way::Down, Way::Up].into_iter().enumerate() {
        let dst = dir.join("socat-copy.bin");
        let mut crvm_turn = || -> Res<(Vec<u64>, f64)> {
            let t0 = Instant::now();
            let (sender, receiver) = sides(way, &mut alice, &mut bob);
            sender.send(&format!("file {} {}", receiver.user, src.display()))?;
            sender.expect("file_started", Duration::from_secs(30))?;
            let during = match way {
                Way::Down => During::Sending,
                Way::Up => {
                    // alice's calls start once bob's file is moving, and stop once it arrived.
                    sender.send("progress")?;
                    sender.expect("progress", patience)?;
                    During::Receiving
                }
            };
            let (_, lat) = calls(&mut alice, &mut bob, cfg.link_calls, gap, during, patience)?;
            let (sender, receiver) = sides(way, &mut alice, &mut bob);
            let down = match way {
                Way::Down => &down_bob,
                Way::Up => &down_alice,
            };
            let d = finish(sender, receiver, down, &src, size, cfg.quick, patience, t0)?;
            Ok((lat, size as f64 * 8.0 / d.as_secs_f64()))
        };
        let socat_turn = || -> Res<Option<f64>> {
            if !socat {
                return Ok(None);
            }
            let d = relay::file_via_socat_link(&src, &dst, p, way)?;
            check_copy(&src, &dst, size, cfg.quick)?;
            std::fs::remove_file(&dst)?;
            Ok(Some(size as f64 * 8.0 / d.as_secs_f64()))
        };
        // Which side goes first alternates between directions and profiles.
        let ((lat, rate), anchor) = crate::ab(round + k, &mut crvm_turn, socat_turn)?;
        busy.push((way, lat, rate, anchor));
    }
    std::fs::remove_file(&src)?;
    Ok(Rows { idle, busy })
}

/// The sender and the receiver of a transfer that goes `way`.
fn sides<'a>(way: Way, alice: &'a mut Peer, bob: &'a mut Peer) -> (&'a mut Peer, &'a mut Peer) {
    match way {
        Way::Down => (alice, bob),
        Way::Up => (bob, alice),
    }
}

/// Waits until the transfer `sender` → `receiver` is done on both sides, checks the copy and
/// deletes it: the time since `t0`.
#[allow(clippy::too_many_arguments)]
fn finish(
    sender: &mut Peer,
    receiver: &mut Peer,
    down: &Path,
    src: &Path,
    size: u64,
    verify_bytes: bool,
    patience: Duration,
    t0: Instant,
) -> Res<Duration> {
    let got = PathBuf::from(receiver.expect("got_file ", patience)?);
    let code = sender.expect("file_rlst ", patience)?;
    let d = t0.elapsed();
    if code != "0" {
        return Err(format!("send_file_rlst code {code}").into());
    }
    check_copy(src, &got, size, verify_bytes)?;
    std::fs::remove_file(&got)?;
    if std::fs::read_dir(down)?.next().is_some() {
        return Err(format!("{} is not empty after the transfer", down.display()).into());
    }
    Ok(d)
}

fn print_rows(p: Profile, r: &Rows) {
    let rtt = 2.0 * p.spec().delay.as_secs_f64() * 1000.0;
    let ms = |v: &[u64], q: f64| pct_us(v, q) / 1000.0;
    let idle99 = ms(&r.idle, 0.99);
    let way = |w: Way| match w {
        Way::Down => "bob downloads",
        Way::Up => "bob uploads",
    };
    println!("    invite (call → notify_call_in)       n    p50 ms    p99 ms   target p99");
    println!(
        "      {:<30} {:>4} {:>9.1} {:>9.1}",
        "idle",
        r.idle.len(),
        ms(&r.idle, 0.5),
        idle99
    );
    for (w, lat, _, _) in &r.busy {
        let p99 = ms(lat, 0.99);
        let limit = idle99 + rtt;
        println!(
            "      {:<30} {:>4} {:>9.1} {p99:>9.1}   <= {limit:.1} ({})",
            format!("during transfer, {}", way(*w)),
            lat.len(),
            ms(lat, 0.5),
            if p99 <= limit { "met" } else { "missed" }
        );
    }
    let set = p.spec().rate_bps as f64;
    println!("    transfer (Mbit/s)             crvm   of link     socat   of link   crvm/socat");
    for (w, _, rate, anchor) in &r.busy {
        let Some(a) = anchor else {
            println!(
                "      {:<22} {:>9.1} {:>9.3}",
                way(*w),
                rate / 1e6,
                rate / set
            );
            continue;
        };
        let ratio = rate / a;
        println!(
            "      {:<22} {:>9.1} {:>9.3} {:>9.1} {:>9.3} {ratio:>12.2} (target >= {RATE_TARGET:.1}: {})",
            way(*w),
            rate / 1e6,
            rate / set,
            a / 1e6,
            a / set,
            if ratio >= RATE_TARGET { "met" } else { "missed" }
        );
    }
}
