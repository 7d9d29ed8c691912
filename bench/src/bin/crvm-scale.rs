//! crvm-scale: memory and scale figures of crvm-server, and the overhead of the library.
//!
//! Three sections, each printed with its method (see docs/PERFORMANCE.md, "Memory and scale"):
//!
//! - **idle**: server RSS per idle session. N sessions log in and subscribe to presence
//!   (`start_status_notify`), then sit idle; the figure is (RSS with N − RSS before) / N. The
//!   anchors, nats-server and redis-server, get N idle subscribed connections each
//!   (`CONNECT {}` + `SUB x 1`, `SUBSCRIBE x`). Rounds alternate the order; medians.
//! - **scale**: many concurrently logged-in sessions on one server (default 100,000) opened
//!   from several 127.0.0.x source addresses by one thread speaking the protocol directly;
//!   logins per second, RSS per session, and the time one status change takes to reach every
//!   subscriber (a subset, default 1,000) while all are connected.
//! - **cluster**: the same many sessions (default 100,000) on a cluster of six nodes sharing
//!   one redis-server (docs/API.md §4.1), held by six load-generator processes (one per node, each
//!   under the 20,000 open files one process may have here); logins per second, RSS per
//!   session per node, Redis memory per session, and the time one status change takes to
//!   reach the subscribers spread over the nodes.
//! - **lib**: events per second through the C callbacks of one client (`crvm_*` exports called
//!   from Rust), fed by a fake server that writes pre-encoded status pushes (the library alone)
//!   and by crvm-server driven by protocol-level changers (end to end); and the RSS an idle
//!   logged-in client adds to a fresh process.
//!
//! Load generation runs on one tokio thread, one task per session (no thread per session).

use std::collections::HashMap;
use std::error::Error;
use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crvm_bench::wire::Conn;
use crvm_proto::msg::to_json;
use crvm_proto::{ClientMsg, Op, ServerMsg, UserStatus};
use crvm_testkit::fake::{self, FakeCodec};
use crvm_testkit::{Proc, Redis, Server, TmpDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const APP: &str = "bench";
const SECRET: &str = "bench-secret";
/// Upper bound for any one phase; only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(300);

const USAGE: &str = "\
crvm-scale: idle session memory (against nats-server and redis-server), scale, library overhead

Usage: crvm-scale [--quick] [--only idle|scale|cluster|lib] [--server PATH] [--idle N] [--rounds N]
                  [--sessions N] [--subscribers N] [--changes N] [--sources N] [--events N]

  --quick          every section tiny (200 sessions, 1 round, 20k events): a few seconds
  --only S         run one section
  --server PATH    crvm-server (default: next to this executable)
  --idle N         idle sessions per server in the idle section (10000)
  --rounds N       alternating rounds of the idle section (3)
  --sessions N     concurrent sessions of the scale section (100000)
  --subscribers N  presence subscribers among them (1000)
  --changes N      status changes timed (20)
  --sources N      source addresses 127.0.0.1..N (8; each gives ~28k ports)
  --events N       events through the callbacks per lib measurement (2000000)
";

#[derive(Debug, Clone)]
struct Opts {
    server: PathBuf,
    only: Option<String>,
    idle: usize,
    rounds: usize,
    sessions: usize,
    subscribers: usize,
    changes: usize,
    sources: u8,
    events: u64,
    /// Sessions of the cluster section (not capped by this process's open-file limit).
    cluster_sessions: usize,
}

fn parse_opts() -> Res<Opts> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let exe = std::env::current_exe()?;
    let mut o = Opts {
        server: exe.with_file_name("crvm-server"),
        only: None,
        idle: 10_000,
        rounds: 3,
        sessions: 100_000,
        subscribers: 1000,
        changes: 20,
        sources: 8,
        events: 2_000_000,
        cluster_sessions: 0,
    };
    if args.iter().any(|a| a == "--quick") {
        args.retain(|a| a != "--quick");
        o.idle = 200;
        o.rounds = 1;
        o.sessions = 200;
        o.subscribers = 20;
        o.changes = 5;
        o.sources = 2;
        o.events = 20_000;
    }
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--only" => o.only = Some(val()?),
            "--server" => o.server = val()?.into(),
            "--idle" => o.idle = val()?.parse()?,
            "--rounds" => o.rounds = val()?.parse()?,
            "--sessions" => o.sessions = val()?.parse()?,
            "--subscribers" => o.subscribers = val()?.parse()?,
            "--changes" => o.changes = val()?.parse()?,
            "--sources" => o.sources = val()?.parse()?,
            "--events" => o.events = val()?.parse()?,
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}").into()),
        }
    }
    o.sources = o.sources.clamp(1, 250);
    o.subscribers = o.subscribers.min(o.sessions).max(1);
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__cluster-load") {
        std::process::exit(match cluster_load_child(&args[2..]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cluster load: {e}");
                1
            }
        });
    }
    if args.get(1).map(String::as_str) == Some("__idle-client") {
        std::process::exit(match idle_client_child(&args[2]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("idle client: {e}");
                1
            }
        });
    }
    if let Err(e) = run() {
        eprintln!("crvm-scale: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let o = parse_opts()?;
    if !o.server.is_file() {
        return Err(format!("no crvm-server at {} (use --server)", o.server.display()).into());
    }
    let want = (o.sessions.max(o.idle) + 10_000) as u64;
    let nofile = raise_nofile(want);
    println!(
        "crvm-scale: fd limit {nofile} (children inherit it), load average {}",
        loadavg()
    );
    // The server holds one descriptor per session plus its own few, and so does this process.
    let fit = (nofile as usize).saturating_sub(200);
    let mut o = o;
    // The cluster section splits its sessions over processes; the others hold them in one.
    o.cluster_sessions = o.sessions;
    for (what, n) in [("--sessions", &mut o.sessions), ("--idle", &mut o.idle)] {
        if *n > fit {
            println!(
                "crvm-scale: {what} {n} capped to {fit}: the open-file limit is {nofile} and cannot be raised here (setrlimit needs CAP_SYS_RESOURCE above the hard limit)"
            );
            *n = fit;
        }
    }
    o.subscribers = o.subscribers.min(o.sessions);
    let mut tmp = TmpDir::under(&std::env::temp_dir(), "crvm-scale")?;
    if std::env::var_os("CRVM_SCALE_KEEP").is_some() {
        tmp.keep();
        eprintln!("crvm-scale: keeping {}", tmp.0.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = |s: &str| match o.only.as_deref() {
        None => true,
        Some(x) => x == s,
    };
    if run("idle") {
        rt.block_on(idle_section(&o, &tmp))?;
    }
    if run("scale") {
        rt.block_on(scale_section(&o, &tmp))?;
    }
    if run("cluster") {
        rt.block_on(cluster_section(&o, &tmp))?;
    }
    if run("lib") {
        rt.block_on(lib_section(&o, &tmp))?;
    }
    println!("done");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Processes, limits, /proc

/// Raises RLIMIT_NOFILE to `want` (root may raise the hard limit too), else to the hard limit.
/// Returns the soft limit in force.
fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_max < want {
            let up = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &up) == 0 {
                return want;
            }
        }
        r.rlim_cur = r.rlim_max.min(want.max(r.rlim_cur));
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

fn status_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) used so far by `pid`.
fn cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let v = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the stat line; `rest` starts at field 3.
    (v(11) + v(12)) / tick
}

fn free_port() -> Res<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Starts crvm-server with a config for benchmarks: one tenant, no request-rate cap worth the
/// name (changers pipeline requests).
fn start_crvm(o: &Opts, tmp: &TmpDir, tag: &str) -> Res<(Proc, SocketAddr)> {
    let dir = tmp.0.join(tag);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("crvm.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmax_requests_per_s = 100000000\n\n\
             [[tenant]]\napp_id = \"{APP}\"\nsecret = \"{SECRET}\"\n"
        ),
    )?;
    let data = dir.join("data");
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ];
    let server = Server::launch(
        &o.server,
        &args,
        &[],
        dir.join("server.log"),
        config.clone(),
    )?;
    Ok((server.proc, server.addr))
}

