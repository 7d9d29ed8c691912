/* docs/API.md §2.4 dispatch=manual: events run only inside crvm_poll, on the polling thread, in
 * order; crvm_poll returns how many ran; callbacks may call back into the library. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "harness.h"

static pthread_t main_thread;
static atomic_int in_poll;
static crvm_client *client;

static void check_context(h_rec *r, const char *event, void *arg) {
  (void)r, (void)arg;
  if (!atomic_load(&in_poll) || !pthread_equal(pthread_self(), main_thread))
    h_fail(__FILE__, __LINE__, "\"%s\" ran outside crvm_poll", event);
  /* Re-entrancy: a callback issues the next request itself. */
  if (strncmp(event, "login_success", 13) == 0)
    CHECK_INT(crvm_get_user_status(client, "from-callback"), 0);
}

/* Polls until `r` has recorded `n` events in all; returns the sum of crvm_poll's results. */
static int poll_until(h_rec *r, size_t n) {
  int total = 0;
  time_t deadline = time(NULL) + H_TIMEOUT_MS / 1000;
  while (h_rec_count(r) < n) {
    if (time(NULL) > deadline) h_fail(__FILE__, __LINE__, "only %zu of %zu events", h_rec_count(r), n);
    atomic_store(&in_poll, 1);
    int ran = crvm_poll(client, 200);
    atomic_store(&in_poll, 0);
    CHECK(ran >= 0);
    total += ran;
  }
  return total;
}

static void test_manual_dispatch(void) {
  h_server *s = h_server_start(NULL);
  h_rec *r = h_rec_new("manual");
  main_thread = pthread_self();
  h_rec_set_hook(r, check_context, NULL);
  client = h_client(s->addr, r);
  CHECK_INT(crvm_set_option(client, "dispatch", "manual"), 0);
  CHECK_INT(crvm_poll(client, 0), 0); /* nothing yet */

  CHECK_INT(crvm_login(client, H_APP, H_SECRET, "", "alice", "", "l"), 0);
  CHECK_INT(poll_until(r, 2), 2); /* login_success, then the status its callback asked for */
  EXPECT_NEXT(r, "login_success alice l");
  EXPECT_NEXT(r, "get_user_status_success "
                 "[{\"userID\":\"alice\",\"userStatus\":1,\"DNDType\":0}] from-callback");

  /* Several results, one poll loop, in request order. */
  CHECK_INT(crvm_set_dnd_status(client, 1, "1"), 0);
  CHECK_INT(crvm_get_meetings(client, "2"), 0);
  CHECK_INT(crvm_create_meeting(client, "manual", 0, "3"), 0);
  CHECK_INT(poll_until(r, 5), 3);
  EXPECT_NEXT(r, "set_dnd_status_success 1");
  EXPECT_NEXT(r, "get_meetings_success [] 2");
  CHECK(strncmp(NEXT(r), "create_meeting_success {", 24) == 0);
  CHECK_INT(crvm_poll(client, 0), 0);

  CHECK_INT(crvm_logout(client), 0);
  crvm_destroy(client);
  CHECK_INT(h_rec_count(r), 5);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_manual_dispatch);
  return 0;
}
