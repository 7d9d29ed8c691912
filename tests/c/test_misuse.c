/* C API misuse (run under AddressSanitizer/LeakSanitizer in CI): NULL in every pointer
 * argument, invalid UTF-8 and 1 MB strings in every string argument, eight threads calling
 * one client at once, destroy while events are flowing, and crvm_poll from several threads.
 * Nothing may crash, leak, or break the one-result-per-accepted-request rule. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static h_server *srv;
static const char BAD_UTF8[] = "\xff\xfe\xc3";
static char *huge; /* 1 MB of 'a' */

/* Every required pointer NULL, one at a time: refused with 5, nothing else happens. */
static void test_null_everywhere(void) {
  h_rec *r = h_rec_new("nulls");
  crvm_client *c = NULL;
  CHECK_INT(crvm_create(NULL, h_callbacks(), sizeof(crvm_callbacks), r, &c), 5);
  CHECK_INT(crvm_create(srv->addr, h_callbacks(), sizeof(crvm_callbacks), r, NULL), 5);
  CHECK(c == NULL);
  c = h_client(srv->addr, r);
  CHECK_INT(crvm_set_option(c, NULL, "x"), 5);
  CHECK_INT(crvm_set_option(c, "tls", NULL), 5);
  CHECK_INT(crvm_login(c, NULL, H_SECRET, "", "nulls", "", ""), 5);
  CHECK_INT(crvm_login(c, H_APP, NULL, "", "nulls", "", ""), 5);
  h_login(c, r, H_APP, H_SECRET, "nulls");
  char id[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_create_meeting(c, NULL, 0, ""), 5);
  CHECK_INT(crvm_call(c, NULL, "", "", "", id, sizeof id), 5);
  CHECK_INT(crvm_call(c, "bob", "", "", "", NULL, sizeof id), 5);
  CHECK_INT(crvm_accept_call(c, NULL, "", "", ""), 5);
  CHECK_INT(crvm_reject_call(c, NULL, "", ""), 5);
  CHECK_INT(crvm_hungup_call(c, NULL, "", ""), 5);
  CHECK_INT(crvm_send_cmd(c, NULL, "YQ==", id, sizeof id), 5);
  CHECK_INT(crvm_send_cmd(c, "bob", NULL, id, sizeof id), 5);
  CHECK_INT(crvm_send_cmd(c, "bob", "YQ==", NULL, sizeof id), 5);
  CHECK_INT(crvm_send_buffer(c, NULL, "YQ==", id, sizeof id), 5);
  CHECK_INT(crvm_send_buffer(c, "bob", NULL, id, sizeof id), 5);
  CHECK_INT(crvm_send_file(c, NULL, "/etc/hostname", id, sizeof id), 5);
  CHECK_INT(crvm_send_file(c, "bob", NULL, id, sizeof id), 5);
  CHECK_INT(crvm_cancel_send(c, NULL), 5);
  /* Optional strings read as "": each of these is accepted and answered once. */
  CHECK_INT(crvm_set_dnd_status(c, 0, NULL), 0);
  EXPECT_NEXT(r, "set_dnd_status_success ");
  CHECK_INT(crvm_get_meetings(c, NULL), 0);
  EXPECT_NEXT(r, "get_meetings_success [] ");
  /* The NULL handle, everywhere. */
  CHECK_INT(crvm_set_option(NULL, "tls", "off"), 5);
  CHECK_INT(crvm_login(NULL, H_APP, H_SECRET, "", "x", "", ""), 5);
  CHECK_INT(crvm_logout(NULL), 5);
  CHECK_INT(crvm_get_user_status(NULL, ""), 5);
  CHECK_INT(crvm_send_cmd(NULL, "bob", "YQ==", id, sizeof id), 5);
  CHECK_INT(crvm_cancel_send(NULL, "t"), 5);
  CHECK_INT(crvm_poll(NULL, 0), -5);
  crvm_destroy(NULL);
  crvm_destroy(c);
  crvm_destroy(c); /* a destroyed handle is a no-op, not a double free */
  CHECK_INT(crvm_logout(c), 5);
}

