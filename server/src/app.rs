//! Start-up and wiring: runs the command the command line asks for ([`crate::args`]); for the
//! server proper, loads the configuration, opens the storage, builds what the connections
//! share ([`Ctx`]: the hub, this node's sessions, the relay and, in a cluster, the node links)
//! and serves until a signal stops it.
//!
//! Exit codes: 0 success, 1 the server could not start (bind, storage, runtime), 2 bad usage or
//! bad configuration.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin;
use crate::args::{self, CertOpts, Command, KeySource, ServeOpts, Stop, TokenOpts};
use crate::auth;
use crate::config::{Config, Tenants, DEV_APP_ID, DEV_SECRET};
use crate::ctx::{Connections, Ctx};
use crate::hub::memory::MemoryHub;
use crate::hub::redis::RedisHub;
use crate::hub::{Hub, LocalSessions};
use crate::limits::LoginLimiter;
use crate::link::Links;
use crate::monitor;
use crate::primary::Primary;
use crate::random;
use crate::relay::Relay;
use crate::resume::Sessions;
use crate::route::Router;
use crate::server;
use crate::store::{MeetingStore, RedisStore, SqliteStore};

/// Runs the process; returns its exit code.
pub fn main() -> i32 {
    let args: Result<Vec<String>, OsString> = std::env::args_os()
        .skip(1)
        .map(OsString::into_string)
        .collect();
    let parsed = match args {
        Ok(args) => args::parse(&args),
        Err(bad) => Err(Stop::Usage(format!("argument {bad:?} is not valid UTF-8"))),
    };
    match parsed {
        Ok(Command::Token(t)) => token(&t),
        Ok(Command::Admin(a)) => admin::run(&a),
        Ok(Command::Cert(c)) => cert(&c),
        Ok(Command::Serve(s)) => serve(&s),
        Err(Stop::Print(text)) => {
            print!("{text}");
            0
        }
        Err(Stop::Clap(msg)) => {
            eprint!("{msg}");
            2
        }
        Err(Stop::Usage(msg)) => usage_error(&msg),
    }
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("crvm-server: {msg}");
    eprintln!("Try `crvm-server --help`.");
    2
}

fn token(t: &TokenOpts) -> i32 {
    let secret = match &t.key {
        KeySource::Secret(s) => s.clone(),
        KeySource::Dev if t.app == DEV_APP_ID => DEV_SECRET.to_owned(),
        KeySource::Dev => {
            return usage_error(&format!(
                "the dev tenant is {DEV_APP_ID:?}, not {:?}",
                t.app
            ))
        }
        KeySource::Config(path) => {
            let config = match Config::load(path) {
                Ok(c) => c,
                Err(e) => return usage_error(&e),
            };
            match config.tenant(&t.app) {
                Some(tenant) => tenant.secret.clone(),
                None => {
                    return usage_error(&format!("no tenant {:?} in {}", t.app, path.display()))
                }
            }
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{}",
        auth::mint(&secret, &t.app, &t.user, now.saturating_add_signed(t.ttl))
    );
    0
}

/// `crvm-server cert`: writes `cert.pem` and `key.pem` (owner-only) in `c.out`, never over
/// existing files, and prints how to use them.
fn cert(c: &CertOpts) -> i32 {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (cert, key) = match crate::tls::dev_certificate(&c.names, c.days) {
        Ok(pair) => pair,
        Err(e) => return usage_error(&format!("cannot make a certificate: {e}")),
    };
    let (cert_path, key_path) = (c.out.join("cert.pem"), c.out.join("key.pem"));
    if let Some(there) = [&cert_path, &key_path].into_iter().find(|p| p.exists()) {
        eprintln!(
            "crvm-server: {} exists; not overwriting it",
            there.display()
        );
        return 1;
    }
    for (path, text, mode) in [(&key_path, &key, 0o600), (&cert_path, &cert, 0o644)] {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!("crvm-server: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    println!(
        "wrote {} and {} for {}, valid {} days\n\
         server config:  tls_cert = {:?}\n                tls_key = {:?}\n\
         clients:        tls = on, tls_ca_file = {:?}",
        cert_path.display(),
        key_path.display(),
        c.names.join(", "),
        c.days,
        cert_path.display().to_string(),
        key_path.display().to_string(),
        cert_path.display().to_string(),
    );
    0
}

/// Binds the listening socket with a deep accept backlog: a burst of logins (hundreds of clients
/// starting at once) must queue, not be dropped and retried by the clients' kernels.
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    const BACKLOG: u32 = 4096;
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "address resolves to nothing")
    }))
}

