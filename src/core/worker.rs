//! The worker thread: the I/O pump of one client's [`Session`]. It makes the link the session
//! wants (DNS, a non-blocking connect, TLS), reads into the session and writes what it
//! produces, runs its timers, and — unless `dispatch=manual` — delivers its events to the app,
//! with no lock held. It waits in one `poll(2)` on an eventfd, the socket and the next timer.
//!
//! The app's threads share the session with it behind one lock ([`Shared`]) and, after each
//! call, write what the call produced straight to the socket ([`flush`], control frames only:
//! files are read and hashed on this thread): a request or cmd costs no thread hand-off. This
//! thread lets a waiting app thread have the lock between two writes, reads what arrived after
//! every two chunks it writes, and hands events to the app as soon as a read produced some, so
//! that a call, its answer or an invite waits for a chunk or two of a transfer, not for a
//! socket's or a window's worth. The app's threads wake the worker only when it has something to do
//! ([`needs_worker`]): a link to make or drop, bytes the socket would not take, events to
//! deliver, or a timer earlier than the one it sleeps on.

use super::event::Event;
use super::net;
use super::session::{LinkGen, Session, SystemEnv, Want};
use super::transport::{is_tls_error, tls_config, Transport};
use super::Inner;
use crvm_proto::error::*;
use crvm_proto::{Batch, Code};
use parking_lot::MutexGuard;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// Reads of one wake-up, at most: the loop stays fair to timers and writes.
const READS_PER_TURN: usize = 16;
/// Events handed to the app per batch.
const EVENT_BATCH: usize = 1024;
/// Bytes one [`flush`] writes before the worker looks at the socket's input again: two data
/// chunks, so that an answer to the app waits for two chunks of a transfer, not for a window.
const FLUSH_BUDGET: usize = 256 * 1024;
/// A write buffer larger than this is given back once empty.
const KEEP_WBUF: usize = 512 * 1024;

/// The socket of one link generation.
pub(crate) enum Link {
    None,
    /// The worker resolves the server's name (without the lock).
    Resolving {
        gen: LinkGen,
    },
    Connecting {
        gen: LinkGen,
        sock: TcpStream,
        addrs: Vec<SocketAddr>,
        next: usize,
    },
    Open {
        gen: LinkGen,
        transport: Transport,
        /// Frames the session produced (chunks in place), written from wire offset `woff` on.
        wbuf: Batch,
        woff: usize,
        /// The socket's bound on unsent bytes, as last set.
        unsent: usize,
        /// The last [`flush`] stopped at its budget with more to write: the worker looks at
        /// what arrived meanwhile, then writes on.
        more: bool,
    },
}

impl Link {
    fn gen(&self) -> Option<LinkGen> {
        match self {
            Link::None => None,
            Link::Resolving { gen } | Link::Connecting { gen, .. } | Link::Open { gen, .. } => {
                Some(*gen)
            }
        }
    }

    /// Bytes are waiting for the socket to take them.
    fn blocked(&self) -> bool {
        match self {
            Link::Open {
                transport,
                wbuf,
                woff,
                more,
                ..
            } => *more || *woff < wbuf.len() || transport.wants_write(),
            _ => false,
        }
    }
}

/// What the app's threads and the worker share.
pub(crate) struct Shared {
    pub session: Session,
    pub link: Link,
    /// The worker sleeps in `poll` (until `sleep_until`, or until woken).
    pub sleeping: bool,
    pub sleep_until: Option<Instant>,
    /// A wake-up is on its way to the sleeping worker: no need for another.
    pub woken: bool,
}

impl Shared {
    pub fn new(now: Instant) -> Shared {
        Shared {
            session: Session::new(now, Box::new(SystemEnv)),
            link: Link::None,
            sleeping: false,
            sleep_until: None,
            woken: false,
        }
    }

    /// The generation the link should have, if any.
    fn wanted_gen(&self) -> Option<LinkGen> {
        match self.session.want() {
            (_, Want::None) => None,
            (gen, _) => Some(gen),
        }
    }
}