/* Invalid UTF-8 and a 1 MB string in every string argument: refused, nothing sent. */
static void test_bad_and_huge_strings(void) {
  h_rec *r = h_rec_new("strings");
  crvm_client *c = h_client(srv->addr, r);
  const char *bads[] = {BAD_UTF8, huge};
  char id[CRVM_ID_BUF_LEN];
  for (int i = 0; i < 2; i++) {
    const char *b = bads[i];
    CHECK(crvm_login(c, b, H_SECRET, "", "s", "", "") != 0);
    CHECK(crvm_login(c, H_APP, b, "", "s", "", "") != 0);
    CHECK(crvm_login(c, H_APP, H_SECRET, b, "s", "", "") != 0);
    CHECK(crvm_login(c, H_APP, H_SECRET, "", b, "", "") != 0);
    CHECK(crvm_login(c, H_APP, H_SECRET, "", "s", b, "") != 0);
    CHECK(crvm_login(c, H_APP, H_SECRET, "", "s", "", b) != 0);
    CHECK(crvm_set_option(c, b, "x") != 0);
    CHECK(crvm_set_option(c, "download_dir", b) != 0);
  }
  h_login(c, r, H_APP, H_SECRET, "strings");
  for (int i = 0; i < 2; i++) {
    const char *b = bads[i];
    CHECK(crvm_set_dnd_status(c, 1, b) != 0);
    CHECK(crvm_get_user_status(c, b) != 0);
    CHECK(crvm_start_user_status_notify(c, b) != 0);
    CHECK(crvm_create_meeting(c, b, 0, "") != 0);
    CHECK(crvm_create_meeting(c, "ok", 0, b) != 0);
    CHECK(crvm_destroy_meeting(c, 1, b) != 0);
    CHECK(crvm_call(c, b, "", "", "", id, sizeof id) != 0);
    CHECK(crvm_call(c, "bob", b, "", "", id, sizeof id) != 0);
    CHECK(crvm_call(c, "bob", "", b, "", id, sizeof id) != 0);
    CHECK(crvm_call(c, "bob", "", "", b, id, sizeof id) != 0);
    CHECK(crvm_accept_call(c, b, "", "", "") != 0);
    CHECK(crvm_reject_call(c, "c", b, "") != 0);
    CHECK(crvm_hungup_call(c, "c", "", b) != 0);
    CHECK(crvm_send_cmd(c, b, "YQ==", id, sizeof id) != 0);
    CHECK(crvm_send_cmd(c, "bob", b, id, sizeof id) != 0);
    CHECK(crvm_send_file(c, b, "/etc/hostname", id, sizeof id) != 0);
    CHECK(crvm_send_file(c, "bob", b, id, sizeof id) != 0);
    CHECK(crvm_cancel_send(c, b) != 0);
  }
  /* Nothing was sent: the next request's answer is the next event. */
  CHECK_INT(crvm_get_meetings(c, "after"), 0);
  EXPECT_NEXT(r, "get_meetings_success [] after");
  crvm_destroy(c);
}

/* Eight threads hammer one client; every accepted request gets exactly one result. */
enum { THREADS = 8, ROUNDS = 150 };
static crvm_client *shared;
static atomic_int accepted;

static void *hammer(void *arg) {
  long t = (long)arg;
  char cookie[32];
  for (int i = 0; i < ROUNDS; i++) {
    snprintf(cookie, sizeof cookie, "t%ld-%d", t, i);
    int32_t rc;
    switch (i % 4) {
    case 0: rc = crvm_set_dnd_status(shared, i, cookie); break;
    case 1: rc = crvm_get_user_status(shared, cookie); break;
    case 2: rc = crvm_get_meetings(shared, cookie); break;
    default: rc = crvm_start_user_status_notify(shared, cookie); break;
    }
    if (rc == 0) atomic_fetch_add(&accepted, 1);
    else CHECK_INT(rc, 0);
  }
  return NULL;
}

static void test_eight_threads_one_client(void) {
  h_rec *r = h_rec_new("threads");
  shared = h_client(srv->addr, r);
  h_login(shared, r, H_APP, H_SECRET, "threads");
  pthread_t th[THREADS];
  for (long t = 0; t < THREADS; t++) CHECK_INT(pthread_create(&th[t], NULL, hammer, (void *)t), 0);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  CHECK_INT(atomic_load(&accepted), THREADS * ROUNDS);
  /* Results (plus the presence pushes our own DND changes cause once subscribed): wait for
   * the answer to a marker request sent last, then count results by their cookies. */
  CHECK_INT(crvm_get_meetings(shared, "marker"), 0);
  WAIT(r, "get_meetings_success [] marker");
  size_t results = (size_t)h_rec_pending(r, "set_dnd_status_success") +
            (size_t)h_rec_pending(r, "get_user_status_success") +
            (size_t)h_rec_pending(r, "get_meetings_success") +
            (size_t)h_rec_pending(r, "start_user_status_notify_rslt 0");
  CHECK_INT(results, THREADS * ROUNDS);
  crvm_destroy(shared);
}

