/*
 * demo.c: two users of the demo tenant, alice and bob, walk through presence, meetings and a
 * call. Every callback is printed as a timestamped log line, e.g.
 *
 *   12:00:00.123 [bob]   notify_user_status {"userID":"alice","userStatus":1,"DNDType":1} presence
 *
 * Run against `crvm-server --dev` (or give HOST:PORT). Exits non-zero as soon as an expected
 * event does not arrive. The walkthrough is the `steps` table at the bottom: add steps there.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crvm.h"

#define WAIT_SECONDS 15
#define MAX_EVENTS 256

/* ---- a participant: one client and the events it received ---- */

typedef struct user {
  const char *name;
  crvm_client *client;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *events[MAX_EVENTS]; /* received, in order; NULL once consumed by expect() */
  int count;
} user;

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_line(const char *who, const char *text) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  pthread_mutex_lock(&print_mu);
  printf("%02d:%02d:%02d.%03ld %-7s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
         ts.tv_nsec / 1000000L, who, text);
  fflush(stdout);
  pthread_mutex_unlock(&print_mu);
}

/* Called from the library's thread: log the event and keep it for expect(). */
static void event(void *ud, const char *fmt, ...) {
  user *u = ud;
  char text[4096], who[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(who, sizeof who, "[%s]", u->name);
  log_line(who, text);
  pthread_mutex_lock(&u->mu);
  if (u->count < MAX_EVENTS) u->events[u->count++] = strdup(text);
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
}

/* Waits for the first not yet expected event that starts with `prefix`; copies it to `out`. */
static int expect(user *u, const char *prefix, char *out, size_t cap) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += WAIT_SECONDS;
  int found = 0, rc = 0;
  pthread_mutex_lock(&u->mu);
  while (!found && rc == 0) {
    for (int i = 0; i < u->count && !found; i++) {
      if (u->events[i] && strncmp(u->events[i], prefix, strlen(prefix)) == 0) {
        if (out) snprintf(out, cap, "%s", u->events[i]);
        free(u->events[i]);
        u->events[i] = NULL;
        found = 1;
      }
    }
    if (!found) rc = pthread_cond_timedwait(&u->cv, &u->mu, &deadline);
  }
  pthread_mutex_unlock(&u->mu);
  if (!found) fprintf(stderr, "[%s] expected \"%s...\" within %d s: it did not arrive\n", u->name,
                      prefix, WAIT_SECONDS);
  return found ? 0 : -1;
}

/* A request must be accepted (0); its result comes later as an event. */
static int sent(user *u, const char *what, int rc) {
  if (rc != 0) fprintf(stderr, "[%s] %s refused: %s (%d)\n", u->name, what, crvm_err_str(rc), rc);
  return rc;
}

/* ---- callbacks: one line each ---- */

static void login_success(void *ud, const char *id, const char *cookie) {
  event(ud, "login_success %s %s", id, cookie);
}
static void login_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "login_fail %d (%s) %s", err, crvm_err_str(err), cookie);
}
static void line_off(void *ud, int32_t err) { event(ud, "line_off %d (%s)", err, crvm_err_str(err)); }
static void set_dnd_status_success(void *ud, const char *cookie) {
  event(ud, "set_dnd_status_success %s", cookie);
}
static void set_dnd_status_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "set_dnd_status_fail %d %s", err, cookie);
}
static void get_user_status_success(void *ud, const char *json, const char *cookie) {
  event(ud, "get_user_status_success %s %s", json, cookie);
}
static void get_user_status_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "get_user_status_fail %d %s", err, cookie);
}
static void notify_user_status(void *ud, const char *json, const char *cookie) {
  event(ud, "notify_user_status %s %s", json, cookie);
}
static void start_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "start_user_status_notify_rslt %d %s", err, cookie);
}
static void stop_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "stop_user_status_notify_rslt %d %s", err, cookie);
}
static void create_meeting_success(void *ud, const char *json, const char *cookie) {
  event(ud, "create_meeting_success %s %s", json, cookie);
}
static void create_meeting_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "create_meeting_fail %d %s", err, cookie);
}
static void destroy_meeting_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "destroy_meeting_rslt %d %s", err, cookie);
}
static void get_meetings_success(void *ud, const char *json, const char *cookie) {
  event(ud, "get_meetings_success %s %s", json, cookie);
}
static void get_meetings_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "get_meetings_fail %d %s", err, cookie);
}
static void call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "call_success %s %s", call_id, cookie);
}
static void call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "call_fail %s %d (%s) %s", call_id, err, crvm_err_str(err), cookie);
}
static void accept_call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "accept_call_success %s %s", call_id, cookie);
}
static void accept_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "accept_call_fail %s %d %s", call_id, err, cookie);
}
static void hungup_call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "hungup_call_success %s %s", call_id, cookie);
}
static void hungup_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "hungup_call_fail %s %d %s", call_id, err, cookie);
}
static void notify_call_in(void *ud, const char *call_id, const char *meet_obj,
                           const char *caller_id, const char *usr_ext_dat) {
  event(ud, "notify_call_in %s from %s \"%s\" meeting %s", call_id, caller_id, usr_ext_dat,
        meet_obj);
}
static void notify_call_accepted(void *ud, const char *call_id, const char *usr_ext_dat,
                                 const char *meet_obj) {
  event(ud, "notify_call_accepted %s \"%s\" meeting %s", call_id, usr_ext_dat, meet_obj);
}
static void notify_call_rejected(void *ud, const char *call_id, int32_t reason,
                                 const char *usr_ext_dat) {
  event(ud, "notify_call_rejected %s %d (%s) \"%s\"", call_id, reason, crvm_err_str(reason),
        usr_ext_dat);
}
static void notify_call_hungup(void *ud, const char *call_id, const char *usr_ext_dat) {
  event(ud, "notify_call_hungup %s \"%s\"", call_id, usr_ext_dat);
}

