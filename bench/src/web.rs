//! (l) the browser beside libcrvm: headless Chromium running crvm-web (`web/dist/crvm-web.js`)
//! over the server's WebSocket listener, driven by `web/bench/driver.js` (Node and
//! puppeteer-core), which speaks the peers' lines (`setups`, `file`; see `peer.rs`). Rows: call
//! setup browser → libcrvm peer vs libcrvm peer → libcrvm peer over TCP, p50/p99 (target
//! ≤ 1.3×); a file browser → libcrvm peer vs libcrvm peer → libcrvm peer (target ≥ 0.7×). The
//! section is skipped, saying why, when Node, Chromium, puppeteer-core (`npm ci` in web/) or the
//! built `dist/crvm-web.js` (`npm run build`) is missing.

use crate::anchors::installed;
use crate::procs::{start_server_with, Peer};
use crate::{
    ab, check_copy, latency_pair, mb_per_s, median, mib, pct_us, samples_of, wsfloor, Cfg, Res,
};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The repository's web/ folder (crvm-web, its node_modules and the bench's driver).
const WEB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../web");

/// The Chromium to drive, or why there is none to be had.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CRVM_CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    // puppeteer-core wants a path, not a name to look up.
    for name in ["chromium", "chromium-browser"] {
        if let Some(path) = on_path(name) {
            return Ok(path);
        }
    }
    Err("chromium not installed (scripts/ensure-chromium.sh installs it)".into())
}

