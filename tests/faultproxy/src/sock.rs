//! Socket options std does not offer.
//!
//! On a shaped link the proxy's receive buffer is kept small: bytes in it are ahead of the
//! emulated queue (the sender's TCP counts them delivered), so a large one would make the
//! queue longer than set. A small buffer only flows if the sender's segments are several times
//! smaller still, and loopback's are 64 KiB: the proxy announces a smaller MSS on a slow link
//! (`TCP_MAXSEG`, on the listener for the client side and before connecting upstream).

use std::io;
use std::mem::size_of;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use crate::spec::LinkSpec;

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid socket and a correctly sized option value.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Closes `s` with a reset rather than a FIN.
pub(crate) fn rst(s: &TcpStream) {
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
            size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// The MSS the proxy announces for a link: about 1 ms of its rate, so that the receive buffer
/// ([`recv_buf`]) holds several segments; `None` (the path's own) from 64 KB up.
pub(crate) fn mss_for(spec: &LinkSpec) -> Option<u32> {
    let mss = spec.rate_bps / 8 / 1000;
    (spec.rate_bps > 0 && mss < 65_000).then(|| mss.max(1200) as u32)
}

/// Prepares the sockets the listener accepts from now on for `spec`: the MSS they announce
/// and their receive buffer, both set before the handshake (a buffer shrunk after it would
/// drop what the peer was already allowed to send, and stall it for a retransmission).
pub(crate) fn prepare_listener(l: &TcpListener, spec: &LinkSpec) {
    let mss = mss_for(spec);
    let _ = set_int(
        l.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_MAXSEG,
        mss.unwrap_or(0) as libc::c_int,
    );
    if spec.rate_bps > 0 {
        set_rcvbuf(l.as_raw_fd(), recv_buf_for(spec, mss));
    } else {
        set_rcvbuf(l.as_raw_fd(), UNSHAPED_RCVBUF);
    }
}

/// The receive buffer without a rate (autotuning, once turned off, does not come back).
const UNSHAPED_RCVBUF: u64 = 4 << 20;

/// About 2 ms of the rate, at least 4 segments (fewer stall the sender on window updates).
fn recv_buf_for(spec: &LinkSpec, mss: Option<u32>) -> u64 {
    let mss = mss.map_or(65_483, u64::from);
    (spec.rate_bps / 8 / 500).max(4 * mss).min(1 << 20)
}

fn set_rcvbuf(fd: RawFd, bytes: u64) {
    // The kernel doubles the value for its bookkeeping; about the value given carries data.
    let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes as libc::c_int);
}

/// The segment size the peer sends us at most (as far as the socket tells: ours, which the
/// announced one bounds on loopback).
fn mss(s: &TcpStream) -> u64 {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid socket and a correctly sized output buffer.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 && v > 0 {
        v as u64
    } else {
        65_483
    }
}

/// Sizes the receive buffer of a live `s` for `spec` (`None`: unshaped) and says how many
/// bytes it holds at most. Sockets prepared for the same link before their handshake keep
/// the size they have.
pub(crate) fn recv_buf(s: &TcpStream, spec: Option<&LinkSpec>) -> u64 {
    let bytes = match spec {
        Some(spec) => recv_buf_for(spec, mss_for(spec))
            .max(4 * mss(s))
            .min(1 << 20),
        None => UNSHAPED_RCVBUF,
    };
    set_rcvbuf(s.as_raw_fd(), bytes);
    bytes
}

/// Connects to `addr`, the socket prepared for `spec` as [`prepare_listener`] does.
pub(crate) fn connect(addr: SocketAddr, spec: &LinkSpec) -> io::Result<TcpStream> {
    let Some(mss) = mss_for(spec) else {
        return TcpStream::connect(addr);
    };
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket creation; the fd is owned by the TcpStream at once.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, mss as libc::c_int)?;
    set_rcvbuf(fd, recv_buf_for(spec, Some(mss)));
    // SAFETY: zeroed sockaddr_storage is valid; filled for the address family below.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin.sin6_port = a.port().to_be();
            sin.sin6_addr.s6_addr = a.ip().octets();
            sin.sin6_flowinfo = a.flowinfo();
            sin.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `ss` holds a valid address of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd,
            &ss as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}
