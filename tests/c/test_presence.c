/* docs/API.md §3.2 presence and do-not-disturb: exact status JSON, get_user_status (online users,
 * sorted by userID), start/stop_user_status_notify with pushes in order and the subscriber's
 * cookie. */
#include <stdio.h>

#include "harness.h"

#define ST H_STATUS

static void test_dnd_and_status(void) {
  h_server *s = h_server_start(NULL);
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob");
  crvm_client *a = h_client(s->addr, ra), *b = h_client(s->addr, rb);
  h_login(a, ra, H_APP, H_SECRET, "alice");
  CHECK_INT(crvm_get_user_status(a, "g1"), 0);
  EXPECT_NEXT(ra, "get_user_status_success [" ST("alice", 1, 0) "] g1");

  CHECK_INT(crvm_set_dnd_status(a, 1, "d1"), 0);
  EXPECT_NEXT(ra, "set_dnd_status_success d1");
  CHECK_INT(crvm_get_user_status(a, "g2"), 0);
  EXPECT_NEXT(ra, "get_user_status_success [" ST("alice", 1, 1) "] g2");

  /* bob sorts after alice, whatever the login order; any non-zero DND value is stored. */
  h_login(b, rb, H_APP, H_SECRET, "bob");
  CHECK_INT(crvm_set_dnd_status(b, 7, NULL), 0);
  EXPECT_NEXT(rb, "set_dnd_status_success ");
  CHECK_INT(crvm_get_user_status(a, "g3"), 0);
  EXPECT_NEXT(ra, "get_user_status_success [" ST("alice", 1, 1) "," ST("bob", 1, 7) "] g3");

  CHECK_INT(crvm_set_dnd_status(a, 0, "d0"), 0);
  EXPECT_NEXT(ra, "set_dnd_status_success d0");
  CHECK_INT(crvm_get_user_status(b, "g4"), 0);
  EXPECT_NEXT(rb, "get_user_status_success [" ST("alice", 1, 0) "," ST("bob", 1, 7) "] g4");

  /* A user who logged out is no longer listed (seen through a subscription). */
  CHECK_INT(crvm_start_user_status_notify(a, "sub"), 0);
  EXPECT_NEXT(ra, "start_user_status_notify_rslt 0 sub");
  CHECK_INT(crvm_set_dnd_status(b, 0, "b0"), 0);
  EXPECT_NEXT(rb, "set_dnd_status_success b0");
  EXPECT_NEXT(ra, "notify_user_status " ST("bob", 1, 0) " sub");
  CHECK_INT(crvm_logout(b), 0);
  EXPECT_NEXT(ra, "notify_user_status " ST("bob", 0, 0) " sub");
  CHECK_INT(crvm_get_user_status(a, "g5"), 0);
  EXPECT_NEXT(ra, "get_user_status_success [" ST("alice", 1, 0) "] g5");
  crvm_destroy(a);
  crvm_destroy(b);
  CHECK_INT(h_server_stop(s), 0);
}

static void test_status_notify(void) {
  h_server *s = h_server_start(NULL);
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob"), *rc = h_rec_new("carol");
  crvm_client *a = h_client(s->addr, ra), *b = h_client(s->addr, rb), *c = h_client(s->addr, rc);
  h_login(b, rb, H_APP, H_SECRET, "bob");
  h_login(c, rc, H_APP, H_SECRET, "carol");
  CHECK_INT(crvm_start_user_status_notify(b, "bob-sub"), 0);
  EXPECT_NEXT(rb, "start_user_status_notify_rslt 0 bob-sub");
  CHECK_INT(crvm_start_user_status_notify(c, "carol-sub"), 0);
  EXPECT_NEXT(rc, "start_user_status_notify_rslt 0 carol-sub");

  /* alice: login, DND on, DND off, logout — every subscriber sees each, in order. */
  h_login(a, ra, H_APP, H_SECRET, "alice");
  CHECK_INT(crvm_set_dnd_status(a, 1, ""), 0);
  CHECK_INT(crvm_set_dnd_status(a, 0, ""), 0);
  EXPECT_NEXT(ra, "set_dnd_status_success ");
  EXPECT_NEXT(ra, "set_dnd_status_success ");
  CHECK_INT(crvm_logout(a), 0);
  static const char *const seen[] = {ST("alice", 1, 0), ST("alice", 1, 1), ST("alice", 1, 0),
                                     ST("alice", 0, 0)};
  for (int i = 0; i < 4; i++) {
    char want[256];
    snprintf(want, sizeof want, "notify_user_status %s bob-sub", seen[i]);
    EXPECT_NEXT(rb, want);
    snprintf(want, sizeof want, "notify_user_status %s carol-sub", seen[i]);
    EXPECT_NEXT(rc, want);
  }

  /* bob unsubscribes; carol stays subscribed and witnesses alice's next login. */
  CHECK_INT(crvm_stop_user_status_notify(b, "unsub"), 0);
  EXPECT_NEXT(rb, "stop_user_status_notify_rslt 0 unsub");
  h_login(a, ra, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(rc, "notify_user_status " ST("alice", 1, 0) " carol-sub");
  CHECK_INT(crvm_get_user_status(b, "barrier"), 0); /* anything pushed to bob is before this */
  CHECK_STR(WAIT(rb, "get_user_status_"),
            "get_user_status_success [" ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0)
            "] barrier");
  CHECK_NONE(rb, "notify_user_status");

  /* Subscribing again works, with the new cookie. */
  CHECK_INT(crvm_start_user_status_notify(b, "again"), 0);
  EXPECT_NEXT(rb, "start_user_status_notify_rslt 0 again");
  CHECK_INT(crvm_set_dnd_status(a, 3, ""), 0);
  EXPECT_NEXT(rb, "notify_user_status " ST("alice", 1, 3) " again");
  EXPECT_NEXT(rc, "notify_user_status " ST("alice", 1, 3) " carol-sub");

  /* A logout ends the subscription: after logging in again carol sees nothing. */
  CHECK_INT(crvm_logout(c), 0);
  EXPECT_NEXT(rb, "notify_user_status " ST("carol", 0, 0) " again");
  h_login(c, rc, H_APP, H_SECRET, "carol");
  EXPECT_NEXT(rb, "notify_user_status " ST("carol", 1, 0) " again");
  CHECK_INT(crvm_set_dnd_status(a, 0, ""), 0);
  EXPECT_NEXT(rb, "notify_user_status " ST("alice", 1, 0) " again");
  CHECK_INT(crvm_get_user_status(c, "barrier"), 0);
  WAIT(rc, "get_user_status_success");
  CHECK_NONE(rc, "notify_user_status");

  crvm_destroy(a);
  crvm_destroy(b);
  crvm_destroy(c);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_dnd_and_status);
  RUN(test_status_notify);
  return 0;
}