/// Raises the open-file limit to the hard limit: each connection is a descriptor, and the
/// usual soft limit of 1024 would refuse connections long before memory runs out.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn serve(opts: &ServeOpts) -> i32 {
    let logs = crate::log::format(opts.log_format.as_deref())
        .and_then(|f| Ok((f, crate::log::filter(opts.log_level.as_deref())?)));
    match logs {
        Ok((format, filter)) => crate::log::init(format, filter),
        Err(e) => return usage_error(&e),
    }
    raise_fd_limit();
    let mut config = if opts.dev {
        Config::dev()
    } else {
        let path = opts
            .config
            .as_ref()
            .expect("parse requires --config without --dev");
        match Config::load(path) {
            Ok(c) => c,
            Err(e) => return usage_error(&e),
        }
    };
    if let Some(listen) = &opts.listen {
        config.listen = listen.clone();
    }
    if let Some(ws) = &opts.ws_listen {
        config.ws_listen = Some(ws.clone());
    }
    if let Some(dir) = &opts.data_dir {
        config.data_dir = dir.clone();
    }
    if let Err(e) = config.validate() {
        return usage_error(&e);
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => match crate::tls::acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => return usage_error(&e),
        },
        _ => None,
    };
    if opts.dev {
        tracing::info!("dev mode: one tenant, app_id {DEV_APP_ID:?}, with the well-known dev secret; not for production");
    } else if config.tenants.is_empty() {
        tracing::warn!("the config has no [[tenant]], so nobody can log in");
    }
    // A cluster keeps its meetings in its Redis, where every node sees them.
    let opened = match &config.cluster {
        None => SqliteStore::open(&config.data_dir).map(|s| Arc::new(s) as Arc<dyn MeetingStore>),
        Some(c) => RedisStore::open(Primary::of(c), Duration::from_millis(c.node_timeout_ms))
            .map(|s| Arc::new(s) as Arc<dyn MeetingStore>),
    };
    let store: Arc<dyn MeetingStore> = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot open storage: {e}");
            return 1;
        }
    };
    keep_freed_memory();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(run(Arc::new(config), opts.config.clone(), store, tls));
    // Connections still flushing after the grace period are cut off here.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Tells the service manager (systemd's `Type=notify`, through `NOTIFY_SOCKET`) how the server
/// is: ready once it serves, reloading during a SIGHUP, stopping. Nothing without a manager.
fn tell_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// SIGHUP: the tenants of `config_file` replace those in force, without dropping anyone but the
/// sessions of a removed tenant (`close{206}`). Other keys are read at start only; a config
/// that does not load changes nothing.
fn reload(ctx: &Ctx, config_file: Option<&std::path::Path>) {
    let Some(path) = config_file else {
        tracing::warn!("SIGHUP: no config file to reload (--dev)");
        return;
    };
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("SIGHUP: {e}; the tenants stay as they were");
            return;
        }
    };
    let ch = ctx.tenants.replace(new.tenants);
    let mut ended = 0;
    for t in &ch.removed {
        ended += ctx.local.end_tenant(
            t,
            crvm_proto::error::CRVIDEOSDK_FORCEDCLOSECONNECTION,
            "the app was removed",
        );
    }
    tracing::info!(
        "SIGHUP: tenants reloaded: added {:?}, removed {:?} ({ended} session(s) ended), changed {:?}",
        ch.added,
        ch.removed,
        ch.changed
    );
}

