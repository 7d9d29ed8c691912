//! The bulk anchor: the same bytes through socat (client A → socat → client B, `TCP_NODELAY`,
//! 64 KiB buffers), with A and B on threads of the bench — what relaying costs on this machine
//! with no protocol at all; on loopback, or with B behind an emulated link (section k).

use crate::anchors::Socat;
use crate::procs::Stats;
use crate::Res;
use crvm_faultproxy::{Profile, Proxy};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// The copy buffer of the bench's sender and receiver: socat's too (`anchors::Socat`).
const BUF: usize = 64 * 1024;

/// How often the receiver starts write-back when asked to: as crvm's receiving library does
/// (`src/core/transfer.rs` `WRITEBACK_EVERY`).
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Copies `from` into `to` until end of stream; returns the byte count.
fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    copy_then(from, to, |_| ())
}

/// [`copy`], calling `after(total)` after each write.
fn copy_then(
    from: &mut impl Read,
    to: &mut impl Write,
    mut after: impl FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
        after(total);
    }
}

/// How the anchor's receiver writes what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// Each read as it came (what a plain receiver does).
    AsRead,
    /// As read, and write-back started every 8 MiB, as crvm's receiver does.
    Writeback,
    /// As crvm's receiver writes: whole 128 KiB blocks at offsets that are multiples of 128
    /// KiB (crvm's chunks on loopback), write-back started every 8 MiB. In a VM that hands
    /// freed memory back to its host, the page cache takes large folios for such writes, and
    /// their memory can cost a host fault per page at first touch, where small writes reuse
    /// pages freed lately (docs/PERFORMANCE.md, "Issue 21, sixth stop").
    AsCrvm,
}

/// The block [`Writes::AsCrvm`] writes.
const CRVM_BLOCK: usize = 128 * 1024;

/// Copies `from` into `to` in whole `block`s (the last one may be short) until end of stream,
/// calling `after(total)` after each write.
fn copy_blocks(
    from: &mut impl Read,
    to: &mut impl Write,
    block: usize,
    mut after: impl FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; block];
    let mut total = 0;
    loop {
        let mut filled = 0;
        while filled < block {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..filled])?;
        total += filled as u64;
        after(total);
        if filled < block {
            return Ok(total);
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Writes what `s` delivers into a new file `dst` until end of stream and fsyncs it, as the
/// crvm receiver does before it reports a file, the way `writes` says. Returns the byte count.
fn receive(mut s: TcpStream, dst: &Path, writes: Writes) -> io::Result<u64> {
    s.set_nodelay(true)?;
    let mut f = File::create(dst)?;
    let fd = f.as_raw_fd();
    let mut started = 0;
    let mut writeback = |total: u64| {
        if writes != Writes::AsRead && total - started >= WRITEBACK_EVERY {
            // SAFETY: a system call on the descriptor `f` keeps open; no memory is passed.
            unsafe {
                libc::sync_file_range(
                    fd,
                    started as libc::off64_t,
                    (total - started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            started = total;
        }
    };
    let n = match writes {
        Writes::AsCrvm => copy_blocks(&mut s, &mut f, CRVM_BLOCK, &mut writeback)?,
        _ => copy_then(&mut s, &mut f, &mut writeback)?,
    };
    f.sync_all()?;
    Ok(n)
}

/// Sends the file `src` into `s` and ends the stream.
fn send(src: &Path, mut s: TcpStream) -> io::Result<u64> {
    s.set_nodelay(true)?;
    let n = copy(&mut File::open(src)?, &mut s)?;
    s.shutdown(Shutdown::Write)?;
    Ok(n)
}

/// Streams the file `src` through a fresh socat into a new file `dst` (see [`receive`]).
/// Returns the time from the sender's connect until `dst` is synced, and the CPU seconds socat
/// used.
pub fn file_via_socat(src: &Path, dst: &Path, writes: Writes) -> Res<(Duration, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let socat = Socat::start(listener.local_addr()?)?;
    let t0 = Instant::now();
    let dst_path = dst.to_owned();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (s, _) = listener.accept()?;
        receive(s, &dst_path, writes)
    });
    let s = connect(socat.addr)?;
    send(src, s.try_clone()?)?;
    receiver.join().expect("receiver thread")?;
    let elapsed = t0.elapsed();
    drop(s);
    let cpu = socat.proc.cpu_secs_at_exit()?;
    Ok((elapsed, cpu))
}

/// Which way the bytes go through an emulated link, seen from the side behind it (bob).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Towards the side behind the link: bob downloads.
    Down,
    /// From it: bob uploads.
    Up,
}

/// The file `src` into a new file `dst` in crvm's topology with socat as the server: the side
/// behind the link (bob) connects to the emulator, the emulator to socat, socat to the other
/// side (alice); the bytes go alice → bob ([`Way::Down`]) or bob → alice ([`Way::Up`]). The
/// receiver writes and fsyncs as crvm's does (with write-back every 8 MiB). Returns the time
/// from bob's connect until `dst` is synced.
pub fn file_via_socat_link(src: &Path, dst: &Path, profile: Profile, way: Way) -> Res<Duration> {
    let alice = TcpListener::bind("127.0.0.1:0")?;
    let socat = Socat::start(alice.local_addr()?)?;
    let link = Proxy::start(socat.addr)?;
    // Before bob connects: the emulator sets its socket options at the handshake.
    link.set_profile(profile);
    let t0 = Instant::now();
    let bob = connect(link.addr())?;
    let (sent, got) = std::thread::scope(|scope| -> io::Result<(u64, u64)> {
        let alice_side = scope.spawn(|| -> io::Result<u64> {
            let (s, _) = alice.accept()?;
            match way {
                Way::Down => send(src, s),
                Way::Up => receive(s, dst, Writes::Writeback),
            }
        });
        let bob_side = match way {
            Way::Down => receive(bob, dst, Writes::Writeback),
            Way::Up => send(src, bob),
        };
        let alice_side = alice_side.join().expect("alice's thread");
        match way {
            Way::Down => Ok((alice_side?, bob_side?)),
            Way::Up => Ok((bob_side?, alice_side?)),
        }
    })?;
    let elapsed = t0.elapsed();
    if sent != got {
        return Err(format!("socat through the link: {sent} bytes sent, {got} received").into());
    }
    Ok(elapsed)
}
