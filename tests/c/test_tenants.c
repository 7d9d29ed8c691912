/* docs/API.md §3.2: a tenant never sees another tenant's users — status lists, presence pushes,
 * meetings — and the same user ID in two tenants is two users (no kick). */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#define ST H_STATUS

static void test_isolation(void) {
  h_server *s = h_server_start(NULL);
  h_rec *da = h_rec_new("demo/alice"), *db = h_rec_new("demo/bob");
  h_rec *xa = h_rec_new("acme/alice"), *xc = h_rec_new("acme/carol");
  crvm_client *a1 = h_client(s->addr, da), *b1 = h_client(s->addr, db);
  crvm_client *a2 = h_client(s->addr, xa), *c2 = h_client(s->addr, xc);
  h_login(b1, db, H_APP, H_SECRET, "bob");
  h_login(c2, xc, H_APP2, H_SECRET2, "carol");
  CHECK_INT(crvm_start_user_status_notify(b1, "demo-sub"), 0);
  EXPECT_NEXT(db, "start_user_status_notify_rslt 0 demo-sub");
  CHECK_INT(crvm_start_user_status_notify(c2, "acme-sub"), 0);
  EXPECT_NEXT(xc, "start_user_status_notify_rslt 0 acme-sub");

  /* Each subscriber's next push is its own tenant's alice: a leak would come first. */
  h_login(a1, da, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(db, "notify_user_status " ST("alice", 1, 0) " demo-sub");
  h_login(a2, xa, H_APP2, H_SECRET2, "alice");
  EXPECT_NEXT(xc, "notify_user_status " ST("alice", 1, 0) " acme-sub");
  CHECK_INT(crvm_set_dnd_status(a1, 1, ""), 0);
  EXPECT_NEXT(da, "set_dnd_status_success ");
  EXPECT_NEXT(db, "notify_user_status " ST("alice", 1, 1) " demo-sub");
  CHECK_INT(crvm_set_dnd_status(a2, 2, ""), 0);
  EXPECT_NEXT(xa, "set_dnd_status_success ");
  EXPECT_NEXT(xc, "notify_user_status " ST("alice", 1, 2) " acme-sub");

  /* Status lists are per tenant (barriers: anything leaked would have arrived first). */
  CHECK_INT(crvm_get_user_status(b1, "g"), 0);
  EXPECT_NEXT(db, "get_user_status_success [" ST("alice", 1, 1) "," ST("bob", 1, 0) "] g");
  CHECK_INT(crvm_get_user_status(c2, "g"), 0);
  EXPECT_NEXT(xc, "get_user_status_success [" ST("alice", 1, 2) "," ST("carol", 1, 0) "] g");
  /* demo/alice was not kicked by acme/alice. */
  CHECK_INT(crvm_get_user_status(a1, "still-here"), 0);
  WAIT(da, "get_user_status_success");
  CHECK_NONE(da, "line_off");

  /* Meetings: demo's are invisible and untouchable from acme, and the other way round. */
  CHECK_INT(crvm_create_meeting(a1, "demo only", 0, "m"), 0);
  const char *ev = WAIT(da, "create_meeting_success");
  int demo_id = (int)h_json_int(ev, "ID");
  CHECK_INT(crvm_get_meetings(c2, "l"), 0);
  EXPECT_NEXT(xc, "get_meetings_success [] l");
  CHECK_INT(crvm_destroy_meeting(a2, demo_id, "x"), 0); /* acme's alice is not demo's alice */
  EXPECT_NEXT(xa, "destroy_meeting_rslt 800 x");
  CHECK_INT(crvm_create_meeting(c2, "acme only", 0, "m"), 0);
  ev = WAIT(xc, "create_meeting_success");
  int acme_id = (int)h_json_int(ev, "ID");
  CHECK(acme_id != demo_id);
  CHECK_INT(crvm_get_meetings(b1, "l"), 0);
  ev = WAIT(db, "get_meetings_success");
  CHECK_INT(h_json_int(ev, "ID"), demo_id);
  CHECK(strstr(ev, "acme only") == NULL);
  CHECK_INT(crvm_destroy_meeting(a1, demo_id, "d"), 0);
  EXPECT_NEXT(da, "destroy_meeting_rslt 0 d");

  /* Logouts are per tenant too. */
  CHECK_INT(crvm_logout(a2), 0);
  ev = NEXT(xc); /* offline; the DND value of an offline user is not pinned */
  CHECK(strncmp(ev, "notify_user_status {\"userID\":\"alice\",\"userStatus\":0,", 52) == 0);
  CHECK_INT(crvm_get_user_status(b1, "g2"), 0);
  EXPECT_NEXT(db, "get_user_status_success [" ST("alice", 1, 1) "," ST("bob", 1, 0) "] g2");

  crvm_destroy(a1);
  crvm_destroy(b1);
  crvm_destroy(a2);
  crvm_destroy(c2);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_isolation);
  return 0;
}
