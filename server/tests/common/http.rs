//! HTTP to a server's monitor (docs/API.md §4.2).

use std::io::BufRead;

use super::{Server, PATIENCE};

/// The address on the server's second stdout line.
pub fn monitor_addr(s: &mut Server) -> String {
    let mut line = String::new();
    s.stdout.read_line(&mut line).unwrap();
    line.strip_prefix("crvm-server monitor on ")
        .unwrap_or_else(|| panic!("bad second line {line:?}"))
        .trim()
        .to_owned()
}

/// `method` on `http://addr{path}`, with the bearer `token`: status and body.
pub fn http(method: &str, addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let url = format!("http://{addr}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut resp = match method {
        "POST" => {
            let mut r = agent.post(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send_empty().unwrap()
        }
        _ => {
            let mut r = agent.get(&url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call().unwrap()
        }
    };
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// `GET http://addr/metrics` with `accept` as its `Accept` header: status, `Content-Type` and
/// body.
pub fn scrape_as(addr: &str, accept: Option<&str>) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let mut r = agent.get(&format!("http://{addr}/metrics"));
    if let Some(a) = accept {
        r = r.header("Accept", a);
    }
    let mut resp = r.call().unwrap();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let status = resp.status().as_u16();
    (status, kind, resp.body_mut().read_to_string().unwrap())
}

/// The admin token of the tests' configs.
pub const TOKEN: &str = "admin-token-0123456789";

/// The JSON of a `GET` with [`TOKEN`], which must succeed.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, body) = http("GET", addr, path, Some(TOKEN));
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the series `series` (name and labels exactly as written) in a scrape.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}
