//! The monitor (docs/API.md §4.2): an HTTP listener on `monitor_listen`, on the server's runtime.
//!
//! - `GET /healthz`: 200 while the server serves, 503 while it cannot (in a cluster: Redis
//!   unreachable, or this node not a member).
//! - `GET /metrics`: Prometheus's classic text format, or OpenMetrics when the scraper's
//!   `Accept` asks for it ([`crate::metrics`]).
//! - With `admin_token` set, the admin API under `/v1/`, JSON, behind `Authorization: Bearer
//!   <admin_token>` (anything else is 401): `GET /v1/stats`, `GET
//!   /v1/tenants/{tenant}/sessions?after=&limit=`, `GET /v1/tenants/{tenant}/calls`, `POST
//!   /v1/tenants/{tenant}/users/{user}/kick`, `POST /v1/drain` (the node hands its sessions to
//!   the other nodes of its cluster, then stops, as on SIGTERM). docs/SERVER.md has the shapes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::ct_eq;
use crate::ctx::Ctx;
use crate::metrics;

/// Most sessions one page of `/v1/tenants/{tenant}/sessions` lists, and the default.
const PAGE_MAX: usize = 1000;
const PAGE_DEFAULT: usize = 100;

struct Monitor {
    ctx: Arc<Ctx>,
    started: Instant,
}

type Shared = Arc<Monitor>;

/// Binds `addr` and serves the monitor there until the runtime stops. Returns the bound
/// address.
pub async fn start(ctx: Arc<Ctx>, addr: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let admin = ctx.config.admin_token.is_some();
    let m = Arc::new(Monitor {
        ctx,
        started: Instant::now(),
    });
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(scrape));
    if admin {
        let v1 = Router::new()
            .route("/v1/stats", get(stats))
            .route("/v1/tenants/{tenant}/sessions", get(sessions))
            .route("/v1/tenants/{tenant}/calls", get(calls))
            .route("/v1/tenants/{tenant}/users/{user}/kick", post(kick))
            .route("/v1/drain", post(drain))
            .route_layer(middleware::from_fn_with_state(Arc::clone(&m), bearer));
        app = app.merge(v1);
    }
    let app = app.with_state(m);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::info!("monitor stopped: {e}");
        }
    });
    Ok(bound)
}

async fn healthz(State(m): State<Shared>) -> Response {
    if m.ctx.hub.healthy() && !m.ctx.is_draining() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response()
    }
}

/// Sessions per tenant of the config on this node, 0 included.
fn sessions_by_tenant(m: &Monitor) -> Vec<(String, usize)> {
    let mut by: BTreeMap<String, usize> = m
        .ctx
        .tenants
        .list()
        .iter()
        .map(|t| (t.app_id.clone(), 0))
        .collect();
    for (t, n) in m.ctx.local.count_by_tenant() {
        if let Some(v) = by.get_mut(&t) {
            *v = n;
        }
    }
    by.into_iter().collect()
}

/// Calls in progress over every tenant of the config; `None` if the shared state cannot say.
async fn calls_active(m: &Monitor) -> Option<usize> {
    let mut n = 0;
    for t in m.ctx.tenants.list().iter() {
        n += m.ctx.hub.calls(&t.app_id).await.ok()?.len();
    }
    Some(n)
}

async fn scrape(State(m): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = metrics::Format::from_accept(accept);
    let calls = calls_active(&m).await;
    let text = metrics::get().scrape(format, &sessions_by_tenant(&m), calls);
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// Lets a request through only with the admin token.
async fn bearer(State(m): State<Shared>, headers: HeaderMap, req: Request, next: Next) -> Response {
    let token = m.ctx.config.admin_token.as_deref().unwrap_or_default();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if !token.is_empty() && ct_eq(g.as_bytes(), token.as_bytes()) => {
            next.run(req).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "a valid admin token is required" })),
        )
            .into_response(),
    }
}

fn error(status: StatusCode, what: &str) -> Response {
    (status, Json(json!({ "error": what }))).into_response()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the shared state cannot be reached",
    )
}

/// Whether the config has `tenant`.
fn known(m: &Monitor, tenant: &str) -> bool {
    m.ctx.tenants.get(tenant).is_some()
}

fn no_tenant() -> Response {
    error(StatusCode::NOT_FOUND, "no such tenant")
}

async fn stats(State(m): State<Shared>) -> Response {
    let sessions: BTreeMap<String, usize> = sessions_by_tenant(&m).into_iter().collect();
    let node = m.ctx.config.cluster.as_ref().map(|c| c.node_id.clone());
    Json(json!({
        "uptime_s": m.started.elapsed().as_secs(),
        "healthy": m.ctx.hub.healthy(),
        "cluster": m.ctx.config.cluster.is_some(),
        "node_id": node,
        "connections": metrics::get().connections(),
        "sessions": sessions,
        "calls_active": calls_active(&m).await,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct Page {
    /// List users after this user ID (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
}

async fn sessions(
    State(m): State<Shared>,
    Path(tenant): Path<String>,
    Query(page): Query<Page>,
) -> Response {
    if !known(&m, &tenant) {
        return no_tenant();
    }
    let Ok(all) = m.ctx.hub.statuses(&tenant).await else {
        return unavailable();
    };
    let limit = page.limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
    let from = match &page.after {
        Some(a) => all.partition_point(|s| s.user_id.as_str() <= a.as_str()),
        None => 0,
    };
    let rows = &all[from..(from + limit).min(all.len())];
    let next = (from + rows.len() < all.len()).then(|| rows.last().map(|s| s.user_id.clone()));
    let list: Vec<_> = rows
        .iter()
        .map(|s| {
            json!({
                "user_id": s.user_id,
                "status": if s.user_status == 2 { "in_call" } else { "online" },
                "dnd": s.dnd_type,
                "here": m.ctx.local.current(&tenant, &s.user_id).is_some(),
            })
        })
        .collect();
    Json(json!({ "total": all.len(), "sessions": list, "next": next.flatten() })).into_response()
}

async fn calls(State(m): State<Shared>, Path(tenant): Path<String>) -> Response {
    if !known(&m, &tenant) {
        return no_tenant();
    }
    match m.ctx.hub.calls(&tenant).await {
        Ok(calls) => Json(json!({ "calls": calls })).into_response(),
        Err(_) => unavailable(),
    }
}

/// Drains the node (docs/CLUSTER.md "Drain"): answered at once, the node stops once its
/// sessions moved.
async fn drain(State(m): State<Shared>) -> Response {
    tracing::info!("admin: drain asked");
    m.ctx.drain_request.notify_one();
    (StatusCode::ACCEPTED, Json(json!({ "draining": true }))).into_response()
}

async fn kick(State(m): State<Shared>, Path((tenant, user)): Path<(String, String)>) -> Response {
    if !known(&m, &tenant) {
        return no_tenant();
    }
    match m.ctx.hub.kick(&tenant, &user).await {
        Ok(true) => {
            tracing::info!(
                "admin: kicked user {:?} of app {tenant:?}",
                crate::handlers::clip(&user)
            );
            Json(json!({ "kicked": true })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "the user is not logged in"),
        Err(_) => unavailable(),
    }
}
