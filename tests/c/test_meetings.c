/* docs/API.md §3.3 meetings: create (with and without password), the pinned JSON shape, subject
 * length in characters, list, destroy (creator only, 800 otherwise), and persistence across
 * a server restart. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"

static h_server *srv;

/* Creates a meeting and returns its JSON object (malloc'd), after checking its shape. */
static char *create(crvm_client *c, h_rec *r, const char *creator, const char *subject,
                    int pswd) {
  CHECK_INT(crvm_create_meeting(c, subject, pswd, "mk"), 0);
  const char *ev = WAIT(r, "create_meeting_");
  const char *prefix = "create_meeting_success ";
  if (strncmp(ev, prefix, strlen(prefix)) != 0)
    h_fail(__FILE__, __LINE__, "create_meeting(\"%s\") gave \"%s\"", subject, ev);
  size_t len = strlen(ev) - strlen(prefix) - strlen(" mk");
  CHECK_STR(ev + strlen(prefix) + len, " mk");
  char *obj = malloc(len + 1);
  memcpy(obj, ev + strlen(prefix), len);
  obj[len] = '\0';

  long long id = h_json_int(obj, "ID"), start = h_json_int(obj, "startTime");
  char pw[64], url[512], idtxt[32], want[2048];
  h_json_str(obj, "pswd", pw, sizeof pw);
  h_json_str(obj, "pubMeetUrl", url, sizeof url);
  CHECK(id > 0 && id <= 2147483647);
  snprintf(idtxt, sizeof idtxt, "%lld", id);
  CHECK(strstr(url, idtxt) != NULL);
  long long now = (long long)time(NULL);
  CHECK(start > now - 3600 && start <= now + 3600);
  if (pswd > 0) {
    CHECK_INT(strlen(pw), 6);
    CHECK(strspn(pw, "0123456789") == 6);
  } else {
    CHECK_STR(pw, "");
  }
  /* Keys in the pinned order, nothing else. */
  snprintf(want, sizeof want,
           "{\"ID\":%lld,\"pswd\":\"%s\",\"subject\":\"%s\",\"pubMeetUrl\":\"%s\","
           "\"creator\":\"%s\",\"memberCount\":0,\"startTime\":%lld}",
           id, pw, subject, url, creator, start);
  CHECK_STR(obj, want);
  return obj;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void test_create_and_list(void) {
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob");
  crvm_client *a = h_client(srv->addr, ra), *b = h_client(srv->addr, rb);
  h_login(a, ra, H_APP, H_SECRET, "alice");
  h_login(b, rb, H_APP, H_SECRET, "bob");
  char *m1 = create(a, ra, "alice", "weekly", 0);
  char *m2 = create(a, ra, "alice", "with password", 1);
  char *m3 = create(b, rb, "bob", "bob's", 42);
  CHECK(h_json_int(m1, "ID") != h_json_int(m2, "ID"));
  CHECK(h_json_int(m2, "ID") != h_json_int(m3, "ID"));
  CHECK_INT(crvm_create_meeting(a, "negative", -1, ""), 5);

  /* Everyone in the tenant sees every meeting. */
  crvm_client *who[] = {a, b};
  h_rec *rec[] = {ra, rb};
  for (int i = 0; i < 2; i++) {
    CHECK_INT(crvm_get_meetings(who[i], "list"), 0);
    const char *ev = WAIT(rec[i], "get_meetings_");
    CHECK(strncmp(ev, "get_meetings_success [{", 23) == 0);
    CHECK(strstr(ev, m1) && strstr(ev, m2) && strstr(ev, m3));
    CHECK_INT(count(ev, "\"ID\":"), 3);
    CHECK_STR(ev + strlen(ev) - strlen("}] list"), "}] list");
  }
  free(m1), free(m2), free(m3);
  crvm_destroy(a);
  crvm_destroy(b);
}

static void test_subject_length(void) {
  h_rec *r = h_rec_new("subjects");
  crvm_client *c = h_client(srv->addr, r);
  h_login(c, r, H_APP, H_SECRET, "subj");
  /* 50 characters are fine however many bytes they take; 51 are refused synchronously. */
  static const char *units[] = {"a", "\xc3\xa9" /* é */, "\xe4\xbc\x9a" /* 会 */,
                                "\xf0\x9f\x98\x80" /* 😀 */};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    free(create(c, r, "subj", h_repeat(units[i], 50), 0));
    CHECK_INT(crvm_create_meeting(c, h_repeat(units[i], 51), 0, ""), 5);
  }
  char mixed[300];
  snprintf(mixed, sizeof mixed, "%s\xf0\x9f\x98\x80", h_repeat("x", 49));
  free(create(c, r, "subj", mixed, 0));
  snprintf(mixed, sizeof mixed, "%s\xf0\x9f\x98\x80", h_repeat("x", 50));
  CHECK_INT(crvm_create_meeting(c, mixed, 0, ""), 5);
  CHECK_INT(h_rec_pending(r, ""), 0);
  crvm_destroy(c);
}

