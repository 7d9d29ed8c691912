//! One direction of one proxied connection: a thread that reads from the sender as the link's
//! queue allows, holds the bytes in the [`Shaper`]'s order, and writes each segment to the
//! receiver when it arrives. It sleeps in `ppoll` until the sender has bytes, the next segment
//! is due or the queue has room again, whichever comes first, with a nanosecond timeout (at
//! 1 Gbit/s a segment is 0.5 ms of wire time; a millisecond-grained wait would bunch them).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shape::Shaper;
use crate::sock;
use crate::spec::{Direction, LinkSpec};
use crate::{LinkStats, Shared};

/// What one read takes at most.
const READ_CHUNK: usize = 64 * 1024;
/// The longest sleep: a link changed meanwhile is picked up this late at most.
const MAX_WAIT: Duration = Duration::from_millis(100);

pub(crate) struct Pipe {
    pub from: TcpStream,
    pub into: TcpStream,
    pub dir: Direction,
    pub id: u64,
    /// Set when the connection is reset: the bytes held die with it.
    pub cut: Arc<AtomicBool>,
    pub sh: Arc<Shared>,
}

/// Waits until `fd` (if any) is readable or closed, or `timeout` passes; true if it is
/// readable or closed.
fn wait(fd: Option<libc::c_int>, timeout: Option<Duration>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.unwrap_or(-1),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd; the timespec outlives the call.
    // (A negative fd is ignored: a plain precise sleep.)
    let r = unsafe { libc::ppoll(&mut p, 1, tp, std::ptr::null()) };
    r > 0 && p.revents != 0
}

impl Pipe {
    fn stats(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut st = self.sh.stats.lock().unwrap();
        f(&mut st[self.dir.index()]);
        drop(st);
        self.sh.stats_changed.notify_all();
    }

    fn apply(&self, shaper: &mut Shaper, now: Duration, mut spec: LinkSpec) {
        if spec.rate_bps > 0 {
            // The kernel's buffer is part of the queue: the model keeps the rest.
            let kernel = sock::recv_buf(&self.from, Some(&spec));
            spec.queue_bytes = spec.queue_bytes.saturating_sub(kernel);
        } else if shaper.spec().rate_bps > 0 {
            sock::recv_buf(&self.from, None);
        }
        shaper.set_spec(now, spec);
    }

    /// Applies the link as set now, if it changed since generation `seen`.
    fn refresh(&self, shaper: &mut Shaper, seen: &mut u64, origin: Instant) {
        if self.sh.link_gen.load(Ordering::SeqCst) != *seen {
            let (spec, gen) = self.sh.link(self.dir);
            *seen = gen;
            self.apply(shaper, origin.elapsed(), spec);
        }
    }

    /// Writes `bytes` to the receiver; a receiver that does not take them is counted.
    fn deliver(&mut self, bytes: &[u8]) -> io::Result<()> {
        // SAFETY: a valid socket and buffer; MSG_DONTWAIT leaves the shared socket blocking.
        let n = unsafe {
            libc::send(
                self.into.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        let sent = if n >= 0 {
            n as usize
        } else {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            0
        };
        if sent < bytes.len() {
            self.stats(|s| s.receiver_full += 1);
            self.into.write_all(&bytes[sent..])?;
        }
        self.sh
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::SeqCst);
        self.stats(|s| s.written += bytes.len() as u64);
        Ok(())
    }

    /// Moves bytes until the sender ends and everything held has arrived, or the connection
    /// is cut.
    pub fn run(mut self) {
        let origin = Instant::now();
        let (spec, mut seen) = self.sh.link(self.dir);
        let mut shaper = Shaper::new(LinkSpec::default());
        self.apply(&mut shaper, Duration::ZERO, spec);
        let mut held: VecDeque<u8> = VecDeque::new();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut eof = false;
        let mut queue_full = false;
        let mut lost = 0;
        loop {
            if self.cut.load(Ordering::SeqCst) {
                return;
            }
            // Bytes stop moving during a blackhole; those held are only stalled.
            if self.sh.holding.load(Ordering::SeqCst) && !self.sh.wait_flowing(&self.cut) {
                return;
            }
            self.refresh(&mut shaper, &mut seen, origin);
            let now = origin.elapsed();
            let due = shaper.take_due(now) as usize;
            if due > 0 {
                let (a, b) = held.as_slices();
                let first = due.min(a.len());
                let out: Vec<u8> = [&a[..first], &b[..due - first]].concat();
                held.drain(..due);
                if self.deliver(&out).is_err() {
                    break;
                }
                continue;
            }
            if eof && shaper.held() == 0 {
                break;
            }
            let room = shaper.room(now);
            let read = !eof && room >= shaper.need().min(shaper.limit());
            let mut wake = shaper.next_due();
            if !eof && !read {
                if !queue_full {
                    queue_full = true;
                    self.stats(|s| s.queue_full += 1);
                }
                wake = match (wake, shaper.room_at(shaper.need())) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            let timeout = match wake {
                Some(w) => Some(w.saturating_sub(now).min(MAX_WAIT)),
                // Nothing held: only the sender (or a reset, which closes it) wakes us.
                None if read => None,
                None => Some(MAX_WAIT),
            };
            if !wait(read.then(|| self.from.as_raw_fd()), timeout) {
                continue;
            }
            queue_full = false;
            let want = room.min(READ_CHUNK as u64) as usize;
            let n = match self.from.read(&mut buf[..want]) {
                Ok(0) | Err(_) => {
                    eof = true;
                    continue;
                }
                Ok(n) => n,
            };
            // A link changed while waiting for these bytes applies to them.
            self.refresh(&mut shaper, &mut seen, origin);
            let now = origin.elapsed();
            shaper.push(now, n as u64);
            let new_lost = shaper.lost() - lost;
            lost = shaper.lost();
            let backlog = shaper.backlog(now);
            self.stats(|s| {
                s.read += n as u64;
                s.max_backlog = s.max_backlog.max(backlog);
                s.lost += new_lost;
            });
            // Unshaped, the bytes are due at once: written from the read buffer, no copy.
            if held.is_empty()
                && shaper.next_due().is_some_and(|t| t <= now)
                && !self.sh.holding.load(Ordering::SeqCst)
            {
                let due = shaper.take_due(now) as usize;
                held.extend(&buf[due..n]);
                if self.deliver(&buf[..due]).is_err() {
                    break;
                }
            } else {
                held.extend(&buf[..n]);
            }
        }
        if self.cut.load(Ordering::SeqCst) {
            return;
        }
        // One side ended (or failed): pass the end on.
        let _ = self.into.shutdown(Shutdown::Write);
        self.sh.forget(self.id);
    }
}
