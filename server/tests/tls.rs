//! TLS between the library and the server, with a throwaway CA made at test time.

mod common;

use common::*;
use crossbeam_channel::Receiver;
use crvm::core::{Client, Event, LoginParams};
use crvm_proto::error::code;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a server certificate it signed for `names` (DNS) and 127.0.0.1.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &TmpDir, tag: &str, names: &[&str], ip: bool) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if ip {
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca: dir.write(&format!("{tag}-ca.pem"), &ca.pem()),
        cert: dir.write(&format!("{tag}-cert.pem"), &cert.pem()),
        key: dir.write(&format!("{tag}-key.pem"), &key.serialize_pem()),
    }
}

fn tls_server(dir: &TmpDir, pki: &Pki) -> Server {
    let top = format!(
        "tls_cert = {:?}\ntls_key = {:?}",
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap()
    );
    Server::start(dir, &config(&top))
}

fn client(addr: &str, ca: Option<&Path>) -> (Client, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = Client::new(
        addr,
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    c.set_option("tls", "on").unwrap();
    if let Some(ca) = ca {
        c.set_option("tls_ca_file", ca.to_str().unwrap()).unwrap();
    }
    (c, rx)
}

fn login(c: &Client, rx: &Receiver<Event>, user: &str) -> Event {
    c.login(&LoginParams {
        auth_acnt: "demo",
        auth_pswd: "demo-secret",
        priv_acnt: user,
        ..Default::default()
    })
    .unwrap();
    rx.recv_timeout(Duration::from_secs(20)).unwrap()
}

#[test]
fn trusted_certificate_carries_the_whole_protocol() {
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], true);
    let s = tls_server(&dir, &pki);
    for host in ["127.0.0.1", "localhost"] {
        let addr = format!("{host}:{}", s.addr.port());
        let (alice, arx) = client(&addr, Some(&pki.ca));
        let (bob, brx) = client(&addr, Some(&pki.ca));
        assert!(matches!(
            login(&alice, &arx, "alice"),
            Event::Login { result: Ok(_), .. }
        ));
        assert!(matches!(
            login(&bob, &brx, "bob"),
            Event::Login { result: Ok(_), .. }
        ));
        // Requests, pushes between users, and a transfer all work through TLS (one of many
        // chunks, so that writes and reads of records span frames).
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        let task = alice.send_buffer("bob", data.clone()).unwrap();
        let got = brx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(
            got,
            Event::NotifyBufferData {
                from: "alice".into(),
                data
            }
        );
        loop {
            match arx.recv_timeout(Duration::from_secs(20)).unwrap() {
                Event::SendProgress { .. } => {}
                e => {
                    assert_eq!(
                        e,
                        Event::BufferSent {
                            task_id: task,
                            result: Ok(())
                        }
                    );
                    break;
                }
            }
        }
        alice.logout().unwrap();
        bob.logout().unwrap();
    }
}

#[test]
fn untrusted_or_mismatched_certificates_fail_login_with_209() {
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], false);
    let other = make_pki(&dir, "other", &["localhost"], true);
    let s = tls_server(&dir, &pki);
    let port = s.addr.port();
    // Signed by a CA the client does not trust.
    let (c, rx) = client(&format!("localhost:{port}"), Some(&other.ca));
    assert_eq!(
        login(&c, &rx, "alice"),
        Event::Login {
            result: Err(code(209)),
            cookie: String::new()
        }
    );
    // Trusted CA, but the certificate does not name 127.0.0.1.
    let (c, rx) = client(&format!("127.0.0.1:{port}"), Some(&pki.ca));
    assert_eq!(
        login(&c, &rx, "alice"),
        Event::Login {
            result: Err(code(209)),
            cookie: String::new()
        }
    );
    // The right name and CA work on the same server.
    let (c, rx) = client(&format!("localhost:{port}"), Some(&pki.ca));
    assert!(matches!(
        login(&c, &rx, "alice"),
        Event::Login { result: Ok(_), .. }
    ));
    // A file that is not a CA bundle is refused as an option.
    assert_eq!(
        c.set_option("tls_ca_file", pki.key.to_str().unwrap()),
        Err(code(9))
    );
    let (tx, _rx) = crossbeam_channel::unbounded::<Event>();
    let fresh = Client::new(
        "localhost:1",
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    assert_eq!(
        fresh.set_option("tls_ca_file", pki.key.to_str().unwrap()),
        Err(code(5))
    );
}