static void test_destroy(void) {
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob");
  crvm_client *a = h_client(srv->addr, ra), *b = h_client(srv->addr, rb);
  h_login(a, ra, H_APP, H_SECRET, "alice");
  h_login(b, rb, H_APP, H_SECRET, "bob");
  char *m = create(a, ra, "alice", "to destroy", 0);
  int id = (int)h_json_int(m, "ID");

  CHECK_INT(crvm_destroy_meeting(b, id, "not-mine"), 0); /* not the creator */
  EXPECT_NEXT(rb, "destroy_meeting_rslt 800 not-mine");
  CHECK_INT(crvm_destroy_meeting(a, id, "mine"), 0);
  EXPECT_NEXT(ra, "destroy_meeting_rslt 0 mine");
  CHECK_INT(crvm_destroy_meeting(a, id, "gone"), 0); /* unknown now */
  EXPECT_NEXT(ra, "destroy_meeting_rslt 800 gone");
  CHECK_INT(crvm_destroy_meeting(a, 0x7ffffffe == id ? 0x7ffffffd : 0x7ffffffe, "never"), 0);
  EXPECT_NEXT(ra, "destroy_meeting_rslt 800 never");

  CHECK_INT(crvm_get_meetings(b, "after"), 0);
  const char *ev = WAIT(rb, "get_meetings_success");
  CHECK(strstr(ev, m) == NULL);
  free(m);
  crvm_destroy(a);
  crvm_destroy(b);
}

static void test_persistence(void) {
  h_server *s = h_server_start(NULL);
  h_rec *r = h_rec_new("persist");
  crvm_client *c = h_client(s->addr, r);
  h_login(c, r, H_APP, H_SECRET, "alice");
  char *kept = create(c, r, "alice", "survives restarts", 1);
  char *gone = create(c, r, "alice", "destroyed before restart", 0);
  CHECK_INT(crvm_destroy_meeting(c, (int)h_json_int(gone, "ID"), "d"), 0);
  EXPECT_NEXT(r, "destroy_meeting_rslt 0 d");

  CHECK_INT(h_server_stop(s), 0);
  EXPECT_NEXT(r, "line_off 206");
  crvm_destroy(c);
  h_server_restart(s);

  c = h_client(s->addr, r);
  h_login(c, r, H_APP, H_SECRET, "alice");
  CHECK_INT(crvm_get_meetings(c, "after"), 0);
  char want[2048];
  snprintf(want, sizeof want, "get_meetings_success [%s] after", kept);
  EXPECT_NEXT(r, want);
  /* Still the creator's after the restart. */
  CHECK_INT(crvm_destroy_meeting(c, (int)h_json_int(kept, "ID"), "d2"), 0);
  EXPECT_NEXT(r, "destroy_meeting_rslt 0 d2");
  free(kept), free(gone);
  crvm_destroy(c);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_create_and_list);
  RUN(test_subject_length);
  RUN(test_destroy);
  RUN(test_persistence);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