/* ---- the walkthrough ---- */

typedef struct demo {
  const char *addr;
  user alice, bob;
  int meeting_id;
  char meeting[4096];             /* alice's meeting object, as created */
  char call_id[CRVM_ID_BUF_LEN];  /* alice's call to bob */
} demo;

static int step_login(demo *d) {
  user *both[] = {&d->alice, &d->bob};
  for (int i = 0; i < 2; i++)
    if (sent(both[i], "login", crvm_login(both[i]->client, "demo", "demo-secret", both[i]->name,
                                          both[i]->name, NULL, "hello")))
      return -1;
  return expect(&d->alice, "login_success alice", NULL, 0) ||
         expect(&d->bob, "login_success bob", NULL, 0);
}

static int step_subscribe(demo *d) {
  if (sent(&d->bob, "start_user_status_notify",
           crvm_start_user_status_notify(d->bob.client, "presence")))
    return -1;
  return expect(&d->bob, "start_user_status_notify_rslt 0", NULL, 0);
}

static int step_dnd(demo *d) {
  if (sent(&d->alice, "set_dnd_status", crvm_set_dnd_status(d->alice.client, 1, "dnd-on")))
    return -1;
  return expect(&d->alice, "set_dnd_status_success", NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":1,\"DNDType\":1}",
                NULL, 0);
}

static int step_status(demo *d) {
  if (sent(&d->bob, "get_user_status", crvm_get_user_status(d->bob.client, "who")))
    return -1;
  return expect(&d->bob, "get_user_status_success", NULL, 0);
}

static int step_create_meeting(demo *d) {
  char ev[4096];
  if (sent(&d->alice, "create_meeting",
           crvm_create_meeting(d->alice.client, "crvm demo", 1, "new-meeting")))
    return -1;
  if (expect(&d->alice, "create_meeting_success", ev, sizeof ev)) return -1;
  /* "create_meeting_success {...} new-meeting": keep the object for the call below. */
  const char *obj = ev + strlen("create_meeting_success ");
  size_t len = strlen(obj) - strlen(" new-meeting");
  snprintf(d->meeting, sizeof d->meeting, "%.*s", (int)len, obj);
  const char *id = strstr(ev, "\"ID\":");
  return id && sscanf(id + 5, "%d", &d->meeting_id) == 1 ? 0 : -1;
}

static int step_list_meetings(demo *d) {
  char ev[8192], id[32];
  if (sent(&d->bob, "get_meetings", crvm_get_meetings(d->bob.client, "list")))
    return -1;
  if (expect(&d->bob, "get_meetings_success", ev, sizeof ev)) return -1;
  snprintf(id, sizeof id, "\"ID\":%d,", d->meeting_id);
  if (!strstr(ev, id)) fprintf(stderr, "[bob] alice's meeting is not in the list\n");
  return strstr(ev, id) ? 0 : -1;
}

static int step_call(demo *d) {
  /* The call ID comes back at once; call_success follows once bob's phone rings. Both now
   * show userStatus 2 ("in a call") to presence subscribers such as bob. */
  char want[128];
  if (sent(&d->alice, "call",
           crvm_call(d->alice.client, "bob", d->meeting, "Join my meeting?", "ring",
                     d->call_id, sizeof d->call_id)))
    return -1;
  snprintf(want, sizeof want, "notify_call_in %s from alice", d->call_id);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "call_success %s", d->call_id);
  return expect(&d->alice, want, NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":2", NULL, 0);
}

