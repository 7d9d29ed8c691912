/* Calls under load: 200 logged-in users (200 clients in this process) in 100 pairs, every pair
 * cycling through ROUNDS calls at once. Each round a pseudo-random side (seeded per pair, so
 * every pair's script is the same from run to run) calls the other, and the round ends one of
 * four ways: accepted then hung up by the caller, accepted then hung up by the callee,
 * rejected, or cancelled by the caller while ringing. Everything is driven from the callbacks:
 * each reaction is sent from the event that allows it, and the next round starts when both
 * sides have had their terminal event.
 *
 * Checked: every call ends with exactly one terminal event on each side, of the kind the script
 * implies, no request fails, nobody is disconnected, and at the end get_user_status shows all
 * 200 users idle (userStatus 1). Prints the calls completed per second. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"

#define PAIRS 100
#define USERS (2 * PAIRS)
#define ROUNDS 100
#define DEADLINE_S 120 /* bounds a failing run only */

enum action { ACCEPT_CALLER_HANGS_UP, ACCEPT_CALLEE_HANGS_UP, REJECT, CANCEL, N_ACTIONS };
static const char *const action_names[] = {"accept+caller hangs up", "accept+callee hangs up",
                                           "reject", "cancel"};

typedef struct pair pair;

typedef struct party {
  pair *p;
  int side; /* 0 or 1 */
  char id[16];
  crvm_client *c;
} party;

struct pair {
  pthread_mutex_t mu;
  party u[2];
  unsigned seed;
  int round;  /* the current round; ROUNDS once done */
  int caller; /* side that calls this round */
  enum action action;
  char ids[ROUNDS][CRVM_ID_BUF_LEN];
  int terminal[ROUNDS][2]; /* terminal events per round per side */
};