/// The relay allocates and frees a buffer per data chunk (128 KiB). By default glibc serves
/// that size with mmap and trims the heap as soon as 128 KiB at its top are free, so every
/// chunk's memory was faulted in afresh: a tenth of the server's CPU while a file streams.
/// Chunks come from the heap instead, and up to 16 MiB of freed memory is kept for reuse
/// (above that it is returned to the system).
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// What a node shares with the others: its sessions, the shared state (in memory, or a
/// cluster's in Redis), the relay and, in a cluster, the links to the other nodes.
struct Shared {
    resume_addr: String,
    local: Arc<LocalSessions>,
    hub: Arc<dyn Hub>,
    relay: Arc<Relay>,
    links: Option<Arc<Links>>,
}

/// [`Shared`] for this node. `None` (logged) when the cluster's settings are unusable.
async fn shared_state(config: &Config, addr: SocketAddr) -> Option<Shared> {
    let call_timeout = Duration::from_secs(config.call_timeout_s);
    let Some(c) = &config.cluster else {
        let local = Arc::new(LocalSessions::new(0));
        let hub = MemoryHub::new(Arc::clone(&local), call_timeout);
        return Some(Shared {
            resume_addr: String::new(),
            local,
            hub: Arc::new(hub),
            relay: Arc::new(Relay::new()),
            links: None,
        });
    };
    let local = Arc::new(LocalSessions::for_cluster());
    let relay = Arc::new(Relay::with_sid_base(local.base()));
    let node = c.node_id.clone().unwrap_or_else(|| random::hex(8));
    let advertise = c.advertise.clone().unwrap_or_else(|| addr.to_string());
    let timeout = Duration::from_millis(c.node_timeout_ms);
    // Node links listen on the address clients reach this node at (its host), any port.
    let link_ip = match advertise.parse::<SocketAddr>() {
        Ok(a) => a.ip(),
        Err(_) => addr.ip(),
    };
    if link_ip.is_unspecified() {
        tracing::warn!(
            "node links listen on {link_ip}, which other nodes cannot dial: set cluster.advertise to this node's address"
        );
    }
    let links = match Links::start(
        node.clone(),
        link_ip,
        Arc::clone(&local),
        Arc::clone(&relay),
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen for node links on {link_ip}: {e}");
            return None;
        }
    };
    let primary = Primary::of(c);
    let described = primary.describe();
    let started = RedisHub::start(
        primary,
        node.clone(),
        Arc::clone(&local),
        Arc::clone(&links),
        call_timeout,
        timeout,
    );
    match started {
        Ok(hub) => {
            tracing::info!(
                "cluster node {node} (advertised at {advertise}, links at {}) on {}",
                links.addr,
                described
            );
            links.set_registry(Arc::new(hub.clone()));
            Some(Shared {
                resume_addr: advertise,
                local,
                hub: Arc::new(hub),
                relay,
                links: Some(links),
            })
        }
        Err(e) => {
            tracing::error!("{e}");
            None
        }
    }
}

/// Binds the WebSocket listener (announced with the others). `None` (logged) when it cannot.
async fn listen_ws(addr: &str) -> Option<TcpListener> {
    match listen(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!("cannot listen for WebSocket on {addr}: {e}");
            None
        }
    }
}

