//! crvm-bench: crvm's point-to-point data path on loopback, each figure next to its anchor, in
//! one run (see docs/PERFORMANCE.md for what the numbers mean and how to run it).
//!
//! Processes: this one (the orchestrator, which also runs the plain TCP relay anchors on
//! threads), `crvm-server`, and two peers — this executable re-run as `__peer`, each one crvm
//! client — so that each has its own peak RSS.

mod peer;
mod procs;
mod relay;

use procs::{Peer, Server, TempDir};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: u64 = 1024 * 1024;
/// Size of the cmd and of the ping in (b).
const PING_BYTES: u64 = 100;

const USAGE: &str = "\
usage: crvm-bench [--quick] [--server PATH] [--tmp DIR] [--file-mib N] [--small-mib N]
                  [--big-mib N] [--reps N] [--pings N] [--calls N] [--call-gap-ms N]

  --quick         tiny sizes (8 MiB files, 200 pings, 10 calls): a smoke run of every section
  --server PATH   crvm-server binary (default: crvm-server next to this executable)
  --tmp DIR       where the temp dir goes (default: the system temp dir)
  --file-mib N    (a) file size, MiB (default 256)
  --small-mib N   (d) smaller transfer, MiB (default 256)
  --big-mib N     (c) and (d) big transfer, MiB (default 2048)
  --reps N        (a) repetitions, crvm and relay alternating (default 5)
  --pings N       (b) round trips per side (default 2000)
  --calls N       (c) calls per condition (default 100)
  --call-gap-ms N (c) pause between two calls, ms (default 20)";

#[derive(Debug)]
struct Cfg {
    quick: bool,
    server: PathBuf,
    tmp: PathBuf,
    file: u64,
    small: u64,
    big: u64,
    reps: usize,
    pings: u64,
    calls: u64,
    /// Pause between two calls in (c), so that busy samples spread over the transfer.
    call_gap_ms: u64,
}

fn parse_args(args: &[String]) -> Res<Cfg> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut cfg = Cfg {
        quick,
        server: std::env::current_exe()?.with_file_name("crvm-server"),
        tmp: std::env::temp_dir(),
        file: if quick { 8 } else { 256 } * MIB,
        small: if quick { 4 } else { 256 } * MIB,
        big: if quick { 8 } else { 2048 } * MIB,
        reps: if quick { 3 } else { 5 },
        pings: if quick { 200 } else { 2000 },
        calls: if quick { 10 } else { 100 },
        call_gap_ms: if quick { 2 } else { 20 },
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = || -> Res<u64> {
            match value.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag}: expected a positive number, got {value:?}").into()),
            }
        };
        match flag.as_str() {
            "--server" => cfg.server = value.into(),
            "--tmp" => cfg.tmp = value.into(),
            "--file-mib" => cfg.file = num()? * MIB,
            "--small-mib" => cfg.small = num()? * MIB,
            "--big-mib" => cfg.big = num()? * MIB,
            "--reps" => cfg.reps = num()? as usize,
            "--pings" => cfg.pings = num()?,
            "--calls" => cfg.calls = num()?,
            "--call-gap-ms" => {
                cfg.call_gap_ms = value
                    .parse()
                    .map_err(|_| format!("{flag}: expected a number, got {value:?}"))?
            }
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}").into()),
        }
    }
    if !cfg.server.is_file() {
        return Err(format!(
            "no server binary at {} (build it: cargo build [--release] -p crvm-server, or pass --server)",
            cfg.server.display()
        )
        .into());
    }
    Ok(cfg)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__peer") {
        let code = i32::from(peer::main(&args[1..]).is_err());
        std::process::exit(code);
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    procs::catch_signals();
    // Every child and temp file lives inside `run`, so all are gone when it returns.
    if let Err(e) = parse_args(&args).and_then(|cfg| run(&cfg)) {
        eprintln!("crvm-bench: error: {e}");
        std::process::exit(1);
    }
}

