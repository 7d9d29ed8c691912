/* docs/API.md §5 field limits, NULL required arguments and invalid UTF-8: refused synchronously
 * with 5, and nothing is sent (the next event is that of the next valid request). Values at
 * the limit are accepted and round-trip. */
#include <stdio.h>

#include "harness.h"

static h_server *srv;

static void test_login_fields(void) {
  h_rec *r = h_rec_new("limits");
  crvm_client *c = h_client(srv->addr, r);
  char *id128 = h_repeat("u", 128), *id129 = h_repeat("u", 129);
  char *app129 = h_repeat("a", 129);
  char *k8192 = h_repeat("k", 8192), *k8193 = h_repeat("k", 8193);

  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", id129, "", ""), 5);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, id129, "alice", "", ""), 5);      /* nick */
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", k8193), 5);      /* cookie */
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", k8193, ""), 5);      /* priv_auth_code */
  CHECK_INT(crvm_login(c, app129, H_SECRET, "", "alice", "", ""), 5);        /* app ID */
  CHECK_INT(crvm_login(c, "", H_SECRET, "", "alice", "", ""), 5);
  /* invalid UTF-8: a stray continuation byte, a truncated sequence, an encoded surrogate */
  static const char *bad_utf8[] = {"al\x80ice", "alice\xc3", "\xed\xa0\x80"};
  for (size_t i = 0; i < 3; i++) {
    const char *b = bad_utf8[i];
    CHECK_INT(crvm_login(c, b, H_SECRET, "", "alice", "", ""), 5);
    CHECK_INT(crvm_login(c, H_APP, b, "", "alice", "", ""), 5);
    CHECK_INT(crvm_login(c, H_APP, H_SECRET, b, "alice", "", ""), 5);
    CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", b, "", ""), 5);
    CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", b, ""), 5);
    CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", b), 5);
  }
  CHECK_INT(h_rec_count(r), 0);

  /* At the limits: a 128-byte user ID and nick, an 8 KiB cookie. */
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, id128, id128, "", k8192), 0);
  const char *ev = NEXT(r);
  CHECK(strncmp(ev, "login_success ", 14) == 0);
  CHECK(strncmp(ev + 14, id128, 128) == 0 && ev[142] == ' ');
  CHECK_STR(ev + 143, k8192);
  crvm_destroy(c);
}

static void test_method_fields(void) {
  h_rec *r = h_rec_new("methods");
  crvm_client *c = h_client(srv->addr, r);
  h_login(c, r, H_APP, H_SECRET, "bob");
  char *k8192 = h_repeat("k", 8192), *k8193 = h_repeat("k", 8193);
  const char *bad[] = {k8193, "\xff", "c\xe2\x82"};
  for (size_t i = 0; i < 3; i++) {
    const char *b = bad[i];
    CHECK_INT(crvm_set_dnd_status(c, 1, b), 5);
    CHECK_INT(crvm_get_user_status(c, b), 5);
    CHECK_INT(crvm_start_user_status_notify(c, b), 5);
    CHECK_INT(crvm_stop_user_status_notify(c, b), 5);
    CHECK_INT(crvm_create_meeting(c, "ok", 0, b), 5);
    CHECK_INT(crvm_destroy_meeting(c, 1, b), 5);
    CHECK_INT(crvm_get_meetings(c, b), 5);
  }
  CHECK_INT(crvm_create_meeting(c, "bad \xc0\xaf subject", 0, ""), 5); /* overlong '/' */
  CHECK_INT(crvm_create_meeting(c, "ok", -1, ""), 5);

  /* Nothing was sent: the next events are these, with the longest cookie and NULL ones. */
  CHECK_INT(crvm_get_user_status(c, k8192), 0);
  const char *ev = NEXT(r);
  CHECK(strncmp(ev, "get_user_status_success [", 25) == 0);
  CHECK_STR(strchr(ev, ']') + 2, k8192);
  CHECK_INT(crvm_set_dnd_status(c, 0, NULL), 0);
  EXPECT_NEXT(r, "set_dnd_status_success ");
  CHECK_INT(crvm_get_meetings(c, NULL), 0);
  EXPECT_NEXT(r, "get_meetings_success [] ");
  crvm_destroy(c);
}

/* Required arguments are those docs/API.md §2.2 does not list as optional (nick, priv_acnt,
 * priv_auth_code, cookie, meet_obj, usr_ext_dat): NULL → 5. */
static void test_null_required_args(void) {
  h_rec *r = h_rec_new("nulls");
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_login(c, NULL, H_SECRET, "", "alice", "", ""), 5);
  CHECK_INT(crvm_login(c, H_APP, NULL, "", "alice", "", ""), 5); /* auth_pswd: "" is fine */
  CHECK_INT(h_rec_count(r), 0);
  h_login(c, r, H_APP, H_SECRET, "nulls");
  CHECK_INT(crvm_create_meeting(c, NULL, 0, ""), 5);
  CHECK_INT(crvm_get_meetings(c, "m"), 0);
  EXPECT_NEXT(r, "get_meetings_success [] m");
  crvm_destroy(c);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_login_fields);
  RUN(test_method_fields);
  RUN(test_null_required_args);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
