//! The monitor and the admin API (docs/API.md §4.2): `/healthz`, `/metrics` with the pinned names
//! and no user ID in any label, the admin API behind its bearer token, and `crvm-server admin`.

mod common;

use common::http::{get_json, http, metric, monitor_addr, scrape_as, TOKEN};
use common::*;
use crvm_proto::{ClientMsg, Op, ServerMsg};

/// A server with the monitor (and, with `admin`, the admin API); the monitor's address.
fn start(dir: &TmpDir, admin: bool) -> (Server, String) {
    let token = if admin {
        format!("admin_token = \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    let top = format!("monitor_listen = \"127.0.0.1:0\"\n{token}");
    let mut s = Server::start(dir, &config(&top));
    let addr = monitor_addr(&mut s);
    (s, addr)
}

fn scrape(addr: &str) -> String {
    let (status, text) = http("GET", addr, "/metrics", None);
    assert_eq!(status, 200);
    text
}

#[test]
fn metrics_count_what_happens_with_bounded_labels_only() {
    let dir = TmpDir::new();
    let (s, mon) = start(&dir, false);
    assert_eq!(http("GET", &mon, "/healthz", None), (200, "ok\n".into()));
    let before = scrape(&mon);
    for name in [
        "crvm_connections",
        "crvm_calls_active",
        "crvm_relay_bytes_total",
    ] {
        assert_eq!(metric(&before, name), Some(0.0), "{name} in:\n{before}");
    }
    assert_eq!(
        metric(&before, r#"crvm_sessions{tenant="demo"}"#),
        Some(0.0)
    );

    let mut alice = s.login("demo", "alice-1234");
    let mut bob = s.login("demo", "bob-5678");
    let mut bad = s.connect();
    bad.hello();
    assert!(matches!(
        bad.login("demo", "wrong", "mallory-999", ""),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Err(7),
            ..
        }
    ));
    // Gone from the server's books before it shuts the connection.
    bad.expect_eof();
    alice.send_attached(
        &ClientMsg::Cmd {
            n: 1,
            to: "bob-5678".into(),
        },
        b"12345",
    );
    let (n, _, data) = bob.cmd_in();
    assert_eq!(data, b"12345");
    bob.send(&ClientMsg::CmdAck { upto: n });
    assert!(matches!(alice.reply(), ServerMsg::CmdDone { .. }));
    assert_eq!(
        alice.code(Op::Call {
            call_id: "c1".into(),
            callee: "bob-5678".into(),
            meet_obj: String::new(),
            ext: String::new(),
        }),
        0
    );
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));

    let text = scrape(&mon);
    assert_eq!(metric(&text, "crvm_connections"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "crvm_connections_opened_total"), Some(3.0));
    assert_eq!(
        metric(
            &text,
            r#"crvm_connections_closed_total{reason="login_failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(metric(&text, r#"crvm_sessions{tenant="demo"}"#), Some(2.0));
    assert_eq!(metric(&text, r#"crvm_sessions{tenant="acme"}"#), Some(0.0));
    assert_eq!(metric(&text, "crvm_calls_active"), Some(1.0));
    assert_eq!(
        metric(&text, r#"crvm_logins_total{result="ok"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, r#"crvm_logins_total{result="bad_secret"}"#),
        Some(1.0)
    );
    assert_eq!(metric(&text, "crvm_relay_bytes_total"), Some(5.0));
    assert_eq!(metric(&text, "crvm_cmds_relayed_total"), Some(1.0));
    assert_eq!(
        metric(&text, r#"crvm_calls_total{outcome="rang"}"#),
        Some(1.0)
    );
    assert!(
        text.contains(r#"crvm_request_duration_seconds_count{request="login"} 3"#),
        "{text}"
    );
    // No label carries a user ID (nor anything else a user chose). Label values are quoted;
    // a bare "1234" may be digits of a sample's value.
    for user in ["alice", "bob", "mallory", "1234", "c1"] {
        let label = format!("\"{user}\"");
        assert!(!text.contains(&label), "{label} in:\n{text}");
    }
    // Without admin_token there is no admin API.
    assert_eq!(http("GET", &mon, "/v1/stats", Some(TOKEN)).0, 404);
}

/// Runs `program args…` with `input` on its stdin: whether it succeeded, and what it printed.
fn check_with(program: &str, args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/ensure-checkers.sh installs it)"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// Parses OpenMetrics text with the Python client's strict parser and prints each family.
const OPENMETRICS_PARSE: &str = "import sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
for f in parse(sys.stdin.read()):\n    print(f.name, f.type, len(f.samples))\n";

#[test]
fn metrics_pass_promtool_and_an_openmetrics_parser_by_content_negotiation() {
    let dir = TmpDir::new();
    let (s, mon) = start(&dir, false);
    // Something in every family with labels: a login, a cmd, a call.
    let mut alice = s.login("demo", "alice-1234");
    let mut bob = s.login("demo", "bob-5678");
    alice.send_attached(
        &ClientMsg::Cmd {
            n: 1,
            to: "bob-5678".into(),
        },
        b"12345",
    );
    let (n, _, _) = bob.cmd_in();
    bob.send(&ClientMsg::CmdAck { upto: n });
    assert!(matches!(alice.reply(), ServerMsg::CmdDone { .. }));

    // No Accept (curl, a browser): the classic format, which promtool checks clean.
    let (status, kind, classic) = scrape_as(&mon, None);
    assert_eq!(status, 200);
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert!(classic.contains("# TYPE crvm_relay_bytes_total counter"));
    let (ok, said) = check_with("promtool", &["check", "metrics"], &classic);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{classic}");

    // What Prometheus sends: OpenMetrics first.
    let prometheus = "application/openmetrics-text;version=1.0.0,\
                      application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, kind, open) = scrape_as(&mon, Some(prometheus));
    assert_eq!(status, 200);
    assert_eq!(
        kind,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.ends_with("# EOF\n"));
    let (ok, said) = check_with("python3", &["-c", OPENMETRICS_PARSE], &open);
    assert!(ok, "the OpenMetrics parser: {said}\n{open}");
    assert!(said.contains("crvm_relay_bytes counter 1"), "{said}");
    // The same text is not classic: the checker tells them apart.
    let (ok, _) = check_with("python3", &["-c", OPENMETRICS_PARSE], &classic);
    assert!(!ok, "the classic text parsed as OpenMetrics");
}

#[test]
fn the_admin_api_lists_pages_and_kicks_behind_its_token() {
    let dir = TmpDir::new();
    let (s, mon) = start(&dir, true);
    let mut alice = s.login("demo", "alice");
    let mut bob = s.login("demo", "bob");
    let _carol = s.login("acme", "carol");

    // Anything but the token is refused.
    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        let (status, _) = http("GET", &mon, "/v1/stats", token);
        assert_eq!(status, 401, "{token:?}");
    }
    assert_eq!(
        http("POST", &mon, "/v1/tenants/demo/users/bob/kick", None).0,
        401
    );

    let stats = get_json(&mon, "/v1/stats");
    assert_eq!(stats["sessions"]["demo"], 2);
    assert_eq!(stats["sessions"]["acme"], 1);
    assert_eq!(stats["connections"], 3);
    assert_eq!(stats["healthy"], true);

    // Pages of one, in user order.
    let p1 = get_json(&mon, "/v1/tenants/demo/sessions?limit=1");
    assert_eq!(p1["total"], 2);
    assert_eq!(p1["sessions"][0]["user_id"], "alice");
    assert_eq!(p1["next"], "alice");
    let p2 = get_json(&mon, "/v1/tenants/demo/sessions?limit=1&after=alice");
    assert_eq!(p2["sessions"][0]["user_id"], "bob");
    assert_eq!(p2["sessions"][0]["status"], "online");
    assert_eq!(p2["next"], serde_json::Value::Null);
    assert_eq!(
        http("GET", &mon, "/v1/tenants/nobody/sessions", Some(TOKEN)).0,
        404
    );

    assert_eq!(
        alice.code(Op::Call {
            call_id: "c-admin".into(),
            callee: "bob".into(),
            meet_obj: String::new(),
            ext: String::new(),
        }),
        0
    );
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    let calls = get_json(&mon, "/v1/tenants/demo/calls");
    assert_eq!(
        calls["calls"],
        serde_json::json!([{"call_id": "c-admin", "caller": "alice", "callee": "bob", "connected": false}])
    );
    assert_eq!(
        get_json(&mon, "/v1/tenants/acme/calls")["calls"],
        serde_json::json!([])
    );

    // Kicking bob closes his session with 206, and his ringing call ends for alice (603: the
    // callee went away).
    let (status, body) = http("POST", &mon, "/v1/tenants/demo/users/bob/kick", Some(TOKEN));
    assert_eq!((status, body.as_str()), (200, r#"{"kicked":true}"#));
    bob.expect_close(206);
    assert!(matches!(
        alice.reply(),
        ServerMsg::CallRejected { reason: 603, .. }
    ));
    let (status, _) = http("POST", &mon, "/v1/tenants/demo/users/zed/kick", Some(TOKEN));
    assert_eq!(status, 404);
    assert!(s.log_says("admin: kicked user \"bob\""));
}

#[test]
fn the_admin_command_asks_the_api() {
    let dir = TmpDir::new();
    let (s, mon) = start(&dir, true);
    let _alice = s.login("demo", "alice");
    let url = format!("http://{mon}");
    let out = run(&["admin", "--url", &url, "--token", TOKEN, "stats"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["sessions"]["demo"], 1);

    let out = run(&["admin", "--url", &url, "--token", TOKEN, "sessions", "demo"]);
    assert_eq!(out.status.code(), Some(0));
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["sessions"][0]["user_id"], "alice");

    let wrong = run(&["admin", "--url", &url, "--token", "nope", "stats"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"));
    let missing = run(&["admin", "--url", &url, "kick", "demo"]);
    assert_eq!(missing.status.code(), Some(2));
    let out = run(&[
        "admin", "--url", &url, "--token", TOKEN, "kick", "demo", "ghost",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not logged in"));
}

#[test]
fn an_admin_token_needs_the_monitor_and_some_length() {
    let dir = TmpDir::new();
    for (top, says) in [
        (
            format!("admin_token = \"{TOKEN}\"\n"),
            "needs `monitor_listen`",
        ),
        (
            "monitor_listen = \"127.0.0.1:0\"\nadmin_token = \"short\"\n".to_owned(),
            "at least 16",
        ),
    ] {
        let cfg = dir.write("bad.toml", &config(&top));
        let out = run(&["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{out:?}"
        );
    }
}