/// Starts an anchor server and waits until it accepts connections.
fn start_anchor(kind: Sys, tmp: &TmpDir, n: usize) -> Res<Option<(Proc, SocketAddr)>> {
    let (name, port) = match kind {
        Sys::Nats => ("nats-server", free_port()?),
        Sys::Redis => ("redis-server", free_port()?),
        Sys::Crvm => unreachable!(),
    };
    let Some(bin) = which(name) else {
        return Ok(None);
    };
    let log = std::fs::File::create(tmp.0.join(format!("{name}.log")))?;
    let mut cmd = Command::new(bin);
    match kind {
        Sys::Nats => cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]),
        _ => cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            &(n + 100).to_string(),
        ]),
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let p = Proc::spawn(cmd, name)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while StdStream::connect(addr).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("{name} did not start").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some((p, addr)))
}

// ---------------------------------------------------------------------------------------------
// Protocol sessions on tokio

async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    // The port is picked at connect, per destination: a bind to port 0 would search the
    // source's whole port range for one free for any destination (slow with 10,000s in use).
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    s.bind(SocketAddr::new(src.into(), 0))?;
    let s = s.connect(dst).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn source(i: usize, sources: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + (i % sources as usize) as u8)
}

/// Counters the session tasks report into.
#[derive(Default)]
struct Tally {
    ready: AtomicUsize,
    subscribed: AtomicUsize,
    failed: AtomicUsize,
    first_err: Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_err.lock().unwrap().get_or_insert(what);
    }

    fn err(&self) -> String {
        self.first_err.lock().unwrap().clone().unwrap_or_default()
    }
}

