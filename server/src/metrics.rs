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

    /// The text of a scrape, with the gauges of what exists now: sessions per tenant (every
    /// tenant of the config, 0 included) and calls in progress (unchanged when `None`: the
    /// shared state could not say).
    pub fn scrape(&self, sessions: &[(String, usize)], calls_active: Option<usize>) -> String {
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
        out
    }

    /// Open client connections.
    pub fn connections(&self) -> i64 {
        self.connections.get()
    }
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
