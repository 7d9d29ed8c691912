//! Command line, configuration errors, the listening line, dev mode, the `token` command.

mod common;

use std::io::Read;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn no_flags_exits_2_with_a_message() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--dev or --config"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    let out = run(&["--dev", "--colour"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--colour"), "{}", stderr(&out));
}

#[test]
fn help_prints_usage() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Usage:") && text.contains("--config FILE"),
        "{text}"
    );
}

#[test]
fn unknown_config_key_exits_2_naming_it() {
    let dir = TmpDir::new();
    let path = dir.write("bad.toml", &config("max_bufer_bytes = 10"));
    let out = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_bufer_bytes"), "{}", stderr(&out));

    let path = dir.write(
        "bad2.toml",
        "[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\nsecrte = \"t\"\n",
    );
    let out = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("secrte"), "{}", stderr(&out));
}

#[test]
fn bad_config_values_exit_2() {
    let dir = TmpDir::new();
    for (i, text) in [
        "[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\nauth = \"ldap\"\n",
        "[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\n[[tenant]]\napp_id = \"a\"\nsecret = \"t\"\n",
        "listen = [",
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.write(&format!("bad{i}.toml"), text);
        let out = run(&["--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
    }
    let out = run(&["--config", dir.path("missing.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn first_stdout_line_names_the_bound_port_and_nothing_else_follows() {
    let dir = TmpDir::new();
    let mut server = Server::start(&dir, &config(""));
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 0);
    server.login("demo", "alice");
    server.signal("-TERM");
    assert_eq!(server.wait().code(), Some(0));
    let mut rest = String::new();
    server.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout after the first line");
}

#[test]
fn dev_mode_serves_the_demo_tenant() {
    let dir = TmpDir::new();
    let data = dir.path("data");
    let server = Server::spawn(
        &dir,
        &[
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path("none"),
    );
    let mut c = server.login("demo", "alice");
    assert_eq!(c.statuses(), vec![st("alice", 1, 0)]);
    assert!(data.join("crvm.sqlite3").exists());
    let log = server.log_text();
    assert!(log.contains("dev mode") && log.contains("demo"), "{log}");
    assert!(
        !log.contains("demo-secret"),
        "the log must not show the secret"
    );
}

#[test]
fn token_command_prints_one_token() {
    let dir = TmpDir::new();
    let path = dir.write("c.toml", &config(""));
    let token = cli_token(&path, "tok", "alice", 60);
    let (expiry, _) = token.split_once('.').unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now && expiry <= now + 61);
    assert_eq!(
        crvm_server::auth::verify("tok-secret", "tok", "alice", &token, now),
        Ok(())
    );

    let out = run(&[
        "token", "--dev", "--app", "demo", "--user", "u", "--ttl", "5",
    ]);
    assert!(out.status.success());
    let out = run(&[
        "token", "--dev", "--app", "nope", "--user", "u", "--ttl", "5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "token",
        "--config",
        path.to_str().unwrap(),
        "--app",
        "nope",
        "--user",
        "u",
        "--ttl",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["token", "--app", "a", "--user", "u", "--ttl", "5"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bind_failure_exits_nonzero() {
    let dir = TmpDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let path = dir.write("c.toml", &config(""));
    let out = run(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        &addr,
        "--data-dir",
        dir.path("data").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}
