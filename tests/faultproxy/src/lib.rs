//! A fault-injection proxy and link emulator for tests and benchmarks: a loopback TCP
//! listener that forwards every connection to an upstream address, through an emulated link,
//! and on command breaks the network the ways real ones break.
//!
//! The link ([`Proxy::set_link`], one [`LinkSpec`] per [`Direction`]): a rate, a one-way delay,
//! a bottleneck queue in bytes beyond which the proxy stops reading from the sender (so its TCP
//! is pushed back, as a router's queue pushes back a TCP flow), and optional seeded
//! [`Loss`]. [`Profile`] names the links of issue 21; [`calibrate`] measures plain TCP through
//! one. The model itself, without I/O and unit-tested on a virtual clock, is [`shape::Shaper`].
//! What it models and its calibration: docs/PERFORMANCE.md, "The link emulator".
//!
//! The faults, which compose with the link:
//!
//! - [`Mode::Forward`]: pass bytes both ways (the default);
//! - [`Proxy::reset`]: reset every connection now (RST, as a dropped NAT mapping or a restarted
//!   router does); the bytes the link held die with it; new connections are still forwarded;
//! - [`Mode::Refuse`]: new connections are reset as soon as they are accepted;
//! - [`Mode::Blackhole`]: bytes stop moving in both directions and new connections hang, but
//!   nothing is closed (a silent partition, found only by heartbeats);
//! - [`Proxy::set_delay`]: every byte is held at least this long more, both ways;
//! - [`Proxy::flap`]: reset connections at random intervals around `period` until told
//!   otherwise (only those at least `period` old, so that a login or a resume gets
//!   through even on a slow machine).
//!
//! Plain threads and blocking sockets: the proxy must not share a runtime with what it tests.
//! One thread per direction and connection. The binary `crvm-faultproxy` drives the same proxy
//! from a line protocol on stdin, for C tests.

mod calibrate;
mod pipe;
pub mod shape;
mod sock;
mod spec;

pub use calibrate::{calibrate, Calibration};
pub use spec::{Direction, LinkSpec, Loss, Profile, PROFILE_QUEUE};

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use sock::rst;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What happens to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Refuse,
    Blackhole,
}

/// A live connection pair.
struct Conn {
    id: u64,
    since: Instant,
    client: TcpStream,
    upstream: TcpStream,
    /// Set when it is reset: its two directions stop at once and drop what they hold.
    cut: Arc<AtomicBool>,
}

struct State {
    mode: Mode,
    /// [`Proxy::set_delay`]'s, added to both links' delays.
    delay: Duration,
    links: [LinkSpec; 2],
    conns: Vec<Conn>,
    next_id: u64,
    flap: Option<Duration>,
}

/// What one direction of the link has done, summed over connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes read from senders.
    pub read: u64,
    /// Bytes written to receivers.
    pub written: u64,
    /// Times reading stopped because the queue (or what the link may hold) was full.
    pub queue_full: u64,
    /// Times a receiver did not take what arrived for it at once (the writer then blocks).
    pub receiver_full: u64,
    /// The largest queue seen: bytes accepted and not yet serialised.
    pub max_backlog: u64,
    /// Segments delayed as lost.
    pub lost: u64,
}

pub(crate) struct Shared {
    st: Mutex<State>,
    changed: Condvar,
    upstream: SocketAddr,
    accepted: AtomicU64,
    resets: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
    /// `mode == Blackhole`, read without the lock on every pass of a pipe.
    holding: AtomicBool,
    /// Bumped when a link or the delay changes: pipes then fetch their spec again.
    link_gen: AtomicU64,
    stats: Mutex<[LinkStats; 2]>,
    stats_changed: Condvar,
}

impl Shared {
    /// The link of `dir` as the pipes apply it, and the generation it belongs to.
    fn link(&self, dir: Direction) -> (LinkSpec, u64) {
        let st = self.st.lock().unwrap();
        let mut spec = st.links[dir.index()];
        spec.delay += st.delay;
        (spec, self.link_gen.load(Ordering::SeqCst))
    }

    /// Waits while the network is a blackhole; false if the connection was cut meanwhile.
    fn wait_flowing(&self, cut: &AtomicBool) -> bool {
        let mut st = self.st.lock().unwrap();
        loop {
            if cut.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst) {
                return false;
            }
            if st.mode != Mode::Blackhole {
                return true;
            }
            st = self.changed.wait(st).unwrap();
        }
    }

    fn forget(&self, id: u64) {
        self.st.lock().unwrap().conns.retain(|c| c.id != id);
    }
}

/// A running proxy; stopped (and every connection cut) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    sh: Arc<Shared>,
    /// The accept loop's listener, for what the sockets it accepts announce.
    listener: TcpListener,
}

