//! (h) Session resumption (docs/API.md §3.6), through the fault proxy of the test tree. No anchor:
//! NATS and XMPP reconnect too, but neither replays a session, so there is nothing to set side
//! by side; the figures stand on their own (docs/PERFORMANCE.md).

use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use crvm_faultproxy::{Mode, Proxy};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::procs::start_server;
use crate::{pct_us, Res};

const WAIT: Duration = Duration::from_secs(60);

/// A library client whose events go to a shared channel, tagged with its index.
fn client(addr: &str, i: usize, tx: &Sender<(usize, Event)>, opts: &[(&str, &str)]) -> Res<Client> {
    let tx = tx.clone();
    let c = Client::new(
        addr,
        Box::new(move |e: &Event| {
            let _ = tx.send((i, e.clone()));
        }),
    )?;
    for (k, v) in opts {
        c.set_option(k, v)?;
    }
    c.login(&LoginParams {
        auth_acnt: "demo",
        auth_pswd: "demo-secret",
        priv_acnt: &format!("r{i}"),
        ..Default::default()
    })?;
    Ok(c)
}

/// Waits for an event matching `want`, of client `who` (any if `None`); others are dropped.
fn until(
    rx: &Receiver<(usize, Event)>,
    who: Option<usize>,
    want: impl Fn(&Event) -> bool,
) -> Res<Event> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, e) = rx
            .recv_timeout(left)
            .map_err(|_| "resume bench: no event in time")?;
        if who.is_none_or(|w| w == i) && want(&e) {
            return Ok(e);
        }
    }
}

fn logged_in(e: &Event) -> bool {
    matches!(e, Event::Login { result: Ok(_), .. })
}

fn resumed(e: &Event) -> bool {
    matches!(e, Event::LineResumed { .. })
}

