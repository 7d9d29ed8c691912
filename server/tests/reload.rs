//! SIGHUP reloads the tenants of the config file (issue 14): added, removed and changed tenants
//! take effect without dropping anyone but a removed tenant's sessions (`close{206}`); a config
//! that does not load changes nothing.

mod common;

use common::*;
use crvm_proto::Op;

const BEFORE: &str = r#"
[[tenant]]
app_id = "demo"
secret = "demo-secret"

[[tenant]]
app_id = "acme"
secret = "acme-secret"
"#;

const AFTER: &str = r#"
[[tenant]]
app_id = "demo"
secret = "demo-secret-2"

[[tenant]]
app_id = "newco"
secret = "newco-secret"
"#;

#[test]
fn sighup_reloads_the_tenants_and_ends_a_removed_tenants_sessions() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, BEFORE);
    let mut alice = s.login("demo", "alice");
    let mut carol = s.login("acme", "carol");

    // A config that does not parse changes nothing.
    std::fs::write(&s.config, "tenant = [[[").unwrap();
    s.signal("-HUP");
    assert!(
        s.log_says("the tenants stay as they were"),
        "{}",
        s.log_text()
    );
    assert_eq!(s.login_code("acme", "acme-secret", "dave"), 0);

    std::fs::write(&s.config, AFTER).unwrap();
    s.signal("-HUP");
    carol.expect_close(206);
    assert!(
        s.log_says(r#"added ["newco"], removed ["acme"] (1 session(s) ended), changed ["demo"]"#),
        "{}",
        s.log_text()
    );
    // Alice, logged in with the old secret, stays; new logins take the new tenants.
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(s.login_code("demo", "demo-secret", "bob"), 7);
    assert_eq!(s.login_code("demo", "demo-secret-2", "bob"), 0);
    assert_eq!(s.login_code("acme", "acme-secret", "erin"), 7);
    assert_eq!(s.login_code("newco", "newco-secret", "frank"), 0);
    assert_eq!(alice.code(Op::SetDnd { dnd: 0 }), 0);
}