#[test]
fn plaintext_client_cannot_talk_to_a_tls_server() {
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], true);
    let s = tls_server(&dir, &pki);
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = Client::new(
        &s.addr.to_string(),
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    c.set_option("request_timeout_ms", "2000").unwrap();
    let e = login(&c, &rx, "alice");
    assert!(matches!(e, Event::Login { result: Err(_), .. }), "{e:?}");
    assert!(s.log_says("TLS handshake failed"), "{}", s.log_text());
}

#[test]
fn half_a_tls_config_is_refused() {
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], true);
    let cfg = dir.write(
        "half.toml",
        &config(&format!("tls_cert = {:?}", pki.cert.to_str().unwrap())),
    );
    let out = run(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let bad = dir.write(
        "bad.toml",
        &config(&format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            pki.key.to_str().unwrap(),
            pki.key.to_str().unwrap()
        )),
    );
    let out = run(&["--config", bad.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_tls_session_resumes_over_tls() {
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], true);
    let s = tls_server(&dir, &pki);
    let proxy = crvm_faultproxy::Proxy::start(s.addr).unwrap();
    let (c, rx) = client(&proxy.addr().to_string(), Some(&pki.ca));
    assert!(matches!(
        login(&c, &rx, "alice"),
        Event::Login { result: Ok(_), .. }
    ));
    let next = || rx.recv_timeout(Duration::from_secs(20)).unwrap();
    proxy.reset();
    assert_eq!(next(), Event::LineReconnecting { code: code(207) });
    assert!(matches!(next(), Event::LineResumed { .. }));
    // A second TLS handshake was made (on the proxy's second connection), and the session
    // carries on over it.
    assert_eq!(proxy.accepted(), 2);
    c.get_meetings("m").unwrap();
    assert!(matches!(next(), Event::GetMeetings { result: Ok(_), .. }));
}

/// A cluster node's resume address is a route, not a name: the resumed connection goes to the
/// node's `advertise` address (here a bare IP its certificate does not name) and still
/// verifies the certificate against the name the client was made with (docs/DESIGN.md).
#[test]
fn a_resume_at_a_node_s_advertised_ip_verifies_the_client_s_server_name() {
    let pki_dir = TmpDir::new();
    let pki = make_pki(&pki_dir, "node", &["localhost"], false);
    let top = format!(
        "tls_cert = {:?}\ntls_key = {:?}",
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap()
    );
    let cluster = common::cluster::Cluster::start(1, 5000, &top);
    let node = cluster.node(0);
    // The client comes through a balancer (the proxy) under the certificate's name.
    let proxy = crvm_faultproxy::Proxy::start(node.addr).unwrap();
    let via = format!("localhost:{}", proxy.addr().port());
    let (c, rx) = client(&via, Some(&pki.ca));
    assert!(matches!(
        login(&c, &rx, "alice"),
        Event::Login { result: Ok(_), .. }
    ));
    let next = || rx.recv_timeout(Duration::from_secs(20)).unwrap();
    proxy.reset();
    assert_eq!(next(), Event::LineReconnecting { code: code(207) });
    assert!(matches!(next(), Event::LineResumed { .. }));
    // The resume went to the node's advertised 127.0.0.1, not through the balancer.
    assert_eq!(proxy.accepted(), 1);
    c.get_meetings("m").unwrap();
    assert!(matches!(next(), Event::GetMeetings { result: Ok(_), .. }));
}

