//! Meetings (docs/API.md §3.3), stored durably by the meeting store.

use crvm_proto::error::{CRVIDEOSDK_MEETNOTEXIST, CRVIDEOSDK_NOERR, CRVIDEOSDK_SERVER_EXCEPTION};
use crvm_proto::{Meeting, ServerMsg};

use super::session::now_secs;
use super::ServerSession;
use crate::random;
use crate::session::User;
use crate::store::{run_blocking, MeetingDraft, MeetingRecord};

impl ServerSession {
    pub(super) async fn create_meeting(
        &self,
        user: &User,
        id: u64,
        subject: String,
        with_pswd: bool,
    ) {
        let draft = MeetingDraft {
            pswd: if with_pswd {
                random::digits(6)
            } else {
                String::new()
            },
            subject,
            creator: user.user_id.clone(),
            start_time: now_secs(),
        };
        let t = user.tenant.clone();
        match run_blocking(&self.ctx.store, move |s| s.create(&t, &draft)).await {
            Ok(r) => {
                let meeting = self.meeting(r);
                self.send(&ServerMsg::Res {
                    re: id,
                    result: crvm_proto::Outcome::Meeting(meeting),
                });
            }
            Err(e) => self.store_failed(id, "create meeting", &e),
        }
    }

    /// Only the creator may destroy; "not found" and "not yours" are both 800.
    pub(super) async fn destroy_meeting(&self, user: &User, id: u64, meet_id: i32) {
        if meet_id <= 0 {
            return self.reply(id, CRVIDEOSDK_MEETNOTEXIST);
        }
        let (t, u) = (user.tenant.clone(), user.user_id.clone());
        match run_blocking(&self.ctx.store, move |s| s.destroy(&t, meet_id, &u)).await {
            Ok(true) => self.reply(id, CRVIDEOSDK_NOERR),
            Ok(false) => self.reply(id, CRVIDEOSDK_MEETNOTEXIST),
            Err(e) => self.store_failed(id, "destroy meeting", &e),
        }
    }

    pub(super) async fn get_meetings(&self, user: &User, id: u64) {
        let t = user.tenant.clone();
        match run_blocking(&self.ctx.store, move |s| s.list(&t)).await {
            Ok(list) => {
                let list = list.into_iter().map(|r| self.meeting(r)).collect();
                self.send(&ServerMsg::Res {
                    re: id,
                    result: crvm_proto::Outcome::Meetings(list),
                });
            }
            Err(e) => self.store_failed(id, "list meetings", &e),
        }
    }

    fn meeting(&self, r: MeetingRecord) -> Meeting {
        Meeting {
            id: r.id,
            pub_meet_url: self.ctx.config.meet_url(r.id),
            pswd: r.pswd,
            subject: r.subject,
            creator: r.creator,
            member_count: 0,
            start_time: r.start_time,
        }
    }

    fn store_failed(&self, id: u64, what: &str, e: &impl std::fmt::Display) {
        tracing::warn!("conn {} {what} failed: storage error: {e}", self.login_conn);
        self.reply(id, CRVIDEOSDK_SERVER_EXCEPTION);
    }
}