/// Waits until `count() + failed` reaches `n`. Errors on any failure or after [`PATIENCE`].
async fn wait_for(t: &Tally, n: usize, what: &str, count: impl Fn() -> usize) -> Res<()> {
    let start = Instant::now();
    loop {
        let (c, f) = (count(), t.failed.load(Ordering::Relaxed));
        if f > 0 {
            return Err(format!("{what}: {c} of {n} done, {f} failed; first: {}", t.err()).into());
        }
        if c >= n {
            return Ok(());
        }
        if start.elapsed() > PATIENCE {
            return Err(format!("{what}: only {c} of {n} after {PATIENCE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which presence changes a subscriber reports: those of this user.
const CHANGER: &str = "changer";

/// One crvm session: connect (at most `sem` at a time), log in, subscribe once `go` says so
/// (if a subscriber), then answer pings and report the changer's pushes until the server
/// goes away.
#[allow(clippy::too_many_arguments)]
async fn crvm_session(
    i: usize,
    addr: SocketAddr,
    src: Ipv4Addr,
    sem: Arc<Semaphore>,
    tally: Arc<Tally>,
    subscriber: bool,
    mut go: watch::Receiver<bool>,
    pushes: mpsc::UnboundedSender<(i32, u64)>,
) {
    let permit = sem.acquire_owned().await;
    let mut p = match connect_from(src, addr).await {
        Ok(s) => Conn::new(s),
        Err(e) => return tally.fail(format!("connect {i}: {e}")),
    };
    if let Err(e) = p.login(APP, SECRET, &format!("u{i}")).await {
        return tally.fail(format!("login {i}: {e}"));
    }
    drop(permit);
    tally.ready.fetch_add(1, Ordering::Relaxed);
    if subscriber {
        // Keep answering pings while waiting: the server drops a session silent for 30 s.
        while !*go.borrow_and_update() {
            tokio::select! {
                biased;
                r = go.changed() => if r.is_err() { return },
                r = p.msg() => if let Err(e) = r { return tally.fail(format!("session {i}: {e}")) },
            }
        }
        if let Err(e) = p.request_ok(Op::StartStatusNotify).await {
            return tally.fail(format!("subscribe {i}: {e}"));
        }
        tally.subscribed.fetch_add(1, Ordering::Relaxed);
    }
    while let Ok(m) = p.msg().await {
        if let ServerMsg::UserStatus(status) = m {
            if status.user_id == CHANGER {
                let _ = pushes.send((status.dnd_type, mono_ns()));
            }
        }
    }
}

/// One anchor connection: subscribe, wait for the server's confirmation, then hold it
/// (answering NATS pings).
async fn anchor_conn(
    i: usize,
    kind: Sys,
    addr: SocketAddr,
    sem: Arc<Semaphore>,
    tally: Arc<Tally>,
) {
    let permit = sem.acquire_owned().await;
    let mut s = match connect_from(source(i, 1), addr).await {
        Ok(s) => s,
        Err(e) => return tally.fail(format!("connect {i}: {e}")),
    };
    let (req, done): (&[u8], &[u8]) = match kind {
        Sys::Nats => (
            b"CONNECT {\"verbose\":false}\r\nSUB x 1\r\nPING\r\n",
            b"PONG\r\n",
        ),
        _ => (b"SUBSCRIBE x\r\n", b":1\r\n"),
    };
    if let Err(e) = s.write_all(req).await {
        return tally.fail(format!("write {i}: {e}"));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(done.len()).any(|w| w == done) {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return tally.fail(format!("conn {i}: closed before subscribing")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    drop((permit, got));
    tally.ready.fetch_add(1, Ordering::Relaxed);
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if kind == Sys::Nats && buf[..n].windows(6).any(|w| w == b"PING\r\n") {
                    let _ = s.write_all(b"PONG\r\n").await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Idle session memory

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sys {
    Crvm,
    Nats,
    Redis,
}

impl Sys {
    fn name(self) -> &'static str {
        match self {
            Sys::Crvm => "crvm-server",
            Sys::Nats => "nats-server",
            Sys::Redis => "redis-server",
        }
    }
}

/// Opens `n` idle subscribed sessions on a fresh `sys` server; returns the server's RSS growth
/// per session in bytes, or None when the anchor is not installed.
async fn idle_once(o: &Opts, tmp: &TmpDir, sys: Sys, n: usize) -> Res<Option<f64>> {
    let (proc_, addr) = match sys {
        Sys::Crvm => start_crvm(o, tmp, "idle")?,
        _ => match start_anchor(sys, tmp, n)? {
            Some(x) => x,
            None => return Ok(None),
        },
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(proc_.pid());
    let tally = Arc::new(Tally::default());
    let sem = Arc::new(Semaphore::new(256));
    let (go_tx, go_rx) = watch::channel(false);
    let (push_tx, _push_rx) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (sem, tally) = (Arc::clone(&sem), Arc::clone(&tally));
        match sys {
            Sys::Crvm => tasks.spawn(crvm_session(
                i,
                addr,
                source(i, o.sources),
                sem,
                tally,
                true,
                go_rx.clone(),
                push_tx.clone(),
            )),
            _ => tasks.spawn(anchor_conn(i, sys, addr, sem, tally)),
        };
    }
    wait_for(&tally, n, "idle logins", || {
        tally.ready.load(Ordering::Relaxed)
    })
    .await?;
    if sys == Sys::Crvm {
        // Everyone subscribes once all are in, so no login is pushed to anyone.
        go_tx.send_replace(true);
        wait_for(&tally, n, "idle subscriptions", || {
            tally.subscribed.load(Ordering::Relaxed)
        })
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(proc_.pid());
    drop(proc_);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(Some(
        (after.saturating_sub(before)) as f64 * 1024.0 / n as f64,
    ))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

async fn idle_section(o: &Opts, tmp: &TmpDir) -> Res<()> {
    let n = o.idle;
    println!(
        "\nidle session memory: {n} logged-in, subscribed, idle sessions (anchors: {n} idle subscribed connections), {} round(s) alternating; server RSS growth / {n}",
        o.rounds
    );
    let order = [Sys::Crvm, Sys::Nats, Sys::Redis];
    let mut per: HashMap<&str, Vec<f64>> = HashMap::new();
    println!(
        "    round   {:>14} {:>14} {:>14}   (bytes per session)",
        "crvm-server", "nats-server", "redis-server"
    );
    for r in 0..o.rounds {
        let mut row: HashMap<&str, Option<f64>> = HashMap::new();
        for k in 0..3 {
            let sys = order[(r + k) % 3];
            let v = idle_once(o, tmp, sys, n).await?;
            if let Some(v) = v {
                per.entry(sys.name()).or_default().push(v);
            }
            row.insert(sys.name(), v);
        }
        let cell = |s: Sys| match row[s.name()] {
            Some(v) => format!("{v:>14.0}"),
            None => format!("{:>14}", "not installed"),
        };
        println!(
            "    {:<7} {} {} {}",
            r + 1,
            cell(Sys::Crvm),
            cell(Sys::Nats),
            cell(Sys::Redis)
        );
    }
    let mut med = |s: Sys| per.get_mut(s.name()).map(|v| median(v));
    let (c, na, re) = (med(Sys::Crvm), med(Sys::Nats), med(Sys::Redis));
    let c = c.unwrap_or(f64::NAN);
    let show =
        |v: Option<f64>| v.map_or("not installed".into(), |v| format!("{:.1} KiB", v / 1024.0));
    println!(
        "    median: crvm-server {:.1} KiB, nats-server {}, redis-server {}",
        c / 1024.0,
        show(na),
        show(re)
    );
    if let Some(na) = na {
        print!("    ratio crvm / nats {:.2} (target <= 0.25)", c / na);
    }
    if let Some(re) = re {
        print!(", crvm / redis {:.2}", c / re);
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scale

async fn scale_section(o: &Opts, tmp: &TmpDir) -> Res<()> {
    let n = o.sessions;
    let subs = o.subscribers;
    println!(
        "\nscale: {n} concurrent sessions from {} source address(es) (127.0.0.1..{}), {subs} of them subscribed to presence, {} status changes",
        o.sources,
        o.sources,
        o.changes
    );
    let (server, addr) = start_crvm(o, tmp, "scale")?;
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let tally = Arc::new(Tally::default());
    let sem = Arc::new(Semaphore::new(512));
    let (go_tx, go_rx) = watch::channel(false);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let every = (n / subs).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let cpu0 = cpu_s(pid);
    for i in 0..n {
        tasks.spawn(crvm_session(
            i,
            addr,
            source(i, o.sources),
            Arc::clone(&sem),
            Arc::clone(&tally),
            i % every == 0 && i / every < subs,
            go_rx.clone(),
            push_tx.clone(),
        ));
    }
    let logged = wait_for(&tally, n, "logins", || tally.ready.load(Ordering::Relaxed)).await;
    let took = start.elapsed().as_secs_f64();
    let ready = tally.ready.load(Ordering::Relaxed);
    let server_cpu = cpu_s(pid) - cpu0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at_n = rss_kib(pid);
    println!(
        "    logins: {ready} in {took:.1} s = {:.0} logins/s (server CPU {server_cpu:.1} s, {:.0} µs per login)",
        ready as f64 / took,
        server_cpu * 1e6 / ready.max(1) as f64
    );
    println!(
        "    server RSS: {:.1} MiB before, {:.1} MiB with {ready} sessions: {:.2} KiB per session (target: <= 1 GiB at 100k, i.e. <= 10.5 KiB)",
        before as f64 / 1024.0,
        at_n as f64 / 1024.0,
        (at_n.saturating_sub(before)) as f64 / ready.max(1) as f64
    );
    if let Err(e) = logged {
        println!("    stopped: {e}");
        return Ok(());
    }
    let mut changer = Conn::new(connect_from(Ipv4Addr::LOCALHOST, addr).await?);
    changer.login(APP, SECRET, CHANGER).await?;
    go_tx.send_replace(true);
    let subs = tally_subscribed(&tally, subs).await?;
    let mut all = Vec::new();
    let mut each = Vec::new();
    for k in 1..=o.changes as i32 {
        // Drain stray pushes (none are expected), pace the changes, then time one.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while push_rx.try_recv().is_ok() {}
        let t0 = mono_ns();
        changer.request(Op::SetDnd { dnd: k }).await?;
        let mut got = 0;
        let mut last = t0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while got < subs {
            match tokio::time::timeout_at(deadline, push_rx.recv()).await {
                Ok(Some((dnd, at))) if dnd == k => {
                    got += 1;
                    last = last.max(at);
                    each.push(at.saturating_sub(t0) as f64 / 1e6);
                }
                Ok(Some(_)) => {}
                _ => return Err(format!("change {k}: {got} of {subs} subscribers told").into()),
            }
        }
        all.push(last.saturating_sub(t0) as f64 / 1e6);
        changer.reply().await?;
    }
    println!(
        "    status change → all {subs} subscribers, with {ready} sessions connected: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} changes (each subscriber: p50 {:.2} ms, p99 {:.2} ms)",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        all.len(),
        pct(&each, 0.5),
        pct(&each, 0.99)
    );
    println!(
        "    server RSS at the end: {:.1} MiB, peak {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0,
        status_kib(&format!("/proc/{pid}/status"), "VmHWM:") as f64 / 1024.0
    );
    drop(server);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn tally_subscribed(t: &Tally, subs: usize) -> Res<usize> {
    wait_for(t, subs, "subscriptions", || {
        t.subscribed.load(Ordering::Relaxed)
    })
    .await?;
    Ok(subs)
}

// ---------------------------------------------------------------------------------------------
// Library overhead through the C callbacks

// The C API as the header declares it, from the library itself (no second declaration here).
use crvm::c_api::{
    crvm_callbacks, crvm_client, crvm_create, crvm_destroy, crvm_login,
    crvm_start_user_status_notify,
};

/// What the callbacks report (one client at a time per process).
static LOGIN: AtomicI32 = AtomicI32::new(0); // 0 pending, 1 ok, -code failed
static NOTIFY: AtomicI32 = AtomicI32::new(i32::MIN); // the subscription's result code
static EVENTS: AtomicU64 = AtomicU64::new(0);
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
static TIMES: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));

unsafe extern "C" fn on_login(_: *mut c_void, _: *const c_char, _: *const c_char) {
    LOGIN.store(1, Ordering::Release);
}
unsafe extern "C" fn on_login_fail(_: *mut c_void, e: i32, _: *const c_char) {
    LOGIN.store(-e.max(1), Ordering::Release);
}
unsafe extern "C" fn on_notify_rslt(_: *mut c_void, e: i32, _: *const c_char) {
    NOTIFY.store(e, Ordering::Release);
}
unsafe extern "C" fn on_status(_: *mut c_void, json: *const c_char, _: *const c_char) {
    // Touch the argument as an application would at least do.
    let _ = CStr::from_ptr(json).to_bytes().len();
    let n = EVENTS.fetch_add(1, Ordering::AcqRel) + 1;
    if n == 1 {
        TIMES.lock().unwrap().0 = Some(Instant::now());
    }
    if n == TARGET.load(Ordering::Relaxed) {
        TIMES.lock().unwrap().1 = Some(Instant::now());
    }
}

struct LibClient(*mut crvm_client);

impl LibClient {
    /// Creates a client, logs in as `user` and subscribes to presence.
    fn login(addr: SocketAddr, user: &str) -> Res<LibClient> {
        LOGIN.store(0, Ordering::Release);
        NOTIFY.store(i32::MIN, Ordering::Release);
        let cb = crvm_callbacks {
            login_success: Some(on_login),
            login_fail: Some(on_login_fail),
            notify_user_status: Some(on_status),
            start_user_status_notify_rslt: Some(on_notify_rslt),
            ..Default::default()
        };
        let c_addr = CString::new(addr.to_string())?;
        let mut c = std::ptr::null_mut();
        let s = |t: &str| CString::new(t).unwrap();
        // SAFETY: valid NUL-terminated strings and a callbacks struct of the size given.
        let r = unsafe {
            crvm_create(
                c_addr.as_ptr(),
                &cb,
                std::mem::size_of::<crvm_callbacks>(),
                std::ptr::null_mut(),
                &mut c,
            )
        };
        if r != 0 {
            return Err(format!("crvm_create: {r}").into());
        }
        let client = LibClient(c);
        let (app, secret, nick, user, code, cookie) =
            (s(APP), s(SECRET), s(""), s(user), s(""), s("c"));
        // SAFETY: as above.
        let r = unsafe {
            crvm_login(
                c,
                app.as_ptr(),
                secret.as_ptr(),
                nick.as_ptr(),
                user.as_ptr(),
                code.as_ptr(),
                cookie.as_ptr(),
            )
        };
        if r != 0 {
            return Err(format!("crvm_login: {r}").into());
        }
        wait_until("login", || LOGIN.load(Ordering::Acquire) != 0)?;
        if LOGIN.load(Ordering::Acquire) != 1 {
            return Err(format!("login failed: {}", -LOGIN.load(Ordering::Acquire)).into());
        }
        // SAFETY: as above.
        let r = unsafe { crvm_start_user_status_notify(c, cookie.as_ptr()) };
        if r != 0 {
            return Err(format!("crvm_start_user_status_notify: {r}").into());
        }
        wait_until("subscription", || {
            NOTIFY.load(Ordering::Acquire) != i32::MIN
        })?;
        if NOTIFY.load(Ordering::Acquire) != 0 {
            return Err(format!("subscription failed: {}", NOTIFY.load(Ordering::Acquire)).into());
        }
        Ok(client)
    }
}

impl Drop for LibClient {
    fn drop(&mut self) {
        // The handle came from crvm_create and is destroyed once.
        crvm_destroy(self.0)
    }
}

fn wait_until(what: &str, f: impl Fn() -> bool) -> Res<()> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("no {what} within 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn reset_events(target: u64) {
    EVENTS.store(0, Ordering::Release);
    TARGET.store(target, Ordering::Release);
    *TIMES.lock().unwrap() = (None, None);
}

/// Waits for `target` events; returns events per second between the first and the last.
fn events_rate(target: u64, patience: Duration) -> Res<f64> {
    let start = Instant::now();
    loop {
        if let (Some(a), Some(b)) = *TIMES.lock().unwrap() {
            return Ok((target - 1) as f64 / b.duration_since(a).as_secs_f64());
        }
        if start.elapsed() > patience {
            return Err(format!(
                "only {} of {target} events within {patience:?}",
                EVENTS.load(Ordering::Relaxed)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A fake server for one client: handshake, login, subscription, then `n` status pushes
/// written as fast as the socket takes them. Returns the thread to join.
fn fake_server(listener: StdListener, n: u64) -> std::thread::JoinHandle<Res<()>> {
    std::thread::spawn(move || -> Res<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut codec = FakeCodec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut subscribed = false;
        while !subscribed {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err("client left".into());
            }
            codec.feed(&buf[..n]);
            while let Some((msg, _)) = codec.next_msg()? {
                let out = match msg {
                    ClientMsg::Hello { .. } => fake::welcome(10_000, 100 << 20, 4 << 30),
                    ClientMsg::Req {
                        id,
                        op: Op::Login { user_id, .. },
                    } => ServerMsg::Res {
                        re: id,
                        result: crvm_proto::Outcome::Login { user_id },
                    },
                    ClientMsg::Req {
                        id,
                        op: Op::StartStatusNotify,
                    } => {
                        subscribed = true;
                        ServerMsg::reply(id, 0)
                    }
                    other => return Err(format!("fake server: unexpected {other:?}").into()),
                };
                s.write_all(&codec.encode(&out, &[]))?;
            }
        }
        // Keep reading (pings) so the client never blocks on us.
        let mut drain = s.try_clone()?;
        std::thread::spawn(move || while matches!(drain.read(&mut buf), Ok(n) if n > 0) {});
        let json = to_json(&ServerMsg::UserStatus(UserStatus::new("someone", 1, 1)));
        let mut out = Vec::with_capacity(256 * 1024);
        let mut sent = 0;
        while sent < n {
            out.clear();
            while out.len() < 200 * 1024 && sent < n {
                out.extend(codec.control(&json, &[]));
                sent += 1;
            }
            s.write_all(&out)?;
        }
        Ok(())
    })
}

/// The child role: RSS of this fresh process before a client exists and once it is logged in,
/// subscribed and idle for a second, printed as `rss_kib BEFORE AFTER PEAK`.
fn idle_client_child(addr: &str) -> Res<()> {
    let before = status_kib("/proc/self/status", "VmRSS:");
    let client = LibClient::login(addr.parse()?, "idle-client")?;
    std::thread::sleep(Duration::from_secs(1));
    let after = status_kib("/proc/self/status", "VmRSS:");
    let peak = status_kib("/proc/self/status", "VmHWM:");
    println!("rss_kib {before} {after} {peak}");
    drop(client);
    Ok(())
}

async fn lib_section(o: &Opts, tmp: &TmpDir) -> Res<()> {
    let n = o.events;
    println!("\nlibrary overhead: one client, status pushes counted in its C callback (notify_user_status)");

    // 1. The library alone: a fake server writes pre-encoded pushes.
    let listener = StdListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    reset_events(n);
    let server = fake_server(listener, n);
    let me = std::process::id();
    let cpu0 = cpu_s(me);
    let t0 = Instant::now();
    let client = LibClient::login(addr, "lib")?;
    let rate = events_rate(n, Duration::from_secs(120))?;
    let cpu = cpu_s(me) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    server.join().map_err(|_| "fake server panicked")??;
    drop(client);
    println!(
        "    from a fake server (pre-encoded pushes; measures the library): {n} events at {:.0} events/s (target >= 2M/s); this process used {:.2} CPU-s in {wall:.2} s ({:.2} µs CPU per event, fake server's writes included)",
        rate,
        cpu,
        cpu * 1e6 / n as f64
    );

    // 2. End to end: changers make crvm-server push to the client.
    let (server, addr) = start_crvm(o, tmp, "lib")?;
    let spid = server.pid();
    let m = (n / 4).max(1000);
    reset_events(m);
    let client = LibClient::login(addr, "lib")?;
    let changers = 2;
    let per = m / changers as u64;
    let m = per * changers as u64;
    TARGET.store(m, Ordering::Release);
    let (s_cpu0, me_cpu0) = (cpu_s(spid), cpu_s(me));
    let t0 = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut js = tokio::task::JoinSet::new();
    for c in 0..changers {
        let sent = Arc::clone(&sent);
        js.spawn(async move {
            let mut p = Conn::new(connect_from(Ipv4Addr::LOCALHOST, addr).await?);
            p.login(APP, SECRET, &format!("changer{c}")).await?;
            // Up to 1024 requests in flight per changer, and at most ~20k events ahead of
            // the callbacks: the server's per-connection queue bound (4 MiB) would otherwise
            // close a client that falls behind.
            let (mut queued, mut answered) = (0u64, 0u64);
            while answered < per {
                while queued < per
                    && queued - answered < 1024
                    && sent.load(Ordering::Relaxed) < EVENTS.load(Ordering::Relaxed) + 20_000
                {
                    let batch = (per - queued).min(256);
                    let mut bytes = Vec::new();
                    for k in queued..queued + batch {
                        let dnd = (k % 2) as i32;
                        bytes.extend(p.codec.request(Op::SetDnd { dnd }).1);
                    }
                    p.write(&bytes).await?;
                    sent.fetch_add(batch, Ordering::Relaxed);
                    queued += batch;
                }
                if queued == answered {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                }
                p.reply().await?;
                answered += 1;
            }
            Ok::<(), std::io::Error>(())
        });
    }
    while let Some(r) = js.join_next().await {
        r??;
    }
    // The changers are done; the callbacks run on the library's threads.
    let rate = events_rate(m, Duration::from_secs(120))?;
    let wall = t0.elapsed().as_secs_f64();
    let (s_cpu, me_cpu) = (cpu_s(spid) - s_cpu0, cpu_s(me) - me_cpu0);
    drop(client);
    println!(
        "    through crvm-server ({changers} protocol changers pipelining set_dnd, ≤ 1024 in flight each, ≤ 20k events ahead): {m} events at {rate:.0} events/s; CPU over {wall:.2} s: server {s_cpu:.2} s ({:.0}%), this process (library + changers) {me_cpu:.2} s ({:.0}%)",
        s_cpu * 100.0 / wall,
        me_cpu * 100.0 / wall
    );

    // 3. RSS of one idle client, in a fresh process.
    let out = Command::new(std::env::current_exe()?)
        .arg("__idle-client")
        .arg(addr.to_string())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if !out.status.success() || nums.len() != 3 {
        return Err(format!(
            "idle client: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    println!(
        "    idle client (fresh process, logged in and subscribed, 1 s idle): RSS {:.2} MiB before crvm_create, {:.2} MiB after: +{:.2} MiB (target <= 1 MiB); peak {:.2} MiB",
        nums[0] as f64 / 1024.0,
        nums[1] as f64 / 1024.0,
        (nums[1] as f64 - nums[0] as f64) / 1024.0,
        nums[2] as f64 / 1024.0
    );
    drop(server);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A cluster of six nodes

/// Nodes of the cluster section (and load-generator processes, one per node).
const NODES: usize = 6;

/// CLOCK_MONOTONIC in ns: one clock for every process of the machine.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `used_memory` of the Redis on `sock`, in bytes.
fn redis_used_memory(sock: &std::path::Path) -> Res<u64> {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(sock)
        .args(["INFO", "memory"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .ok_or("no used_memory in INFO")?;
    Ok(v.trim().parse()?)
}

/// Starts node `name` of the cluster on `sock`; returns it and its address once it has joined.
fn start_node(
    o: &Opts,
    dir: &std::path::Path,
    sock: &std::path::Path,
    name: &str,
) -> Res<(Proc, SocketAddr)> {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmax_requests_per_s = 100000000\n\n\
             [cluster]\nredis = \"unix://{}\"\nnode_id = \"{name}\"\n\n\
             [[tenant]]\napp_id = \"{APP}\"\nsecret = \"{SECRET}\"\n",
            sock.display()
        ),
    )?;
    let data = dir.join(format!("data-{name}"));
    let args = [
        "--config".as_ref(),
        config.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ];
    let log = dir.join(format!("{name}.log"));
    let server = Server::launch(&o.server, &args, &[], log, config.clone())?;
    if !server.log_says_within("joined", PATIENCE) {
        return Err(format!("node {name} did not join").into());
    }
    Ok((server.proc, server.addr))
}

/// A load generator: `first..first+count` sessions on one node, `subs` of them subscribers.
struct Load {
    _proc: Proc,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Load {
    fn spawn(node: SocketAddr, first: usize, count: usize, subs: usize, src: u8) -> Res<Load> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("__cluster-load")
            .args([
                node.to_string(),
                first.to_string(),
                count.to_string(),
                subs.to_string(),
                src.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut p = Proc::spawn(cmd, "load generator")?;
        let stdin = p.stdin.take().ok_or("no stdin")?;
        let out = BufReader::new(p.stdout.take().ok_or("no stdout")?);
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Ok(Load {
            _proc: p,
            stdin,
            lines,
        })
    }

    /// The next line starting with `prefix` (others are passed over), within [`PATIENCE`].
    fn expect(&self, prefix: &str) -> Res<String> {
        loop {
            let l = self
                .lines
                .recv_timeout(PATIENCE)
                .map_err(|_| format!("load generator: no {prefix:?} line"))?;
            if let Some(rest) = l.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            if let Some(e) = l.strip_prefix("error ") {
                return Err(format!("load generator: {e}").into());
            }
        }
    }
}

async fn cluster_section(o: &Opts, tmp: &TmpDir) -> Res<()> {
    let n = o.cluster_sessions;
    let subs = o.subscribers.min(n);
    if which("redis-server").is_none() {
        println!("\ncluster: skipped (redis-server is not installed)");
        return Ok(());
    }
    println!(
        "\ncluster: {n} concurrent sessions on {NODES} nodes sharing one redis-server, held by {NODES} load-generator processes (one per node), {subs} subscribed to presence spread over the nodes, {} status changes",
        o.changes
    );
    let dir = tmp.0.join("cluster");
    std::fs::create_dir_all(&dir)?;
    let redis = Redis::launch(&dir)?;
    let sock = redis.sock.clone();
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        nodes.push(start_node(o, &dir, &sock, &format!("n{i}"))?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before: Vec<u64> = nodes.iter().map(|(p, _)| rss_kib(p.pid())).collect();
    let redis_before = redis_used_memory(&sock)?;
    let start = Instant::now();
    let cpu0: f64 = nodes.iter().map(|(p, _)| cpu_s(p.pid())).sum();
    let redis_cpu0 = cpu_s(redis.pid());
    let per = n.div_ceil(NODES);
    let mut loads = Vec::new();
    for (k, (_, addr)) in nodes.iter().enumerate() {
        let first = k * per;
        let count = per.min(n.saturating_sub(first));
        let s = subs / NODES + usize::from(k < subs % NODES);
        loads.push(Load::spawn(*addr, first, count, s, 10 + k as u8)?);
    }
    let mut ready = 0;
    for l in &loads {
        ready += l.expect("ready")?.parse::<usize>()?;
    }
    let took = start.elapsed().as_secs_f64();
    let node_cpu: f64 = nodes.iter().map(|(p, _)| cpu_s(p.pid())).sum::<f64>() - cpu0;
    let redis_cpu = cpu_s(redis.pid()) - redis_cpu0;
    let load_cpu: f64 = loads.iter().map(|l| cpu_s(l._proc.pid())).sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_at: Vec<u64> = nodes.iter().map(|(p, _)| rss_kib(p.pid())).collect();
    let redis_at = redis_used_memory(&sock)?;
    println!(
        "    logins: {ready} in {took:.1} s = {:.0} logins/s (CPU: nodes {node_cpu:.1} s in all, {:.0} µs per login; Redis {redis_cpu:.1} s; load generators {load_cpu:.1} s)",
        ready as f64 / took,
        node_cpu * 1e6 / ready.max(1) as f64
    );
    let total_at: u64 = rss_at.iter().sum();
    let per_node: Vec<String> = rss_before
        .iter()
        .zip(&rss_at)
        .map(|(b, a)| {
            format!(
                "{:.2}",
                a.saturating_sub(*b) as f64 * NODES as f64 / ready.max(1) as f64
            )
        })
        .collect();
    println!(
        "    node RSS: {:.1} MiB in all with {ready} sessions (target: <= 1024 MiB); KiB per session, node by node: {}",
        total_at as f64 / 1024.0,
        per_node.join(", ")
    );
    println!(
        "    Redis memory: {:.1} MiB before, {:.1} MiB with {ready} sessions: {:.0} bytes per session (target: <= 1024)",
        redis_before as f64 / 1048576.0,
        redis_at as f64 / 1048576.0,
        redis_at.saturating_sub(redis_before) as f64 / ready.max(1) as f64
    );
    // One change at a time from a session on node 1, timed until every subscriber has it.
    let mut changer = Conn::new(connect_from(Ipv4Addr::LOCALHOST, nodes[0].1).await?);
    changer.login(APP, SECRET, CHANGER).await?;
    for l in &mut loads {
        l.stdin.write_all(b"go\n")?;
    }
    let mut subscribed = 0;
    for l in &loads {
        subscribed += l.expect("subscribed")?.parse::<usize>()?;
    }
    let mut all = Vec::new();
    let mut each = Vec::new();
    for k in 1..=o.changes as i32 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = mono_ns();
        changer.request(Op::SetDnd { dnd: k }).await?;
        let mut last = t0;
        for l in &loads {
            // Each generator reports the change once all its subscribers have it.
            let r = l.expect(&format!("change {k} "))?;
            let mut it = r.split_whitespace().map(|x| x.parse::<u64>());
            let (Some(Ok(max)), Some(Ok(cnt))) = (it.next(), it.next()) else {
                return Err(format!("bad change line {r:?}").into());
            };
            last = last.max(max);
            for x in it.take(cnt as usize).flatten() {
                each.push(x.saturating_sub(t0) as f64 / 1e6);
            }
        }
        all.push(last.saturating_sub(t0) as f64 / 1e6);
        changer.reply().await?;
    }
    println!(
        "    status change → all {subscribed} subscribers on {NODES} nodes, with {ready} sessions connected: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} changes (target p99 <= 50 ms; each subscriber: p50 {:.2} ms, p99 {:.2} ms)",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        all.len(),
        pct(&each, 0.5),
        pct(&each, 0.99)
    );
    drop(loads);
    drop(nodes);
    Ok(())
}

/// `__cluster-load NODE FIRST COUNT SUBS SRC`: holds sessions u<FIRST>.. on one node. Prints
/// `ready N` once all are logged in; on `go` (stdin) its subscribers subscribe and it prints
/// `subscribed K`; then, for each status change of the changer, once all K have it:
/// `change DND MAX_NS K T1 T2 …` (arrival times, CLOCK_MONOTONIC).
fn cluster_load_child(args: &[String]) -> Res<()> {
    let [node, first, count, subs, src] = args else {
        return Err("usage: __cluster-load NODE FIRST COUNT SUBS SRC".into());
    };
    let node: SocketAddr = node.parse()?;
    let (first, count, subs): (usize, usize, usize) =
        (first.parse()?, count.parse()?, subs.parse()?);
    // Four source addresses of its own (127.K.0.1-4), ~28,000 ports each.
    let src: u8 = src.parse()?;
    raise_nofile(count as u64 + 100);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let tally = Arc::new(Tally::default());
        let sem = Arc::new(Semaphore::new(256));
        let (go_tx, go_rx) = watch::channel(false);
        let (push_tx, mut push_rx) = mpsc::unbounded_channel::<(i32, u64)>();
        let every = (count / subs.max(1)).max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for j in 0..count {
            let (sem, tally, go, pushes) = (
                Arc::clone(&sem),
                Arc::clone(&tally),
                go_rx.clone(),
                push_tx.clone(),
            );
            let subscriber = subs > 0 && j % every == 0 && j / every < subs;
            let from = Ipv4Addr::new(127, src, 0, 1 + (j % 4) as u8);
            tasks.spawn(crvm_session(
                first + j,
                node,
                from,
                sem,
                tally,
                subscriber,
                go,
                pushes,
            ));
        }
        let out = |l: String| {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{l}");
            let _ = o.flush();
        };
        if let Err(e) = wait_for(&tally, count, "logins", || {
            tally.ready.load(Ordering::Relaxed)
        })
        .await
        {
            out(format!("error {e}"));
            return Ok(());
        }
        out(format!("ready {}", tally.ready.load(Ordering::Relaxed)));
        let stdin = tokio::task::spawn_blocking(|| {
            let mut l = String::new();
            let _ = std::io::stdin().read_line(&mut l);
            l
        });
        let _ = stdin.await;
        go_tx.send_replace(true);
        if let Err(e) = wait_for(&tally, subs, "subscriptions", || {
            tally.subscribed.load(Ordering::Relaxed)
        })
        .await
        {
            out(format!("error {e}"));
            return Ok(());
        }
        out(format!("subscribed {subs}"));
        let mut seen: HashMap<i32, Vec<u64>> = HashMap::new();
        while let Some((dnd, at)) = push_rx.recv().await {
            let v = seen.entry(dnd).or_default();
            v.push(at);
            if v.len() == subs {
                let v = seen.remove(&dnd).unwrap_or_default();
                let max = v.iter().copied().max().unwrap_or(0);
                let times: Vec<String> = v.iter().map(u64::to_string).collect();
                out(format!(
                    "change {dnd} {max} {} {}",
                    v.len(),
                    times.join(" ")
                ));
            }
        }
        Ok::<(), Box<dyn Error + Send + Sync>>(())
    })
}