fn tls_server_with(dir: &TmpDir, cert: &Path, key: &Path) -> Server {
    let top = format!(
        "tls_cert = {:?}\ntls_key = {:?}",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    Server::start(dir, &config(&top))
}

/// `crvm-server cert` writes a certificate clients accept under every default name, never over
/// existing files; a certificate marked `CA:TRUE` (what `openssl req -x509` makes by default)
/// fails with 209 and the server's log says why.
#[test]
fn crvm_server_cert_writes_a_certificate_clients_accept() {
    let dir = TmpDir::new();
    let out = dir.path("pki");
    std::fs::create_dir(&out).unwrap();
    let made = run(&["cert", "--out", out.to_str().unwrap()]);
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("tls_ca_file"), "{said}");
    let (cert, key) = (out.join("cert.pem"), out.join("key.pem"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "key.pem is readable by others: {mode:o}");
    // Run again: nothing is overwritten.
    let before = std::fs::read(&cert).unwrap();
    let again = run(&["cert", "--out", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    let s = tls_server_with(&dir, &cert, &key);
    // (The test server listens on 127.0.0.1 only, so ::1 is not dialled.)
    for host in ["localhost", "127.0.0.1"] {
        let (c, rx) = client(&format!("{host}:{}", s.addr.port()), Some(&cert));
        let e = login(&c, &rx, "alice");
        assert!(
            matches!(e, Event::Login { result: Ok(_), .. }),
            "{host}: {e:?}"
        );
        c.logout().unwrap();
    }

    // docs/SERVER.md's OpenSSL recipe makes one clients accept too.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SERVER.md")).unwrap();
    let recipe = doc
        .lines()
        .find(|l| l.starts_with("openssl req -x509"))
        .expect("docs/SERVER.md has an openssl recipe");
    let osl = TmpDir::new();
    let made = std::process::Command::new("sh")
        .args(["-c", recipe])
        .current_dir(osl.path(""))
        .output()
        .unwrap();
    assert!(made.status.success(), "{recipe}: {made:?}");
    let s = tls_server_with(&osl, &osl.path("cert.pem"), &osl.path("key.pem"));
    let (c, rx) = client(
        &format!("localhost:{}", s.addr.port()),
        Some(&osl.path("cert.pem")),
    );
    let e = login(&c, &rx, "alice");
    assert!(
        matches!(e, Event::Login { result: Ok(_), .. }),
        "openssl: {e:?}"
    );

    // A self-signed CA certificate used as the server's: refused by the client, explained by
    // the server.
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let ca_dir = TmpDir::new();
    let ca_pem = ca_dir.write("ca-as-server.pem", &ca_cert.pem());
    let ca_key_pem = ca_dir.write("ca-as-server.key", &ca_key.serialize_pem());
    let s = tls_server_with(&ca_dir, &ca_pem, &ca_key_pem);
    let (c, rx) = client(&format!("localhost:{}", s.addr.port()), Some(&ca_pem));
    assert_eq!(
        login(&c, &rx, "alice"),
        Event::Login {
            result: Err(code(209)),
            cookie: String::new()
        }
    );
    assert!(
        s.log_says("the client rejected this server's certificate"),
        "{}",
        s.log_text()
    );
}

/// The server's cipher-suite order wins over the client's: a client listing ChaCha20 first
/// still gets the server's first choice, AES-256-GCM, on TLS 1.3 and on TLS 1.2.
#[test]
fn the_server_s_cipher_order_is_enforced() {
    use rustls::crypto::ring::{cipher_suite as cs, default_provider};
    use std::sync::Arc;
    let dir = TmpDir::new();
    let pki = make_pki(&dir, "good", &["localhost"], true);
    let s = tls_server(&dir, &pki);
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&pki.ca).unwrap();
    for c in rustls_pemfile_certs(&ca) {
        roots.add(c).unwrap();
    }
    let cases = [
        (
            &rustls::version::TLS13,
            vec![
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
            ],
            cs::TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (version, client_order, server_first) in cases {
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: client_order,
            ..default_provider()
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = std::net::TcpStream::connect(s.addr).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        assert_eq!(
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(server_first.suite()),
            "{version:?}"
        );
    }
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}
