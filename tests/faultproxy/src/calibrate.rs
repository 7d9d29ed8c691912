//! How fast plain TCP goes through an emulated link: the anchor that link rows of a benchmark
//! stand beside, and the check that the emulator itself is not the bottleneck.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::spec::{Direction, LinkSpec};
use crate::Proxy;

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub rate_bps_set: u64,
    /// From the first byte's arrival to the last's, the first read not counted: the link's
    /// steady rate, without the delay or the connection's setup.
    pub rate_bps_measured: f64,
    /// `rate_bps_measured / rate_bps_set`.
    pub ratio: f64,
    pub bytes: u64,
    /// From the first byte's arrival to the last's.
    pub elapsed: Duration,
}

impl fmt::Display for Calibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plain TCP through the emulator: {:.1} Mbit/s = {:.3}x of set rate",
            self.rate_bps_measured / 1e6,
            self.ratio
        )
    }
}

/// Sends `bytes` from a plain TCP client through a proxy whose client → upstream direction is
/// `link` to a sink that reads as fast as it can, all on loopback.
pub fn calibrate(link: impl Into<LinkSpec>, bytes: u64) -> io::Result<Calibration> {
    let link = link.into();
    let sink = TcpListener::bind("127.0.0.1:0")?;
    let proxy = Proxy::start(sink.local_addr()?)?;
    proxy.set_link(Direction::Up, link);
    let mut client = TcpStream::connect(proxy.addr())?;
    let sender = thread::spawn(move || -> io::Result<()> {
        let chunk = vec![0x5au8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            client.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let (mut conn, _) = sink.accept()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut first: Option<(Instant, u64)> = None;
    let mut last = Instant::now();
    while got < bytes {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        last = Instant::now();
        got += n as u64;
        first.get_or_insert((last, n as u64));
    }
    sender
        .join()
        .map_err(|_| io::Error::other("the sender panicked"))??;
    let Some((t0, n0)) = first.filter(|_| got == bytes) else {
        return Err(io::Error::other(format!("{got} of {bytes} bytes arrived")));
    };
    let elapsed = last - t0;
    let rate = (got - n0) as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9);
    Ok(Calibration {
        rate_bps_set: link.rate_bps,
        rate_bps_measured: rate,
        ratio: if link.rate_bps == 0 {
            f64::NAN
        } else {
            rate / link.rate_bps as f64
        },
        bytes,
        elapsed,
    })
}