/* Destroy a client while presence pushes pour in: after crvm_destroy returns, not one more
 * callback of it runs. */
static void test_destroy_while_events_flow(void) {
  h_rec *rs = h_rec_new("sub");
  h_rec *rp = h_rec_new("pusher");
  crvm_client *sub = h_client(srv->addr, rs);
  crvm_client *pusher = h_client(srv->addr, rp);
  h_login(sub, rs, H_APP, H_SECRET, "sub");
  h_login(pusher, rp, H_APP, H_SECRET, "pusher");
  CHECK_INT(crvm_start_user_status_notify(sub, "s"), 0);
  WAIT(rs, "start_user_status_notify_rslt 0");
  for (int i = 0; i < 2000; i++) CHECK_INT(crvm_set_dnd_status(pusher, i, ""), 0);
  WAIT(rs, "notify_user_status {\"userID\":\"pusher\",\"userStatus\":1,\"DNDType\":10}");
  crvm_destroy(sub);
  size_t after = h_rec_count(rs);
  /* Let the pusher finish all its requests; the destroyed client must stay silent. */
  CHECK_INT(crvm_get_meetings(pusher, "end"), 0);
  WAIT(rp, "get_meetings_success [] end");
  CHECK_INT(h_rec_count(rs), after);
  crvm_destroy(pusher);
}

/* Manual dispatch polled from four threads at once: events still run one at a time, in
 * order, each exactly once. */
static crvm_client *polled;
static atomic_int in_callback, overlaps, stop_polling;
static int last_dnd = -1, order_errors;

static void one_at_a_time(h_rec *r, const char *event, void *arg) {
  (void)r, (void)arg;
  if (atomic_fetch_add(&in_callback, 1) != 0) atomic_fetch_add(&overlaps, 1);
  const char *p = strstr(event, "\"DNDType\":");
  if (strncmp(event, "notify_user_status", 18) == 0 && p) {
    int dnd = atoi(p + 10);
    if (dnd <= last_dnd) order_errors++; /* guarded by the one-at-a-time rule itself */
    last_dnd = dnd;
  }
  atomic_fetch_sub(&in_callback, 1);
}

static void *poller(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_polling)) CHECK(crvm_poll(polled, 20) >= 0);
  return NULL;
}

static void test_poll_from_several_threads(void) {
  h_rec *r = h_rec_new("polled");
  h_rec *rp = h_rec_new("pusher2");
  polled = h_client(srv->addr, r);
  crvm_client *pusher = h_client(srv->addr, rp);
  CHECK_INT(crvm_set_option(polled, "dispatch", "manual"), 0);
  h_rec_set_hook(r, one_at_a_time, NULL);
  pthread_t th[4];
  for (int t = 0; t < 4; t++) CHECK_INT(pthread_create(&th[t], NULL, poller, NULL), 0);
  CHECK_INT(crvm_login(polled, H_APP, H_SECRET, "", "polled", "", "l"), 0);
  WAIT(r, "login_success polled l");
  h_login(pusher, rp, H_APP, H_SECRET, "pusher2");
  CHECK_INT(crvm_start_user_status_notify(polled, "s"), 0);
  WAIT(r, "start_user_status_notify_rslt 0 s");
  for (int i = 0; i < 500; i++) CHECK_INT(crvm_set_dnd_status(pusher, i, ""), 0);
  WAIT(r, "notify_user_status {\"userID\":\"pusher2\",\"userStatus\":1,\"DNDType\":499}");
  atomic_store(&stop_polling, 1);
  for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
  CHECK_INT(atomic_load(&overlaps), 0);
  CHECK_INT(order_errors, 0);
  CHECK_INT(last_dnd, 499);
  crvm_destroy(polled);
  crvm_destroy(pusher);
}

int main(void) {
  huge = h_repeat("a", 1024 * 1024);
  srv = h_server_start(NULL);
  RUN(test_null_everywhere);
  RUN(test_bad_and_huge_strings);
  RUN(test_eight_threads_one_client);
  RUN(test_destroy_while_events_flow);
  RUN(test_poll_from_several_threads);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
