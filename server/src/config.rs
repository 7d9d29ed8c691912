//! Server configuration: the TOML file of docs/API.md §4 (pinned keys), the `--dev` defaults, and the
//! command-line overrides applied on top.
//!
//! ```toml
//! listen = "0.0.0.0:5210"
//! data_dir = "/var/lib/crvm"
//! call_timeout_s = 30
//! max_buffer_bytes = 104857600
//! max_file_bytes = 4294967296
//! pub_meet_url_base = "https://meet.example.com/m"
//! resume_window_s = 60          # how long a dropped session is held for its resume (0: never)
//! reconnecting_after_ms = 5000  # a held session shows as reconnecting after this (0: never)
//! heartbeat_ms = 10000          # extension: ping interval, mostly for tests
//!
//! monitor_listen = "127.0.0.1:8222"  # optional: /healthz, /metrics (docs/API.md §4.2)
//! admin_token = "…"             # optional: the admin API under /v1/ on the monitor
//!
//! [cluster]                     # optional: many nodes on one Redis (docs/CLUSTER.md)
//! redis = "redis://127.0.0.1:6379/0"  # or: sentinels = ["h1:26379", …], sentinel_master = "m"
//! node_id = "n1"                # default: generated at start
//! advertise = "10.0.0.5:5210"   # where clients reach this node; default: the bound address
//! ws_advertise = "10.0.0.5:8443" # where browsers reach it; default: the ws_listen address
//! node_timeout_ms = 5000
//!
//! [[tenant]]
//! app_id = "acme"
//! secret = "…"
//! auth = "either"               # secret | token | either
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crvm_proto::msg::limits;
use serde::Deserialize;

/// May a node ID contain this byte? (It names Redis keys and channels.)
fn node_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5210";
/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./crvm-data";
/// Default `pub_meet_url_base`.
pub const DEFAULT_MEET_URL_BASE: &str = "https://meet.example.com/m";
/// The tenant of `--dev` (pinned).
pub const DEV_APP_ID: &str = "demo";
/// The secret of the `--dev` tenant (pinned).
pub const DEV_SECRET: &str = "demo-secret";

/// How a tenant's users prove who they are (docs/API.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The tenant secret; the token field is ignored.
    #[default]
    Secret,
    /// A per-user token; the secret field is ignored.
    Token,
    /// A token when one is given, otherwise the secret.
    Either,
}

/// One `[[tenant]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub app_id: String,
    pub secret: String,
    #[serde(default)]
    pub auth: AuthMode,
    /// The web pages (`Origin`s, e.g. `https://app.example.com`) whose browsers may log in to
    /// this tenant over WebSocket; `"*"` allows any. Absent: none (any for `--dev`). Clients
    /// that send no `Origin` (every non-browser client) are not concerned.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
}

impl Tenant {
    /// Whether a browser on the page `origin` may log in to this tenant.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .flatten()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// The file as written; every key optional except the tenants' own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    call_timeout_s: Option<u64>,
    max_buffer_bytes: Option<u64>,
    max_file_bytes: Option<u64>,
    pub_meet_url_base: Option<String>,
    heartbeat_ms: Option<u64>,
    resume_window_s: Option<u64>,
    reconnecting_after_ms: Option<u64>,
    max_resumes_per_s: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    hello_timeout_ms: Option<u64>,
    frame_timeout_ms: Option<u64>,
    max_requests_per_s: Option<u64>,
    login_failures_per_source: Option<u64>,
    login_failures_per_tenant: Option<u64>,
    monitor_listen: Option<String>,
    admin_token: Option<String>,
    ws_listen: Option<String>,
    cluster: Option<Cluster>,
    #[serde(default)]
    tenant: Vec<Tenant>,
}

