//! The bulk anchor: the same bytes through socat (client A → socat → client B, `TCP_NODELAY`,
//! 64 KiB buffers), with A and B on threads of the bench — what relaying costs on this machine
//! with no protocol at all.

use crate::anchors::Socat;
use crate::procs::Stats;
use crate::Res;
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

/// Streams the file `src` through a fresh socat into a new file `dst`, fsynced as the crvm
/// receiver does before it reports a file; with `early_writeback`, the receiver also starts
/// write-back every 8 MiB as crvm's does. Returns the time from the sender's connect until
/// `dst` is synced, and the CPU seconds socat used.
pub fn file_via_socat(src: &Path, dst: &Path, early_writeback: bool) -> Res<(Duration, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let socat = Socat::start(listener.local_addr()?)?;
    let t0 = Instant::now();
    let dst_path = dst.to_owned();
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut f = File::create(dst_path)?;
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
    });
    let mut s = connect(socat.addr)?;
    copy(&mut File::open(src)?, &mut s)?;
    s.shutdown(Shutdown::Write)?;
    receiver.join().expect("receiver thread")?;
    let elapsed = t0.elapsed();
    drop(s);
    let cpu = socat.proc.cpu_secs_at_exit()?;
    Ok((elapsed, cpu))
}