/// Where `tool` is on `PATH`, if it is there and executable.
fn on_path(tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Everything the browser rows need: Chromium, Node, and web/ installed and built.
fn prerequisites() -> Result<PathBuf, String> {
    if !installed("node") {
        return Err("node not installed".into());
    }
    let web = Path::new(WEB);
    if !web.join("node_modules/puppeteer-core").is_dir() {
        return Err("puppeteer-core not installed (cd web && npm ci)".into());
    }
    if !web.join("dist/crvm-web.js").is_file() {
        return Err("web/dist/crvm-web.js not built (cd web && npm run build)".into());
    }
    chromium()
}

/// Sends `src` from `from` to `bob` and waits until both sides are done (bob has the file,
/// synced; the sender has its result); checks bob's copy and deletes it.
fn transfer(from: &mut Peer, bob: &mut Peer, src: &Path, size: u64, verify: bool) -> Res<Duration> {
    let patience = Duration::from_secs(60 + size / 2_000_000);
    let t0 = Instant::now();
    from.send(&format!("file bob {}", src.display()))?;
    from.expect("file_started", Duration::from_secs(30))?;
    let got = PathBuf::from(bob.expect("got_file ", patience)?);
    let code = from.expect("file_rlst ", patience)?;
    let done = Instant::now();
    if code != "0" {
        return Err(format!("{}: send file result {code}", from.user).into());
    }
    check_copy(src, &got, size, verify)?;
    std::fs::remove_file(&got)?;
    Ok(done - t0)
}

pub fn section_l(cfg: &Cfg, tmp: &Path, src: &Path, size: u64) -> Res<()> {
    let per_round = cfg.web_setups.div_ceil(cfg.reps as u64);
    let warmup = (per_round / 10).clamp(5, 200);
    println!(
        "(l) the browser: headless Chromium running crvm-web over the WebSocket listener vs a \
         libcrvm peer over TCP, each to a libcrvm peer (bob), {} rounds, the order alternating",
        cfg.reps
    );
    let chromium = match prerequisites() {
        Ok(c) => c,
        Err(why) => {
            println!("    skipped: {why}");
            return Ok(());
        }
    };
    let dir = tmp.join("web");
    let (down_bob, down_alice) = (dir.join("down-bob"), dir.join("down-alice"));
    std::fs::create_dir_all(&down_bob)?;
    std::fs::create_dir_all(&down_alice)?;
    let mut server = start_server_with(
        &cfg.server,
        &dir,
        size + 1,
        "ws_listen = \"127.0.0.1:0\"",
        "allowed_origins = [\"*\"]",
    )?;
    let mut line = String::new();
    server.stdout.read_line(&mut line)?;
    let ws = line
        .trim()
        .strip_prefix("crvm-server websocket on ")
        .ok_or_else(|| format!("no websocket line from crvm-server: {line:?}"))?
        .to_owned();
    let addr = server.addr.to_string();
    let mut bob = Peer::start(&addr, "bob", &down_bob)?;
    let mut alice = Peer::start(&addr, "alice", &down_alice)?;
    let mut driver = Command::new("node");
    driver
        .arg(Path::new(WEB).join("bench/driver.js"))
        .arg(format!("ws://{ws}/crvm"))
        .arg("web")
        .env("CRVM_CHROMIUM", &chromium);
    let mut web = Peer::command(driver, "web (Chromium)")?;

    println!(
        "    call setup: call → notifyCallAccepted (the caller's clock, in its event handler; \
         each call hung up before the next), {} per side after {warmup} warm-up each round",
        per_round * cfg.reps as u64
    );
    bob.send("autoaccept 1")?;
    bob.expect("autoaccept", Duration::from_secs(30))?;
    let (mut browser, mut c) = (Vec::new(), Vec::new());
    let setups = |p: &mut Peer| -> Res<Vec<u64>> {
        p.send(&format!("setups bob {}", warmup + per_round))?;
        let line = p.expect("setups", Duration::from_secs(1800))?;
        Ok(samples_of(&line).split_off(warmup as usize))
    };
    for round in 0..cfg.reps {
        let (w, a) = ab(round, || setups(&mut web), || setups(&mut alice))?;
        browser.extend(w);
        c.extend(a);
    }
    bob.send("autoaccept 0")?;
    bob.expect("autoaccept", Duration::from_secs(30))?;
    latency_pair("setup", "browser", &browser, "C→C", &c, Some((1.3, 1.3)));

    println!(
        "    file: {} browser → bob vs alice → bob (MB/s = 10^6 bytes/s, from the send to both \
         sides done: bob's fsync and the sender's result; the browser's Blob is loaded first, \
         untimed)",
        mib(size)
    );
    println!("    round      browser         C→C   ratio");
    web.send(&format!("prepare {}", src.display()))?;
    web.expect("prepared", Duration::from_secs(300))?;
    let (mut wr, mut cr) = (Vec::new(), Vec::new());
    for round in 0..cfg.reps {
        // As `ab` does: the browser first on even rounds, the libcrvm peer on odd ones.
        let (mut w, mut a) = (0.0, 0.0);
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for browser_turn in order {
            if browser_turn {
                w = mb_per_s(size, transfer(&mut web, &mut bob, src, size, cfg.quick)?);
            } else {
                a = mb_per_s(size, transfer(&mut alice, &mut bob, src, size, cfg.quick)?);
            }
        }
        println!("    {:<5} {w:>11.1} {a:>11.1} {:>7.2}", round + 1, w / a);
        wr.push(w);
        cr.push(a);
    }
    let (w, a) = (median(wr), median(cr));
    println!(
        "    median: browser {w:.1} MB/s, C→C {a:.1} MB/s, ratio {:.2} (target >= 0.70)",
        w / a
    );
    floor(cfg, &mut web, size, pct_us(&c, 0.5), a)
}

/// Chromium's own WebSocket, measured the same way with no crvm on either end (see
/// `wsfloor`), and what it leaves of the two targets: a call setup from the browser costs at
/// least the C→C one plus what Chromium adds to a round trip, and a file from the browser goes
/// no faster than a bare page can send.
fn floor(cfg: &Cfg, web: &mut Peer, size: u64, c_setup_us: f64, c_mbs: f64) -> Res<()> {
    const CHUNK: u64 = 128 * 1024; // crvm's data frames
    const ROOM: u64 = 4 * 1024 * 1024;
    let port = wsfloor::start()?;
    let url = format!("ws://127.0.0.1:{port}/");
    let n = cfg.web_setups.max(100);
    println!(
        "    the floor: a bare page (no crvm-web) in the same Chromium, and a native client \
         (tungstenite), to a WebSocket echo and sink in this process"
    );
    web.send(&format!("floor_rtt {url} {n}"))?;
    let page = samples_of(&web.expect("floor_rtt", Duration::from_secs(600))?);
    let native = wsfloor::native_rtt(port, n)?;
    latency_pair("ws echo 100 B", "page", &page, "native", &native, None);
    let added = pct_us(&page, 0.5) - pct_us(&native, 0.5);
    let mut rates = Vec::new();
    for _ in 0..cfg.reps {
        web.send(&format!("floor_send {url} {size} {CHUNK} {ROOM}"))?;
        let ns: u64 = web
            .expect("floor_send", Duration::from_secs(60 + size / 2_000_000))?
            .parse()?;
        rates.push(mb_per_s(size, Duration::from_nanos(ns)));
    }
    let rate = median(rates);
    println!(
        "    ws send {} in {} KiB messages, at most {} unsent: page {rate:.1} MB/s (median of {})",
        mib(size),
        CHUNK / 1024,
        mib(ROOM),
        cfg.reps
    );
    println!(
        "    what the floor leaves: setup >= C→C p50 + {added:.1} µs = {:.1} µs (ratio >= {:.2}); \
         file <= {rate:.1} MB/s (ratio <= {:.2})",
        c_setup_us + added,
        (c_setup_us + added) / c_setup_us,
        rate / c_mbs
    );
    Ok(())
}
