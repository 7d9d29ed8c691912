//! One connection to crvm-server, driven by the worker's poll loop: non-blocking connect,
//! frame decoding, and an outbound queue where control frames overtake data chunks.

use super::transport::{is_tls_error, Transport};
use crvm_proto::frame::{self, Decoder, Encoder, Frame, FrameError, Kind};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::time::Instant;

/// Starts a non-blocking connect; completion is signalled by the socket becoming writable.
pub fn start_connect(addr: &SocketAddr) -> io::Result<TcpStream> {
    let (family, storage, len) = sockaddr(addr);
    // SAFETY: plain socket syscalls on a descriptor we own; `storage` outlives the call.
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let rc = libc::connect(fd, &storage as *const _ as *const libc::sockaddr, len);
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        Ok(stream)
    }
}

/// The outcome of a non-blocking connect once the socket is writable.
pub fn connect_result(stream: &TcpStream) -> io::Result<()> {
    match stream.take_error()? {
        Some(e) => Err(e),
        None => {
            stream.set_nodelay(true)?;
            Ok(())
        }
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; zeroed is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            (libc::AF_INET, storage, len)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            (libc::AF_INET6, storage, len)
        }
    }
}

/// The connection is unusable: closed by the peer, an I/O error, a protocol violation, or a
/// TLS failure (`tls`, reported to the app as 209).
#[derive(Debug)]
pub struct ConnError {
    pub tls: bool,
}

impl ConnError {
    const LOST: ConnError = ConnError { tls: false };

    fn io(e: &io::Error) -> ConnError {
        ConnError {
            tls: is_tls_error(e),
        }
    }
}

impl From<FrameError> for ConnError {
    fn from(_: FrameError) -> Self {
        ConnError::LOST
    }
}

/// An established connection.
pub struct Conn {
    sock: Transport,
    enc: Encoder,
    dec: Decoder,
    /// Control frames (kind, unstamped frame): always written before any queued data chunk.
    control: VecDeque<(Kind, Vec<u8>)>,
    /// Data chunks of transfers, unstamped.
    data: VecDeque<Vec<u8>>,
    /// The frame being written and how much of it is out; a frame is never interleaved.
    current: Option<(Vec<u8>, usize)>,
    pub last_rx: Instant,
    pub last_tx: Instant,
}

impl Conn {
    pub fn new(sock: Transport) -> Self {
        let now = Instant::now();
        Conn {
            sock,
            enc: Encoder::new(),
            dec: Decoder::new(frame::MAX_PAYLOAD_TO_CLIENT),
            control: VecDeque::new(),
            data: VecDeque::new(),
            current: None,
            last_rx: now,
            last_tx: now,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.sock.fd()
    }

    // Frames are queued without their header: sequence numbers are given when a frame is
    // chosen for the wire, since control frames overtake queued data.

    /// Queues a control message (JSON plus optional attachment).
    pub fn send_control(&mut self, json: &[u8], attachment: &[u8]) {
        let f = frame::unstamped(&[&frame::control_prefix(json), json, attachment]);
        self.control.push_back((Kind::Control, f));
    }

    /// Queues a data chunk of `len` bytes of stream `sid`, written in place by `fill` (so a
    /// file is read straight into the frame). If `fill` fails nothing is queued.
    pub fn send_data<E>(
        &mut self,
        sid: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut f = frame::unstamped(&[&sid.to_be_bytes()]);
        let at = f.len();
        f.resize(at + len, 0);
        fill(&mut f[at..])?;
        self.data.push_back(f);
        Ok(())
    }

    /// Data chunks queued and not yet started on the wire.
    pub fn data_queued(&self) -> usize {
        self.data.len()
    }

    /// Queues a heartbeat frame.
    pub fn send_simple(&mut self, kind: Kind) {
        self.control.push_back((kind, frame::unstamped(&[])));
    }

    pub fn wants_write(&self) -> bool {
        self.current.is_some()
            || !self.control.is_empty()
            || !self.data.is_empty()
            || self.sock.wants_write()
    }

    /// Writes as much as the socket takes without blocking.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        loop {
            if self.current.is_none() {
                let next = self
                    .control
                    .pop_front()
                    .or_else(|| self.data.pop_front().map(|f| (Kind::Data, f)));
                match next {
                    Some((kind, mut f)) => {
                        self.enc.stamp(&mut f, kind, self.dec.last_seq());
                        self.current = Some((f, 0));
                    }
                    None => return self.sock.flush().map_err(|e| ConnError::io(&e)),
                }
            }
            let (buf, off) = self.current.as_mut().expect("set above");
            match self.sock.write(&buf[*off..]) {
                Ok(0) => return Err(ConnError::LOST),
                Ok(n) => {
                    *off += n;
                    self.last_tx = Instant::now();
                    if *off == buf.len() {
                        self.current = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnError::io(&e)),
            }
        }
    }

    /// Reads what is available (bounded per call so the loop stays fair) and returns the
    /// complete frames.
    pub fn read_frames(&mut self, out: &mut Vec<Frame>) -> Result<(), ConnError> {
        for _ in 0..16 {
            match self.sock.read(self.dec.spare()) {
                Ok(0) => {
                    self.decode(out)?;
                    return Err(ConnError::LOST);
                }
                Ok(n) => {
                    self.last_rx = Instant::now();
                    self.dec.filled(n);
                    self.decode(out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ConnError::io(&e)),
            }
        }
        Ok(())
    }

    fn decode(&mut self, out: &mut Vec<Frame>) -> Result<(), ConnError> {
        while let Some(f) = self.dec.next_frame()? {
            out.push(f);
        }
        Ok(())
    }
}