static int step_accept(demo *d) {
  /* An empty meet_obj: alice gets her own meeting back in notify_call_accepted. */
  char want[128];
  if (sent(&d->bob, "accept_call",
           crvm_accept_call(d->bob.client, d->call_id, "", "On my way", "answer")))
    return -1;
  snprintf(want, sizeof want, "accept_call_success %s", d->call_id);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "notify_call_accepted %s", d->call_id);
  return expect(&d->alice, want, NULL, 0);
}

static int step_hangup(demo *d) {
  char want[128];
  if (sent(&d->alice, "hungup_call",
           crvm_hungup_call(d->alice.client, d->call_id, "Thanks, bye", "hang-up")))
    return -1;
  snprintf(want, sizeof want, "hungup_call_success %s", d->call_id);
  if (expect(&d->alice, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "notify_call_hungup %s", d->call_id);
  return expect(&d->bob, want, NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":1", NULL, 0);
}

static int step_destroy_meeting(demo *d) {
  if (sent(&d->alice, "destroy_meeting",
           crvm_destroy_meeting(d->alice.client, d->meeting_id, "bye-meeting")))
    return -1;
  return expect(&d->alice, "destroy_meeting_rslt 0", NULL, 0);
}

static int step_logout(demo *d) {
  /* Bob sees alice go offline, then leaves too. */
  if (sent(&d->alice, "logout", crvm_logout(d->alice.client))) return -1;
  if (expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":0", NULL, 0))
    return -1;
  if (sent(&d->bob, "stop_user_status_notify",
           crvm_stop_user_status_notify(d->bob.client, "presence")) ||
      expect(&d->bob, "stop_user_status_notify_rslt 0", NULL, 0))
    return -1;
  return sent(&d->bob, "logout", crvm_logout(d->bob.client));
}

static const struct step {
  const char *title;
  int (*run)(demo *d);
} steps[] = {
    {"alice and bob log in", step_login},
    {"bob subscribes to presence", step_subscribe},
    {"alice turns do-not-disturb on", step_dnd},
    {"bob asks who is online", step_status},
    {"alice creates a meeting with a password", step_create_meeting},
    {"bob lists the meetings", step_list_meetings},
    {"alice calls bob with her meeting", step_call},
    {"bob accepts the call", step_accept},
    {"alice hangs up", step_hangup},
    {"alice destroys her meeting", step_destroy_meeting},
    {"alice and bob log out", step_logout},
};

static int open_user(user *u, const char *name, const char *addr) {
  static const crvm_callbacks cb = {
      .login_success = login_success,
      .login_fail = login_fail,
      .line_off = line_off,
      .set_dnd_status_success = set_dnd_status_success,
      .set_dnd_status_fail = set_dnd_status_fail,
      .get_user_status_success = get_user_status_success,
      .get_user_status_fail = get_user_status_fail,
      .notify_user_status = notify_user_status,
      .start_user_status_notify_rslt = start_user_status_notify_rslt,
      .stop_user_status_notify_rslt = stop_user_status_notify_rslt,
      .create_meeting_success = create_meeting_success,
      .create_meeting_fail = create_meeting_fail,
      .destroy_meeting_rslt = destroy_meeting_rslt,
      .get_meetings_success = get_meetings_success,
      .get_meetings_fail = get_meetings_fail,
      .call_success = call_success,
      .call_fail = call_fail,
      .accept_call_success = accept_call_success,
      .accept_call_fail = accept_call_fail,
      .hungup_call_success = hungup_call_success,
      .hungup_call_fail = hungup_call_fail,
      .notify_call_in = notify_call_in,
      .notify_call_accepted = notify_call_accepted,
      .notify_call_rejected = notify_call_rejected,
      .notify_call_hungup = notify_call_hungup,
  };
  u->name = name;
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->cv, NULL);
  int rc = crvm_create(addr, &cb, sizeof cb, u, &u->client);
  if (rc) fprintf(stderr, "crvm_create(%s): %s\n", addr, crvm_err_str(rc));
  return rc;
}

int main(int argc, char **argv) {
  static demo d; /* zeroed */
  d.addr = argc > 1 ? argv[1] : "127.0.0.1:5210";
  if (open_user(&d.alice, "alice", d.addr) || open_user(&d.bob, "bob", d.addr)) return 1;
  char line[256];
  snprintf(line, sizeof line, "libcrvm %s, server %s", crvm_version(), d.addr);
  log_line("[demo]", line);

  int failed = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !failed; i++) {
    snprintf(line, sizeof line, "--- step %zu: %s", i + 1, steps[i].title);
    log_line("[demo]", line);
    failed = steps[i].run(&d) != 0;
  }
  crvm_destroy(d.alice.client);
  crvm_destroy(d.bob.client);
  log_line("[demo]", failed ? "FAILED" : "all steps done");
  return failed ? 1 : 0;
}
