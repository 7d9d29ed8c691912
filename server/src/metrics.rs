//! What the server counts for its operator (docs/API.md §4.2), in Prometheus's text format at the
//! monitor's `/metrics`. Labels are bounded: a tenant (from the config), a result, a reason,
//! an outcome or a request's kind — never a user ID.
//!
//! The counters and the request histogram are kept where things happen, through [`get`] (one
//! server per process); the gauges of what exists now (connections, sessions per tenant,
//! calls in progress) are read when a scrape asks.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Tenant {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Result_ {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    request: &'static str,
}

type Histograms = Family<Request, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    sessions: Family<Tenant, Gauge>,
    calls_active: Gauge,
    logins: Family<Result_, Counter>,
    relay_bytes: Counter,
    cmds: Counter,
    opened: Counter,
    closed: Family<Reason, Counter>,
    calls: Family<Outcome, Counter>,
    overflows: Counter,
    requests: Histograms,
    /// One scrape at a time: each sets the gauges, then encodes them.
    scraping: parking_lot::Mutex<()>,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

fn request_histogram() -> Histogram {
    // 50 µs to 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            connections: Gauge::default(),
            sessions: Family::default(),
            calls_active: Gauge::default(),
            logins: Family::default(),
            relay_bytes: Counter::default(),
            cmds: Counter::default(),
            opened: Counter::default(),
            closed: Family::default(),
            calls: Family::default(),
            overflows: Counter::default(),
            requests: Family::new_with_constructor(request_histogram),
            scraping: parking_lot::Mutex::new(()),
        };
        let r = &mut m.registry;
        r.register(
            "crvm_connections",
            "Client connections open",
            m.connections.clone(),
        );
        r.register(
            "crvm_sessions",
            "Logged-in sessions on this node, by tenant",
            m.sessions.clone(),
        );
        r.register(
            "crvm_calls_active",
            "Calls ringing or connected (in a cluster: of the whole cluster)",
            m.calls_active.clone(),
        );
        r.register(
            "crvm_logins",
            "Logins answered, by result",
            m.logins.clone(),
        );
        r.register(
            "crvm_relay_bytes",
            "Bytes of cmds, buffers and files relayed to their receivers",
            m.relay_bytes.clone(),
        );
        r.register(
            "crvm_cmds_relayed",
            "Cmds handed to their receivers",
            m.cmds.clone(),
        );
        r.register(
            "crvm_connections_opened",
            "Client connections accepted",
            m.opened.clone(),
        );
        r.register(
            "crvm_connections_closed",
            "Client connections ended, by reason",
            m.closed.clone(),
        );
        r.register(
            "crvm_calls",
            "Call events, by outcome (each counted once, at the node of the party told)",
            m.calls.clone(),
        );
        r.register(
            "crvm_outbox_overflows",
            "Sessions closed because their outbox overflowed (a client that does not read)",
            m.overflows.clone(),
        );
        r.register(
            "crvm_request_duration_seconds",
            "Time from a request's arrival to the end of its handling, by kind",
            m.requests.clone(),
        );
        m
    }

    pub fn login(&self, code: i32) {
        self.logins
            .get_or_create(&Result_ {
                result: login_result(code),
            })
            .inc();
    }

    pub fn relayed_cmd(&self, bytes: usize) {
        self.cmds.inc();
        self.relay_bytes.inc_by(bytes as u64);
    }

    pub fn relayed_data(&self, bytes: usize) {
        self.relay_bytes.inc_by(bytes as u64);
    }

    pub fn opened(&self) {
        self.opened.inc();
        self.connections.inc();
    }

    pub fn closed(&self, reason: &'static str) {
        self.connections.dec();
        self.closed.get_or_create(&Reason { reason }).inc();
    }

    pub fn call(&self, outcome: &'static str) {
        self.calls.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn overflow(&self) {
        self.overflows.inc();
    }

    pub fn request(&self, request: &'static str, took: Duration) {
        self.requests
            .get_or_create(&Request { request })
            .observe(took.as_secs_f64());
    }

    /// The text of a scrape in `format`, with the gauges of what exists now: sessions per
    /// tenant (every tenant of the config, 0 included) and calls in progress (unchanged when
    /// `None`: the shared state could not say).
    pub fn scrape(
        &self,
        format: Format,
        sessions: &[(String, usize)],
        calls_active: Option<usize>,
    ) -> String {
        let _one = self.scraping.lock();
        // Cleared first: a tenant removed by a reload has no series any more.
        self.sessions.clear();
        for (tenant, n) in sessions {
            self.sessions
                .get_or_create(&Tenant {
                    tenant: tenant.clone(),
                })
                .set(*n as i64);
        }
        if let Some(n) = calls_active {
            self.calls_active.set(n as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => classic(&out),
        }
    }

    /// Open client connections.
    pub fn connections(&self) -> i64 {
        self.connections.get()
    }
}

/// The two text formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus's classic text format, version 0.0.4: what a scraper gets unless it asks
    /// for OpenMetrics.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of any plain-text range
    /// (Prometheus itself sends OpenMetrics at q=1 and `text/plain` at q=0.5); the classic
    /// format otherwise, and without an `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let (mut open, mut plain) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|v| v.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= plain {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// OpenMetrics text rewritten in the classic format: a counter family's `HELP` and `TYPE`
/// lines name its samples (`x_total`, not `x`), `unknown` becomes `untyped`, and the
/// OpenMetrics-only lines (`# UNIT`, `# EOF`) go. Samples are written the same in both.
fn classic(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 64);
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|tag| Some((tag, line.strip_prefix(tag)?)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(tag);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(if tag == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The `result` label of a login answered with `code`.
fn login_result(result: i32) -> &'static str {
    use crvm_proto::error::*;
    match result {
        CRVIDEOSDK_NOERR => "ok",
        CRVIDEOSDK_ANCTPSWD_ERR => "bad_secret",
        CRVIDEOSDK_TOKEN_AUTH_FAILED | CRVIDEOSDK_TOKEN_TIMEOUT | CRVIDEOSDK_CUSTOMAUTH_NOINFO => {
            "bad_token"
        }
        CRVIDEOSDK_MEETPARAM_ERR => "bad_request",
        CRVIDEOSDK_SERVER_EXCEPTION => "unavailable",
        _ => "refused",
    }
}

/// The `request` label of a message from a client: its kind.
pub fn request_kind(msg: &crvm_proto::ClientMsg) -> &'static str {
    use crvm_proto::{ClientMsg as M, Op};
    match msg {
        M::Hello { .. } => "hello",
        M::Resume { .. } => "resume",
        M::Cmd { .. } => "cmd",
        M::CmdAck { .. } => "cmd_ack",
        M::DataEnd { .. } => "data_end",
        M::Cancel { .. } => "cancel",
        M::Ack { .. } => "ack",
        M::Fin { .. } => "fin",
        M::CancelAck { .. } => "cancel_ack",
        M::Req { op, .. } => match op {
            Op::Login { .. } => "login",
            Op::Logout => "logout",
            Op::SetDnd { .. } => "set_dnd",
            Op::GetUserStatus => "get_user_status",
            Op::StartStatusNotify => "start_status_notify",
            Op::StopStatusNotify => "stop_status_notify",
            Op::CreateMeeting { .. } => "create_meeting",
            Op::DestroyMeeting { .. } => "destroy_meeting",
            Op::GetMeetings => "get_meetings",
            Op::Call { .. } => "call",
            Op::AcceptCall { .. } => "accept_call",
            Op::RejectCall { .. } => "reject_call",
            Op::HangupCall { .. } => "hangup_call",
            Op::Offer { .. } => "offer",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_openmetrics_only_when_asked_for_first() {
        use Format::*;
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), OpenMetrics);
        assert_eq!(Format::from_accept(None), Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Prometheus);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Prometheus
        );
        assert_eq!(
            Format::from_accept(Some("text/plain, application/openmetrics-text;q=0.5")),
            Prometheus
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0")),
            Prometheus
        );
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text")),
            OpenMetrics
        );
    }

    #[test]
    fn the_classic_format_names_each_family_by_its_samples() {
        let m = Metrics::new();
        m.login(0);
        m.relayed_cmd(5);
        m.request("call", Duration::from_millis(3));
        let open = m.scrape(Format::OpenMetrics, &[("demo".into(), 1)], Some(0));
        assert!(open.ends_with("# EOF\n"));
        assert!(open.contains("# TYPE crvm_relay_bytes counter\n"));
        let text = m.scrape(Format::Prometheus, &[("demo".into(), 1)], Some(0));
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# HELP crvm_relay_bytes_total Bytes of cmds"));
        assert!(text.contains("# TYPE crvm_relay_bytes_total counter\n"));
        assert!(text.contains("crvm_relay_bytes_total 5\n"));
        assert!(text.contains("# TYPE crvm_connections gauge\n"));
        assert!(text.contains("# TYPE crvm_request_duration_seconds histogram\n"));
        // Every sample belongs to the family declared before it: its name, or for a
        // histogram its name with _bucket, _sum or _count.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap().to_owned();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| *b == family)
                .unwrap_or(name);
            assert_eq!(base, family, "{line} in\n{text}");
        }
    }
}