impl Proxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let sh = Arc::new(Shared {
            st: Mutex::new(State {
                mode: Mode::Forward,
                delay: Duration::ZERO,
                links: [LinkSpec::default(); 2],
                conns: Vec::new(),
                next_id: 0,
                flap: None,
            }),
            changed: Condvar::new(),
            upstream,
            accepted: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            holding: AtomicBool::new(false),
            link_gen: AtomicU64::new(0),
            stats: Mutex::new([LinkStats::default(); 2]),
            stats_changed: Condvar::new(),
        });
        let kept = listener.try_clone()?;
        let s = Arc::clone(&sh);
        thread::spawn(move || accept_loop(listener, s));
        let s = Arc::clone(&sh);
        thread::spawn(move || flap_loop(s));
        Ok(Proxy {
            addr,
            sh,
            listener: kept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, mode: Mode) {
        let mut st = self.sh.st.lock().unwrap();
        st.mode = mode;
        self.sh
            .holding
            .store(mode == Mode::Blackhole, Ordering::SeqCst);
        drop(st);
        self.sh.changed.notify_all();
    }

    /// Holds every byte at least this long more before passing it on, both ways (on top of
    /// the links' own delays).
    pub fn set_delay(&self, delay: Duration) {
        self.sh.st.lock().unwrap().delay = delay;
        self.sh.link_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets the link of one direction, for live connections and new ones. Live connections
    /// keep their backlog, which drains at the new rate.
    pub fn set_link(&self, dir: Direction, spec: LinkSpec) {
        self.sh.st.lock().unwrap().links[dir.index()] = spec;
        if dir == Direction::Up {
            sock::prepare_listener(&self.listener, &spec);
        }
        self.sh.link_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets both directions to `profile`.
    pub fn set_profile(&self, profile: Profile) {
        for d in Direction::BOTH {
            self.set_link(d, profile.spec());
        }
    }

    /// The link of one direction, as set (without [`Proxy::set_delay`]'s delay).
    pub fn link(&self, dir: Direction) -> LinkSpec {
        self.sh.st.lock().unwrap().links[dir.index()]
    }

    /// What one direction has done so far.
    pub fn link_stats(&self, dir: Direction) -> LinkStats {
        self.sh.stats.lock().unwrap()[dir.index()]
    }

    /// Waits until `ready` holds for the stats of `dir`, at most `timeout`: the stats then, or
    /// `None`. For tests that wait for a state of the link (a queue that filled, a receiver
    /// that pushed back) rather than for a time.
    pub fn wait_link(
        &self,
        dir: Direction,
        timeout: Duration,
        ready: impl Fn(&LinkStats) -> bool,
    ) -> Option<LinkStats> {
        let end = Instant::now() + timeout;
        let mut st = self.sh.stats.lock().unwrap();
        loop {
            let s = st[dir.index()];
            if ready(&s) {
                return Some(s);
            }
            let left = end.checked_duration_since(Instant::now())?;
            st = self.sh.stats_changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Resets every live connection now.
    pub fn reset(&self) {
        reset_all(&self.sh, Duration::ZERO);
    }

    /// Resets connections at intervals drawn uniformly from `[period/2, 3·period/2]` (`None`:
    /// stop flapping).
    pub fn flap(&self, period: Option<Duration>) {
        self.sh.st.lock().unwrap().flap = period;
        self.sh.changed.notify_all();
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.sh.accepted.load(Ordering::SeqCst)
    }

    /// Resets done so far (each `reset`, each flap).
    pub fn resets(&self) -> u64 {
        self.sh.resets.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.sh.bytes.load(Ordering::SeqCst)
    }

    /// Connections alive now.
    pub fn live(&self) -> usize {
        self.sh.st.lock().unwrap().conns.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.sh.stop.store(true, Ordering::SeqCst);
        self.set_mode(Mode::Refuse);
        reset_all(&self.sh, Duration::ZERO);
        // Unblock the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Resets every connection at least `min_age` old.
fn reset_all(sh: &Shared, min_age: Duration) {
    let mut st = sh.st.lock().unwrap();
    let now = Instant::now();
    let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut st.conns)
        .into_iter()
        .partition(|c| now.duration_since(c.since) >= min_age);
    st.conns = young;
    for c in old {
        c.cut.store(true, Ordering::SeqCst);
        rst(&c.client);
        rst(&c.upstream);
    }
    sh.resets.fetch_add(1, Ordering::SeqCst);
    drop(st);
    sh.changed.notify_all();
}

fn flap_loop(sh: Arc<Shared>) {
    // xorshift64, seeded from the clock: the drops fall at different points on every run.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut st = sh.st.lock().unwrap();
    while !sh.stop.load(Ordering::SeqCst) {
        match st.flap {
            None => st = sh.changed.wait(st).unwrap(),
            Some(period) => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pause = period / 2 + period.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64);
                let (g, timeout) = sh.changed.wait_timeout(st, pause).unwrap();
                st = g;
                if timeout.timed_out() && st.flap.is_some() {
                    drop(st);
                    // Younger connections are spared: a login or a resume gets its time.
                    reset_all(&sh, period);
                    st = sh.st.lock().unwrap();
                }
            }
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    for client in listener.incoming() {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        sh.accepted.fetch_add(1, Ordering::SeqCst);
        let s = Arc::clone(&sh);
        thread::spawn(move || open(client, s));
    }
}

fn open(client: TcpStream, sh: Arc<Shared>) {
    // A new connection into a blackhole hangs until the network comes back.
    if !sh.wait_flowing(&AtomicBool::new(false)) {
        return rst(&client);
    }
    if sh.st.lock().unwrap().mode == Mode::Refuse {
        return rst(&client);
    }
    let down = sh.st.lock().unwrap().links[Direction::Down.index()];
    let Ok(upstream) = sock::connect(sh.upstream, &down) else {
        return rst(&client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let cut = Arc::new(AtomicBool::new(false));
    let id = {
        let mut st = sh.st.lock().unwrap();
        let (Ok(a), Ok(b)) = (client.try_clone(), upstream.try_clone()) else {
            return;
        };
        st.next_id += 1;
        let id = st.next_id;
        st.conns.push(Conn {
            id,
            since: Instant::now(),
            client: a,
            upstream: b,
            cut: Arc::clone(&cut),
        });
        id
    };
    for (dir, from, into) in [
        (Direction::Up, client.try_clone(), upstream.try_clone()),
        (Direction::Down, upstream.try_clone(), client.try_clone()),
    ] {
        let (Ok(from), Ok(into)) = (from, into) else {
            return;
        };
        let p = pipe::Pipe {
            from,
            into,
            dir,
            id,
            cut: Arc::clone(&cut),
            sh: Arc::clone(&sh),
        };
        thread::spawn(move || p.run());
    }
}
