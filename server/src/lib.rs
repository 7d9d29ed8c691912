//! crvm-server: authentication, presence, meetings, calls and data relay for libcrvm clients (SPEC §3–§4).
//!
//! Where things live:
//! - [`cli`]: argument parsing, the `token` subcommand and process start-up;
//! - [`config`]: the TOML configuration and the `--dev` defaults;
//! - [`server`]: the listener, the set of live connections and graceful shutdown;
//! - [`conn`]: one task per connection — framing, deadlines, rate limit, teardown, linger;
//! - [`handlers`]: what each message does, one module per area (session, presence, meetings,
//!   calls, data);
//! - [`outbox`]: the bounded outbound queue and the writer task of a connection;
//! - [`hub`]: who is online where, presence and calls: node-local [`hub::LocalSessions`] and
//!   the shared [`hub::Directory`], [`hub::PresenceStore`] and [`hub::CallStore`],
//!   in memory on one node, in Redis for a cluster;
//! - [`calls`]: the call state machine (pure state; the hub applies its effects);
//! - [`relay`]: point-to-point cmds and transfers, routed and queued with end-to-end flow
//!   control;
//! - [`store`]: durable meetings behind [`store::MeetingStore`] (SQLite by default);
//! - [`tls`]: the TLS acceptor (rustls), when the config names a certificate and key;
//! - [`limits`]: request-rate buckets and failed-login counters;
//! - [`auth`]: secrets, per-user tokens and constant-time comparison;
//! - [`random`]: the OS random source (meeting IDs, passwords, generated user IDs);
//! - [`log`]: one line per event on stderr.

pub mod log;

pub mod admin;
pub mod app;
pub mod args;
pub mod auth;
pub mod calls;
pub mod config;
pub mod conn;
pub mod ctx;
pub mod handlers;
pub mod hub;
pub mod ids;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod random;
pub mod relay;
pub mod resume;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
