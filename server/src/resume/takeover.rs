//! What a connection does with the registry of resumable sessions ([`super::Sessions`]): when
//! its link drops it parks its session (docs/API.md §3.6), which then ends once the resume window
//! passes unless a resume takes it first; and a resume on a new connection takes the session
//! over, its outbox taking the new socket.
//!
//! A session held for longer than `reconnecting_after_ms` shows as reconnecting in its user's
//! status (docs/API.md §3.2) until it is resumed or ends. [`crate::session::User`]'s
//! `reconnecting` lock is held across each change of that mark: the report checks under it that
//! the session is still held in the same parking, and a resume clears under it what was
//! reported, so a clearing can never overtake its report.

use std::sync::Arc;

use crvm_proto::error::CRVIDEOSDK_ERR_DATA;
use crvm_proto::ServerMsg;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Refused;
use crate::ctx::Ctx;
use crate::handlers::{End, ResumeReq, ServerSession};
use crate::ids::ParkEpoch;
use crate::outbox::{run_writer, Outbox, State, Writer, FLUSH_TIMEOUT};
use crate::random;
use crate::session::{Phase, User};

/// Whether `session`, whose connection ended with `end`, is to be held for a resume rather
/// than ended: if so its outbox is detached and its ID returned.
pub fn holdable(session: &ServerSession, end: &End) -> Option<String> {
    let Phase::LoggedIn(user) = &session.phase else {
        return None;
    };
    let sid = user.session.clone()?;
    let link_lost = match end {
        End::PeerClosed | End::ReadFailed(_) | End::Idle => session.outbox.detach(),
        End::Stopped => session.outbox.state() == State::Detached,
        _ => false,
    };
    (link_lost || session.outbox.state() == State::Detached).then_some(sid)
}

/// Parks `session` as `sid` (see [`holdable`]) with its expiry armed, leaving a stand-in that
/// is logged in as nobody; `why` says why its link dropped. False if it was taken over or ended
/// meanwhile: `session` is left as it was, for the caller to end.
pub fn park(session: &mut ServerSession, sid: String, why: String) -> bool {
    let ctx = Arc::clone(&session.ctx);
    let outbox = session.outbox.clone();
    let stand_in = session.stand_in();
    let parked = std::mem::replace(session, stand_in).into_parked();
    let (login_conn, conn, addr) = (parked.login_conn, parked.conn, parked.addr);
    let user = user_of(&parked);
    match ctx.sessions.park(&sid, conn, Box::new(parked)) {
        Ok(epoch) => {
            tracing::info!(
                "conn {conn} link lost ({addr}), session of conn {login_conn} held for {} s: {}",
                ctx.sessions.window().as_secs(),
                why
            );
            expire_later(ctx, sid, epoch, outbox, user);
            true
        }
        Err(parked) => {
            // Taken over or ended meanwhile: this connection ends it as usual.
            *session = ServerSession::from_parked(ctx, *parked);
            false
        }
    }
}

/// The user of a parked session, if it is logged in.
fn user_of(parked: &crate::session::ParkedSession) -> Option<User> {
    match &parked.phase {
        Phase::LoggedIn(user) => Some(user.clone()),
        _ => None,
    }
}

/// Marks the user of the session parked as `sid` in `epoch` as reconnecting once it has been
/// held for `reconnecting_after_ms`, unless it was resumed or ended first.
fn report_later(ctx: Arc<Ctx>, sid: String, epoch: ParkEpoch, outbox: Outbox, user: User) {
    let Some(grace) = ctx.config.reconnecting_after() else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = outbox.ended() => return,
        }
        let mut told = user.reconnecting.lock().await;
        if ctx.sessions.is_parked(&sid, epoch) {
            ctx.hub
                .set_reconnecting(&user.tenant, &user.user_id, user.gen, true)
                .await;
            *told = true;
        }
    });
}

/// A resumed session's user is no longer reconnecting (if it was said to be).
async fn report_resumed(ctx: &Ctx, session: &ServerSession) {
    let Phase::LoggedIn(user) = &session.phase else {
        return;
    };
    let mut told = user.reconnecting.lock().await;
    if *told {
        ctx.hub
            .set_reconnecting(&user.tenant, &user.user_id, user.gen, false)
            .await;
        *told = false;
    }
}

