//! crvm-server: authentication, presence, meetings, calls and data relay for libcrvm clients (docs/API.md §3–§4).
//!
//! Where things live, from the process down to a message. No files import one another in a
//! circle, directly or through others (`scripts/circles.py` checks).
//!
//! Start-up and operation
//! - [`app`]: start-up and wiring: runs the command, builds the shared state, serves until a
//!   signal;
//! - [`args`]: the command line (clap) and the commands it stands for;
//! - [`config`]: the TOML configuration and the `--dev` defaults;
//! - [`admin`]: `crvm-server admin …`, a client of the admin API;
//! - [`monitor`]: the HTTP monitor (health, Prometheus metrics) and the admin API;
//! - [`metrics`]: the counters and histograms the monitor exports;
//! - [`log`]: one line per event on stderr.
//!
//! Connections and sessions
//! - [`server`]: the listener and graceful shutdown;
//! - [`ctx`]: what every connection shares ([`ctx::Ctx`]) and the set of live connections;
//! - [`conn`]: one task per connection — framing, deadlines, rate limit, teardown, linger;
//! - [`handlers`]: what each message does to a [`handlers::ServerSession`], one module per
//!   area (session, presence, meetings, calls, data);
//! - [`session`]: a session's phase and user, and the form it is parked in;
//! - [`resume`]: resumable sessions (docs/API.md §3.6): the registry, and parking, expiry and takeover;
//! - [`outbox`]: the bounded outbound queue and the writer task of a connection;
//! - [`ids`]: the identities: connection, login generation, parking epoch, and the relay's
//!   key for a session here or on another node;
//! - [`tls`]: the TLS acceptor (rustls), when the config names a certificate and key;
//! - [`ws`]: the WebSocket transport (`ws_listen`): the handshake's admission (path,
//!   subprotocol, origin) and the pump between messages and a connection's byte stream;
//! - [`limits`]: request-rate buckets and failed-login counters;
//! - [`auth`]: secrets, per-user tokens and constant-time comparison.
//!
//! Shared state and data
//! - [`hub`]: who is online where, presence and calls: node-local [`hub::LocalSessions`] and
//!   the shared [`hub::Directory`], [`hub::PresenceStore`] and [`hub::CallStore`],
//!   in memory on one node, in Redis for a cluster;
//! - [`calls`]: the call state machine (pure state; the hub applies its effects);
//! - [`route`]: the data plane's routing layer: where the other side of a cmd or stream is
//!   (here or on another node), and the [`route::endpoint::Endpoint`] that stands for it;
//! - [`relay`]: point-to-point cmds and transfers, queued with end-to-end flow control (pure
//!   state; its transitions emit effects);
//! - [`link`]: the links between the nodes of a cluster, which carry cmds and transfers;
//! - [`primary`]: where a cluster's Redis primary is (an address, or Redis Sentinel's answer);
//! - [`store`]: durable meetings behind [`store::MeetingStore`]: SQLite on one node, Redis in a
//!   cluster;
//! - [`random`]: the OS random source (meeting IDs, passwords, generated user IDs, secrets).

pub mod log;

pub mod admin;
pub mod app;
pub mod args;
pub mod auth;
pub mod calls;
pub mod config;
pub mod conn;
pub mod ctx;
pub mod drain;
pub mod handlers;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod primary;
pub mod random;
pub mod relay;
pub mod resume;
pub mod route;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod ws;
