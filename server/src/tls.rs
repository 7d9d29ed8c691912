//! TLS for client connections (rustls): served when the config names `tls_cert` and `tls_key`.
//! The server's cipher-suite preference decides (not the client's order), a failed handshake is
//! logged with what to do about it, and `crvm-server cert` writes a certificate for development
//! that clients accept.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::AlertDescription;
use tokio_rustls::TlsAcceptor;

/// Loads the certificate chain and key (PEM files) into an acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in tls_cert {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_cert and tls_key do not make a usable pair: {e}"))?;
    // rustls's order (AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305; ECDHE only) is the server's
    // to enforce: a client listing a weaker suite first does not get it.
    config.ignore_client_order = true;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The log line's words for a handshake that failed with `e`: when the client refused the
/// certificate, what usually causes that.
pub fn handshake_failure(e: &std::io::Error) -> String {
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::AlertReceived(a) => Some(*a),
            _ => None,
        });
    match alert {
        Some(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked),
        ) => format!(
            "the client rejected this server's certificate ({a:?}): give the client the CA \
             that signed tls_cert (its tls_ca_file), make sure the certificate names the host \
             the client dials, is in its validity period and is not itself a CA certificate \
             (`crvm-server cert` writes one for development; docs/SERVER.md, TLS)"
        ),
        _ => e.to_string(),
    }
}

/// A self-signed certificate for development, for `names` (DNS names or IP addresses): an end
/// entity (`CA:FALSE`, which is what a client verifying it as a server's certificate requires)
/// valid for `days` days from now. Returns the certificate and its private key, PEM.
pub fn dev_certificate(names: &[String], days: u32) -> Result<(String, String), String> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.is_ca = IsCa::ExplicitNoCa;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().map_or("crvm-dev", |n| n));
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}
