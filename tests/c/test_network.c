/* docs/API.md §3.1 connection failures: nothing listening (203), no answer (202), connection lost
 * with requests outstanding (each gets 207, then line_off(207)), server shutdown
 * (line_off(206)), and being kicked by a newer login (line_off(10)). */
#include <stdio.h>

#include "harness.h"

static void test_nothing_listening(void) {
  /* A port that was just ours and is now closed. */
  h_server *s = h_server_start(H_NO_RESUME);
  char addr[64];
  snprintf(addr, sizeof addr, "%s", s->addr);
  CHECK_INT(h_server_stop(s), 0);
  h_rec *r = h_rec_new("dead-port");
  crvm_client *c = h_client(addr, r);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", "c"), 0);
  EXPECT_NEXT(r, "login_fail 203 c");
  CHECK_INT(crvm_get_user_status(c, ""), 12);
  crvm_destroy(c);
}

static void test_no_answer(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  h_server_pause(s); /* the kernel still accepts the connection; nobody answers */
  h_rec *r = h_rec_new("paused");
  crvm_client *c = h_client(s->addr, r);
  CHECK_INT(crvm_set_option(c, "request_timeout_ms", "1000"), 0);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", "c"), 0);
  EXPECT_NEXT(r, "login_fail 202 c");
  crvm_destroy(c);
  h_server_resume(s);
  CHECK_INT(h_server_stop(s), 0);
}

static void test_connection_lost(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  h_rec *r = h_rec_new("lost");
  crvm_client *c = h_client(s->addr, r);
  h_login(c, r, H_APP, H_SECRET, "alice");
  h_server_pause(s); /* the requests below stay unanswered */
  CHECK_INT(crvm_get_user_status(c, "one"), 0);
  CHECK_INT(crvm_create_meeting(c, "two", 0, "two"), 0);
  CHECK_INT(crvm_get_meetings(c, "three"), 0);
  h_server_kill(s);
  EXPECT_NEXT(r, "get_user_status_fail 207 one");
  EXPECT_NEXT(r, "create_meeting_fail 207 two");
  EXPECT_NEXT(r, "get_meetings_fail 207 three");
  EXPECT_NEXT(r, "line_off 207");
  /* Logged out: refused synchronously; and the client can log in again elsewhere. */
  CHECK_INT(crvm_get_user_status(c, ""), 12);
  crvm_destroy(c);
  h_server_restart(s);
  c = h_client(s->addr, r);
  h_login(c, r, H_APP, H_SECRET, "alice");
  crvm_destroy(c);
  CHECK_INT(h_rec_pending(r, ""), 0);
  CHECK_INT(h_server_stop(s), 0);
}

static void test_server_shutdown(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  h_rec *r = h_rec_new("shutdown");
  crvm_client *c = h_client(s->addr, r);
  h_login(c, r, H_APP, H_SECRET, "alice");
  CHECK_INT(h_server_stop(s), 0); /* SIGTERM: exits 0 after telling its clients */
  EXPECT_NEXT(r, "line_off 206");
  CHECK_INT(crvm_get_meetings(c, ""), 12);
  crvm_destroy(c);
}

static void test_kicked_by_new_login(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  h_rec *r1 = h_rec_new("alice-old"), *r2 = h_rec_new("alice-new");
  crvm_client *c1 = h_client(s->addr, r1), *c2 = h_client(s->addr, r2);
  h_login(c1, r1, H_APP, H_SECRET, "alice");
  h_login(c2, r2, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(r1, "line_off 10");
  CHECK_INT(crvm_get_user_status(c1, ""), 12);
  /* The new session works and alice is online once. */
  CHECK_INT(crvm_get_user_status(c2, "s"), 0);
  EXPECT_NEXT(r2,
              "get_user_status_success [{\"userID\":\"alice\",\"userStatus\":1,\"DNDType\":0}] s");
  CHECK_INT(crvm_set_dnd_status(c2, 1, "d"), 0);
  EXPECT_NEXT(r2, "set_dnd_status_success d");
  /* The old client may log in again (kicking the new one in turn). */
  h_login(c1, r1, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(r2, "line_off 10");
  crvm_destroy(c1);
  crvm_destroy(c2);
  CHECK_INT(h_rec_pending(r1, ""), 0);
  CHECK_INT(h_rec_pending(r2, ""), 0);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_nothing_listening);
  RUN(test_no_answer);
  RUN(test_connection_lost);
  RUN(test_server_shutdown);
  RUN(test_kicked_by_new_login);
  return 0;
}
