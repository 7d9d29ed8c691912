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
                let _ = tls.write_tls(sock);
                return Err(io::Error::other(TlsError(e.to_string())));
            }
            // The handshake may have produced records to send.
            Self::push_records(tls, sock)?;
        }
    }

    /// Writes plaintext from `bufs` in order (one `writev` on a plain socket); returns how much
    /// was taken (`WouldBlock` if none could be).
    pub fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let (tls, sock) = match self {
            Transport::Plain(s) => return s.write_vectored(bufs),
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
            match tls.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
