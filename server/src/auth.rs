//! Login checks: tenant secrets, per-user tokens, constant-time comparison.
//!
//! # Token format
//!
//! ```text
//! <expiry>.<signature>
//! expiry     Unix seconds, decimal ASCII; the token is valid while now < expiry
//! signature  base64url without padding of
//!            HMAC-SHA256(key = tenant secret,
//!                        msg = "crvm-token-v1\n" + app_id + "\n" + user_id + "\n" + expiry)
//! ```
//!
//! The expiry is signed exactly as it appears in the token. A token binds one user of one
//! tenant; it is minted by `crvm-server token` or by the app's own backend with the same recipe.
//! The signature is checked before the expiry, so only a genuine token can learn it expired.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crvm_proto::error::{
    CRVIDEOSDK_ANCTPSWD_ERR, CRVIDEOSDK_CUSTOMAUTH_NOINFO, CRVIDEOSDK_TOKEN_AUTH_FAILED,
    CRVIDEOSDK_TOKEN_TIMEOUT,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

#[cfg(test)]
use crate::config::Config;
use crate::config::{AuthMode, Tenant};

type HmacSha256 = Hmac<Sha256>;

/// Domain separator of version 1 tokens, so a MAC made for anything else never verifies.
const TOKEN_DOMAIN: &[u8] = b"crvm-token-v1\n";

/// Longest decimal expiry accepted (`u64::MAX` has 20 digits).
const EXPIRY_MAX_DIGITS: usize = 20;

fn token_mac(secret: &str, app_id: &str, user_id: &str, expiry: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    for part in [
        TOKEN_DOMAIN,
        app_id.as_bytes(),
        b"\n",
        user_id.as_bytes(),
        b"\n",
        expiry.as_bytes(),
    ] {
        mac.update(part);
    }
    mac
}

/// Mints a token for `user_id` of `app_id`, valid until `expiry` (Unix seconds).
pub fn mint(secret: &str, app_id: &str, user_id: &str, expiry: u64) -> String {
    let expiry = expiry.to_string();
    let sig = token_mac(secret, app_id, user_id, &expiry)
        .finalize()
        .into_bytes();
    format!("{expiry}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Checks `token` for `user_id` of `app_id` at time `now`.
/// Errors: 21 malformed or wrong signature (including another user or app), 18 expired.
pub fn verify(secret: &str, app_id: &str, user_id: &str, token: &str, now: u64) -> Result<(), i32> {
    let bad = CRVIDEOSDK_TOKEN_AUTH_FAILED;
    let (expiry, sig) = token.split_once('.').ok_or(bad)?;
    if expiry.is_empty()
        || expiry.len() > EXPIRY_MAX_DIGITS
        || !expiry.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad);
    }
    let expiry_secs: u64 = expiry.parse().map_err(|_| bad)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| bad)?;
    // verify_slice compares in constant time.
    token_mac(secret, app_id, user_id, expiry)
        .verify_slice(&sig)
        .map_err(|_| bad)?;
    if now >= expiry_secs {
        return Err(CRVIDEOSDK_TOKEN_TIMEOUT);
    }
    Ok(())
}

/// Compares two secrets in time independent of where they differ and of their lengths:
/// both are hashed first, then the digests are compared without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let (ha, hb) = (Sha256::digest(a), Sha256::digest(b));
    let diff = ha
        .iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Compared against when the app ID is unknown, so that case takes the wrong-secret path.
const NO_TENANT_SECRET: &[u8] = b"\0no tenant\0";

/// What a `Login` request presents.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub app_id: &'a str,
    pub secret: &'a str,
    pub user_id: &'a str,
    pub token: &'a str,
}

/// Decides a login (docs/API.md §3.1). Returns the user ID to log in as — a fresh `u-…` ID when the
/// user ID is empty under secret auth — or the error code for its answer.
/// `tenant` is the one registered as `cred.app_id`, if any.
pub fn authenticate(
    tenant: Option<&Tenant>,
    cred: &Credentials<'_>,
    now: u64,
) -> Result<String, i32> {
    let Some(tenant) = tenant else {
        // Same work and same code as a wrong secret: app IDs cannot be enumerated.
        let _ = ct_eq(cred.secret.as_bytes(), NO_TENANT_SECRET);
        return Err(CRVIDEOSDK_ANCTPSWD_ERR);
    };
    let by_token = match tenant.auth {
        AuthMode::Secret => false,
        AuthMode::Token => true,
        AuthMode::Either => !cred.token.is_empty(),
    };
    if by_token {
        if cred.token.is_empty() {
            return Err(CRVIDEOSDK_CUSTOMAUTH_NOINFO);
        }
        // A token names its user: there is nothing to sign for an empty user ID.
        if cred.user_id.is_empty() {
            return Err(CRVIDEOSDK_TOKEN_AUTH_FAILED);
        }
        verify(&tenant.secret, cred.app_id, cred.user_id, cred.token, now)?;
        return Ok(cred.user_id.to_owned());
    }
    if !ct_eq(cred.secret.as_bytes(), tenant.secret.as_bytes()) {
        return Err(CRVIDEOSDK_ANCTPSWD_ERR);
    }
    if cred.user_id.is_empty() {
        Ok(generated_user_id())
    } else {
        Ok(cred.user_id.to_owned())
    }
}

