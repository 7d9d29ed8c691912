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

/// The copy buffer, the size of a crvm data chunk (`xfer::CHUNK`).
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

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Writes what `s` delivers into a new file `dst` until end of stream and fsyncs it, as the
/// crvm receiver does before it reports a file; with `early_writeback`, it also starts
/// write-back every 8 MiB as crvm's does. Returns the byte count.
fn receive(mut s: TcpStream, dst: &Path, early_writeback: bool) -> io::Result<u64> {
    s.set_nodelay(true)?;
    let mut f = File::create(dst)?;
    let fd = f.as_raw_fd();
    let mut started = 0;
    let n = copy_then(&mut s, &mut f, |total| {
        if early_writeback && total - started >= WRITEBACK_EVERY {
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
    })?;
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
pub fn file_via_socat(src: &Path, dst: &Path, early_writeback: bool) -> Res<(Duration, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let socat = Socat::start(listener.local_addr()?)?;
    let t0 = Instant::now();
    let dst_path = dst.to_owned();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (s, _) = listener.accept()?;
        receive(s, &dst_path, early_writeback)
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
                Way::Up => receive(s, dst, true),
            }
        });
        let bob_side = match way {
            Way::Down => receive(bob, dst, true),
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
