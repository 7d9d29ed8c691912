/* docs/API.md §2.4 crvm_destroy: from inside a callback (returns at once, no callback afterwards,
 * no crash), while logged in (clean logout seen by others), with requests pending, and while
 * a login is pending on a server that does not answer (no waiting on the network). */
#include <stdio.h>
#include <time.h>

#include "harness.h"

#define OFFLINE(user) "notify_user_status {\"userID\":\"" user "\",\"userStatus\":0,\"DNDType\":0} sub"
#define ONLINE(user) "notify_user_status {\"userID\":\"" user "\",\"userStatus\":1,\"DNDType\":0} sub"

static h_server *srv;

typedef struct {
  crvm_client *client;
  const char *on;  /* destroy when this event arrives */
  h_rec *probe;    /* told when crvm_destroy returned */
} destroy_plan;

static void destroy_hook(h_rec *r, const char *event, void *arg) {
  (void)r;
  destroy_plan *p = arg;
  if (strcmp(event, p->on) != 0) return;
  crvm_destroy(p->client);
  h_note(p->probe, "destroy returned");
}

/* bob, subscribed to presence with the cookie "sub". */
static crvm_client *watcher(h_rec *rb) {
  crvm_client *b = h_client(srv->addr, rb);
  h_login(b, rb, H_APP, H_SECRET, "bob");
  CHECK_INT(crvm_start_user_status_notify(b, "sub"), 0);
  EXPECT_NEXT(rb, "start_user_status_notify_rslt 0 sub");
  return b;
}

static void test_destroy_in_login_callback(void) {
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob"), *probe = h_rec_new("probe");
  crvm_client *b = watcher(rb);
  destroy_plan plan = {NULL, "login_success alice in-cb", probe};
  h_rec_set_hook(ra, destroy_hook, &plan);
  plan.client = h_client(srv->addr, ra);
  CHECK_INT(crvm_login(plan.client, H_APP, H_SECRET, "", "alice", "", "in-cb"), 0);
  EXPECT_NEXT(probe, "destroy returned");
  EXPECT_NEXT(rb, ONLINE("alice"));
  EXPECT_NEXT(rb, OFFLINE("alice")); /* destroy logged alice out cleanly */
  /* A new alice session would kick the old one, were it still alive. */
  h_rec *ra2 = h_rec_new("alice-2");
  crvm_client *a2 = h_client(srv->addr, ra2);
  h_login(a2, ra2, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(rb, ONLINE("alice"));
  CHECK_INT(h_rec_count(ra), 1);
  crvm_destroy(a2);
  EXPECT_NEXT(rb, OFFLINE("alice"));
  crvm_destroy(b);
}

static void test_destroy_in_callback_drops_queued_events(void) {
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob"), *probe = h_rec_new("probe");
  crvm_client *b = watcher(rb);
  destroy_plan plan = {NULL, "set_dnd_status_success 1", probe};
  h_rec_set_hook(ra, destroy_hook, &plan);
  plan.client = h_client(srv->addr, ra);
  h_login(plan.client, ra, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(rb, ONLINE("alice"));
  h_server_pause(srv); /* all three are sent before the first result can destroy the client */
  CHECK_INT(crvm_set_dnd_status(plan.client, 0, "1"), 0);
  CHECK_INT(crvm_set_dnd_status(plan.client, 0, "2"), 0);
  CHECK_INT(crvm_set_dnd_status(plan.client, 0, "3"), 0);
  h_server_resume(srv);
  EXPECT_NEXT(probe, "destroy returned");
  WAIT(rb, OFFLINE("alice"));
  CHECK_INT(h_rec_count(ra), 2); /* login_success and the first result only */
  crvm_destroy(b);
}

static void test_destroy_while_logged_in(void) {
  h_rec *ra = h_rec_new("alice"), *rb = h_rec_new("bob");
  crvm_client *b = watcher(rb);
  crvm_client *a = h_client(srv->addr, ra);
  h_login(a, ra, H_APP, H_SECRET, "alice");
  EXPECT_NEXT(rb, ONLINE("alice"));
  CHECK_INT(crvm_get_meetings(a, "pending"), 0);
  CHECK_INT(crvm_get_user_status(a, "pending"), 0);
  crvm_destroy(a);
  size_t n = h_rec_count(ra);
  WAIT(rb, OFFLINE("alice"));
  CHECK_INT(h_rec_count(ra), n); /* nothing after crvm_destroy returned */
  crvm_destroy(b);
}

static void test_destroy_with_login_pending(void) {
  /* Login sent, destroyed before the answer. */
  h_rec *r = h_rec_new("early");
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "early", "", ""), 0);
  crvm_destroy(c);
  size_t n = h_rec_count(r);

  /* Login pending on a server that does not answer: destroy must not wait for it. */
  h_server *paused = h_server_start(NULL);
  h_server_pause(paused);
  h_rec *rp = h_rec_new("paused");
  c = h_client(paused->addr, rp);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", "alice", "", ""), 0);
  time_t t0 = time(NULL);
  crvm_destroy(c);
  long took = (long)(time(NULL) - t0);
  if (took > 5) h_fail(__FILE__, __LINE__, "crvm_destroy took %ld s with a login pending", took);
  h_server_resume(paused);
  CHECK_INT(h_server_stop(paused), 0);
  CHECK_INT(h_rec_count(rp), 0);
  CHECK_INT(h_rec_count(r), n);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_destroy_in_login_callback);
  RUN(test_destroy_in_callback_drops_queued_events);
  RUN(test_destroy_while_logged_in);
  RUN(test_destroy_with_login_pending);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