static pair pairs[PAIRS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_logged_in, g_pairs_done, g_actions[N_ACTIONS];
static char *g_statuses; /* get_user_status_success of the final check */

#define BAD(...) h_fail(__FILE__, __LINE__, __VA_ARGS__)

/* ---- the script ---- */

/* Starts round p->round (pair lock held). */
static void start_round(pair *p) {
  p->caller = rand_r(&p->seed) % 2;
  p->action = (enum action)(rand_r(&p->seed) % N_ACTIONS);
  party *from = &p->u[p->caller], *to = &p->u[!p->caller];
  int32_t rc = crvm_call(from->c, to->id, "{\"stress\":1}", "x", "", p->ids[p->round],
                         CRVM_ID_BUF_LEN);
  if (rc != 0) BAD("[%s] crvm_call = %d", from->id, rc);
}

/* The round of call `id`, or a failure (pair lock held). */
static int round_of(party *u, const char *id, const char *event) {
  pair *p = u->p;
  for (int r = 0; r < ROUNDS && r <= p->round; r++)
    if (strcmp(p->ids[r], id) == 0) return r;
  BAD("[%s] %s for unknown call %s", u->id, event, id);
}

/* The terminal event the round's script gives the caller or the callee. */
static const char *expected_terminal(const pair *p, int is_caller) {
  switch (p->action) {
  case ACCEPT_CALLER_HANGS_UP:
  case CANCEL: return is_caller ? "hungup_call_success" : "notify_call_hungup";
  case ACCEPT_CALLEE_HANGS_UP: return is_caller ? "notify_call_hungup" : "hungup_call_success";
  default: return is_caller ? "notify_call_rejected" : "reject_call_success";
  }
}

static void terminal(party *u, const char *id, const char *event) {
  pair *p = u->p;
  pthread_mutex_lock(&p->mu);
  int r = round_of(u, id, event);
  int is_caller = u->side == p->caller;
  if (r != p->round) BAD("[%s] %s for call %s of an ended round %d", u->id, event, id, r);
  if (strcmp(event, expected_terminal(p, is_caller)) != 0)
    BAD("[%s] %s ended call %s (%s), expected %s", u->id, event, id, action_names[p->action],
        expected_terminal(p, is_caller));
  if (++p->terminal[r][u->side] != 1) BAD("[%s] second terminal event for %s", u->id, id);
  if (p->terminal[r][!u->side] == 1) { /* both sides done: next round */
    pthread_mutex_lock(&g_mu);
    g_actions[p->action]++;
    pthread_mutex_unlock(&g_mu);
    if (++p->round < ROUNDS) {
      start_round(p);
    } else {
      pthread_mutex_lock(&g_mu);
      g_pairs_done++;
      pthread_cond_broadcast(&g_cv);
      pthread_mutex_unlock(&g_mu);
    }
  }
  pthread_mutex_unlock(&p->mu);
}

/* ---- callbacks ---- */

static void on_login_success(void *ud, const char *usr_id, const char *cookie) {
  (void)usr_id, (void)cookie, (void)ud;
  pthread_mutex_lock(&g_mu);
  g_logged_in++;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
}
static void on_login_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  BAD("[%s] login_fail %d", ((party *)ud)->id, err);
}
static void on_line_off(void *ud, int32_t err) { BAD("[%s] line_off %d", ((party *)ud)->id, err); }
static void on_status(void *ud, const char *users, const char *cookie) {
  (void)ud, (void)cookie;
  pthread_mutex_lock(&g_mu);
  g_statuses = strdup(users);
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
}
static void on_status_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  BAD("[%s] get_user_status_fail %d", ((party *)ud)->id, err);
}
static void on_call_success(void *ud, const char *id, const char *cookie) {
  (void)cookie;
  party *u = ud;
  pair *p = u->p;
  pthread_mutex_lock(&p->mu);
  if (round_of(u, id, "call_success") != p->round || u->side != p->caller)
    BAD("[%s] unexpected call_success %s", u->id, id);
  if (p->action == CANCEL && crvm_hungup_call(u->c, id, "x", "") != 0)
    BAD("[%s] cancel refused", u->id);
  pthread_mutex_unlock(&p->mu);
}
static void on_call_fail(void *ud, const char *id, int32_t err, const char *cookie) {
  (void)cookie;
  BAD("[%s] call_fail %s %d", ((party *)ud)->id, id, err);
}
static void on_request_fail(void *ud, const char *id, int32_t err, const char *cookie) {
  (void)cookie;
  BAD("[%s] accept/reject/hungup_call_fail %s %d", ((party *)ud)->id, id, err);
}
static void on_call_in(void *ud, const char *id, const char *meet, const char *caller,
                       const char *ext) {
  party *u = ud;
  pair *p = u->p;
  pthread_mutex_lock(&p->mu);
  if (round_of(u, id, "notify_call_in") != p->round || u->side == p->caller ||
      strcmp(caller, p->u[p->caller].id) != 0 || strcmp(meet, "{\"stress\":1}") != 0 ||
      strcmp(ext, "x") != 0)
    BAD("[%s] unexpected notify_call_in %s %s %s %s", u->id, id, meet, caller, ext);
  int32_t rc = 0;
  if (p->action == ACCEPT_CALLER_HANGS_UP || p->action == ACCEPT_CALLEE_HANGS_UP)
    rc = crvm_accept_call(u->c, id, "", "x", "");
  else if (p->action == REJECT)
    rc = crvm_reject_call(u->c, id, "x", "");
  if (rc != 0) BAD("[%s] answer refused: %d", u->id, rc);
  pthread_mutex_unlock(&p->mu);
}
static void on_accept_success(void *ud, const char *id, const char *cookie) {
  (void)cookie;
  party *u = ud;
  pair *p = u->p;
  pthread_mutex_lock(&p->mu);
  if (round_of(u, id, "accept_call_success") != p->round || u->side == p->caller)
    BAD("[%s] unexpected accept_call_success %s", u->id, id);
  if (p->action == ACCEPT_CALLEE_HANGS_UP && crvm_hungup_call(u->c, id, "x", "") != 0)
    BAD("[%s] hang-up refused", u->id);
  pthread_mutex_unlock(&p->mu);
}
static void on_accepted(void *ud, const char *id, const char *ext, const char *meet) {
  party *u = ud;
  pair *p = u->p;
  pthread_mutex_lock(&p->mu);
  if (round_of(u, id, "notify_call_accepted") != p->round || u->side != p->caller ||
      strcmp(ext, "x") != 0 || strcmp(meet, "{\"stress\":1}") != 0)
    BAD("[%s] unexpected notify_call_accepted %s %s %s", u->id, id, ext, meet);
  if (p->action == ACCEPT_CALLER_HANGS_UP && crvm_hungup_call(u->c, id, "x", "") != 0)
    BAD("[%s] hang-up refused", u->id);
  pthread_mutex_unlock(&p->mu);
}
static void on_reject_success(void *ud, const char *id, const char *cookie) {
  (void)cookie;
  terminal(ud, id, "reject_call_success");
}
static void on_hungup_success(void *ud, const char *id, const char *cookie) {
  (void)cookie;
  terminal(ud, id, "hungup_call_success");
}
static void on_rejected(void *ud, const char *id, int32_t reason, const char *ext) {
  if (reason != 606 || strcmp(ext, "x") != 0)
    BAD("[%s] notify_call_rejected %s %d %s", ((party *)ud)->id, id, reason, ext);
  terminal(ud, id, "notify_call_rejected");
}
static void on_hungup(void *ud, const char *id, const char *ext) {
  if (strcmp(ext, "x") != 0) BAD("[%s] notify_call_hungup %s \"%s\"", ((party *)ud)->id, id, ext);
  terminal(ud, id, "notify_call_hungup");
}

static const crvm_callbacks callbacks = {
    .login_success = on_login_success,
    .login_fail = on_login_fail,
    .line_off = on_line_off,
    .get_user_status_success = on_status,
    .get_user_status_fail = on_status_fail,
    .call_success = on_call_success,
    .call_fail = on_call_fail,
    .accept_call_success = on_accept_success,
    .accept_call_fail = on_request_fail,
    .reject_call_success = on_reject_success,
    .reject_call_fail = on_request_fail,
    .hungup_call_success = on_hungup_success,
    .hungup_call_fail = on_request_fail,
    .notify_call_in = on_call_in,
    .notify_call_accepted = on_accepted,
    .notify_call_rejected = on_rejected,
    .notify_call_hungup = on_hungup,
};

