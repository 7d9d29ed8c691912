//! Neither the server's log nor the library's ever contains a secret, a password or a token.

mod common;

use common::*;
use crossbeam_channel::Receiver;
use crvm::core::{Client, Event, LoginParams};
use std::time::Duration;

fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(Duration::from_secs(20)).expect("an event")
}

#[test]
fn no_secret_or_token_in_any_log() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let lib_log = dir.path("lib.log");
    let (tx, rx) = crossbeam_channel::unbounded();
    let c = Client::new(
        &s.addr.to_string(),
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    c.set_option("log_file", lib_log.to_str().unwrap()).unwrap();
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = crvm_server::auth::mint("either-secret", "either", "erin", expiry);
    let wrong = "hunter2-not-the-secret";
    let attempts = [
        ("either-secret", "", true),
        ("", token.as_str(), true),
        (wrong, "", false),
        ("", "1.bm90LWEtcmVhbC10b2tlbg", false),
    ];
    for (secret, tok, ok) in attempts {
        c.login(&LoginParams {
            auth_acnt: "either",
            auth_pswd: secret,
            priv_acnt: "erin",
            priv_auth_code: tok,
            cookie: "cookie-is-app-data",
            ..Default::default()
        })
        .unwrap();
        let e = next(&rx);
        assert_eq!(matches!(e, Event::Login { result: Ok(_), .. }), ok, "{e:?}");
        if ok {
            c.logout().unwrap();
        }
    }
    drop(c);
    let lib = std::fs::read_to_string(&lib_log).unwrap();
    let server = s.log_text();
    assert!(lib.contains("login_success usr_id=erin"), "{lib}");
    assert!(lib.contains("login_fail sdk_err=7"), "{lib}");
    assert!(lib.contains("login_fail sdk_err=21"), "{lib}");
    assert!(server.contains("login ok"), "{server}");
    for (name, log) in [("library", &lib), ("server", &server)] {
        for secret in [
            "either-secret",
            token.as_str(),
            wrong,
            "bm90LWEtcmVhbC10b2tlbg",
        ] {
            assert!(!log.contains(secret), "the {name} log contains {secret:?}");
        }
        assert!(
            !log.contains("cookie-is-app-data"),
            "the {name} log contains a cookie"
        );
    }
}