/// The `[cluster]` table (docs/API.md §4.1, pinned keys).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The Redis every node shares: `redis://host:port/db` or `unix:///path/to/socket`. Or,
    /// instead, the primary that `sentinel_master` names to `sentinels`.
    #[serde(default)]
    pub redis: String,
    /// `HOST:PORT` of each Redis Sentinel that watches the primary (instead of `redis`).
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// The name the sentinels know the primary by.
    pub sentinel_master: Option<String>,
    /// Unique per node; generated at start when absent.
    pub node_id: Option<String>,
    /// `HOST:PORT` where clients reach this node directly; the bound address when absent.
    pub advertise: Option<String>,
    /// `HOST:PORT` where browsers reach this node's WebSocket directly (a drain sends them
    /// there); the bound `ws_listen` address when absent.
    pub ws_advertise: Option<String>,
    /// A node silent this long is dead; a node without Redis this long closes its sessions.
    #[serde(default = "default_node_timeout_ms")]
    pub node_timeout_ms: u64,
}

/// `HOST:PORT` with a port number.
fn host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn default_node_timeout_ms() -> u64 {
    5000
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `HOST:PORT` to bind; port 0 picks a free port.
    pub listen: String,
    /// Where `crvm.sqlite3` lives; created if missing.
    pub data_dir: PathBuf,
    /// Seconds a call may ring before it is given up (used by the call state machine).
    pub call_timeout_s: u64,
    /// Largest `send_buffer`, announced to clients in `Welcome`.
    pub max_buffer_bytes: u64,
    /// Largest `send_file`, announced to clients in `Welcome`.
    pub max_file_bytes: u64,
    /// `pubMeetUrl` is this, without a trailing `/`, plus `/` and the meeting ID.
    pub pub_meet_url_base: String,
    /// Silence after which the server pings; three intervals (at most 30 s) of silence from a
    /// client drop it.
    pub heartbeat_ms: u64,
    /// Seconds a session whose connection dropped is held for the client to resume it
    /// (docs/API.md §3.6); 0 ends it at once.
    pub resume_window_s: u64,
    /// Milliseconds a dropped session must have been held before its user's status says
    /// `"reconnecting": true` (docs/API.md §3.2); 0 never says it. Shorter blips show nothing.
    pub reconnecting_after_ms: u64,
    /// Resumes this node accepts per second (twice that in a burst); beyond, a client is told
    /// to retry later, so that a reconnect storm cannot starve the sessions already here.
    pub max_resumes_per_s: u64,
    /// Certificate chain and private key (PEM) to serve TLS with; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A new connection must complete TLS (if any) and say `hello` within this.
    pub hello_timeout_ms: u64,
    /// A frame whose first byte has arrived must be complete within this (slow-drip defence).
    pub frame_timeout_ms: u64,
    /// Control frames a connection may send per second (twice that in a burst) before it is
    /// closed as a flood.
    pub max_requests_per_s: u64,
    /// Failed logins allowed per minute from one source address, and into one tenant, before
    /// further logins from there (into it) are refused for the rest of the minute.
    pub login_failures_per_source: u64,
    pub login_failures_per_tenant: u64,
    /// `HOST:PORT` of the monitor's HTTP listener (`/healthz`, `/metrics`); off when absent.
    pub monitor_listen: Option<String>,
    /// The bearer token of the admin API (under `/v1/` on the monitor); no admin API when
    /// absent.
    pub admin_token: Option<String>,
    /// `HOST:PORT` of the WebSocket listener (path `/crvm`; `wss://` with TLS); off when absent.
    pub ws_listen: Option<String>,
    /// Set when this node is one of a cluster.
    pub cluster: Option<Cluster>,
    pub tenants: Vec<Tenant>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            data_dir: DEFAULT_DATA_DIR.into(),
            call_timeout_s: 30,
            max_buffer_bytes: 100 * 1024 * 1024,
            max_file_bytes: 4 * 1024 * 1024 * 1024,
            pub_meet_url_base: DEFAULT_MEET_URL_BASE.into(),
            heartbeat_ms: 10_000,
            resume_window_s: 60,
            reconnecting_after_ms: 5000,
            max_resumes_per_s: 500,
            tls_cert: None,
            tls_key: None,
            hello_timeout_ms: 10_000,
            frame_timeout_ms: 10_000,
            max_requests_per_s: 50_000,
            login_failures_per_source: 50,
            login_failures_per_tenant: 1000,
            monitor_listen: None,
            admin_token: None,
            ws_listen: None,
            cluster: None,
            tenants: Vec::new(),
        }
    }
}

