//! `crvm-faultproxy UPSTREAM`: the fault proxy of the crate's library, driven from stdin for
//! tests written in C. Prints `crvm-faultproxy listening on HOST:PORT` first, then reads one
//! command per line and answers each with `ok` (or `error: …`):
//!
//! `forward`, `refuse`, `blackhole`, `reset`, `delay MS`, `flap MS` (0 stops), `stats`
//! (answers `accepted N resets N bytes N live N`);
//! `link DIR RATE_BPS DELAY_MS QUEUE_BYTES [LOSS_PROB SEED PENALTY_MS]` sets the link of `DIR`
//! (`up`: client → upstream, `down`, or `both`; rate 0 = unlimited), `link DIR off` unshapes it,
//! `profile NAME` sets both directions to a profile (`10m50`, `40m20`, `1g1`).
//! End of input stops the proxy.
//!
//! `crvm-faultproxy --calibrate [SECONDS]`: measures plain TCP through each profile (about
//! SECONDS of data each, default 3) and prints the ratio to the set rate.

use std::io::{BufRead, Write};
use std::time::Duration;

use crvm_faultproxy::{calibrate, Direction, LinkSpec, Loss, Mode, Profile, Proxy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--calibrate") {
        let secs = args
            .get(1)
            .and_then(|a| a.parse::<f64>().ok())
            .unwrap_or(3.0);
        std::process::exit(run_calibration(secs));
    }
    let Some(upstream) = args.first().and_then(|a| a.parse().ok()) else {
        eprintln!("usage: crvm-faultproxy UPSTREAM_HOST:PORT | --calibrate [SECONDS]");
        std::process::exit(2);
    };
    let proxy = match Proxy::start(upstream) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("crvm-faultproxy: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "crvm-faultproxy listening on {}", proxy.addr());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match command(&proxy, &words) {
            Some(a) => a,
            None => format!("error: unknown command {line:?}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

/// The answer to one command line, `None` if it is not one.
fn command(proxy: &Proxy, words: &[&str]) -> Option<String> {
    let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    let ok = |f: &dyn Fn()| {
        f();
        Some("ok".to_string())
    };
    match (words.first().copied()?, words.len()) {
        ("forward", 1) => ok(&|| proxy.set_mode(Mode::Forward)),
        ("refuse", 1) => ok(&|| proxy.set_mode(Mode::Refuse)),
        ("blackhole", 1) => ok(&|| proxy.set_mode(Mode::Blackhole)),
        ("reset", 1) => ok(&|| proxy.reset()),
        ("delay", 2) => {
            let ms = num(1)?;
            ok(&|| proxy.set_delay(Duration::from_millis(ms)))
        }
        ("flap", 2) => {
            let ms = num(1)?;
            ok(&|| proxy.flap((ms > 0).then(|| Duration::from_millis(ms))))
        }
        ("stats", 1) => Some(format!(
            "accepted {} resets {} bytes {} live {}",
            proxy.accepted(),
            proxy.resets(),
            proxy.bytes(),
            proxy.live()
        )),
        ("profile", 2) => {
            let p = Profile::parse(words[1])?;
            ok(&|| proxy.set_profile(p))
        }
        ("link", n) if n >= 3 => {
            let dirs: &[Direction] = match words[1] {
                "up" => &[Direction::Up],
                "down" => &[Direction::Down],
                "both" => &Direction::BOTH,
                _ => return None,
            };
            let spec = link_spec(&words[2..])?;
            ok(&|| dirs.iter().for_each(|d| proxy.set_link(*d, spec)))
        }
        _ => None,
    }
}

/// `off` or `RATE_BPS DELAY_MS QUEUE_BYTES [LOSS_PROB SEED PENALTY_MS]`.
fn link_spec(w: &[&str]) -> Option<LinkSpec> {
    if w == ["off"] {
        return Some(LinkSpec::default());
    }
    if w.len() != 3 && w.len() != 6 {
        return None;
    }
    let n = |i: usize| w[i].parse::<u64>().ok();
    let mut spec = LinkSpec {
        rate_bps: n(0)?,
        delay: Duration::from_millis(n(1)?),
        queue_bytes: n(2)?,
        loss: None,
    };
    if w.len() == 6 {
        let prob = w[3]
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))?;
        spec = spec.with_loss(Loss {
            prob,
            seed: n(4)?,
            penalty: Duration::from_millis(n(5)?),
        });
    }
    Some(spec)
}

fn run_calibration(secs: f64) -> i32 {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("load average before: {}", load.join(" "));
    let mut worst = f64::INFINITY;
    for p in Profile::ALL {
        let bytes = (p.spec().rate_bps as f64 / 8.0 * secs) as u64;
        match calibrate(p, bytes) {
            Ok(c) => {
                println!("{p} ({} MB): {c}", bytes / 1_000_000);
                worst = worst.min(c.ratio);
            }
            Err(e) => {
                eprintln!("{p}: {e}");
                return 1;
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("load average after: {}", load.join(" "));
    i32::from(worst < 0.9)
}
