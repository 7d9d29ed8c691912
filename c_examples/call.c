/*
 * call.c: a one-to-one call. alice creates a meeting and calls bob with it; bob is rung, sees
 * the meeting, accepts; after a word, alice hangs up.
 *
 *   crvm-server --dev &          # tenant "demo", secret "demo-secret", on 127.0.0.1:5210
 *   ./call [HOST:PORT]
 *
 * Callbacks run on each client's own thread. Here they only drop the event into the user's
 * inbox; main() plays both users and waits in their inboxes for what it needs next.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crvm.h"

/* ---- a user: a client and an inbox of the events it received ---- */

#define INBOX 32

typedef struct user {
  const char *name;
  crvm_client *client;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct {
    char name[32];    /* e.g. "notify_call_in" */
    char data[8192];  /* its main payload: a call ID, a meeting... */
    int taken;
  } inbox[INBOX];
  int count;
} user;

static void post(void *ud, const char *event, const char *data, const char *detail) {
  user *u = ud;
  printf("[%s] %s %s%s%s\n", u->name, event, data ? data : "", detail ? " " : "",
         detail ? detail : "");
  fflush(stdout);
  pthread_mutex_lock(&u->mu);
  if (u->count < INBOX) {
    snprintf(u->inbox[u->count].name, sizeof u->inbox[0].name, "%s", event);
    snprintf(u->inbox[u->count].data, sizeof u->inbox[0].data, "%s", data ? data : "");
    u->count++;
  }
  pthread_cond_signal(&u->cv);
  pthread_mutex_unlock(&u->mu);
}

/* Waits up to 15 s for `event`; copies its payload to `data` (may be NULL). 0 = it came. */
static int await(user *u, const char *event, char *data, size_t cap) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 15;
  int found = 0, rc = 0;
  pthread_mutex_lock(&u->mu);
  while (!found && rc == 0) {
    for (int i = 0; i < u->count && !found; i++)
      if (!u->inbox[i].taken && strcmp(u->inbox[i].name, event) == 0) {
        u->inbox[i].taken = found = 1;
        if (data) snprintf(data, cap, "%s", u->inbox[i].data);
      }
    if (!found) rc = pthread_cond_timedwait(&u->cv, &u->mu, &deadline);
  }
  pthread_mutex_unlock(&u->mu);
  if (!found) fprintf(stderr, "[%s] %s did not arrive\n", u->name, event);
  return found ? 0 : -1;
}

/* ---- callbacks: each one posts to its user's inbox ---- */

static void login_success(void *ud, const char *user_id, const char *cookie) {
  (void)cookie;
  post(ud, "login_success", user_id, NULL);
}
static void line_off(void *ud, int32_t err) { post(ud, "line_off", crvm_err_str(err), NULL); }
static void create_meeting_success(void *ud, const char *meet_obj, const char *cookie) {
  (void)cookie;
  post(ud, "create_meeting_success", meet_obj, NULL);
}
static void call_success(void *ud, const char *call_id, const char *cookie) {
  (void)cookie;
  post(ud, "call_success", call_id, NULL);
}
static void call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  (void)cookie;
  post(ud, "call_fail", call_id, crvm_err_str(err));
}
static void notify_call_in(void *ud, const char *call_id, const char *meet_obj,
                           const char *caller_id, const char *usr_ext_dat) {
  char detail[9000];
  snprintf(detail, sizeof detail, "from %s: \"%s\", meeting %s", caller_id, usr_ext_dat,
           meet_obj);
  post(ud, "notify_call_in", call_id, detail);
}
static void accept_call_success(void *ud, const char *call_id, const char *cookie) {
  (void)cookie;
  post(ud, "accept_call_success", call_id, NULL);
}
static void notify_call_accepted(void *ud, const char *call_id, const char *usr_ext_dat,
                                 const char *meet_obj) {
  char detail[9000];
  snprintf(detail, sizeof detail, "\"%s\", meeting %s", usr_ext_dat, meet_obj);
  post(ud, "notify_call_accepted", call_id, detail);
}
static void notify_call_rejected(void *ud, const char *call_id, int32_t reason,
                                 const char *usr_ext_dat) {
  (void)usr_ext_dat;
  post(ud, "notify_call_rejected", call_id, crvm_err_str(reason));
}
static void hungup_call_success(void *ud, const char *call_id, const char *cookie) {
  (void)cookie;
  post(ud, "hungup_call_success", call_id, NULL);
}
static void notify_call_hungup(void *ud, const char *call_id, const char *usr_ext_dat) {
  post(ud, "notify_call_hungup", call_id, usr_ext_dat);
}

static int open_user(user *u, const char *name, const char *addr) {
  static const crvm_callbacks cb = {
      .login_success = login_success,
      .line_off = line_off,
      .create_meeting_success = create_meeting_success,
      .call_success = call_success,
      .call_fail = call_fail,
      .accept_call_success = accept_call_success,
      .hungup_call_success = hungup_call_success,
      .notify_call_in = notify_call_in,
      .notify_call_accepted = notify_call_accepted,
      .notify_call_rejected = notify_call_rejected,
      .notify_call_hungup = notify_call_hungup,
  };
  u->name = name;
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->cv, NULL);
  return crvm_create(addr, &cb, sizeof cb, u, &u->client) ||
         crvm_login(u->client, "demo", "demo-secret", name, name, NULL, NULL) ||
         await(u, "login_success", NULL, 0);
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:5210";
  static user alice, bob; /* zeroed */
  char meeting[8192], call_id[CRVM_ID_BUF_LEN], rung_id[CRVM_ID_BUF_LEN];
  int failed = 1;

  if (open_user(&alice, "alice", addr) || open_user(&bob, "bob", addr)) goto out;

  /* alice creates a meeting and calls bob with it; crvm_call hands back the call ID at once. */
  if (crvm_create_meeting(alice.client, "let's talk", 0, NULL) ||
      await(&alice, "create_meeting_success", meeting, sizeof meeting))
    goto out;
  if (crvm_call(alice.client, "bob", meeting, "Hi Bob, got a minute?", NULL, call_id,
                sizeof call_id) ||
      await(&alice, "call_success", NULL, 0)) /* bob's phone is ringing */
    goto out;

  /* bob is rung and accepts; "" as his meet_obj means "alice's meeting is fine". */
  if (await(&bob, "notify_call_in", rung_id, sizeof rung_id) ||
      crvm_accept_call(bob.client, rung_id, "", "Sure, joining", NULL) ||
      await(&bob, "accept_call_success", NULL, 0) ||
      await(&alice, "notify_call_accepted", NULL, 0))
    goto out;

  /* ... the conversation happens in the meeting ... then alice hangs up. */
  if (crvm_hungup_call(alice.client, call_id, "Talk soon", NULL) ||
      await(&alice, "hungup_call_success", NULL, 0) ||
      await(&bob, "notify_call_hungup", NULL, 0))
    goto out;
  failed = 0;

out:
  crvm_destroy(alice.client); /* logs out; NULL (never created) is fine */
  crvm_destroy(bob.client);
  printf("%s\n", failed ? "call example FAILED" : "call example done");
  return failed;
}