impl Config {
    /// The `--dev` configuration: defaults plus the `demo` tenant.
    pub fn dev() -> Config {
        Config {
            tenants: vec![Tenant {
                app_id: DEV_APP_ID.into(),
                secret: DEV_SECRET.into(),
                auth: AuthMode::Secret,
                allowed_origins: Some(vec!["*".into()]),
            }],
            ..Config::default()
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }

    /// Parses and validates config text. Unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let f: FileConfig = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let d = Config::default();
        let c = Config {
            listen: f.listen.unwrap_or(d.listen),
            data_dir: f.data_dir.unwrap_or(d.data_dir),
            call_timeout_s: f.call_timeout_s.unwrap_or(d.call_timeout_s),
            max_buffer_bytes: f.max_buffer_bytes.unwrap_or(d.max_buffer_bytes),
            max_file_bytes: f.max_file_bytes.unwrap_or(d.max_file_bytes),
            pub_meet_url_base: f.pub_meet_url_base.unwrap_or(d.pub_meet_url_base),
            heartbeat_ms: f.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            resume_window_s: f.resume_window_s.unwrap_or(d.resume_window_s),
            reconnecting_after_ms: f.reconnecting_after_ms.unwrap_or(d.reconnecting_after_ms),
            max_resumes_per_s: f.max_resumes_per_s.unwrap_or(d.max_resumes_per_s),
            tls_cert: f.tls_cert,
            tls_key: f.tls_key,
            hello_timeout_ms: f.hello_timeout_ms.unwrap_or(d.hello_timeout_ms),
            frame_timeout_ms: f.frame_timeout_ms.unwrap_or(d.frame_timeout_ms),
            max_requests_per_s: f.max_requests_per_s.unwrap_or(d.max_requests_per_s),
            login_failures_per_source: f
                .login_failures_per_source
                .unwrap_or(d.login_failures_per_source),
            login_failures_per_tenant: f
                .login_failures_per_tenant
                .unwrap_or(d.login_failures_per_tenant),
            monitor_listen: f.monitor_listen,
            admin_token: f.admin_token,
            ws_listen: f.ws_listen,
            cluster: f.cluster,
            tenants: f.tenant,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("`tls_cert` and `tls_key` go together".into());
        }
        for (key, v) in [
            ("call_timeout_s", self.call_timeout_s),
            ("max_buffer_bytes", self.max_buffer_bytes),
            ("max_file_bytes", self.max_file_bytes),
            ("heartbeat_ms", self.heartbeat_ms),
            ("hello_timeout_ms", self.hello_timeout_ms),
            ("frame_timeout_ms", self.frame_timeout_ms),
            ("max_requests_per_s", self.max_requests_per_s),
            ("max_resumes_per_s", self.max_resumes_per_s),
            ("login_failures_per_source", self.login_failures_per_source),
            ("login_failures_per_tenant", self.login_failures_per_tenant),
        ] {
            if v == 0 {
                return Err(format!("`{key}` must be greater than 0"));
            }
        }
        if let Some(t) = &self.admin_token {
            if self.monitor_listen.is_none() {
                return Err(
                    "`admin_token` needs `monitor_listen`: the admin API is served there".into(),
                );
            }
            if t.len() < 16 {
                return Err("`admin_token` must be at least 16 characters".into());
            }
        }
        if let Some(c) = &self.cluster {
            match (
                c.redis.is_empty(),
                c.sentinels.is_empty(),
                &c.sentinel_master,
            ) {
                (false, true, None) => {}
                (true, false, Some(m)) if !m.is_empty() => {
                    if let Some(bad) = c.sentinels.iter().find(|s| !host_port(s)) {
                        return Err(format!("`cluster.sentinels`: {bad:?} is not HOST:PORT"));
                    }
                }
                (true, true, _) => {
                    return Err(
                        "`[cluster]` needs `redis`, or `sentinels` with `sentinel_master`".into(),
                    )
                }
                (false, false, _) | (false, true, Some(_)) => {
                    return Err("`cluster.redis` and `cluster.sentinels` exclude each other".into())
                }
                (true, false, _) => {
                    return Err("`cluster.sentinels` needs a non-empty `sentinel_master`".into())
                }
            }
            if c.node_timeout_ms < 500 {
                return Err("`cluster.node_timeout_ms` must be at least 500".into());
            }
            match &c.node_id {
                Some(id) if id.is_empty() || id.len() > 64 || !id.bytes().all(node_id_byte) => {
                    return Err(
                        "`cluster.node_id` must be 1 to 64 letters, digits, `-`, `_` or `.`".into(),
                    )
                }
                _ => {}
            }
        }
        if self.listen.is_empty() {
            return Err("`listen` must not be empty".into());
        }
        let mut seen = HashSet::new();
        for t in &self.tenants {
            if t.app_id.is_empty() || t.app_id.len() > limits::APP_ID_MAX {
                return Err(format!(
                    "tenant `app_id` must be 1 to {} bytes",
                    limits::APP_ID_MAX
                ));
            }
            // An empty secret would let anyone in (secret auth) or sign tokens with a blank key.
            if t.secret.is_empty() || t.secret.len() > limits::SECRET_MAX {
                return Err(format!(
                    "tenant {:?}: `secret` must be 1 to {} bytes",
                    t.app_id,
                    limits::SECRET_MAX
                ));
            }
            if !seen.insert(t.app_id.as_str()) {
                return Err(format!("duplicate tenant app_id {:?}", t.app_id));
            }
        }
        Ok(())
    }

