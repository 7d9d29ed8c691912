//! `crvm-faultproxy UPSTREAM`: the fault proxy of the crate's library, driven from stdin for
//! tests written in C. Prints `crvm-faultproxy listening on HOST:PORT` first, then reads one
//! command per line and answers each with `ok` (or `error: …`):
//!
//! `forward`, `refuse`, `blackhole`, `reset`, `delay MS`, `flap MS` (0 stops), `stats`
//! (answers `accepted N resets N bytes N live N`). End of input stops the proxy.

use std::io::{BufRead, Write};
use std::time::Duration;

use crvm_faultproxy::{Mode, Proxy};

fn main() {
    let Some(upstream) = std::env::args().nth(1).and_then(|a| a.parse().ok()) else {
        eprintln!("usage: crvm-faultproxy UPSTREAM_HOST:PORT");
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
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next().map(str::parse::<u64>)) {
            (Some("forward"), None) => ok(|| proxy.set_mode(Mode::Forward)),
            (Some("refuse"), None) => ok(|| proxy.set_mode(Mode::Refuse)),
            (Some("blackhole"), None) => ok(|| proxy.set_mode(Mode::Blackhole)),
            (Some("reset"), None) => ok(|| proxy.reset()),
            (Some("delay"), Some(Ok(ms))) => ok(|| proxy.set_delay(Duration::from_millis(ms))),
            (Some("flap"), Some(Ok(0))) => ok(|| proxy.flap(None)),
            (Some("flap"), Some(Ok(ms))) => ok(|| proxy.flap(Some(Duration::from_millis(ms)))),
            (Some("stats"), None) => format!(
                "accepted {} resets {} bytes {} live {}",
                proxy.accepted(),
                proxy.resets(),
                proxy.bytes(),
                proxy.live()
            ),
            _ => format!("error: unknown command {line:?}"),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

fn ok(f: impl FnOnce()) -> String {
    f();
    "ok".into()
}
