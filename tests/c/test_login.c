/* docs/API.md §3.1 login and logout: success and cookies, wrong credentials (7), server-generated
 * user IDs, login states (9 and 12, synchronous). */
#include <stdio.h>

#include "harness.h"

static h_server *srv;

static void test_login_logout(void) {
  h_rec *r = h_rec_new("alice");
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "Alice A.", "alice", "", "my cookie"), 0);
  EXPECT_NEXT(r, "login_success alice my cookie");
  CHECK_INT(crvm_get_user_status(c, "s1"), 0);
  CHECK_STR(WAIT(r, "get_user_status_"),
            "get_user_status_success [{\"userID\":\"alice\",\"userStatus\":1,\"DNDType\":0}] s1");
  CHECK_INT(crvm_logout(c), 0);
  /* Logged out at once: requests are refused, a new login is accepted. */
  CHECK_INT(crvm_get_user_status(c, "s2"), 12);
  CHECK_INT(crvm_logout(c), 12);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, NULL, "alice", NULL, "again"), 0);
  EXPECT_NEXT(r, "login_success alice again");
  CHECK_INT(crvm_logout(c), 0);
  crvm_destroy(c);
  CHECK_INT(h_rec_pending(r, ""), 0); /* logout has no event */
}

static void test_wrong_credentials(void) {
  h_rec *r = h_rec_new("bad");
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_login(c, H_APP, "wrong-secret", "", "alice", "", "c1"), 0);
  EXPECT_NEXT(r, "login_fail 7 c1");
  CHECK_INT(crvm_login(c, "no-such-app", H_SECRET, "", "alice", "", "c2"), 0);
  EXPECT_NEXT(r, "login_fail 7 c2");
  CHECK_INT(crvm_login(c, H_APP, "", "", "alice", "", "c3"), 0);
  EXPECT_NEXT(r, "login_fail 7 c3");
  /* Another tenant's secret. */
  CHECK_INT(crvm_login(c, H_APP, H_SECRET2, "", "alice", "", "c4"), 0);
  EXPECT_NEXT(r, "login_fail 7 c4");
  /* After failures the client is idle: methods → 12, and a good login works. */
  CHECK_INT(crvm_get_meetings(c, ""), 12);
  h_login(c, r, H_APP, H_SECRET, "alice");
  crvm_destroy(c);
}

static void test_generated_user_id(void) {
  h_rec *r1 = h_rec_new("anon1"), *r2 = h_rec_new("anon2");
  crvm_client *c1 = h_client(srv->addr, r1), *c2 = h_client(srv->addr, r2);
  CHECK_INT(crvm_login(c1, H_APP, H_SECRET, "", "", "", "a"), 0);
  CHECK_INT(crvm_login(c2, H_APP, H_SECRET, NULL, NULL, NULL, NULL), 0);
  char id1[200], id2[200], tail[200];
  const char *e1 = WAIT(r1, "login_");
  const char *e2 = WAIT(r2, "login_");
  CHECK(sscanf(e1, "login_success %199s %199s", id1, tail) == 2);
  CHECK_STR(tail, "a");
  CHECK(sscanf(e2, "login_success %199s", id2) == 1);
  CHECK_INT(strlen(e2), strlen("login_success  ") + strlen(id2)); /* NULL cookie → "" */
  CHECK(strlen(id1) >= 1 && strlen(id1) <= 128);
  CHECK(strcmp(id1, id2) != 0);
  crvm_destroy(c1);
  crvm_destroy(c2);
}

static void test_login_states(void) {
  h_rec *r = h_rec_new("states");
  crvm_client *c = h_client(srv->addr, r);
  /* Login in progress: the server is paused, so the login cannot complete yet. */
  h_server_pause(srv);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "carol", "", "first"), 0);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "carol", "", "second"), 9);
  CHECK_INT(crvm_get_user_status(c, ""), 12);
  CHECK_INT(crvm_create_meeting(c, "x", 0, ""), 12);
  CHECK_INT(crvm_set_option(c, "request_timeout_ms", "5000"), 9);
  h_server_resume(srv);
  EXPECT_NEXT(r, "login_success carol first");
  /* Logged in. */
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "carol", "", "third"), 9);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "dave", "", "fourth"), 9);
  CHECK_INT(crvm_set_option(c, "dispatch", "manual"), 9);
  /* Nothing was sent for the refused calls: the next event is this request's. */
  CHECK_INT(crvm_get_meetings(c, "m"), 0);
  EXPECT_NEXT(r, "get_meetings_success [] m");
  crvm_destroy(c);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_login_logout);
  RUN(test_wrong_credentials);
  RUN(test_generated_user_id);
  RUN(test_login_states);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
