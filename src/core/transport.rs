//! The byte stream under the frames: plain TCP, or TLS (rustls) over it. Both are driven
//! non-blocking by the worker's poll loop; TLS records are produced and consumed as the
//! plaintext moves, so the rest of the connection code does not know which one it has.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

/// Where the system's trusted roots are on Debian-like systems, used when `tls_ca_file` is not
/// set.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the client TLS configuration trusting the CA certificates in `ca_file` (PEM), or the
/// system's. Fails if no certificate can be loaded.
pub fn tls_config(ca_file: Option<&Path>) -> io::Result<Arc<ClientConfig>> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(invalid)? {
        roots.add(cert.map_err(invalid)?).map_err(invalid)?;
    }
    if roots.is_empty() {
        return Err(invalid("no CA certificate in the file"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Marks an I/O error that came from TLS (a bad certificate, a failed handshake), which the app
/// hears as 209 rather than as a lost connection.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// Whether `e` is a TLS failure (see [`TlsError`]).
pub fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TlsError>())
}

/// Writes to a socket without raising `SIGPIPE` when its peer is gone (`MSG_NOSIGNAL`): a C
/// app linking the library has the signal's default action, which ends the process. `write`
/// and `writev` on a socket raise it; `send` and `sendmsg` with the flag do not.
struct NoSigPipe<'a>(&'a TcpStream);

#[cfg(any(target_os = "linux", target_os = "android"))]
const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
/// Elsewhere there is no such flag (BSDs would need `SO_NOSIGPIPE` on the socket).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NO_SIGNAL: libc::c_int = 0;

impl Write for NoSigPipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; `msg` points at `bufs`,
        // which outlive the call, and the kernel only reads them. A zeroed `msghdr` is valid
        // (no address, no control data).
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
            libc::sendmsg(self.0.as_raw_fd(), &msg, NO_SIGNAL)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<(ClientConnection, TcpStream)>),
}

impl Transport {
    /// Wraps a connected socket in TLS for `host` (a DNS name or an IP address).
    pub fn tls(sock: TcpStream, config: Arc<ClientConfig>, host: &str) -> io::Result<Transport> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(invalid)?;
        let conn = ClientConnection::new(config, name).map_err(invalid)?;
        Ok(Transport::Tls(Box::new((conn, sock))))
    }

    pub fn fd(&self) -> RawFd {
        match self {
            Transport::Plain(s) => s.as_raw_fd(),
            Transport::Tls(t) => t.1.as_raw_fd(),
        }
    }

    /// Whether encrypted bytes are waiting to go out (handshake or records).
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.0.wants_write(),
        }
    }

    /// Reads plaintext. `Ok(0)` is the end of the stream; `WouldBlock` means nothing yet.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (tls, sock) = match self {
            Transport::Plain(s) => return s.read(buf),
            Transport::Tls(t) => (&mut t.0, &mut t.1),
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: a truncated stream is still an end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(sock)? == 0 {
                return Ok(0);
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the peer why (an alert), best effort, then fail.
                let _ = tls.write_tls(&mut NoSigPipe(sock));
                return Err(io::Error::other(TlsError(e.to_string())));
            }
            // The handshake may have produced records to send.
            Self::push_records(tls, sock)?;
        }
    }

    /// Writes plaintext from `bufs` in order (one `sendmsg` on a plain socket); returns how
    /// much was taken (`WouldBlock` if none could be).
    pub fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let (tls, sock) = match self {
            Transport::Plain(s) => return NoSigPipe(s).write_vectored(bufs),
            Transport::Tls(t) => (&mut t.0, &mut t.1),
        };
        let n = tls.writer().write_vectored(bufs)?;
        Self::push_records(tls, sock)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Sends pending TLS records without blocking.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => Self::push_records(&mut t.0, &mut t.1),
        }
    }

    fn push_records(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(&mut NoSigPipe(sock)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Runs `f` with `SIGPIPE` blocked on this thread; returns its result and whether a
    /// `SIGPIPE` was raised meanwhile (a write's is sent to the writing thread, and Linux keeps
    /// a blocked signal pending even when its action is to ignore it, as in a Rust test).
    fn sigpipe_during<R>(f: impl FnOnce() -> R) -> (R, bool) {
        // SAFETY: signal-set calls on local sets and on this thread's own mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let r = f();
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            let raised = libc::sigismember(&pending, libc::SIGPIPE) == 1;
            // A pending one is then delivered, and ignored (the Rust runtime ignores SIGPIPE).
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            (r, raised)
        }
    }

    #[test]
    fn writing_to_a_socket_whose_peer_is_gone_fails_without_sigpipe() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap().0);
        let mut t = Transport::Plain(sock);
        let chunk = [7u8; 1024];
        // The first write draws the closed peer's reset; a later one fails.
        let (failed, raised) = sigpipe_during(|| {
            (0..1000).find_map(|_| t.write_vectored(&[io::IoSlice::new(&chunk)]).err())
        });
        let e = failed.expect("no write failed");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        assert!(!raised, "the write raised SIGPIPE (which ends a C app)");
    }
}
