//! `hello`, `login` and `logout` (docs/API.md §3.1, docs/PROTOCOL.md "Connection lifecycle").

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crvm_proto::error::{
    CRVIDEOSDK_ANCTPSWD_ERR, CRVIDEOSDK_MEETPARAM_ERR, CRVIDEOSDK_MISMATCHCLIENTVER,
    CRVIDEOSDK_NOERR, CRVIDEOSDK_SERVER_EXCEPTION,
};
use crvm_proto::{Op, ServerMsg, PROTOCOL_VERSION};

use super::{clip, End, ServerSession};
use crate::auth::{self, Credentials};
use crate::hub::local::Local;
use crate::hub::Login;
use crate::metrics;
use crate::session::{Phase, User};

impl ServerSession {
    pub(super) fn hello(&mut self, ver: u32) -> Option<End> {
        if ver != PROTOCOL_VERSION {
            return Some(self.close(
                CRVIDEOSDK_MISMATCHCLIENTVER,
                format!(
                    "protocol version {ver} is not supported; this server speaks {PROTOCOL_VERSION}"
                ),
            ));
        }
        self.phase = Phase::LoggedOut;
        let c = &self.ctx.config;
        self.outbox.push_handshake(&ServerMsg::Welcome {
            ver: PROTOCOL_VERSION,
            heartbeat_ms: c.heartbeat_ms,
            max_buffer_bytes: c.max_buffer_bytes,
            max_file_bytes: c.max_file_bytes,
        });
        None
    }

    /// A login request (`op` is an `Op::Login`). A failed login gets its answer and the
    /// connection is closed.
    pub(super) async fn login(&mut self, id: u64, op: Op) -> Option<End> {
        let checked = op.validate(&self.sizes());
        let Op::Login {
            app_id,
            secret,
            user_id,
            token,
            resume,
            ..
        } = op
        else {
            unreachable!("on_msg passes logins only")
        };
        let limited = !self.ctx.logins.allowed(self.addr.ip(), &app_id);
        let resumable = resume && self.ctx.sessions.window() > Duration::ZERO;
        // A draining node still takes a resumable login (a client that picked it just before
        // it was told to stop): the drain moves that session too. Not once the drain is over,
        // nor a session that could not move.
        let ctx = Arc::clone(&self.ctx);
        let admitted = ctx.sessions.admit();
        let movable = resumable || !self.ctx.is_draining();
        let result = match checked {
            Err(code) => Err(code.get()),
            // Too many failures from here or into this tenant: refused like a wrong secret,
            // without looking at the credentials, for the rest of the minute.
            Ok(()) if limited => Err(CRVIDEOSDK_ANCTPSWD_ERR),
            Ok(()) if admitted.is_none() || !movable => Err(CRVIDEOSDK_SERVER_EXCEPTION),
            Ok(()) => {
                let cred = Credentials {
                    app_id: &app_id,
                    secret: &secret,
                    user_id: &user_id,
                    token: &token,
                };
                let tenant = self.ctx.tenants.get(&app_id);
                match (&self.origin, &tenant) {
                    // A page the tenant does not allow: refused like a wrong secret (the
                    // log says why), before the credentials are looked at.
                    (Some(origin), Some(t)) if !t.allows_origin(origin) => {
                        tracing::warn!(
                            "conn {} login refused ({}): app {:?} does not allow pages from {:?}",
                            self.login_conn,
                            self.addr,
                            clip(&app_id),
                            clip(origin)
                        );
                        Err(CRVIDEOSDK_ANCTPSWD_ERR)
                    }
                    _ => auth::authenticate(tenant.as_ref(), &cred, now_secs() as u64),
                }
            }
        };
        let user = match result {
            Ok(user) => user,
            Err(code) => {
                if !limited
                    && code != CRVIDEOSDK_MEETPARAM_ERR
                    && code != CRVIDEOSDK_SERVER_EXCEPTION
                {
                    self.ctx.logins.failed(self.addr.ip(), &app_id);
                }
                tracing::warn!(
                    "conn {} login failed ({}): app {:?} user {:?}: code {code}{}",
                    self.login_conn,
                    self.addr,
                    clip(&app_id),
                    clip(&user_id),
                    if limited {
                        " (too many failed logins)"
                    } else {
                        ""
                    }
                );
                metrics::get().login(code);
                self.reply(id, code);
                self.outbox.close();
                return Some(End::LoginFailed(code));
            }
        };
        let gen = self.ctx.local.next_gen();
        self.ctx.local.add(
            gen,
            Local {
                tenant: app_id.clone(),
                user_id: user.clone(),
                outbox: self.outbox.clone(),
                dnd: 0,
            },
        );
        let login = Login {
            tenant: &app_id,
            user_id: &user,
            gen,
        };
        if let Err(code) = self.ctx.hub.login(login).await {
            self.ctx.local.remove(gen);
            tracing::warn!(
                "conn {} login failed ({}): app {:?} user {:?}: shared state unreachable",
                self.login_conn,
                self.addr,
                app_id,
                user
            );
            metrics::get().login(code);
            self.reply(id, code);
            self.outbox.close();
            return Some(End::LoginFailed(code));
        }
        metrics::get().login(CRVIDEOSDK_NOERR);
        tracing::info!(
            "conn {} login ok ({}): app {:?} user {:?}",
            self.login_conn,
            self.addr,
            app_id,
            user
        );
        let window = self.ctx.sessions.window().as_secs();
        if resumable {
            // Before the first numbered frame, so that the tail has every one of them.
            self.outbox.set_resumable();
        }
        self.send(&ServerMsg::Res {
            re: id,
            result: crvm_proto::Outcome::Login {
                user_id: user.clone(),
            },
        });
        let session = resumable.then(|| {
            let (session, secret) = self.ctx.sessions.register(&app_id, self.conn, &self.outbox);
            self.send(&ServerMsg::Resumable {
                session: session.clone(),
                secret,
                window_s: window,
                addr: self.ctx.resume_addr.clone(),
            });
            session
        });
        drop(admitted);
        self.phase = Phase::LoggedIn(User {
            tenant: app_id,
            user_id: user,
            gen,
            session,
            reconnecting: Default::default(),
        });
        // Answered: what the shared state sent this session meanwhile may follow.
        self.ctx.local.open(gen);
        None
    }

    /// Out of the registry first (nothing new can reach this session), then its calls and
    /// transfers end, their peers told; the answer goes last, then the server closes.
    pub(super) async fn logout(&mut self, id: u64) -> End {
        let who = self.logout_session().await;
        tracing::info!("conn {} logout:{who}", self.login_conn);
        self.reply(id, CRVIDEOSDK_NOERR);
        self.outbox.close();
        End::Logout
    }
}

/// Unix time in seconds.
pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