/// A server-generated user ID: `u-` and 64 random bits in hex, unique in practice.
pub fn generated_user_id() -> String {
    format!("u-{}", crate::random::hex(16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tenant;

    const NOW: u64 = 1_764_000_000;

    #[test]
    fn token_round_trip() {
        let t = mint("s3cret", "acme", "alice", NOW + 60);
        assert!(t.starts_with(&format!("{}.", NOW + 60)));
        assert_eq!(verify("s3cret", "acme", "alice", &t, NOW), Ok(()));
        assert_eq!(verify("s3cret", "acme", "alice", &t, NOW + 59), Ok(()));
    }

    #[test]
    fn expired_token_is_18() {
        let t = mint("s3cret", "acme", "alice", NOW);
        assert_eq!(verify("s3cret", "acme", "alice", &t, NOW), Err(18));
        assert_eq!(verify("s3cret", "acme", "alice", &t, NOW + 1), Err(18));
        // An expired token with a wrong signature says 21, not 18.
        assert_eq!(verify("other", "acme", "alice", &t, NOW + 1), Err(21));
    }

    #[test]
    fn wrong_binding_is_21() {
        let t = mint("s3cret", "acme", "alice", NOW + 60);
        assert_eq!(verify("s3cret", "acme", "bob", &t, NOW), Err(21));
        assert_eq!(verify("s3cret", "other", "alice", &t, NOW), Err(21));
        assert_eq!(verify("wrong", "acme", "alice", &t, NOW), Err(21));
        // Moving the expiry invalidates the signature.
        let (_, sig) = t.split_once('.').unwrap();
        let moved = format!("{}.{sig}", NOW + 6000);
        assert_eq!(verify("s3cret", "acme", "alice", &moved, NOW), Err(21));
        let padded = format!("0{t}");
        assert_eq!(verify("s3cret", "acme", "alice", &padded, NOW), Err(21));
    }

    #[test]
    fn malformed_is_21() {
        for t in [
            "",
            ".",
            "abc",
            "123",
            "123.",
            ".AAAA",
            "12a.AAAA",
            "-5.AAAA",
            "123.!!!",
            "123.AAAA",
            "99999999999999999999999.AAAA",
        ] {
            assert_eq!(verify("s", "a", "u", t, NOW), Err(21), "{t:?}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"demo-secret", b"demo-secret"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"demo-secret", b"demo-secreT"));
        assert!(!ct_eq(b"demo-secret", b"demo"));
        assert!(!ct_eq(b"", b"x"));
    }

    fn config() -> Config {
        let t = |app_id: &str, auth| Tenant {
            app_id: app_id.into(),
            secret: format!("{app_id}-secret"),
            auth,
            allowed_origins: None,
        };
        Config {
            tenants: vec![
                t("s", AuthMode::Secret),
                t("t", AuthMode::Token),
                t("e", AuthMode::Either),
            ],
            ..Config::default()
        }
    }

    fn login(app_id: &str, secret: &str, user_id: &str, token: &str) -> Result<String, i32> {
        let cred = Credentials {
            app_id,
            secret,
            user_id,
            token,
        };
        authenticate(config().tenant(cred.app_id), &cred, NOW)
    }

    #[test]
    fn secret_tenant() {
        assert_eq!(login("s", "s-secret", "alice", ""), Ok("alice".into()));
        assert_eq!(login("s", "s-secret", "alice", "junk"), Ok("alice".into()));
        assert_eq!(login("s", "nope", "alice", ""), Err(7));
        assert_eq!(login("x", "s-secret", "alice", ""), Err(7));
        let generated = login("s", "s-secret", "", "").unwrap();
        assert!(
            generated.starts_with("u-") && generated.len() == 18,
            "{generated}"
        );
        assert_ne!(generated, login("s", "s-secret", "", "").unwrap());
    }

    #[test]
    fn token_tenant() {
        let good = mint("t-secret", "t", "alice", NOW + 60);
        assert_eq!(login("t", "", "alice", &good), Ok("alice".into()));
        assert_eq!(login("t", "wrong", "alice", &good), Ok("alice".into()));
        assert_eq!(login("t", "t-secret", "alice", ""), Err(14));
        assert_eq!(login("t", "", "bob", &good), Err(21));
        assert_eq!(login("t", "", "", &good), Err(21));
        let old = mint("t-secret", "t", "alice", NOW - 1);
        assert_eq!(login("t", "", "alice", &old), Err(18));
    }

    #[test]
    fn either_tenant() {
        let good = mint("e-secret", "e", "alice", NOW + 60);
        assert_eq!(login("e", "", "alice", &good), Ok("alice".into()));
        assert_eq!(login("e", "e-secret", "alice", ""), Ok("alice".into()));
        assert_eq!(login("e", "bad", "alice", ""), Err(7));
        assert_eq!(login("e", "e-secret", "alice", "1.x"), Err(21));
    }
}
