//! crvm-bench: crvm on loopback, each figure next to its anchor (socat, NATS, Redis), in one
//! run (see docs/PERFORMANCE.md for what the numbers mean and how to run it).
//!
//! Processes: this one (the orchestrator; it also runs the anchors' Rust clients and the
//! presence subscribers), `crvm-server`, the anchor servers, and peers — this executable re-run
//! as `__peer` (one crvm client each, so that each has its own peak RSS) or `__nats_echo` (the
//! NATS responder).

mod anchors;
mod cbench;
mod cluster;
mod fanout;
mod links;
mod natsmsg;
mod peer;
mod procs;
mod relay;
mod resume;
mod web;
mod wsfloor;

use anchors::{Nats, Redis};
use peer::During;
use procs::{start_server, Peer, Server, Stats, TmpDir};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const MIB: u64 = 1024 * 1024;
/// Cmd sizes of (c): 100 B, 4 KiB and the largest cmd (50 KiB).
const CMD_SIZES: [usize; 3] = [100, 4096, 51_200];
/// Concurrent senders in (c)'s throughput rows.
const SENDERS: usize = 8;
/// Bytes of cmds a sender of (c)'s throughput rows sends per round, at most: within the
/// library's default `max_pending_bytes` (64 MiB), so that nothing is refused.
const PENDING_BUDGET: u64 = 48 * MIB;

/// Every section's letter.
const SECTIONS: &str = "abcdefghijkl";

const USAGE: &str = "\
usage: crvm-bench [--quick] [--server PATH] [--tmp DIR] [--file-mib N] [--small-mib N]
                  [--big-mib N] [--reps N] [--setups N] [--pings N] [--per-sender N]
                  [--fanout N,N,..] [--fan-deliveries N] [--fan-samples N] [--calls N]
                  [--call-gap-ms N] [--link-secs N] [--link-calls N] [--web-mib N]
                  [--web-setups N] [--links KEYS] [--only SECTIONS]

  --only SECTIONS    run only these sections, e.g. --only a,c (default: all of a..l)
  --quick            tiny sizes: a smoke run of every section (anchors whose tool is not
                     installed are skipped in this mode only)
  --server PATH      crvm-server binary (default: crvm-server next to this executable)
  --tmp DIR          where the temp dir goes (default: the system temp dir)
  --reps N           A/B rounds of every comparison, alternating which goes first (default 3)
  --file-mib N       (a) bulk file size, MiB (default 1024)
  --setups N         (b) call setups per side, over all rounds (default 20000)
  --pings N          (c) round trips per size and side, over all rounds (default 3000)
  --per-sender N     (c), (j) cmds per sender per round in the throughput rows (default 5000,
                     at most 48 MiB of data)
  --fanout N,N,..    (d)/(e) subscriber counts (default 10,100,1000)
  --fan-deliveries N (d) pushes per round: changes = N / subscribers (default 200000)
  --fan-samples N    (e) single changes per subscriber count and side (default 300)
  --calls N          (f) calls per condition (default 100)
  --call-gap-ms N    (f) pause between two calls, ms (default 20)
  --small-mib N      (g) smaller transfer, MiB (default 256)
  --big-mib N        (f) and (g) big transfer, MiB (default 2048)
  --link-secs N      (k) file size on each emulated link, in seconds at its rate (default 10)
  --link-calls N     (k) calls per row (default 50)
  --links KEYS       (k) only these emulated links, e.g. --links 1g1 (default: 10m50,40m20,1g1)
  --web-mib N        (l) file from the browser, MiB (default 100)
  --web-setups N     (l) call setups per side, over all rounds (default 3000)

  (h) session resumption uses the (a) file for its transfer through drops; (i), across cluster
  nodes vs one node, uses it for its bulk row (and needs redis-server). (j), (c)'s throughput rows
  with C clients (libcrvm vs libnats), builds bench/c/cmd_throughput.c with cc and libnats-dev,
  and uses --per-sender. (l), the browser (headless Chromium running crvm-web, driven by
  web/bench/driver.js) vs a libcrvm peer, needs node, chromium and web/ built (npm ci, npm run
  build); it is skipped, saying why, without them.";

