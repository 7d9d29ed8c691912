/* docs/API.md §2.1 callbacks_size: an app built against an older crvm_callbacks with only the first
 * three members. Bytes after them are poison, so a library reading past callbacks_size would
 * call garbage; events for missing members must be dropped quietly. */
#include <stdio.h>

#include "harness.h"

/* What an old crvm.h declared: the first three members, same order and types. */
typedef struct old_callbacks {
  void (*login_success)(void *ud, const char *usr_id, const char *cookie);
  void (*login_fail)(void *ud, int32_t sdk_err, const char *cookie);
  void (*line_off)(void *ud, int32_t sdk_err);
} old_callbacks;

static void old_login_success(void *ud, const char *usr_id, const char *cookie) {
  char buf[300];
  snprintf(buf, sizeof buf, "login_success %s %s", usr_id, cookie);
  h_note(ud, buf);
}
static void old_login_fail(void *ud, int32_t err, const char *cookie) {
  char buf[300];
  snprintf(buf, sizeof buf, "login_fail %d %s", err, cookie);
  h_note(ud, buf);
}
static void old_line_off(void *ud, int32_t err) {
  char buf[64];
  snprintf(buf, sizeof buf, "line_off %d", err);
  h_note(ud, buf);
}

static void test_shorter_struct(void) {
  h_server *s = h_server_start(NULL);
  h_rec *r = h_rec_new("old-app");
  struct {
    old_callbacks cb;
    unsigned char poison[sizeof(crvm_callbacks)];
  } app;
  memset(&app, 0xA5, sizeof app);
  app.cb.login_success = old_login_success;
  app.cb.login_fail = old_login_fail;
  app.cb.line_off = old_line_off;
  crvm_client *c = NULL;
  CHECK_INT(crvm_create(s->addr, (const crvm_callbacks *)&app.cb, sizeof app.cb, r, &c), 0);
  memset(&app, 0, sizeof app); /* copied at create: the library must not read it again */

  CHECK_INT(crvm_login(c, H_APP, "wrong", "", "alice", "", "bad"), 0);
  EXPECT_NEXT(r, "login_fail 7 bad");
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", "old"), 0);
  EXPECT_NEXT(r, "login_success alice old");

  /* Events of members this app does not have. */
  CHECK_INT(crvm_start_user_status_notify(c, ""), 0);
  CHECK_INT(crvm_set_dnd_status(c, 1, ""), 0);
  CHECK_INT(crvm_get_user_status(c, ""), 0);
  CHECK_INT(crvm_create_meeting(c, "old", 1, ""), 0);
  CHECK_INT(crvm_get_meetings(c, ""), 0);
  CHECK_INT(crvm_destroy_meeting(c, 1, ""), 0);
  h_rec *rb = h_rec_new("bob");
  crvm_client *b = h_client(s->addr, rb);
  h_login(b, rb, H_APP, H_SECRET, "bob"); /* a presence push for alice */

  /* Kicked: line_off is a member again, and arrives after all the events above. */
  h_rec *r2 = h_rec_new("alice-new");
  crvm_client *c2 = h_client(s->addr, r2);
  h_login(c2, r2, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(r, "line_off 10");
  crvm_destroy(c);
  CHECK_INT(h_rec_count(r), 3);
  crvm_destroy(b);
  crvm_destroy(c2);
  CHECK_INT(h_server_stop(s), 0);
}

/* NULL callbacks and a zero size: the client works, nothing is called. */
static void test_no_callbacks(void) {
  h_server *s = h_server_start(NULL);
  h_rec *rb = h_rec_new("bob");
  crvm_client *b = h_client(s->addr, rb);
  h_login(b, rb, H_APP, H_SECRET, "bob");
  CHECK_INT(crvm_start_user_status_notify(b, "sub"), 0);
  EXPECT_NEXT(rb, "start_user_status_notify_rslt 0 sub");
  crvm_client *c = NULL;
  CHECK_INT(crvm_create(s->addr, NULL, 0, NULL, &c), 0);
  /* Destroyed maybe before its login's answer is in: without resumption the server ends the
   * session as the connection closes (with it, it would hold it for a resume; DESIGN.md). */
  CHECK_INT(crvm_set_option(c, "reconnect", "off"), 0);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "silent", "", ""), 0);
  EXPECT_NEXT(rb, "notify_user_status {\"userID\":\"silent\",\"userStatus\":1,\"DNDType\":0} sub");
  crvm_destroy(c);
  EXPECT_NEXT(rb, "notify_user_status {\"userID\":\"silent\",\"userStatus\":0,\"DNDType\":0} sub");
  crvm_destroy(b);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_shorter_struct);
  RUN(test_no_callbacks);
  return 0;
}