/// One server and two logged-in peers: alice sends, bob receives into `down`.
struct Session {
    server: Server,
    alice: Peer,
    bob: Peer,
    down: PathBuf,
}

impl Session {
    fn start(cfg: &Cfg, dir: &Path) -> Res<Session> {
        std::fs::create_dir_all(dir)?;
        let down = dir.join("down-bob");
        let down_alice = dir.join("down-alice");
        std::fs::create_dir_all(&down)?;
        std::fs::create_dir_all(&down_alice)?;
        let max_file = (4 * 1024 * MIB).max(cfg.big.max(cfg.file) + 1);
        let server = Server::start(&cfg.server, dir, max_file)?;
        let alice = Peer::start(&server.addr, "alice", &down_alice)?;
        let bob = Peer::start(&server.addr, "bob", &down)?;
        Ok(Session {
            server,
            alice,
            bob,
            down,
        })
    }

    /// Starts sending `src` from alice to bob.
    fn start_file(&mut self, src: &Path) -> Res<()> {
        self.alice.send(&format!("file bob {}", src.display()))?;
        self.alice.expect("file_started", Duration::from_secs(30))?;
        Ok(())
    }

    /// Waits for the file started by [`Session::start_file`] to be complete on both sides,
    /// checks it (size; bytes too with `verify_bytes`) and deletes bob's copy.
    fn finish_file(&mut self, src: &Path, size: u64, verify_bytes: bool) -> Res<()> {
        let patience = transfer_patience(size);
        let got = self.bob.expect("got_file ", patience);
        let got = got.map_err(|e| format!("{e}\nserver log:\n{}", self.server.log_tail()))?;
        let code = self.alice.expect("file_rlst ", patience)?;
        if code != "0" {
            return Err(format!("send_file_rlst code {code}").into());
        }
        let got = PathBuf::from(got);
        check_copy(src, &got, size, verify_bytes)?;
        std::fs::remove_file(&got)?;
        Ok(())
    }

    /// Sends `src` from alice to bob; returns the time until both sides were done.
    fn transfer(&mut self, src: &Path, size: u64, verify_bytes: bool) -> Res<Duration> {
        let t0 = Instant::now();
        self.start_file(src)?;
        self.finish_file(src, size, verify_bytes)?;
        let elapsed = t0.elapsed();
        if std::fs::read_dir(&self.down)?.next().is_some() {
            return Err("bob's download dir is not empty after the transfer".into());
        }
        Ok(elapsed)
    }

    /// `(server, alice, bob)` CPU time so far, seconds.
    fn cpu_secs(&self) -> Res<[f64; 3]> {
        Ok([
            self.server.proc.cpu_secs()?,
            self.alice.proc.cpu_secs()?,
            self.bob.proc.cpu_secs()?,
        ])
    }

    /// `(server, alice, bob)` peak RSS so far, KiB.
    fn peak_rss(&self) -> Res<[u64; 3]> {
        Ok([
            self.server.proc.peak_rss_kib()?,
            self.alice.proc.peak_rss_kib()?,
            self.bob.proc.peak_rss_kib()?,
        ])
    }
}

/// Generous upper bound for a transfer (it only catches hangs): 60 s plus 2 MB/s.
fn transfer_patience(size: u64) -> Duration {
    Duration::from_secs(60 + size / 2_000_000)
}