#[derive(Debug)]
struct Cfg {
    quick: bool,
    server: PathBuf,
    tmp: PathBuf,
    file: u64,
    small: u64,
    big: u64,
    reps: usize,
    setups: u64,
    pings: u64,
    per_sender: u64,
    fanout: Vec<usize>,
    fan_deliveries: u64,
    fan_samples: u64,
    calls: u64,
    /// Pause between two calls in (f), so that busy samples spread over the transfer.
    call_gap_ms: u64,
    /// (k) seconds of a transfer at the emulated link's rate: its file's size.
    link_secs: f64,
    /// (k) calls per row.
    link_calls: u64,
    /// (k) the emulated links to measure, by key.
    links: Vec<String>,
    /// (l) size of the file the browser sends.
    web_file: u64,
    /// (l) call setups per side, over all rounds.
    web_setups: u64,
    /// Section letters to run.
    only: String,
}

impl Cfg {
    fn runs(&self, section: char) -> bool {
        self.only.contains(section)
    }
}

fn parse_args(args: &[String]) -> Res<Cfg> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut cfg = Cfg {
        quick,
        server: std::env::current_exe()?.with_file_name("crvm-server"),
        tmp: std::env::temp_dir(),
        file: if quick { 8 } else { 1024 } * MIB,
        small: if quick { 4 } else { 256 } * MIB,
        big: if quick { 8 } else { 2048 } * MIB,
        reps: 3,
        setups: if quick { 60 } else { 20_000 },
        pings: if quick { 60 } else { 3000 },
        per_sender: if quick { 10 } else { 5000 },
        fanout: if quick {
            vec![5, 10, 20]
        } else {
            vec![10, 100, 1000]
        },
        fan_deliveries: if quick { 400 } else { 200_000 },
        fan_samples: if quick { 15 } else { 300 },
        calls: if quick { 10 } else { 100 },
        call_gap_ms: if quick { 2 } else { 20 },
        link_secs: if quick { 0.2 } else { 10.0 },
        link_calls: if quick { 5 } else { 50 },
        links: crvm_faultproxy::Profile::ALL
            .iter()
            .map(|p| p.key().to_owned())
            .collect(),
        web_file: if quick { 8 } else { 100 } * MIB,
        web_setups: if quick { 60 } else { 3000 },
        only: SECTIONS.into(),
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
            "--setups" => cfg.setups = num()?,
            "--pings" => cfg.pings = num()?,
            "--per-sender" => cfg.per_sender = num()?,
            "--fanout" => {
                cfg.fanout = value
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("{flag}: expected N,N,.. got {value:?}"))?
            }
            "--fan-deliveries" => cfg.fan_deliveries = num()?,
            "--fan-samples" => cfg.fan_samples = num()?,
            "--calls" => cfg.calls = num()?,
            "--link-secs" => cfg.link_secs = num()? as f64,
            "--link-calls" => cfg.link_calls = num()?,
            "--links" => {
                let known = crvm_faultproxy::Profile::ALL.map(|p| p.key().to_owned());
                cfg.links = value.split(',').map(|k| k.trim().to_owned()).collect();
                if let Some(k) = cfg.links.iter().find(|k| !known.contains(k)) {
                    return Err(format!("{flag}: no emulated link {k:?} (known: {known:?})").into());
                }
            }
            "--web-mib" => cfg.web_file = num()? * MIB,
            "--web-setups" => cfg.web_setups = num()?,
            "--only" => {
                cfg.only = value.to_lowercase();
                if !cfg.only.chars().any(|c| SECTIONS.contains(c)) {
                    return Err(format!("{flag}: no section among {value:?}").into());
                }
            }
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
    if args.first().map(String::as_str) == Some("__nats_echo") {
        if let Err(e) = natsmsg::echo_main(&args[1..]) {
            println!("error {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    procs::catch_signals("crvm-bench");
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
        let server = start_server(&cfg.server, dir, max_file, "")?;
        let alice = Peer::start(&server.addr.to_string(), "alice", &down_alice)?;
        let bob = Peer::start(&server.addr.to_string(), "bob", &down)?;
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
    /// checks it (size; bytes too with `verify_bytes`) and deletes bob's copy. Returns when it
    /// was complete (before the check and the deletion).
    fn finish_file(&mut self, src: &Path, size: u64, verify_bytes: bool) -> Res<Instant> {
        let patience = transfer_patience(size);
        let got = self.bob.expect("got_file ", patience);
        let got = got.map_err(|e| format!("{e}\nserver log:\n{}", self.server.log_tail(20)))?;
        let code = self.alice.expect("file_rlst ", patience)?;
        let done = Instant::now();
        if code != "0" {
            return Err(format!("send_file_rlst code {code}").into());
        }
        let got = PathBuf::from(got);
        check_copy(src, &got, size, verify_bytes)?;
        std::fs::remove_file(&got)?;
        if std::fs::read_dir(&self.down)?.next().is_some() {
            return Err("bob's download dir is not empty after the transfer".into());
        }
        Ok(done)
    }

    /// Sends `src` from alice to bob; returns the time until both sides were done (bob has
    /// the file, synced; alice has `send_file_rlst`).
    fn transfer(&mut self, src: &Path, size: u64, verify_bytes: bool) -> Res<Duration> {
        let t0 = Instant::now();
        self.start_file(src)?;
        let done = self.finish_file(src, size, verify_bytes)?;
        Ok(done - t0)
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

/// `/proc/loadavg`'s 1, 5 and 15 minute figures: other jobs on the machine skew the figures.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
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

/// The anchor servers this run has. Only `--quick` goes on without one (and says so).
struct Anchors {
    nats: Option<Nats>,
    redis: Option<Redis>,
    socat: bool,
}

impl Anchors {
    fn start(cfg: &Cfg) -> Res<Anchors> {
        let have = |tool: &str| -> Res<bool> {
            if anchors::installed(tool) {
                Ok(true)
            } else if cfg.quick {
                Ok(false)
            } else {
                Err(format!(
                    "{tool} is not installed: run scripts/bench.sh, which installs the anchors"
                )
                .into())
            }
        };
        Ok(Anchors {
            nats: if have("nats-server")? {
                Some(Nats::start()?)
            } else {
                None
            },
            redis: if have("redis-server")? {
                Some(Redis::start()?)
            } else {
                None
            },
            socat: have("socat")?,
        })
    }
}

fn skipped(tool: &str) {
    println!("    skipped: {tool} not installed");
}

fn run(cfg: &Cfg) -> Res<()> {
    println!(
        "crvm-bench: loopback, {}, load average {}",
        machine(),
        loadavg()
    );
    println!("server: {}", cfg.server.display());
    if cfg!(debug_assertions) {
        println!("note: debug build — figures are not meaningful (use --release)");
    }
    // First, so that a missing tool fails the full run before any temp file is written.
    let anchors = Anchors::start(cfg)?;
    let tmp = TmpDir::under(&cfg.tmp, "crvm-bench")?;
    let small_src = tmp.0.join("small.bin");
    let big_src = tmp.0.join("big.bin");
    let file_src = tmp.0.join("file.bin");
    let web_src = tmp.0.join("web.bin");
    // Only the files the chosen sections use.
    for (path, size, users) in [
        (&file_src, cfg.file, "ahi"),
        (&small_src, cfg.small, "g"),
        (&big_src, cfg.big, "fg"),
        (&web_src, cfg.web_file, "l"),
    ] {
        if users.chars().any(|c| cfg.runs(c)) {
            make_file(path, size)?;
        }
    }
    // The anchors' clients and the presence subscribers; two workers, one per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let mut s = Session::start(cfg, &tmp.0.join("main"))?;
    if cfg.runs('a') {
        println!();
        section_a(cfg, &mut s, &file_src, &tmp.0, anchors.socat)?;
    }
    if cfg.runs('b') {
        println!();
        section_b(cfg, &mut s, &rt, anchors.nats.as_ref())?;
    }
    if cfg.runs('c') {
        println!();
        section_c(cfg, &mut s, &tmp.0, &rt, anchors.nats.as_ref())?;
    }
    if cfg.runs('d') || cfg.runs('e') {
        println!();
        section_de(cfg, &tmp.0, &rt, &anchors)?;
    }
    if cfg.runs('f') {
        println!();
        section_f(cfg, &mut s, &big_src)?;
    }
    drop(s);
    if cfg.runs('g') {
        println!();
        section_g(cfg, &tmp.0, &[(&small_src, cfg.small), (&big_src, cfg.big)])?;
    }
    if cfg.runs('h') {
        println!();
        resume::section_h(&cfg.server, &tmp.0, &file_src, cfg.file, cfg.quick)?;
    }
    if cfg.runs('i') {
        println!();
        cluster::section_i(cfg, &tmp.0, &file_src, cfg.file, &rt)?;
    }
    if cfg.runs('j') {
        println!();
        cbench::section_j(cfg, &tmp.0, anchors.nats.as_ref())?;
    }
    if cfg.runs('k') {
        println!();
        links::section_k(cfg, &tmp.0, anchors.socat)?;
    }
    if cfg.runs('l') {
        println!();
        web::section_l(cfg, &tmp.0, &web_src, cfg.web_file)?;
    }
    println!();
    println!("load average at the end: {}", loadavg());
    println!("done");
    Ok(())
}

/// Runs `a` and `b` once each, A then B on even rounds and B then A on odd ones, so that
/// neither always runs on a warmer machine.
fn ab<A, B>(round: usize, a: impl FnOnce() -> Res<A>, b: impl FnOnce() -> Res<B>) -> Res<(A, B)> {
    if round.is_multiple_of(2) {
        let x = a()?;
        Ok((x, b()?))
    } else {
        let y = b()?;
        Ok((a()?, y))
    }
}

fn section_a(cfg: &Cfg, s: &mut Session, src: &Path, tmp: &Path, socat: bool) -> Res<()> {
    println!(
        "(a) bulk relay: a {} file alice → crvm-server → bob vs the same bytes through socat, \
         {} rounds, the order rotating (MB/s = 10^6 bytes/s, sender's disk read to receiver's \
         fsync)",
        mib(cfg.file),
        cfg.reps
    );
    if !socat {
        skipped("socat");
    }
    let dst = tmp.join("relay-copy.bin");
    if !cfg.quick {
        // One untimed transfer each first. In a VM, the first write to guest memory never
        // touched before costs a host page fault per page: whichever side first fills the page
        // cache with a received file would pay it (measured here: up to 3 CPU-s per GB).
        s.transfer(src, cfg.file, false)?;
        if socat {
            relay::file_via_socat(src, &dst, relay::Writes::AsRead)?;
            std::fs::remove_file(&dst)?;
        }
        println!(
            "    (after one untimed transfer each, so that neither side writes into fresh memory)"
        );
    }
    if socat {
        println!(
            "    socat: the bench's receiver fsyncs at the end; socat+wb: it also starts \
             write-back every 8 MiB, as crvm's receiver does; socat+cw: it also writes as crvm's \
             receiver does, whole 128 KiB blocks at multiples of 128 KiB (both for reference)"
        );
        println!(
            "    round        crvm       socat   ratio    socat+wb   ratio    socat+cw   ratio"
        );
    } else {
        println!("    round        crvm");
    }
    let mut crvm = Vec::new();
    let mut plain = [Vec::new(), Vec::new(), Vec::new()];
    // CPU seconds used: crvm (server, alice, bob) and the anchors (socat + this process, which
    // runs the anchor's sender and receiver).
    let mut crvm_cpu = [0.0; 3];
    let (mut plain_cpu, mut socat_cpu) = ([0.0; 3], [0.0; 3]);
    for rep in 0..cfg.reps {
        let mut crvm_turn = || -> Res<f64> {
            let before = s.cpu_secs()?;
            let d = s.transfer(src, cfg.file, cfg.quick)?;
            let after = s.cpu_secs()?;
            for k in 0..3 {
                crvm_cpu[k] += after[k] - before[k];
            }
            Ok(mb_per_s(cfg.file, d))
        };
        if !socat {
            let c = crvm_turn()?;
            println!("    {:<5} {c:>11.1}", rep + 1);
            crvm.push(c);
            continue;
        }
        let mut socat_turn = |k: usize| -> Res<f64> {
            let writes = [
                relay::Writes::AsRead,
                relay::Writes::Writeback,
                relay::Writes::AsCrvm,
            ][k];
            let before = procs::cpu_secs(std::process::id())?;
            let (d, socat_secs) = relay::file_via_socat(src, &dst, writes)?;
            plain_cpu[k] += procs::cpu_secs(std::process::id())? - before + socat_secs;
            socat_cpu[k] += socat_secs;
            check_copy(src, &dst, cfg.file, cfg.quick)?;
            std::fs::remove_file(&dst)?;
            Ok(mb_per_s(cfg.file, d))
        };
        // Each of the four goes first, second, third and fourth in turn.
        let mut rates = [0.0; 4];
        for k in 0..4 {
            let turn = (rep + k) % 4;
            rates[turn] = match turn {
                0 => crvm_turn()?,
                anchor => socat_turn(anchor - 1)?,
            };
        }
        let [c, p, w, a] = rates;
        println!(
            "    {:<5} {c:>11.1} {p:>11.1} {:>7.2} {w:>11.1} {:>7.2} {a:>11.1} {:>7.2}",
            rep + 1,
            c / p,
            c / w,
            c / a
        );
        crvm.push(c);
        plain[0].push(p);
        plain[1].push(w);
        plain[2].push(a);
    }
    let gb = (cfg.reps as u64 * cfg.file) as f64 / 1e9;
    let [server, alice, bob] = crvm_cpu.map(|secs| secs / gb);
    let c = median(crvm);
    if !socat {
        println!(
            "    median: crvm {c:.1} MB/s; CPU s per GB: crvm {:.2}",
            server + alice + bob
        );
        return Ok(());
    }
    let [p, w, a] = plain.map(median);
    println!(
        "    median: crvm {c:.1} MB/s, socat {p:.1} MB/s, ratio {:.2} (target >= 1.00); \
         socat+wb {w:.1} MB/s, ratio {:.2}; socat+cw {a:.1} MB/s, ratio {:.2}",
        c / p,
        c / w,
        c / a
    );
    let crvm_gb = server + alice + bob;
    let [p, w, a] = plain_cpu.map(|secs| secs / gb);
    println!(
        "    CPU s per GB: crvm {crvm_gb:.2} (server {server:.2}, alice {alice:.2}, bob {bob:.2}), \
         socat {p:.2} (socat {:.2}, the bench's sender and receiver {:.2}), ratio {:.2} \
         (target <= 1.20); socat+wb {w:.2}, ratio {:.2}; socat+cw {a:.2} (the bench's sender \
         and receiver {:.2}), ratio {:.2}",
        socat_cpu[0] / gb,
        p - socat_cpu[0] / gb,
        crvm_gb / p,
        crvm_gb / w,
        a - socat_cpu[2] / gb,
        crvm_gb / a
    );
    Ok(())
}

/// The nanosecond samples in a peer's answer line.
fn samples_of(line: &str) -> Vec<u64> {
    line.split(' ').filter_map(|w| w.parse().ok()).collect()
}

/// p50/p99 of crvm and its anchor, and the ratios with their targets.
fn latency_rows(label: &str, crvm: &[u64], anchor_name: &str, anchor: &[u64], targets: (f64, f64)) {
    latency_pair(label, "crvm", crvm, anchor_name, anchor, Some(targets))
}

/// [`latency_rows`] with the first side named `name`, and no targets for an anchor's own
/// figures.
fn latency_pair(
    label: &str,
    name: &str,
    crvm: &[u64],
    anchor_name: &str,
    anchor: &[u64],
    targets: Option<(f64, f64)>,
) {
    if anchor.is_empty() {
        println!(
            "    {label:<10} {name} p50 {:>8.1} µs  p99 {:>8.1} µs",
            pct_us(crvm, 0.5),
            pct_us(crvm, 0.99)
        );
        return;
    }
    let (c50, c99, a50, a99) = (
        pct_us(crvm, 0.5),
        pct_us(crvm, 0.99),
        pct_us(anchor, 0.5),
        pct_us(anchor, 0.99),
    );
    let (r50, r99) = (c50 / a50, c99 / a99);
    let ratios = match targets {
        Some((t50, t99)) => format!("p50 {r50:.2} (<= {t50:.1}), p99 {r99:.2} (<= {t99:.1})"),
        None => format!("p50 {r50:.2}, p99 {r99:.2}"),
    };
    println!(
        "    {label:<10} {name} p50 {c50:>8.1} µs  p99 {c99:>8.1} µs | {anchor_name} p50 {a50:>8.1} µs  \
         p99 {a99:>8.1} µs | ratio {ratios}"
    );
}

fn section_b(
    cfg: &Cfg,
    s: &mut Session,
    rt: &tokio::runtime::Runtime,
    nats: Option<&Nats>,
) -> Res<()> {
    let per_round = cfg.setups.div_ceil(cfg.reps as u64);
    let warmup = (per_round / 10).clamp(5, 500);
    println!(
        "(b) call setup: call → notify_call_in → accept_call → notify_call_accepted (alice's \
         clock; each call hung up before the next), {} sequential per side in {} alternating \
         rounds after {warmup} warm-up each; anchor: NATS request/reply, 100 B each way",
        per_round * cfg.reps as u64,
        cfg.reps
    );
    if nats.is_none() {
        skipped("nats-server");
    }
    s.bob.send("autoaccept 1")?;
    s.bob.expect("autoaccept", Duration::from_secs(30))?;
    let (_echo, client) = nats_echo(rt, nats)?;
    let (mut crvm, mut anchor) = (Vec::new(), Vec::new());
    for round in 0..cfg.reps {
        let crvm_turn = || -> Res<Vec<u64>> {
            s.alice
                .send(&format!("setups bob {}", warmup + per_round))?;
            let line = s.alice.expect("setups", Duration::from_secs(1800))?;
            Ok(samples_of(&line).split_off(warmup as usize))
        };
        let nats_turn = || -> Res<Vec<u64>> {
            let Some(c) = &client else {
                return Ok(Vec::new());
            };
            let v = rt.block_on(natsmsg::requests(c, natsmsg::ECHO, warmup + per_round, 100))?;
            Ok(v[warmup as usize..].to_vec())
        };
        let (c, a) = ab(round, crvm_turn, nats_turn)?;
        crvm.extend(c);
        anchor.extend(a);
    }
    s.bob.send("autoaccept 0")?;
    s.bob.expect("autoaccept", Duration::from_secs(30))?;
    latency_rows("setup", &crvm, "NATS", &anchor, (1.0, 1.3));
    Ok(())
}

/// The NATS responder process (`__nats_echo`) and a client connected to `nats`, both `None`
/// without NATS. Keep the responder alive while the client makes requests.
fn nats_echo(
    rt: &tokio::runtime::Runtime,
    nats: Option<&Nats>,
) -> Res<(Option<Peer>, Option<async_nats::Client>)> {
    let echo = nats
        .map(|n| Peer::role(&["__nats_echo", &n.url], "nats-echo"))
        .transpose()?;
    let client = nats
        .map(|n| rt.block_on(async_nats::connect(n.url.as_str())))
        .transpose()?;
    Ok((echo, client))
}

fn section_c(
    cfg: &Cfg,
    s: &mut Session,
    tmp: &Path,
    rt: &tokio::runtime::Runtime,
    nats: Option<&Nats>,
) -> Res<()> {
    let per_round = cfg.pings.div_ceil(cfg.reps as u64);
    let warmup = (per_round / 10).clamp(5, 200);
    println!(
        "(c) cmd round trip: send_cmd → send_cmd_rlst (end-to-end ack) vs NATS request → empty \
         reply; {} per size and side in {} alternating rounds after {warmup} warm-up each",
        per_round * cfg.reps as u64,
        cfg.reps
    );
    if nats.is_none() {
        skipped("nats-server");
    }
    let (_echo, client) = nats_echo(rt, nats)?;
    for size in CMD_SIZES {
        let (mut crvm, mut anchor) = (Vec::new(), Vec::new());
        for round in 0..cfg.reps {
            let crvm_turn = || -> Res<Vec<u64>> {
                s.alice
                    .send(&format!("pings bob {} {size} 1", warmup + per_round))?;
                let line = s.alice.expect("pings", Duration::from_secs(600))?;
                Ok(samples_of(&line).split_off(warmup as usize))
            };
            let nats_turn = || -> Res<Vec<u64>> {
                let Some(c) = &client else {
                    return Ok(Vec::new());
                };
                let v =
                    rt.block_on(natsmsg::requests(c, natsmsg::ACK, warmup + per_round, size))?;
                Ok(v[warmup as usize..].to_vec())
            };
            let (c, a) = ab(round, crvm_turn, nats_turn)?;
            crvm.extend(c);
            anchor.extend(a);
        }
        latency_rows(&bytes_label(size), &crvm, "NATS", &anchor, (1.0, 1.0));
    }

    let n = |size: usize| cfg.per_sender.min(PENDING_BUDGET / size as u64);
    println!(
        "    acked throughput, {SENDERS} senders → 1, each as fast as the API accepts (no window \
         of the app's): crvm: {SENDERS} peers each call send_cmd N times in a row, then wait for \
         every send_cmd_rlst; NATS: {SENDERS} connections of this process each publish N \
         messages with a reply subject in a row, the responder replies empty to each, and every \
         reply is counted. N = {} per sender (at most {} MiB of data each, within the default \
         max_pending_bytes). Median msgs/s over {} rounds (target ratio >= 1.0):",
        cfg.per_sender,
        PENDING_BUDGET / MIB,
        cfg.reps
    );
    let down = tmp.join("down-senders");
    std::fs::create_dir_all(&down)?;
    let addr = s.server.addr.to_string();
    let start_senders = || -> Res<Vec<Peer>> {
        (0..SENDERS)
            .map(|i| Peer::start(&addr, &format!("s{i}"), &down))
            .collect()
    };
    let mut senders = start_senders()?;
    // A round in which a sender's cmd never completes (a peer gives up after 120 s without an
    // event) is reported and left out; the senders are restarted for the next round.
    let mut crvm_burst = |size: usize| -> Res<Option<f64>> {
        let n = n(size);
        let t0 = std::time::Instant::now();
        for p in senders.iter_mut() {
            p.send(&format!("pings bob {n} {size} {n}"))?;
        }
        let failed = senders
            .iter_mut()
            .find_map(|p| p.expect("pings", Duration::from_secs(600)).err());
        if let Some(e) = failed {
            println!("      crvm round stalled ({e}); senders restarted");
            for p in senders.iter_mut() {
                p.quit_on_drop = false;
            }
            senders.clear();
            senders = start_senders()?;
            return Ok(None);
        }
        Ok(Some(
            (SENDERS as u64 * n) as f64 / t0.elapsed().as_secs_f64(),
        ))
    };
    let url = nats.map(|n| n.url.clone());
    let nats_burst = |size: usize| -> Res<f64> {
        let n = n(size);
        let Some(url) = &url else { return Ok(0.0) };
        let d = rt.block_on(natsmsg::pipelined_requests(
            url,
            natsmsg::ACK,
            SENDERS,
            n,
            size,
        ))?;
        Ok((SENDERS as u64 * n) as f64 / d.as_secs_f64())
    };
    println!("      size           N   crvm msgs/s   NATS msgs/s   ratio   crvm MB/s");
    for size in CMD_SIZES {
        let (mut c, mut a) = (Vec::new(), Vec::new());
        for round in 0..cfg.reps {
            let (x, y) = ab(round, || crvm_burst(size), || nats_burst(size))?;
            c.extend(x);
            a.push(y);
        }
        if c.is_empty() {
            println!(
                "      {:<9} {:>6}       stalled",
                bytes_label(size),
                n(size)
            );
            continue;
        }
        let (c, a) = (median(c), median(a));
        let ratio = if a > 0.0 {
            format!("{:.2}", c / a)
        } else {
            "-".into()
        };
        println!(
            "      {:<9} {:>6} {c:>13.0} {a:>13.0} {ratio:>7} {:>11.1}",
            bytes_label(size),
            n(size),
            c * size as f64 / 1e6
        );
    }
    Ok(())
}

fn bytes_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else if size > 1024 {
        format!("{:.0} KiB", size as f64 / 1024.0)
    } else {
        format!("{size} B")
    }
}

/// What one subscriber count gave, per system (crvm, NATS, Redis).
struct FanResult {
    n: usize,
    changes: u64,
    rates: Vec<(&'static str, f64)>,
    latencies: Vec<(&'static str, Vec<u64>)>,
}

fn section_de(cfg: &Cfg, tmp: &Path, rt: &tokio::runtime::Runtime, a: &Anchors) -> Res<()> {
    // A server of its own, with room for the subscribers' idle periods and the changer's bursts.
    let server = start_server(
        &cfg.server,
        &tmp.join("fanout"),
        MIB,
        "heartbeat_ms = 3600000\nmax_requests_per_s = 100000000\n",
    )?;
    let results = rt.block_on(async {
        let mut results = Vec::new();
        for &n in &cfg.fanout {
            let mut setups = vec![
                fanout::Setup::start(fanout::Target::Crvm(&server.addr.to_string()), n).await?,
            ];
            if let Some(nats) = &a.nats {
                setups.push(fanout::Setup::start(fanout::Target::Nats(&nats.url), n).await?);
            }
            if let Some(redis) = &a.redis {
                setups.push(fanout::Setup::start(fanout::Target::Redis(&redis.url), n).await?);
            }
            let k = (cfg.fan_deliveries / n as u64).max(10);
            let mut rates = vec![Vec::new(); setups.len()];
            let mut lats = vec![Vec::new(); setups.len()];
            for s in setups.iter_mut() {
                s.rate((k / 10).max(1)).await?;
                s.latencies(5).await?;
            }
            let per_round = cfg.fan_samples.div_ceil(cfg.reps as u64);
            for round in 0..cfg.reps {
                // Rotate who goes first.
                for j in 0..setups.len() {
                    let i = (round + j) % setups.len();
                    rates[i].push(setups[i].rate(k).await?);
                }
                for j in 0..setups.len() {
                    let i = (round + j) % setups.len();
                    lats[i].extend(setups[i].latencies(per_round).await?);
                }
            }
            results.push(FanResult {
                n,
                changes: k,
                rates: setups
                    .iter()
                    .zip(rates)
                    .map(|(s, r)| (s.name, median(r)))
                    .collect(),
                latencies: setups.iter().zip(lats).map(|(s, l)| (s.name, l)).collect(),
            });
        }
        Res::Ok(results)
    })?;
    drop(server);
    println!(
        "(d) presence fan-out rate: one changer, N subscribers in one tenant, changes back to \
         back; median changes/s over {} rounds, each until the last subscriber has the last \
         change (crvm: wire-protocol clients, set_dnd → user_status; NATS 1 → N; Redis PUBLISH \
         to N; all clients in this process)",
        cfg.reps
    );
    if a.nats.is_none() {
        skipped("nats-server");
    }
    if a.redis.is_none() {
        skipped("redis-server");
    }
    println!(
        "       N   changes   crvm ch/s   NATS ch/s  Redis ch/s  crvm/NATS  crvm/Redis  crvm pushes/s"
    );
    let rate = |r: &FanResult, name: &str| r.rates.iter().find(|x| x.0 == name).map(|x| x.1);
    let cell = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    let ratio = |c: f64, v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}", c / v));
    for r in &results {
        let c = rate(r, "crvm").expect("crvm always runs");
        let (nats, redis) = (rate(r, "NATS"), rate(r, "Redis"));
        println!(
            "    {:>4} {:>9} {c:>11.0} {:>11} {:>11} {:>10} {:>11} {:>14.0}",
            r.n,
            r.changes,
            cell(nats),
            cell(redis),
            ratio(c, nats),
            ratio(c, redis),
            c * r.n as f64
        );
    }
    println!("    target: crvm/NATS >= 1.0 at N >= 100");
    println!();
    println!(
        "(e) presence fan-out latency: one change → the last of N subscribers has it, {} single \
         changes per N and side in {} alternating rounds",
        cfg.fan_samples.div_ceil(cfg.reps as u64) * cfg.reps as u64,
        cfg.reps
    );
    for r in &results {
        let crvm = &r.latencies[0].1;
        let empty = Vec::new();
        let lat = |name: &str| {
            r.latencies
                .iter()
                .find(|x| x.0 == name)
                .map_or(&empty, |x| &x.1)
        };
        latency_rows(&format!("N={}", r.n), crvm, "NATS", lat("NATS"), (1.0, 1.3));
        let redis = lat("Redis");
        if !redis.is_empty() {
            println!(
                "    {:<10} Redis p50 {:>8.1} µs  p99 {:>8.1} µs (for reference)",
                "",
                pct_us(redis, 0.5),
                pct_us(redis, 0.99)
            );
        }
    }
    Ok(())
}

/// Latencies of one batch of up to `n` calls alice → bob, nanoseconds: `call` → `call_success`
/// (alice's clock) and `call` → bob's `notify_call_in` (one monotonic clock for both processes).
/// `during`: which calls alice makes (all, or only while a transfer of hers runs); `patience`:
/// how long she may take.
fn calls(
    alice: &mut Peer,
    bob: &mut Peer,
    n: u64,
    gap_ms: u64,
    during: peer::During,
    patience: Duration,
) -> Res<(Vec<u64>, Vec<u64>)> {
    let cmd = format!("calls {} {n} {gap_ms} {}", bob.user, during.word());
    alice.send(&cmd)?;
    let made = alice.expect("calls", patience)?;
    let n_made = made.split(' ').filter(|w| !w.is_empty()).count();
    bob.send(&format!("callins {n_made}"))?;
    let rang = bob.expect("callins", Duration::from_secs(60))?;
    let rang: std::collections::HashMap<&str, u64> = rang
        .split(' ')
        .filter_map(|w| w.split_once(':'))
        .filter_map(|(id, t)| Some((id, t.parse().ok()?)))
        .collect();
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

fn section_f(cfg: &Cfg, s: &mut Session, big: &Path) -> Res<()> {
    println!(
        "(f) call invite latency, alice → bob (each call hung up at once): idle vs while alice \
         sends bob a {} file; {} calls per row, {} ms apart (back to back: no pause)",
        mib(cfg.big),
        cfg.calls,
        cfg.call_gap_ms
    );
    let patience = transfer_patience(cfg.big);
    let batch = |s: &mut Session, gap_ms, during| {
        calls(
            &mut s.alice,
            &mut s.bob,
            cfg.calls,
            gap_ms,
            during,
            patience,
        )
    };
    let (warm_ok, warm_in) = batch(s, 0, During::Always)?;
    let (idle_ok, idle_in) = batch(s, cfg.call_gap_ms, During::Always)?;
    s.start_file(big)?;
    let (busy_ok, busy_in) = batch(s, cfg.call_gap_ms, During::Sending)?;
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

fn section_g(cfg: &Cfg, tmp: &Path, transfers: &[(&Path, u64)]) -> Res<()> {
    println!(
        "(g) peak RSS (VmHWM, MiB), fresh processes per transfer: after login → after the transfer"
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