/// Whether the worker must look at the session after an app's call changed it. Events are
/// its to deliver unless `manual` (then the app's `poll` delivers them).
pub(crate) fn needs_worker(sh: &Shared, manual: bool) -> bool {
    if sh.link.gen() != sh.wanted_gen()
        || sh.link.blocked()
        || sh.session.has_output()
        || (!manual && sh.session.has_events())
    {
        return true;
    }
    match (sh.session.deadline(), sh.sleep_until) {
        (Some(d), Some(until)) => d < until,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What [`flush`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Control frames and data chunks (the worker).
    All,
    /// Control frames only (an app's thread after its call: the worker reads the files).
    Control,
}

/// Writes what the session has to send until the socket would block, or until [`FLUSH_BUDGET`]
/// is written (then `more` is set and the worker reads before it writes on). A failed write
/// ends the link. Between two writes the lock goes to an app's thread that waits for it, so
/// that a call made during a transfer waits for one chunk, not for the socket to fill.
pub(crate) fn flush(sh: &mut MutexGuard<'_, Shared>, now: Instant, fill: Fill) {
    let want = sh.session.unsent_bound();
    let mut budget = FLUSH_BUDGET;
    let result = loop {
        let Shared { session, link, .. } = &mut **sh;
        let Link::Open {
            gen,
            transport,
            wbuf,
            woff,
            unsent,
            more,
        } = link
        else {
            return;
        };
        let gen = *gen;
        if want != *unsent {
            crvm_proto::limit_unsent_to(transport.fd(), want);
            *unsent = want;
        }
        if *woff == wbuf.len() {
            session.written(wbuf, KEEP_WBUF);
            *woff = 0;
            *more = false;
            if budget == 0 {
                // What arrived meanwhile (an answer, acknowledgements) is read first.
                *more = true;
                break Ok(());
            }
            let produced = match fill {
                Fill::All => session.transmit(wbuf, now),
                Fill::Control => session.transmit_control(wbuf, now),
            };
            if !produced {
                break transport.flush().map_err(|e| (gen, e));
            }
            budget = budget.saturating_sub(wbuf.len());
        }
        match transport.write_vectored(&wbuf.slices(*woff)) {
            Ok(0) => break Err((gen, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                *woff += n;
                if *woff == wbuf.len() {
                    MutexGuard::bump(sh);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err((gen, e)),
        }
    };
    if let Err((gen, e)) = result {
        if sh.link.gen() == Some(gen) {
            sh.link = Link::None;
            sh.session.link_failed(gen, lost_code(&e), now);
        }
    }
}

/// Reads what the socket has (a bounded number of reads) into the session.
fn read(sh: &mut MutexGuard<'_, Shared>, now: Instant) {
    for _ in 0..READS_PER_TURN {
        let Shared { session, link, .. } = &mut **sh;
        let Link::Open { gen, transport, .. } = link else {
            return;
        };
        let gen = *gen;
        match transport.read(session.read_buf()) {
            Ok(0) => {
                sh.link = Link::None;
                sh.session
                    .link_failed(gen, code(CRVIDEOSDK_CONNECTIONLOST), now);
                return;
            }
            Ok(n) => {
                sh.session.received(n, now);
                if sh.session.has_output() {
                    // Acknowledgements (and answers) go out before the next read: a sender
                    // waiting for its window should not wait for this whole turn of reads.
                    flush(sh, now, Fill::All);
                }
                if sh.session.has_events() {
                    // An invite read behind a file's chunks is the app's before more chunks.
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                sh.link = Link::None;
                sh.session.link_failed(gen, lost_code(&e), now);
                return;
            }
        }
    }
}

/// The code a failed link is reported with: 209 for TLS failures (a bad or untrusted
/// certificate shows up as a failed login), 207 for everything else.
fn lost_code(e: &io::Error) -> Code {
    code(if is_tls_error(e) {
        CRVIDEOSDK_SSL_ERR
    } else {
        CRVIDEOSDK_CONNECTIONLOST
    })
}

/// The worker's loop.
pub(crate) fn run(inner: Arc<Inner>) {
    let mut events = Vec::new();
    loop {
        let turn = catch_unwind(AssertUnwindSafe(|| turn(&inner, &mut events)));
        match turn {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                // A bug: the link is treated as lost (every request still gets its result).
                events.clear();
                let mut sh = inner.shared.lock();
                let (gen, _) = sh.session.want();
                sh.link = Link::None;
                sh.session
                    .link_failed(gen, code(CRVIDEOSDK_INNER_ERR), Instant::now());
            }
        }
    }
}

/// One wait-and-handle step. False once the client is destroyed and logged out.
fn turn(inner: &Inner, events: &mut Vec<Event>) -> bool {
    let mut sh = inner.shared.lock();
    sh = reconcile(inner, sh);
    let now = Instant::now();
    sh.session.disk_done(now);
    if sh.session.deadline().is_some_and(|d| now >= d) {
        // What arrived while this thread was busy (a long callback, a slow disk) counts before
        // a silence is judged: a link is dead only if nothing is waiting on it.
        read(&mut sh, now);
        sh.session.tick(now);
        sh = reconcile(inner, sh);
    }
    flush(&mut sh, now, Fill::All);
    if sh.session.has_events() {
        if inner.manual() {
            inner.events_ready.notify_all();
        } else if !inner.dispatch.is_destroyed() {
            sh.session.take_events(events, EVENT_BATCH);
            drop(sh);
            inner.dispatch.deliver(events);
            events.clear();
            let mut sh = inner.shared.lock();
            sh.session.delivered();
            flush(&mut sh, Instant::now(), Fill::All);
            return true;
        }
    }
    if sh.session.finished() {
        sh.link = Link::None;
        return false;
    }

    // Wait for the socket, a wake-up or the next timer.
    let (fd, interest) = match &sh.link {
        Link::Connecting { sock, .. } => (sock.as_raw_fd(), libc::POLLOUT),
        Link::Open { transport, .. } => {
            let out = if sh.link.blocked() { libc::POLLOUT } else { 0 };
            (transport.fd(), libc::POLLIN | out)
        }
        Link::None | Link::Resolving { .. } => (-1, 0),
    };
    let until = sh.session.deadline();
    sh.sleeping = true;
    sh.sleep_until = until;
    drop(sh);
    let timeout_ms = match until {
        None => -1,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up so a timer is never polled a millisecond early, in a tight loop.
            left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
        }
    };
    let mut fds = [
        libc::pollfd {
            fd: inner.waker.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd,
            events: interest,
            revents: 0,
        },
    ];
    let nfds = if fd >= 0 { 2 } else { 1 };
    // SAFETY: `fds` is a live array of `nfds` pollfd structs.
    unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
    if fds[0].revents != 0 {
        inner.waker.drain();
    }
    let mut sh = inner.shared.lock();
    sh.sleeping = false;
    sh.woken = false;
    let revents = if nfds == 2 { fds[1].revents } else { 0 };
    if revents != 0 {
        let now = Instant::now();
        if matches!(sh.link, Link::Connecting { .. }) {
            connected(inner, &mut sh, now);
        } else {
            if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                read(&mut sh, now);
            }
            flush(&mut sh, now, Fill::All);
        }
    }
    true
}

/// Makes the link what the session wants: drops one of an older generation, starts
/// connecting for a new login. Name resolution runs without the lock.
fn reconcile<'a>(inner: &'a Inner, mut sh: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
    let wanted = sh.wanted_gen();
    if sh.link.gen() == wanted {
        return sh;
    }
    sh.link = Link::None;
    let (gen, want) = sh.session.want();
    if !matches!(want, Want::Connect { .. }) {
        return sh;
    }
    sh.link = Link::Resolving { gen };
    // A cluster's session is resumed at the node that holds it.
    let target = sh.session.connect_addr().unwrap_or(&inner.addr).to_owned();
    drop(sh);
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    let mut sh = inner.shared.lock();
    if !matches!(sh.link, Link::Resolving { gen: g } if g == gen) || sh.wanted_gen() != Some(gen) {
        return sh; // overtaken meanwhile; the next turn sorts it out
    }
    try_connect(&mut sh, gen, addrs, 0, Instant::now());
    sh
}

/// Starts connecting to `addrs[next..]`, skipping addresses that fail at once.
fn try_connect(
    sh: &mut Shared,
    gen: LinkGen,
    addrs: Vec<SocketAddr>,
    mut next: usize,
    now: Instant,
) {
    while next < addrs.len() {
        let addr = addrs[next];
        next += 1;
        if let Ok(sock) = net::start_connect(&addr) {
            sh.link = Link::Connecting {
                gen,
                sock,
                addrs,
                next,
            };
            return;
        }
    }
    sh.link = Link::None;
    sh.session
        .link_failed(gen, code(CRVIDEOSDK_CREATE_CONN_FAILED), now);
}

/// The socket of a connect became writable: connected (TLS set up if asked), or on to the
/// next address.
fn connected(inner: &Inner, sh: &mut MutexGuard<'_, Shared>, now: Instant) {
    let Link::Connecting {
        gen,
        sock,
        addrs,
        next,
    } = std::mem::replace(&mut sh.link, Link::None)
    else {
        return;
    };
    if net::connect_result(&sock).is_err() {
        return try_connect(sh, gen, addrs, next, now);
    }
    let opts = sh.session.opts();
    let transport = if opts.tls {
        let host = tls_name(&inner.addr);
        tls_config(opts.tls_ca_file.as_deref()).and_then(|c| Transport::tls(sock, c, host))
    } else {
        Ok(Transport::Plain(sock))
    };
    match transport {
        Ok(transport) => {
            sh.link = Link::Open {
                gen,
                transport,
                wbuf: Batch::new(),
                woff: 0,
                unsent: crvm_proto::outq::KERNEL_UNSENT,
                more: false,
            };
            sh.session.link_up(gen, now);
            flush(sh, now, Fill::All);
        }
        Err(_) => sh.session.link_failed(gen, code(CRVIDEOSDK_SSL_ERR), now),
    }
}

/// The name the server's certificate must carry, for every connection of a client made with
/// `client_addr` — resumes included, even where a cluster sends them to another address (the
/// node's `advertise`, [`Session::connect_addr`]). A cluster is one service: behind a TCP
/// balancer every node terminates TLS with the service's certificate, and the advertised
/// address (often a bare IP, docs/CLUSTER.md) is a route to a node, not an identity of its own.
/// The client has that route from a server it already verified under this name.
fn tls_name(client_addr: &str) -> &str {
    client_addr.rsplit_once(':').map_or("", |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::tls_name;

    #[test]
    fn the_tls_name_is_the_host_the_client_was_made_with() {
        assert_eq!(tls_name("crvm.example.com:5210"), "crvm.example.com");
        assert_eq!(tls_name("10.0.0.5:5210"), "10.0.0.5");
        // Brackets are Transport::tls's to strip.
        assert_eq!(tls_name("[::1]:5210"), "[::1]");
    }
}