fn lost(e: &Event) -> bool {
    matches!(e, Event::LineReconnecting { .. })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Round trips of a 100 B cmd from `a` (index `ia`) to `b` until `stop`, in ns.
fn rtts(
    a: &Client,
    ia: usize,
    rx: &Receiver<(usize, Event)>,
    stop: impl Fn() -> bool,
) -> Res<Vec<u64>> {
    let mut v = Vec::new();
    while !stop() {
        let t0 = Instant::now();
        a.send_cmd("r1", [7; 100])?;
        until(rx, Some(ia), |e| matches!(e, Event::CmdSent { .. }))?;
        v.push(t0.elapsed().as_nanos() as u64);
    }
    Ok(v)
}

pub fn section_h(bin: &Path, tmp: &Path, file: &Path, file_size: u64, quick: bool) -> Res<()> {
    println!(
        "(h) session resumption (docs/API.md §3.6), through a fault-injection proxy on loopback"
    );
    let (tx, rx) = crossbeam_channel::unbounded();

    // Resume time: the link is reset and is back at once.
    let s = start_server(bin, &tmp.join("h-resume"), 1 << 40, "")?;
    let proxy = Proxy::start(s.addr)?;
    let c = client(&proxy.addr().to_string(), 0, &tx, &[])?;
    until(&rx, Some(0), logged_in)?;
    let mut times = Vec::new();
    for _ in 0..if quick { 20 } else { 300 } {
        let t0 = Instant::now();
        proxy.reset();
        until(&rx, Some(0), lost)?;
        until(&rx, Some(0), resumed)?;
        times.push(t0.elapsed().as_nanos() as u64);
    }
    println!(
        "  resume after a reset, link back at once: p50 {:.2} ms, p99 {:.2} ms ({} drops)",
        pct_us(&times, 0.5) / 1000.0,
        pct_us(&times, 0.99) / 1000.0,
        times.len()
    );
    // The link is away for 1 s: from its return to `line_resumed` (the backoff's wait included).
    let mut back = Vec::new();
    for _ in 0..if quick { 2 } else { 10 } {
        proxy.set_mode(Mode::Refuse);
        proxy.reset();
        until(&rx, Some(0), lost)?;
        std::thread::sleep(Duration::from_secs(1));
        let t0 = Instant::now();
        proxy.set_mode(Mode::Forward);
        until(&rx, Some(0), resumed)?;
        back.push(t0.elapsed().as_nanos() as u64);
    }
    println!(
        "  link away 1 s, from its return to line_resumed: p50 {:.0} ms, max {:.0} ms ({} drops; \
         the wait of the jittered backoff included)",
        pct_us(&back, 0.5) / 1000.0,
        pct_us(&back, 1.0) / 1000.0,
        back.len()
    );
    c.destroy();
    drop(proxy);
    drop(s);

    // Detecting a blackholed link: min(3 × heartbeat, 15 s).
    for hb in if quick {
        vec![1000]
    } else {
        vec![1000, 10_000]
    } {
        let s = start_server(
            bin,
            &tmp.join(format!("h-hb{hb}")),
            1 << 40,
            &format!("heartbeat_ms = {hb}"),
        )?;
        let proxy = Proxy::start(s.addr)?;
        let c = client(&proxy.addr().to_string(), 0, &tx, &[])?;
        until(&rx, Some(0), logged_in)?;
        // Let the heartbeat settle (the welcome sets it).
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        proxy.set_mode(Mode::Blackhole);
        until(&rx, Some(0), lost)?;
        let found = t0.elapsed();
        proxy.set_mode(Mode::Forward);
        until(&rx, Some(0), resumed)?;
        println!(
            "  blackholed link found by the heartbeat ({hb} ms): after {:.0} ms (bound {} ms)",
            ms(found),
            (3 * hb).min(15_000)
        );
        c.destroy();
    }

    // A file through drops: what is sent again per drop.
    let drops = if quick { 4 } else { 20 };
    let s = start_server(bin, &tmp.join("h-file"), 1 << 40, "")?;
    let proxy = Proxy::start(s.addr)?;
    let inbox = tmp.join("h-inbox");
    std::fs::create_dir_all(&inbox)?;
    let a = client(&proxy.addr().to_string(), 0, &tx, &[])?;
    until(&rx, Some(0), logged_in)?;
    let b = client(
        &s.addr.to_string(),
        1,
        &tx,
        &[("download_dir", inbox.to_str().ok_or("path")?)],
    )?;
    until(&rx, Some(1), logged_in)?;
    let path = file.to_str().ok_or("path")?;
    let mut elapsed = Vec::new();
    for with_drops in [false, true] {
        let before = proxy.bytes();
        let t0 = Instant::now();
        a.send_file("r1", path)?;
        let mut done = 0u64;
        loop {
            let (i, e) = rx.recv_timeout(WAIT).map_err(|_| "file bench: stalled")?;
            match e {
                Event::SendProgress { sent, total, .. }
                    if i == 0
                        && with_drops
                        && done < drops
                        && sent >= (done + 1) * total / (drops + 1) =>
                {
                    proxy.reset();
                    done += 1;
                }
                Event::FileSent { result, .. } if i == 0 => {
                    result.map_err(|c| format!("file bench: {c:?}"))?;
                    break;
                }
                Event::NotifyFileData { path, .. } => std::fs::remove_file(path)?,
                _ => {}
            }
        }
        elapsed.push(t0.elapsed());
        let moved = proxy.bytes() - before;
        if with_drops {
            let extra = moved.saturating_sub(file_size);
            println!(
                "  {} MiB file through {done} drops: {:.0} KiB sent again or framing per drop \
                 (a stream window is {} KiB); {:.2} s vs {:.2} s without drops",
                file_size >> 20,
                extra as f64 / 1024.0 / done.max(1) as f64,
                crvm_proto::msg::xfer::WINDOW / 1024,
                elapsed[1].as_secs_f64(),
                elapsed[0].as_secs_f64()
            );
        }
    }
    a.destroy();
    b.destroy();
    drop(proxy);
    drop(s);

    // Server memory per session, attached and detached; then the storm.
    let n = if quick { 200 } else { 2000 };
    let s = start_server(bin, &tmp.join("h-storm"), 1 << 40, "")?;
    let pid = s.proc.pid();
    let base = rss_kib(pid);
    let proxy = Proxy::start(s.addr)?;
    let by_a = client(&s.addr.to_string(), 0, &tx, &[])?;
    until(&rx, Some(0), logged_in)?;
    let by_b = client(&s.addr.to_string(), 1, &tx, &[])?;
    until(&rx, Some(1), logged_in)?;
    let mut clients = Vec::new();
    for i in 2..n + 2 {
        clients.push(client(&proxy.addr().to_string(), i, &tx, &[])?);
    }
    for _ in 0..n {
        until(&rx, None, logged_in)?;
    }
    let attached = rss_kib(pid);
    proxy.set_mode(Mode::Refuse);
    proxy.reset();
    for _ in 0..n {
        until(&rx, None, lost)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let detached = rss_kib(pid);
    println!(
        "  server RSS per session ({n}): {:.1} KiB logged in, {:.1} KiB detached (held for its resume)",
        attached.saturating_sub(base) as f64 / n as f64,
        detached.saturating_sub(base) as f64 / n as f64
    );
    proxy.set_mode(Mode::Forward);
    for _ in 0..n {
        until(&rx, None, resumed)?;
    }

    // The storm: every proxied client dropped at once.
    let quiet = rtts(&by_a, 0, &rx, {
        let t0 = Instant::now();
        move || t0.elapsed() > Duration::from_secs(1)
    })?;
    let accepted = proxy.accepted();
    let cpu0 = crate::procs::cpu_secs(pid)?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0f64;
            let mut last = (Instant::now(), crate::procs::cpu_secs(pid).unwrap_or(0.0));
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let now = (Instant::now(), crate::procs::cpu_secs(pid).unwrap_or(0.0));
                peak = peak.max((now.1 - last.1) / (now.0 - last.0).as_secs_f64());
                last = now;
            }
            peak
        })
    };
    // The bystanders measure from their own channel: a second one, so the storm's events do
    // not queue in front of theirs.
    let (btx, brx) = crossbeam_channel::unbounded();
    let by_c = client(&s.addr.to_string(), n + 2, &btx, &[])?;
    until(&brx, Some(n + 2), logged_in)?;
    let t0 = Instant::now();
    proxy.reset();
    let storm_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = {
        let storm_done = std::sync::Arc::clone(&storm_done);
        std::thread::spawn(move || {
            let r = rtts(&by_c, n + 2, &brx, || {
                storm_done.load(std::sync::atomic::Ordering::SeqCst)
            });
            by_c.destroy();
            r.map_err(|e| e.to_string())
        })
    };
    for _ in 0..n {
        until(&rx, None, resumed)?;
    }
    let all = t0.elapsed();
    storm_done.store(true, std::sync::atomic::Ordering::SeqCst);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let during = during.join().map_err(|_| "bystander panicked")??;
    let peak = peak.join().map_err(|_| "sampler panicked")?;
    let cpu = crate::procs::cpu_secs(pid)? - cpu0;
    println!(
        "  storm: {n} clients dropped at once, all resumed in {:.0} ms; {:.2} connection attempts \
         per client; server CPU {:.2} s in all, peak {:.0}% of a core",
        ms(all),
        (proxy.accepted() - accepted) as f64 / n as f64,
        cpu,
        peak * 100.0
    );
    println!(
        "  a logged-in bystander's cmd round trip: p50 {:.2} ms / p99 {:.2} ms quiet, \
         p50 {:.2} ms / p99 {:.2} ms during the storm ({} samples)",
        pct_us(&quiet, 0.5) / 1000.0,
        pct_us(&quiet, 0.99) / 1000.0,
        pct_us(&during, 0.5) / 1000.0,
        pct_us(&during, 0.99) / 1000.0,
        during.len()
    );
    for c in &clients {
        c.destroy();
    }
    by_a.destroy();
    by_b.destroy();
    Ok(())
}
