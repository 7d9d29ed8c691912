//! The anchors: the same bytes through a plain TCP relay (client A → relay → client B, std
//! threads, one 64 KiB buffer per direction, `TCP_NODELAY` everywhere) — what relaying costs on
//! this machine with no protocol at all.

use crate::Res;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The copy buffer, the size of a crvm data chunk (`xfer::CHUNK`).
const BUF: usize = 64 * 1024;

/// Copies `from` into `to` until end of stream; returns the byte count.
fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
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
    }
}

/// A relay for one pair of connections: A connects to `a`, B to `b`, and bytes flow both ways
/// until each side has closed its sending half.
struct Relay {
    a: SocketAddr,
    b: SocketAddr,
    thread: JoinHandle<io::Result<()>>,
}

impl Relay {
    fn start() -> io::Result<Relay> {
        let la = TcpListener::bind("127.0.0.1:0")?;
        let lb = TcpListener::bind("127.0.0.1:0")?;
        let (a, b) = (la.local_addr()?, lb.local_addr()?);
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let (mut sa, _) = la.accept()?;
            let (mut sb, _) = lb.accept()?;
            sa.set_nodelay(true)?;
            sb.set_nodelay(true)?;
            let (mut ra, mut rb) = (sa.try_clone()?, sb.try_clone()?);
            let back = std::thread::spawn(move || {
                let r = copy(&mut rb, &mut sa);
                let _ = sa.shutdown(Shutdown::Write);
                r
            });
            copy(&mut ra, &mut sb)?;
            let _ = sb.shutdown(Shutdown::Write);
            back.join().expect("relay thread")?;
            Ok(())
        });
        Ok(Relay { a, b, thread })
    }

    fn join(self) -> Res<()> {
        self.thread.join().expect("relay thread")?;
        Ok(())
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Streams the file `src` through the relay into a new file `dst`, fsynced as the crvm receiver
/// does before it reports a file; returns the time from the first connect until `dst` is synced.
pub fn file(src: &Path, dst: &Path) -> Res<Duration> {
    let relay = Relay::start()?;
    let t0 = Instant::now();
    let (b, dst_path) = (relay.b, dst.to_owned());
    let receiver = std::thread::spawn(move || -> io::Result<u64> {
        let mut s = connect(b)?;
        let mut f = File::create(dst_path)?;
        let n = copy(&mut s, &mut f)?;
        f.sync_all()?;
        Ok(n)
    });
    let mut s = connect(relay.a)?;
    copy(&mut File::open(src)?, &mut s)?;
    s.shutdown(Shutdown::Write)?;
    receiver.join().expect("receiver thread")?;
    let elapsed = t0.elapsed();
    drop(s);
    relay.join()?;
    Ok(elapsed)
}

/// `n` round trips of `size` bytes: A sends, B echoes them back, both through the relay.
pub fn ping_pong(n: u64, size: usize) -> Res<Vec<u64>> {
    let relay = Relay::start()?;
    let b = relay.b;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let mut s = connect(b)?;
        let mut buf = vec![0u8; size];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    });
    let mut s = connect(relay.a)?;
    let ping = vec![0x5a; size];
    let mut pong = vec![0u8; size];
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        s.write_all(&ping)?;
        s.read_exact(&mut pong)?;
        samples.push(t0.elapsed().as_nanos() as u64);
    }
    s.shutdown(Shutdown::Write)?;
    echo.join().expect("echo thread")?;
    drop(s);
    relay.join()?;
    Ok(samples)
}