/// Writes `size` bytes of a repeating, non-zero pattern (so nothing is sparse) and syncs them,
/// so that write-back does not run during the measurements.
fn make_file(path: &Path, size: u64) -> Res<()> {
    let block: Vec<u8> = (0..MIB as usize)
        .map(|i| (i * 31 % 251) as u8 + 1)
        .collect();
    let mut f = File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// A received file must have the right size — and, when asked, the same bytes.
fn check_copy(src: &Path, got: &Path, size: u64, verify_bytes: bool) -> Res<()> {
    let len = std::fs::metadata(got)?.len();
    if len != size {
        return Err(format!("{} has {len} bytes, expected {size}", got.display()).into());
    }
    if verify_bytes {
        let (mut a, mut b) = (File::open(src)?, File::open(got)?);
        let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
        loop {
            let n = a.read(&mut ba)?;
            if n == 0 {
                break;
            }
            b.read_exact(&mut bb[..n])?;
            if ba[..n] != bb[..n] {
                return Err(format!("{} differs from {}", got.display(), src.display()).into());
            }
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `q` (0..=1) of nanosecond samples, in microseconds.
fn pct_us(samples: &[u64], q: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64 / 1000.0
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn mib(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.trailing_zeros() >= 30 {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM",
        mem_kib as f64 / (1024.0 * 1024.0)
    )
}

fn run(cfg: &Cfg) -> Res<()> {
    println!("crvm-bench: loopback, {}", machine());
    println!("server: {}", cfg.server.display());
    if cfg!(debug_assertions) {
        println!("note: debug build — figures are not meaningful (use --release)");
    }
    let tmp = TempDir::new(&cfg.tmp)?;
    let small_src = tmp.0.join("small.bin");
    let big_src = tmp.0.join("big.bin");
    let file_src = tmp.0.join("file.bin");
    for (path, size) in [
        (&file_src, cfg.file),
        (&small_src, cfg.small),
        (&big_src, cfg.big),
    ] {
        make_file(path, size)?;
    }

    let mut s = Session::start(cfg, &tmp.0.join("main"))?;
    println!();
    section_a(cfg, &mut s, &file_src, &tmp.0)?;
    println!();
    section_b(cfg, &mut s)?;
    println!();
    section_c(cfg, &mut s, &big_src)?;
    drop(s);
    println!();
    section_d(cfg, &tmp.0, &[(&small_src, cfg.small), (&big_src, cfg.big)])?;
    println!();
    println!("done");
    Ok(())
}

fn section_a(cfg: &Cfg, s: &mut Session, src: &Path, tmp: &Path) -> Res<()> {
    println!(
        "(a) file throughput: {} file, {} reps alternating (MB/s = 10^6 bytes/s, sender's \
         disk read to receiver's fsync)",
        mib(cfg.file),
        cfg.reps
    );
    println!("    rep   crvm-server   plain TCP relay   ratio");
    let dst = tmp.join("relay-copy.bin");
    let (mut crvm, mut plain) = (Vec::new(), Vec::new());
    // CPU seconds used: crvm (server, alice, bob) and the relay anchor (this process).
    let (mut crvm_cpu, mut plain_cpu) = ([0.0; 3], 0.0);
    for rep in 0..cfg.reps {
        let mut one = |crvm_turn: bool| -> Res<f64> {
            let d = if crvm_turn {
                let before = s.cpu_secs()?;
                let d = s.transfer(src, cfg.file, cfg.quick)?;
                let after = s.cpu_secs()?;
                for k in 0..3 {
                    crvm_cpu[k] += after[k] - before[k];
                }
                d
            } else {
                let before = procs::cpu_secs(std::process::id())?;
                let d = relay::file(src, &dst)?;
                plain_cpu += procs::cpu_secs(std::process::id())? - before;
                check_copy(src, &dst, cfg.file, cfg.quick)?;
                std::fs::remove_file(&dst)?;
                d
            };
            Ok(mb_per_s(cfg.file, d))
        };
        // A then B, then B then A: neither side always runs on a warmer machine.
        let (c, p) = if rep % 2 == 0 {
            let c = one(true)?;
            (c, one(false)?)
        } else {
            let p = one(false)?;
            (one(true)?, p)
        };
        println!("    {:<5} {c:>11.1} {p:>17.1} {:>7.2}", rep + 1, c / p);
        crvm.push(c);
        plain.push(p);
    }
    let (c, p) = (median(crvm), median(plain));
    println!(
        "    median: crvm-server {c:.1} MB/s, plain TCP relay {p:.1} MB/s, ratio {:.2} (target >= 0.70)",
        c / p
    );
    let gib = (cfg.reps as u64 * cfg.file) as f64 / (1024.0 * MIB as f64);
    let [server, alice, bob] = crvm_cpu.map(|secs| secs / gib);
    println!(
        "    CPU s per GiB: crvm {:.2} (server {server:.2}, alice {alice:.2}, bob {bob:.2}), \
         plain relay {:.2} (sender, relay and receiver threads)",
        server + alice + bob,
        plain_cpu / gib
    );
    Ok(())
}

fn section_b(cfg: &Cfg, s: &mut Session) -> Res<()> {
    let rounds = 2;
    let per_round = cfg.pings.div_ceil(rounds);
    let warmup = (per_round / 10).max(10);
    println!(
        "(b) cmd round trip, {PING_BYTES} B: {} samples per side in {rounds} alternating rounds \
         (after {warmup} warm-up each)",
        per_round * rounds
    );
    let (mut crvm, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        s.alice
            .send(&format!("pings bob {} {PING_BYTES}", warmup + per_round))?;
        let line = s.alice.expect("pings", Duration::from_secs(300))?;
        let samples: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
        if samples.len() as u64 != warmup + per_round {
            return Err(format!("alice reported {} pings", samples.len()).into());
        }
        crvm.extend_from_slice(&samples[warmup as usize..]);
        let samples = relay::ping_pong(warmup + per_round, PING_BYTES as usize)?;
        plain.extend_from_slice(&samples[warmup as usize..]);
    }
    println!("                                          p50 µs     p99 µs");
    let row = |name: &str, v: &[u64]| {
        println!(
            "    {name:<36} {:>9.1} {:>10.1}",
            pct_us(v, 0.5),
            pct_us(v, 0.99)
        );
    };
    row("crvm send_cmd → send_cmd_rlst", &crvm);
    row("plain TCP ping-pong via relay", &plain);
    println!(
        "    ratio crvm / plain: p50 {:.1}×, p99 {:.1}×",
        pct_us(&crvm, 0.5) / pct_us(&plain, 0.5),
        pct_us(&crvm, 0.99) / pct_us(&plain, 0.99)
    );
    Ok(())
}

/// Latencies of one batch of calls alice → bob, nanoseconds: `call` → `call_success` (alice's
/// clock) and `call` → bob's `notify_call_in` (one monotonic clock for both processes).
fn calls(
    cfg: &Cfg,
    s: &mut Session,
    gap_ms: u64,
    while_sending: bool,
) -> Res<(Vec<u64>, Vec<u64>)> {
    let cmd = format!(
        "calls bob {} {gap_ms} {}",
        cfg.calls,
        u8::from(while_sending)
    );
    s.alice.send(&cmd)?;
    let made = s.alice.expect("calls", transfer_patience(cfg.big))?;
    // alice may have every call_success before bob's last notify_call_in has run: ask bob until
    // every call has rung there (or give up after 30 s).
    let wanted = made.split(' ').filter(|w| !w.is_empty()).count();
    let mut rang = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rang.len() < wanted && Instant::now() < deadline {
        s.bob.send("callins")?;
        let line = s.bob.expect("callins", Duration::from_secs(30))?;
        rang.extend(
            line.split(' ')
                .filter_map(|w| w.split_once(':'))
                .filter_map(|(id, t)| Some((id.to_string(), t.parse::<u64>().ok()?))),
        );
        if rang.len() < wanted {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (mut success, mut call_in) = (Vec::new(), Vec::new());
    for w in made.split(' ').filter(|w| !w.is_empty()) {
        let parts: Vec<&str> = w.split(':').collect();
        let [id, t0, t1] = parts[..] else {
            return Err(format!("bad call record {w:?}").into());
        };
        let (t0, t1): (u64, u64) = (t0.parse()?, t1.parse()?);
        let rang_at = rang
            .get(id)
            .ok_or_else(|| format!("call {id} never rang at bob"))?;
        success.push(t1 - t0);
        call_in.push(rang_at.saturating_sub(t0));
    }
    if success.is_empty() {
        return Err("no call was made".into());
    }
    Ok((success, call_in))
}

fn section_c(cfg: &Cfg, s: &mut Session, big: &Path) -> Res<()> {
    println!(
        "(c) call invite latency, alice → bob (each call hung up at once): idle vs while alice \
         sends bob a {} file; {} calls per row, {} ms apart (back to back: no pause)",
        mib(cfg.big),
        cfg.calls,
        cfg.call_gap_ms
    );
    let (warm_ok, warm_in) = calls(cfg, s, 0, false)?;
    let (idle_ok, idle_in) = calls(cfg, s, cfg.call_gap_ms, false)?;
    s.start_file(big)?;
    let (busy_ok, busy_in) = calls(cfg, s, cfg.call_gap_ms, true)?;
    s.finish_file(big, cfg.big, cfg.quick)?;
    println!("                                 call → call_success      call → notify_call_in");
    println!("                          n      p50 µs      p99 µs        p50 µs      p99 µs");
    let row = |name: &str, ok: &[u64], ci: &[u64]| {
        println!(
            "    {name:<19} {:>4} {:>11.1} {:>11.1}   {:>11.1} {:>11.1}",
            ok.len(),
            pct_us(ok, 0.5),
            pct_us(ok, 0.99),
            pct_us(ci, 0.5),
            pct_us(ci, 0.99)
        );
    };
    row("idle, back to back", &warm_ok, &warm_in);
    row("idle, paced", &idle_ok, &idle_in);
    row("during transfer", &busy_ok, &busy_in);
    println!(
        "    ratio during / idle paced: call_success p50 {:.1}× p99 {:.1}×, notify_call_in p50 {:.1}× p99 {:.1}×",
        pct_us(&busy_ok, 0.5) / pct_us(&idle_ok, 0.5),
        pct_us(&busy_ok, 0.99) / pct_us(&idle_ok, 0.99),
        pct_us(&busy_in, 0.5) / pct_us(&idle_in, 0.5),
        pct_us(&busy_in, 0.99) / pct_us(&idle_in, 0.99)
    );
    if (busy_ok.len() as u64) < cfg.calls {
        println!(
            "    note: the transfer ended after {} of {} calls",
            busy_ok.len(),
            cfg.calls
        );
    }
    Ok(())
}

fn section_d(cfg: &Cfg, tmp: &Path, transfers: &[(&Path, u64)]) -> Res<()> {
    println!(
        "(d) peak RSS (VmHWM, MiB), fresh processes per transfer: after login → after the transfer"
    );
    println!("    transfer       crvm-server           alice (sender)        bob (receiver)");
    let mut after = Vec::new();
    for (i, &(src, size)) in transfers.iter().enumerate() {
        let mut s = Session::start(cfg, &tmp.join(format!("rss-{i}")))?;
        let before = s.peak_rss()?;
        s.transfer(src, size, cfg.quick)?;
        let peak = s.peak_rss()?;
        let cell = |k: usize| format!("{:.1} → {:.1}", kib_mib(before[k]), kib_mib(peak[k]));
        println!(
            "    {:<10} {:>17} {:>24} {:>21}",
            mib(size),
            cell(0),
            cell(1),
            cell(2)
        );
        after.push((size, peak));
    }
    if let [(small, a), (big, b)] = after[..] {
        println!(
            "    growth {} → {} ({:.0}× the bytes): server {:+.1} MiB, alice {:+.1} MiB, bob {:+.1} MiB",
            mib(small),
            mib(big),
            big as f64 / small as f64,
            growth(a[0], b[0]),
            growth(a[1], b[1]),
            growth(a[2], b[2])
        );
    }
    Ok(())
}

fn kib_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// MiB from `a` to `b` KiB, without a "-0.0".
fn growth(a: u64, b: u64) -> f64 {
    let d = kib_mib(b) - kib_mib(a);
    if d.abs() < 0.05 {
        0.0
    } else {
        d
    }
}