/* ---- main ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (g_mu held) until *counter reaches `want`, or fails after DEADLINE_S. */
static void wait_count(const int *counter, int want, const char *what) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += DEADLINE_S;
  int rc = 0;
  while (*counter < want && rc == 0) rc = pthread_cond_timedwait(&g_cv, &g_mu, &dl);
  if (*counter < want) {
    for (int i = 0; i < PAIRS; i++)
      if (pairs[i].round < ROUNDS)
        fprintf(stderr, "  pair %d stuck in round %d (%s calls, %s), call %s\n", i,
                pairs[i].round, pairs[i].u[pairs[i].caller].id, action_names[pairs[i].action],
                pairs[i].ids[pairs[i].round]);
    BAD("%s: %d of %d after %d s", what, *counter, want, DEADLINE_S);
  }
}

static void test_stress(void) {
  h_server *s = h_server_start(NULL);
  for (int i = 0; i < PAIRS; i++) {
    pair *p = &pairs[i];
    pthread_mutex_init(&p->mu, NULL);
    p->seed = 1000u + (unsigned)i;
    for (int side = 0; side < 2; side++) {
      party *u = &p->u[side];
      u->p = p;
      u->side = side;
      snprintf(u->id, sizeof u->id, "s%03d", 2 * i + side);
      if (crvm_create(s->addr, &callbacks, sizeof callbacks, u, &u->c) != 0)
        BAD("crvm_create %s", u->id);
    }
  }
  double t0 = now_s();
  for (int i = 0; i < PAIRS; i++)
    for (int side = 0; side < 2; side++) {
      party *u = &pairs[i].u[side];
      if (crvm_login(u->c, H_APP, H_SECRET, "", u->id, "", "") != 0) BAD("login %s", u->id);
    }
  pthread_mutex_lock(&g_mu);
  wait_count(&g_logged_in, USERS, "logins");
  pthread_mutex_unlock(&g_mu);
  double t1 = now_s();
  fprintf(stderr, "  %d users logged in in %.2f s\n", USERS, t1 - t0);

  for (int i = 0; i < PAIRS; i++) {
    pthread_mutex_lock(&pairs[i].mu);
    start_round(&pairs[i]);
    pthread_mutex_unlock(&pairs[i].mu);
  }
  pthread_mutex_lock(&g_mu);
  wait_count(&g_pairs_done, PAIRS, "pairs done");
  pthread_mutex_unlock(&g_mu);
  double t2 = now_s();
  int calls = PAIRS * ROUNDS;
  fprintf(stderr, "  %d calls (%d pairs x %d rounds) in %.2f s: %.0f calls/s\n", calls, PAIRS,
          ROUNDS, t2 - t1, calls / (t2 - t1));
  fprintf(stderr, "  endings: %d %s, %d %s, %d %s, %d %s\n", g_actions[0], action_names[0],
          g_actions[1], action_names[1], g_actions[2], action_names[2], g_actions[3],
          action_names[3]);
  CHECK_INT(g_actions[0] + g_actions[1] + g_actions[2] + g_actions[3], calls);
  for (int a = 0; a < N_ACTIONS; a++) CHECK(g_actions[a] > 0);

  /* Every call: one terminal event per side, and distinct IDs within a pair. */
  for (int i = 0; i < PAIRS; i++)
    for (int r = 0; r < ROUNDS; r++) {
      CHECK_INT(pairs[i].terminal[r][0], 1);
      CHECK_INT(pairs[i].terminal[r][1], 1);
      for (int q = 0; q < r; q++) CHECK(strcmp(pairs[i].ids[q], pairs[i].ids[r]) != 0);
    }

  /* Everybody is online and idle. */
  CHECK_INT(crvm_get_user_status(pairs[0].u[0].c, "final"), 0);
  pthread_mutex_lock(&g_mu);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += DEADLINE_S;
  while (!g_statuses && pthread_cond_timedwait(&g_cv, &g_mu, &dl) == 0) {
  }
  pthread_mutex_unlock(&g_mu);
  CHECK(g_statuses != NULL);
  int idle = 0, entries = 0;
  for (const char *q = g_statuses; (q = strstr(q, "\"userID\":")) != NULL; q++) entries++;
  for (const char *q = g_statuses; (q = strstr(q, "\"userStatus\":1,")) != NULL; q++) idle++;
  CHECK_INT(entries, USERS);
  CHECK_INT(idle, USERS);
  free(g_statuses);

  for (int i = 0; i < PAIRS; i++)
    for (int side = 0; side < 2; side++) crvm_destroy(pairs[i].u[side].c);
  fprintf(stderr, "  all clients destroyed in %.2f s\n", now_s() - t2);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_stress);
  return 0;
}