/// Ends the session parked as `sid` in `epoch` once the resume window passes, or at once if it
/// ends meanwhile (kicked, over its bound, shutdown) — unless a resume took it first; and, past
/// the grace period, shows its user as reconnecting meanwhile.
pub fn expire_later(
    ctx: Arc<Ctx>,
    sid: String,
    epoch: ParkEpoch,
    outbox: Outbox,
    user: Option<User>,
) {
    if let Some(user) = user {
        report_later(Arc::clone(&ctx), sid.clone(), epoch, outbox.clone(), user);
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(ctx.sessions.window()) => {}
            _ = outbox.ended() => {}
        }
        let state = outbox.state();
        let kicked = state.kicked();
        if let Some(parked) = ctx.sessions.expire(&sid, epoch, kicked) {
            let mut session = ServerSession::from_parked(Arc::clone(&ctx), *parked);
            let login_conn = session.login_conn;
            let who = session.leave().await;
            let why = match state {
                State::Detached => "not resumed in time",
                State::Overflow => "too much held for it",
                _ if kicked => "kicked by a newer login",
                _ => "closed",
            };
            tracing::info!("session of conn {login_conn} ended while detached{who}: {why}");
        }
    });
}

/// Resumes session `req` on the connection of `current` (a fresh one, logged in as nobody, whose
/// `welcome` is queued): the session's outbox takes over the socket once `writer` has flushed
/// the welcome and given it back. Returns the session, now on this connection, for its reader
/// state to carry on here.
pub async fn resume<S>(
    current: &ServerSession,
    req: ResumeReq,
    writer: &mut Writer<S>,
) -> Result<ServerSession, End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Arc::clone(&current.ctx);
    let conn = current.conn;
    let taken = ctx
        .sessions
        .resume(&req.app_id, &req.session, &req.secret, conn)
        .await;
    let (parked, secret) = match taken {
        Ok(s) => s,
        Err(refused) => {
            let (msg, code) = match refused {
                Refused::Busy => (
                    ServerMsg::Retry {
                        after_ms: 250 + random::below(750),
                    },
                    0,
                ),
                Refused::Code(code) => (ServerMsg::ResumeFailed { code }, code),
                Refused::Moved { addr, ws_addr } => (ServerMsg::Moved { addr, ws_addr }, 0),
            };
            current.outbox.push_handshake(&msg);
            current.outbox.close();
            if matches!(msg, ServerMsg::Moved { .. }) {
                // Told (before a draining node stops, which waits for this).
                ctx.sessions.sent(&req.session);
            }
            return Err(End::ResumeRefused(code));
        }
    };
    // The fresh outbox drains (the welcome) and its writer gives the socket back.
    current.outbox.close();
    let wr = match tokio::time::timeout(FLUSH_TIMEOUT, &mut *writer).await {
        Ok(Ok(Some(wr))) => Some(wr),
        _ => None,
    };
    if writer.is_finished() {
        // Its output is taken: the connection's teardown must not await it a second time.
        *writer = tokio::spawn(std::future::ready(None));
    }
    let resumed = ServerMsg::Resumed {
        secret,
        last: parked.outbox.handled(),
    };
    let attached = wr.is_some() && parked.outbox.attach(req.last, &resumed).is_ok();
    let Some(wr) = wr.filter(|_| attached) else {
        // The socket is gone, or the client claims frames never sent: held again.
        let outbox = parked.outbox.clone();
        let login_conn = parked.login_conn;
        let user = user_of(&parked);
        let epoch = ctx.sessions.repark(&req.session, parked);
        expire_later(Arc::clone(&ctx), req.session, epoch, outbox, user);
        tracing::warn!("conn {conn} resume of the session of conn {login_conn} failed");
        return Err(End::ResumeRefused(CRVIDEOSDK_ERR_DATA));
    };
    *writer = tokio::spawn(run_writer(
        wr,
        parked.outbox.clone(),
        ctx.config.heartbeat(),
    ));
    ctx.conns.add(conn, &parked.outbox);
    let mut session = ServerSession::from_parked(Arc::clone(&ctx), *parked);
    session.conn = conn;
    session.addr = current.addr;
    session.origin = current.origin.clone();
    report_resumed(&ctx, &session).await;
    tracing::info!(
        "conn {conn} resumed the session of conn {} ({}), from frame {}",
        session.login_conn,
        current.addr,
        req.last
    );
    Ok(session)
}
