//! `crvm-server admin …`: the admin API of a running server (docs/API.md §4.2, [`crate::monitor`])
//! from the command line. Prints the server's JSON answer; exits 0 on success, 1 when the
//! server refused or could not be reached (the reason on stderr), 2 on bad usage.

use std::time::Duration;

/// What to ask, of which server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOpts {
    /// The monitor's base URL, e.g. `http://127.0.0.1:8222`.
    pub url: String,
    pub token: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Stats,
    Sessions {
        tenant: String,
        after: Option<String>,
        limit: Option<usize>,
    },
    Calls {
        tenant: String,
    },
    Kick {
        tenant: String,
        user: String,
    },
    Drain,
}

/// Percent-encodes `s` for one path segment or query value (unreserved bytes stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Action {
    /// The method and the path (with query) of the request.
    fn request(&self) -> (&'static str, String) {
        match self {
            Action::Stats => ("GET", "/v1/stats".into()),
            Action::Sessions {
                tenant,
                after,
                limit,
            } => {
                let mut q = Vec::new();
                if let Some(a) = after {
                    q.push(format!("after={}", encode(a)));
                }
                if let Some(l) = limit {
                    q.push(format!("limit={l}"));
                }
                let mut path = format!("/v1/tenants/{}/sessions", encode(tenant));
                if !q.is_empty() {
                    path = format!("{path}?{}", q.join("&"));
                }
                ("GET", path)
            }
            Action::Calls { tenant } => ("GET", format!("/v1/tenants/{}/calls", encode(tenant))),
            Action::Drain => ("POST", "/v1/drain".into()),
            Action::Kick { tenant, user } => (
                "POST",
                format!("/v1/tenants/{}/users/{}/kick", encode(tenant), encode(user)),
            ),
        }
    }
}

/// Runs the request; the exit status.
pub fn run(o: &AdminOpts) -> i32 {
    let (method, path) = o.action.request();
    let url = format!("{}{path}", o.url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = format!("Bearer {}", o.token);
    let sent = match method {
        "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    };
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crvm-server admin: {url}: {e}");
            return 1;
        }
    };
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if status.is_success() {
        println!("{}", body.trim_end());
        0
    } else {
        eprintln!("crvm-server admin: {status}: {}", body.trim_end());
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        let kick = Action::Kick {
            tenant: "acme".into(),
            user: "a/b c?#é".into(),
        };
        assert_eq!(
            kick.request(),
            (
                "POST",
                "/v1/tenants/acme/users/a%2Fb%20c%3F%23%C3%A9/kick".into()
            )
        );
        let page = Action::Sessions {
            tenant: "t".into(),
            after: Some("x&y".into()),
            limit: Some(5),
        };
        assert_eq!(
            page.request().1,
            "/v1/tenants/t/sessions?after=x%26y&limit=5"
        );
        assert_eq!(Action::Drain.request(), ("POST", "/v1/drain".into()));
    }
}