    /// The tenant registered as `app_id`.
    pub fn tenant(&self, app_id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.app_id == app_id)
    }

    /// `pubMeetUrl` of meeting `id`.
    pub fn meet_url(&self, id: i32) -> String {
        format!("{}/{id}", self.pub_meet_url_base.trim_end_matches('/'))
    }

    /// How long a logged-in connection may stay silent before it is dropped.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.saturating_mul(3)).min(Duration::from_secs(30))
    }

    /// How long a dropped session is held (docs/API.md §3.6).
    pub fn resume_window(&self) -> Duration {
        Duration::from_secs(self.resume_window_s)
    }

    /// How long a dropped session is held before its user shows as reconnecting; `None`:
    /// never.
    pub fn reconnecting_after(&self) -> Option<Duration> {
        (self.reconnecting_after_ms > 0).then(|| Duration::from_millis(self.reconnecting_after_ms))
    }

    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }

    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms)
    }

    /// Interval of the server's own pings.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// The tenants in force: the config's, replaced whole when the server reloads its config file
/// (SIGHUP). Everything else in [`Config`] is read once, at start.
#[derive(Debug, Default)]
pub struct Tenants(parking_lot::RwLock<Arc<Vec<Tenant>>>);

/// What a [`Tenants::replace`] changed, by app ID.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TenantChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Secret or auth mode changed (sessions logged in before keep going).
    pub changed: Vec<String>,
}

impl Tenants {
    pub fn new(list: Vec<Tenant>) -> Tenants {
        Tenants(parking_lot::RwLock::new(Arc::new(list)))
    }

    /// The tenant registered as `app_id`.
    pub fn get(&self, app_id: &str) -> Option<Tenant> {
        self.0.read().iter().find(|t| t.app_id == app_id).cloned()
    }

    pub fn list(&self) -> Arc<Vec<Tenant>> {
        Arc::clone(&self.0.read())
    }

