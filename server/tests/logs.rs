//! Neither the server's log nor the library's ever contains a secret, a password or a token.

mod common;

use common::http::{http, monitor_addr, TOKEN};
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
    let top = format!("monitor_listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n");
    let mut s = Server::start(&dir, &config(&top));
    let monitor = monitor_addr(&mut s);
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
    // The admin API, with a wrong token and with the right one.
    let wrong_admin = "not-the-admin-token-42";
    let _xavier = s.login("demo", "xavier");
    let kick = "/v1/tenants/demo/users/xavier/kick";
    assert_eq!(http("POST", &monitor, kick, Some(wrong_admin)).0, 401);
    assert_eq!(http("POST", &monitor, kick, Some(TOKEN)).0, 200);
    assert!(s.log_says("admin: kicked"));
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
            TOKEN,
            wrong_admin,
        ] {
            assert!(!log.contains(secret), "the {name} log contains {secret:?}");
        }
        assert!(
            !log.contains("cookie-is-app-data"),
            "the {name} log contains a cookie"
        );
    }
}

/// A server started with `args` on top of the usual ones.
fn start_with(dir: &TmpDir, args: &[&str]) -> Server {
    let config = dir.write("crvm.toml", &config(""));
    let mut all = vec![
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let data = dir.path("data");
    all.extend_from_slice(&["--data-dir", data.to_str().unwrap()]);
    Server::spawn(dir, &all, config.clone())
}

#[test]
fn json_logs_are_one_object_per_line_with_a_level() {
    let dir = TmpDir::new();
    let s = start_with(&dir, &["--log-format", "json"]);
    assert_eq!(s.login_code("demo", "wrong", "ann"), 7);
    let _ok = s.login("demo", "bob");
    assert!(s.log_says("login ok"));
    let text = s.log_text();
    let mut levels = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        levels.insert(v["level"].as_str().unwrap().to_owned());
    }
    // The failed login is a warning, the rest information.
    assert_eq!(
        levels.into_iter().collect::<Vec<_>>(),
        ["INFO".to_owned(), "WARN".to_owned()]
    );
    assert!(
        text.contains(r#"login failed"#) && text.contains(r#"\"ann\""#),
        "{text}"
    );
}

#[test]
fn the_level_filter_keeps_warnings_only() {
    let dir = TmpDir::new();
    let s = start_with(&dir, &["--log-level", "warn"]);
    assert_eq!(s.login_code("demo", "wrong", "ann"), 7);
    let _ok = s.login("demo", "bob");
    assert!(s.log_says("login failed"));
    let text = s.log_text();
    assert!(
        !text.contains("login ok") && !text.contains("listening on"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.contains(" WARN ")), "{text}");
}

#[test]
fn bad_log_flags_exit_2_naming_the_value() {
    for (flag, value) in [("--log-format", "xml"), ("--log-level", "crvm_server=loud")] {
        let out = run(&["--dev", "--listen", "127.0.0.1:0", flag, value]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(value),
            "{out:?}"
        );
    }
}
