//! A fault-injection proxy for tests: a loopback TCP listener that forwards every connection to
//! an upstream address and, on command, breaks the network the ways real ones break:
//!
//! - [`Mode::Forward`]: pass bytes both ways (the default);
//! - [`Proxy::reset`]: reset every connection now (RST, as a dropped NAT mapping or a restarted
//!   router does); new connections are still forwarded;
//! - [`Mode::Refuse`]: new connections are reset as soon as they are accepted;
//! - [`Mode::Blackhole`]: bytes stop moving in both directions and new connections hang, but
//!   nothing is closed (a silent partition, found only by heartbeats);
//! - [`Proxy::set_delay`]: every chunk is held this long before it is passed on;
//! - [`Proxy::flap`]: reset connections at random intervals around `period` until told
//!   otherwise (only those at least `period` old, so that a login or a resume gets
//!   through even on a slow machine).
//!
//! Plain threads and blocking sockets: the proxy must not share a runtime with what it tests.
//! The binary `crvm-faultproxy` drives the same proxy from a line protocol on stdin, for C tests.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
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

struct State {
    mode: Mode,
    delay: Duration,
    /// Bumped by every reset: connections of an older epoch are cut.
    epoch: u64,
    /// Live connection pairs: (ID, since, client side, upstream side).
    conns: Vec<(u64, Instant, TcpStream, TcpStream)>,
    next_id: u64,
    flap: Option<Duration>,
}

struct Shared {
    st: Mutex<State>,
    changed: Condvar,
    upstream: SocketAddr,
    accepted: AtomicU64,
    resets: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
}

/// A running proxy; stopped (and every connection cut) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    sh: Arc<Shared>,
}

/// Closes `s` with a reset rather than a FIN.
fn rst(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
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
                epoch: 0,
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
        });
        let s = Arc::clone(&sh);
        thread::spawn(move || accept_loop(listener, s));
        let s = Arc::clone(&sh);
        thread::spawn(move || flap_loop(s));
        Ok(Proxy { addr, sh })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, mode: Mode) {
        self.sh.st.lock().unwrap().mode = mode;
        self.sh.changed.notify_all();
    }

    /// Holds every chunk this long before passing it on.
    pub fn set_delay(&self, delay: Duration) {
        self.sh.st.lock().unwrap().delay = delay;
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
        self.sh.st.lock().unwrap().mode = Mode::Refuse;
        self.sh.changed.notify_all();
        reset_all(&self.sh, Duration::ZERO);
        // Unblock the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Resets every connection at least `min_age` old.
fn reset_all(sh: &Shared, min_age: Duration) {
    let mut st = sh.st.lock().unwrap();
    st.epoch += 1;
    let now = Instant::now();
    let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut st.conns)
        .into_iter()
        .partition(|(_, since, _, _)| now.duration_since(*since) >= min_age);
    st.conns = young;
    for (_, _, a, b) in old {
        rst(&a);
        rst(&b);
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

/// Waits while the network is a blackhole; false if the connection of `epoch` was cut meanwhile.
fn wait_flowing(sh: &Shared, epoch: Option<u64>) -> bool {
    let mut st = sh.st.lock().unwrap();
    loop {
        if epoch.is_some_and(|e| e != st.epoch) || sh.stop.load(Ordering::SeqCst) {
            return false;
        }
        if st.mode != Mode::Blackhole {
            return true;
        }
        st = sh.changed.wait(st).unwrap();
    }
}

fn open(client: TcpStream, sh: Arc<Shared>) {
    // A new connection into a blackhole hangs until the network comes back.
    if !wait_flowing(&sh, None) {
        return rst(&client);
    }
    if sh.st.lock().unwrap().mode == Mode::Refuse {
        return rst(&client);
    }
    let Ok(upstream) = TcpStream::connect(sh.upstream) else {
        return rst(&client);
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (epoch, id) = {
        let mut st = sh.st.lock().unwrap();
        let (Ok(a), Ok(b)) = (client.try_clone(), upstream.try_clone()) else {
            return;
        };
        st.next_id += 1;
        let id = st.next_id;
        st.conns.push((id, Instant::now(), a, b));
        (st.epoch, id)
    };
    for (from, into) in [
        (client.try_clone(), upstream.try_clone()),
        (upstream.try_clone(), client.try_clone()),
    ] {
        let (Ok(from), Ok(into)) = (from, into) else {
            return;
        };
        let s = Arc::clone(&sh);
        thread::spawn(move || pump(from, into, epoch, id, s));
    }
}

/// Copies `from` into `into` until either end closes or the connection is cut.
fn pump(mut from: TcpStream, mut into: TcpStream, epoch: u64, id: u64, sh: Arc<Shared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Bytes read during a blackhole are held, not lost: the network only stalls them.
        if !wait_flowing(&sh, Some(epoch)) {
            return;
        }
        let delay = sh.st.lock().unwrap().delay;
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        if into.write_all(&buf[..n]).is_err() {
            break;
        }
        sh.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
    // One side ended: pass the end on.
    let _ = into.shutdown(Shutdown::Write);
    sh.st.lock().unwrap().conns.retain(|(i, ..)| *i != id);
}