/// Serves until SIGTERM or SIGINT; on SIGHUP, reloads the tenants from `config_file`.
async fn run(
    config: Arc<Config>,
    config_file: Option<PathBuf>,
    store: Arc<dyn MeetingStore>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> i32 {
    // Install the handlers before announcing the port: a SIGTERM sent as soon as the port is
    // known must shut down cleanly, not kill the process.
    let (mut term, mut int, hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let listener = match listen(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {}: {e}", config.listen);
            return 1;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot read the bound address: {e}");
            return 1;
        }
    };
    let logins = LoginLimiter::new(
        config.login_failures_per_source,
        config.login_failures_per_tenant,
    );
    let sessions = Sessions::new(config.resume_window(), config.max_resumes_per_s);
    let Some(shared) = shared_state(&config, addr).await else {
        return 1;
    };
    let ws = match &config.ws_listen {
        None => None,
        Some(listen) => match listen_ws(listen).await {
            Some(l) => Some(l),
            None => return 1,
        },
    };
    let ws_bound = ws.as_ref().and_then(|l| l.local_addr().ok());
    let ws_resume_addr = match (&config.cluster, ws_bound) {
        (Some(c), Some(bound)) => c.ws_advertise.clone().unwrap_or_else(|| bound.to_string()),
        _ => String::new(),
    };
    let links = shared.links.clone();
    let ctx = Arc::new(Ctx {
        tenants: Tenants::new(config.tenants.clone()),
        config,
        sessions,
        hub: shared.hub,
        store,
        router: Router::new(Arc::clone(&shared.local), shared.relay, shared.links),
        local: shared.local,
        resume_addr: shared.resume_addr,
        ws_resume_addr,
        draining: Default::default(),
        drain_request: Default::default(),
        conns: Connections::new(),
        tls,
        logins,
    });
    let monitor = match &ctx.config.monitor_listen {
        None => None,
        Some(listen) => match monitor::start(Arc::clone(&ctx), listen).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                tracing::error!("cannot listen for the monitor on {listen}: {e}");
                return 1;
            }
        },
    };
    if let Some(links) = links {
        crate::drain::take_arrivals(&ctx, &links);
    }
    // Connections are served from now on (a login waits while the node joins), but the node
    // announces itself only once it can serve.
    let announcing = tokio::spawn(announce(
        Arc::clone(&ctx),
        Listening {
            addr,
            monitor,
            ws: ws_bound,
        },
        config_file,
        hup,
    ));
    let drained = Arc::clone(&ctx);
    let shutdown = async move {
        let why = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = drained.drain_asked() => "drain",
        };
        tell_systemd(&[sd_notify::NotifyState::Stopping]);
        // A cluster node hands its sessions to the others first (one node alone: nothing to
        // hand, it stops as it always did).
        crate::drain::run(&drained).await;
        why
    };
    server::run(ctx, listener, ws, shutdown).await;
    announcing.abort();
    0
}

/// Where the server listens: clients, the monitor, browsers.
struct Listening {
    addr: SocketAddr,
    monitor: Option<SocketAddr>,
    ws: Option<SocketAddr>,
}

/// Once the shared state can serve (at once on a node of its own; in a cluster, once the node
/// joined): the listening line (and the monitor's) on stdout, the log line, systemd's
/// `READY=1`; from then on, each SIGHUP reloads the tenants.
async fn announce(
    ctx: Arc<Ctx>,
    at: Listening,
    config_file: Option<PathBuf>,
    mut hup: tokio::signal::unix::Signal,
) {
    let Listening { addr, monitor, ws } = at;
    ctx.hub.ready().await;
    let mut lines = format!("crvm-server listening on {addr}\n");
    if let Some(bound) = monitor {
        lines.push_str(&format!("crvm-server monitor on {bound}\n"));
    }
    if let Some(bound) = ws {
        lines.push_str(&format!("crvm-server websocket on {bound}\n"));
    }
    {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // Whoever started us may have stopped reading; that is no reason to stop serving.
            tracing::warn!("could not write the listening line to stdout");
        }
    }
    tracing::info!(
        "listening on {addr}; data dir {}; {} tenant(s)",
        ctx.config.data_dir.display(),
        ctx.config.tenants.len()
    );
    if let Some(bound) = monitor {
        tracing::info!(
            "monitor on {bound}{}",
            if ctx.config.admin_token.is_some() {
                " (with the admin API)"
            } else {
                ""
            }
        );
    }
    if let Some(bound) = ws {
        let scheme = if ctx.tls.is_some() { "wss" } else { "ws" };
        tracing::info!("WebSocket on {scheme}://{bound}{}", crate::ws::PATH);
    }
    tell_systemd(&[sd_notify::NotifyState::Ready]);
    while hup.recv().await.is_some() {
        let mut reloading_state = vec![sd_notify::NotifyState::Reloading];
        reloading_state.extend(sd_notify::NotifyState::monotonic_usec_now());
        tell_systemd(&reloading_state);
        reload(&ctx, config_file.as_deref());
        tell_systemd(&[sd_notify::NotifyState::Ready]);
    }
}