    /// Puts `list` in force.
    pub fn replace(&self, list: Vec<Tenant>) -> TenantChanges {
        let mut cur = self.0.write();
        let find = |l: &[Tenant], id: &str| l.iter().find(|t| t.app_id == id).cloned();
        let mut ch = TenantChanges::default();
        for t in &list {
            match find(&cur, &t.app_id) {
                None => ch.added.push(t.app_id.clone()),
                Some(old) if old != *t => ch.changed.push(t.app_id.clone()),
                Some(_) => {}
            }
        }
        for t in cur.iter() {
            if find(&list, &t.app_id).is_none() {
                ch.removed.push(t.app_id.clone());
            }
        }
        *cur = Arc::new(list);
        ch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_keys_parse() {
        let c = Config::from_toml(
            r#"
            listen = "0.0.0.0:7000"
            data_dir = "/tmp/x"
            call_timeout_s = 12
            max_buffer_bytes = 1000
            max_file_bytes = 8589934592
            pub_meet_url_base = "https://m.example/r/"
            heartbeat_ms = 250

            [[tenant]]
            app_id = "a"
            secret = "s1"
            auth = "token"

            [[tenant]]
            app_id = "b"
            secret = "s2"
            auth = "either"

            [[tenant]]
            app_id = "c"
            secret = "s3"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:7000");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.call_timeout_s, 12);
        assert_eq!(c.max_buffer_bytes, 1000);
        assert_eq!(c.max_file_bytes, 8_589_934_592);
        assert_eq!(c.heartbeat_ms, 250);
        assert_eq!(c.meet_url(12345678), "https://m.example/r/12345678");
        assert_eq!(c.tenant("a").unwrap().auth, AuthMode::Token);
        assert_eq!(c.tenant("b").unwrap().auth, AuthMode::Either);
        assert_eq!(c.tenant("c").unwrap().auth, AuthMode::Secret);
        assert!(c.tenant("d").is_none());
        assert_eq!(c.idle_timeout(), Duration::from_millis(750));
    }

    #[test]
    fn defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.call_timeout_s, 30);
        assert_eq!(c.max_buffer_bytes, 100 * 1024 * 1024);
        assert_eq!(c.max_file_bytes, 4 * 1024 * 1024 * 1024);
        assert_eq!(c.heartbeat_ms, 10_000);
        assert_eq!(c.meet_url(10000001), "https://meet.example.com/m/10000001");
        assert_eq!(c.idle_timeout(), Duration::from_secs(30));
        let dev = Config::dev();
        assert_eq!(dev.tenant("demo").unwrap().secret, "demo-secret");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_toml("listen = \"x:1\"\nlisten_port = 5\n").unwrap_err();
        assert!(e.contains("listen_port"), "{e}");
        let e = Config::from_toml("[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\npassword = \"p\"\n")
            .unwrap_err();
        assert!(e.contains("password"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let e = Config::from_toml("[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\nauth = \"oauth\"\n")
            .unwrap_err();
        assert!(e.contains("oauth"), "{e}");
        let e = Config::from_toml(
            "[[tenant]]\napp_id = \"a\"\nsecret = \"s\"\n[[tenant]]\napp_id = \"a\"\nsecret = \"t\"\n",
        )
        .unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        assert!(Config::from_toml("[[tenant]]\napp_id = \"a\"\nsecret = \"\"\n").is_err());
        assert!(Config::from_toml("[[tenant]]\nsecret = \"s\"\n").is_err());
        assert!(Config::from_toml("heartbeat_ms = 0\n").is_err());
        assert!(Config::from_toml("call_timeout_s = -1\n").is_err());
        assert!(Config::from_toml("listen = 5210\n").is_err());
    }

    #[test]
    fn the_cluster_reaches_redis_directly_or_through_sentinel() {
        let check = |cluster: &str| {
            Config::from_toml(&format!("[cluster]\n{cluster}")).and_then(|c| c.validate())
        };
        assert!(check("redis = \"redis://127.0.0.1:6379/0\"").is_ok());
        let ok =
            check("sentinels = [\"10.0.0.2:26379\", \"h3:26379\"]\nsentinel_master = \"crvm\"");
        assert!(ok.is_ok(), "{ok:?}");
        let c = Config::from_toml(
            "[cluster]\nsentinels = [\"10.0.0.2:26379\"]\nsentinel_master = \"crvm\"",
        )
        .unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(
            crate::primary::Primary::of(cluster),
            crate::primary::Primary::Sentinel {
                sentinels: vec!["10.0.0.2:26379".into()],
                master: "crvm".into()
            }
        );
        for (bad, says) in [
            ("node_id = \"n1\"", "needs `redis`"),
            (
                "redis = \"redis://h/\"\nsentinels = [\"h:1\"]\nsentinel_master = \"m\"",
                "exclude each other",
            ),
            (
                "sentinels = [\"h:1\"]",
                "needs a non-empty `sentinel_master`",
            ),
            ("sentinels = [\"h:1\"]\nsentinel_master = \"\"", "non-empty"),
            (
                "sentinels = [\"h\"]\nsentinel_master = \"m\"",
                "is not HOST:PORT",
            ),
            (
                "sentinels = [\"h:0\"]\nsentinel_master = \"m\"",
                "is not HOST:PORT",
            ),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
