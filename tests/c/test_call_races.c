/* docs/API.md §3.4 races, settled by the server's serialisation: both parties hang up at once (while
 * connected, and while ringing), the caller cancels while the callee accepts or rejects, and
 * glare (alice calls bob while bob calls alice). Each race is repeated, alternating which
 * request goes first; half the rounds send the two back to back (the server picks the order),
 * the other half wait for the first one's result (so both outcomes are always exercised).
 * Whatever order the server saw, each party gets exactly one terminal event per call it was
 * part of (call_fail, notify_call_rejected, notify_call_hungup, reject_call_success,
 * hungup_call_success), a late request gets its *_fail(600) after the notification that made
 * it late, and both parties end idle (userStatus 1). */
#include <stdarg.h>
#include <stdio.h>

#include "harness.h"

#define ST H_STATUS
#define IDLE "[" ST("alice", 1, 0) "," ST("bob", 1, 0) "]"
#define REPEAT 40
#define MAX_SEEN 16

static h_server *srv;

#define F h_fmt

typedef struct user {
  const char *id;
  h_rec *r;
  crvm_client *c;
  const char *seen[MAX_SEEN]; /* events of the current round, in order */
  int n;
} user;

static user alice_, bob_;

static void login(user *u, const char *id) {
  u->id = id;
  u->r = h_rec_new(id);
  u->c = h_client(srv->addr, u->r);
  h_login(u->c, u->r, H_APP, H_SECRET, id);
}

/* Records `u`'s events, in order, up to and including the first one starting with `prefix`. */
static void collect_until(user *u, const char *prefix) {
  for (;;) {
    const char *ev = NEXT(u->r);
    if (u->n == MAX_SEEN) h_fail(__FILE__, __LINE__, "[%s] too many events", u->id);
    u->seen[u->n++] = ev;
    if (strncmp(ev, prefix, strlen(prefix)) == 0) return;
  }
}

/* Once both parties' requests are answered, everything the race caused is queued before the
 * answer to a new request: collect up to it, and check that both parties are idle. */
static void settle(user *u) {
  CHECK_INT(crvm_get_user_status(u->c, "settle"), 0);
  collect_until(u, "get_user_status_success");
  CHECK_STR(u->seen[--u->n], "get_user_status_success " IDLE " settle");
}

/* `u` saw exactly these events this round (NULL-terminated), then starts a new round. */
static void saw(int line, user *u, ...) {
  va_list ap;
  va_start(ap, u);
  int i = 0;
  for (const char *want; (want = va_arg(ap, const char *)) != NULL; i++) {
    if (i >= u->n || strcmp(u->seen[i], want) != 0)
      h_fail(__FILE__, line, "[%s] event %d is \"%s\", expected \"%s\"", u->id, i,
             i < u->n ? u->seen[i] : "(none)", want);
  }
  va_end(ap);
  if (i != u->n)
    h_fail(__FILE__, line, "[%s] %d events, expected %d (extra: \"%s\")", u->id, u->n, i,
           u->seen[i]);
  u->n = 0;
}
#define SAW(u, ...) saw(__LINE__, (u), __VA_ARGS__, (const char *)NULL)

/* Terminal events about `id` that `u` saw this round. */
static int terminals(const user *u, const char *id) {
  static const char *const kinds[] = {"call_fail", "notify_call_rejected", "notify_call_hungup",
                                      "reject_call_success", "hungup_call_success"};
  int n = 0;
  for (int i = 0; i < u->n; i++)
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
      size_t len = strlen(kinds[k]);
      if (strncmp(u->seen[i], kinds[k], len) == 0 && u->seen[i][len] == ' ' &&
          strncmp(u->seen[i] + len + 1, id, strlen(id)) == 0 &&
          u->seen[i][len + 1 + strlen(id)] == ' ')
        n++;
    }
  return n;
}

static void ring(user *from, user *to, char *id) {
  CHECK_INT(crvm_call(from->c, to->id, "", "", "ring", id, CRVM_ID_BUF_LEN), 0);
  EXPECT_NEXT(to->r, F("notify_call_in %s  %s ", id, from->id));
  EXPECT_NEXT(from->r, F("call_success %s ring", id));
}

static void connect_call(user *from, user *to, char *id) {
  ring(from, to, id);
  CHECK_INT(crvm_accept_call(to->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(to->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(from->r, F("notify_call_accepted %s  ", id));
}

/* One request of a race: who sends it, what, and the prefix of its result. */
typedef struct act {
  user *u;
  int kind; /* 'h' hang up, 'a' accept, 'r' reject, 'c' call */
  const char *peer; /* 'c': the callee */
  char *id;         /* the call ('c': filled in) */
  const char *ext;
  const char *result;
} act;

static void issue(act *x) {
  switch (x->kind) {
  case 'h': CHECK_INT(crvm_hungup_call(x->u->c, x->id, x->ext, "h"), 0); break;
  case 'a': CHECK_INT(crvm_accept_call(x->u->c, x->id, "", x->ext, "acc"), 0); break;
  case 'r': CHECK_INT(crvm_reject_call(x->u->c, x->id, x->ext, "rej"), 0); break;
  default:
    CHECK_INT(crvm_call(x->u->c, x->peer, "", x->ext, "c", x->id, CRVM_ID_BUF_LEN), 0);
  }
}

/* Round `i` of a race between `x` and `y`: even rounds send x first, odd rounds y. Rounds 0-1
 * of every 4 send the second request back to back with the first (a real race: the server
 * picks); rounds 2-3 wait for the first request's result before sending the second (the
 * server sees them in that order). Collects both results; returns the one sent first. */
static act *race(act *x, act *y, int i, int *forced) {
  act *first = i % 2 ? y : x, *second = first == x ? y : x;
  *forced = i % 4 >= 2;
  issue(first);
  if (*forced) collect_until(first->u, first->result);
  issue(second);
  if (!*forced) collect_until(first->u, first->result);
  collect_until(second->u, second->result);
  return first;
}

/* Both hang up at once: one wins (hungup_call_success), the other is told the winner hung up
 * and its own request comes too late. `connected`: after an accept, else while ringing. */
static void race_both_hang_up(int connected) {
  user *a = &alice_, *b = &bob_;
  int wins[2] = {0, 0};
  for (int i = 0; i < REPEAT; i++) {
    char id[CRVM_ID_BUF_LEN];
    /* Alternate the caller too, so each role wins and loses, in each order. */
    user *caller = i % 8 < 4 ? a : b, *callee = caller == a ? b : a;
    if (connected)
      connect_call(caller, callee, id);
    else
      ring(caller, callee, id);
    act ha = {a, 'h', NULL, id, "alice", "hungup_call_"};
    act hb = {b, 'h', NULL, id, "bob", "hungup_call_"};
    int forced;
    act *first = race(&ha, &hb, i, &forced);
    settle(a);
    settle(b);
    CHECK_INT(terminals(a, id), 1);
    CHECK_INT(terminals(b, id), 1);
    user *winner = strncmp(a->seen[0], "hungup_call_success", 19) == 0 ? a : b;
    user *loser = winner == a ? b : a;
    if (forced) CHECK_STR(winner->id, first->u->id);
    wins[winner == a]++;
    SAW(winner, F("hungup_call_success %s h", id));
    SAW(loser, F("notify_call_hungup %s %s", id, winner->id), F("hungup_call_fail %s 600 h", id));
  }
  fprintf(stderr, "  both hang up (%s): alice won %d, bob won %d\n",
          connected ? "connected" : "ringing", wins[1], wins[0]);
}

static void test_both_hang_up_connected(void) { race_both_hang_up(1); }
static void test_both_hang_up_ringing(void) { race_both_hang_up(0); }

/* The caller cancels while the callee accepts. Cancel first: the callee is hung up and its
 * accept is 600. Accept first: the call connects, and the cancel hangs it up. */
static void test_cancel_vs_accept(void) {
  user *a = &alice_, *b = &bob_;
  int cancelled = 0, accepted = 0;
  for (int i = 0; i < REPEAT; i++) {
    char id[CRVM_ID_BUF_LEN];
    ring(a, b, id);
    act cancel = {a, 'h', NULL, id, "cancel", "hungup_call_"};
    act accept = {b, 'a', NULL, id, "yes", "accept_call_"};
    int forced;
    act *first = race(&cancel, &accept, i, &forced);
    settle(a);
    settle(b);
    CHECK_INT(terminals(a, id), 1);
    CHECK_INT(terminals(b, id), 1);
    if (strncmp(b->seen[0], "accept_call_success", 19) == 0) {
      accepted++;
      if (forced) CHECK(first == &accept);
      SAW(a, F("notify_call_accepted %s yes ", id), F("hungup_call_success %s h", id));
      SAW(b, F("accept_call_success %s acc", id), F("notify_call_hungup %s cancel", id));
    } else {
      cancelled++;
      if (forced) CHECK(first == &cancel);
      SAW(a, F("hungup_call_success %s h", id));
      SAW(b, F("notify_call_hungup %s cancel", id), F("accept_call_fail %s 600 acc", id));
    }
  }
  fprintf(stderr, "  cancel vs accept: cancelled first %d, accepted first %d\n", cancelled,
          accepted);
}

/* The caller cancels while the callee rejects: one ends the call, the other request is 600. */
static void test_cancel_vs_reject(void) {
  user *a = &alice_, *b = &bob_;
  int cancelled = 0, rejected = 0;
  for (int i = 0; i < REPEAT; i++) {
    char id[CRVM_ID_BUF_LEN];
    ring(b, a, id); /* bob calls this time */
    act cancel = {b, 'h', NULL, id, "cancel", "hungup_call_"};
    act reject = {a, 'r', NULL, id, "no", "reject_call_"};
    int forced;
    act *first = race(&cancel, &reject, i, &forced);
    settle(a);
    settle(b);
    CHECK_INT(terminals(a, id), 1);
    CHECK_INT(terminals(b, id), 1);
    if (strncmp(a->seen[0], "reject_call_success", 19) == 0) {
      rejected++;
      if (forced) CHECK(first == &reject);
      SAW(a, F("reject_call_success %s rej", id));
      SAW(b, F("notify_call_rejected %s 606 no", id), F("hungup_call_fail %s 600 h", id));
    } else {
      cancelled++;
      if (forced) CHECK(first == &cancel);
      SAW(b, F("hungup_call_success %s h", id));
      SAW(a, F("notify_call_hungup %s cancel", id), F("reject_call_fail %s 600 rej", id));
    }
  }
  fprintf(stderr, "  cancel vs reject: cancelled first %d, rejected first %d\n", cancelled,
          rejected);
}

/* Glare: alice calls bob while bob calls alice. The call that reaches the server first rings;
 * the other caller is already in a call (being rung): 601. Nobody is rung twice. */
static void test_glare(void) {
  user *a = &alice_, *b = &bob_;
  int wins[2] = {0, 0};
  for (int i = 0; i < REPEAT; i++) {
    char ida[CRVM_ID_BUF_LEN], idb[CRVM_ID_BUF_LEN];
    act ca = {a, 'c', "bob", ida, "from alice", "call_"};
    act cb = {b, 'c', "alice", idb, "from bob", "call_"};
    int forced;
    act *first = race(&ca, &cb, i, &forced);
    CHECK(strcmp(ida, idb) != 0);
    /* Exactly one call survives; its caller ends it (a cancel). */
    int a_won = strncmp(a->seen[a->n - 1], "call_success", 12) == 0;
    int b_won = strncmp(b->seen[b->n - 1], "call_success", 12) == 0;
    CHECK_INT(a_won + b_won, 1);
    user *winner = a_won ? a : b, *loser = a_won ? b : a;
    const char *wid = a_won ? ida : idb, *lid = a_won ? idb : ida;
    if (forced) CHECK_STR(winner->id, first->u->id);
    wins[a_won]++;
    CHECK_INT(crvm_hungup_call(winner->c, wid, "", "h"), 0);
    collect_until(winner, "hungup_call_");
    /* The loser hears of the hang-up through the winner's node: on a cluster that push is not
     * ordered with the answer to the loser's own next request (settle), so wait for it. */
    collect_until(loser, "notify_call_hungup");
    settle(a);
    settle(b);
    CHECK_INT(terminals(winner, wid), 1);
    CHECK_INT(terminals(loser, wid), 1);
    CHECK_INT(terminals(loser, lid), 1);
    CHECK_INT(terminals(winner, lid), 0);
    SAW(winner, F("call_success %s c", wid), F("hungup_call_success %s h", wid));
    SAW(loser, F("notify_call_in %s  %s from %s", wid, winner->id, winner->id),
        F("call_fail %s 601 c", lid), F("notify_call_hungup %s ", wid));
  }
  fprintf(stderr, "  glare: alice's call won %d, bob's won %d\n", wins[1], wins[0]);
}

int main(void) {
  srv = h_server_start(NULL);
  login(&alice_, "alice");
  login(&bob_, "bob");
  RUN(test_both_hang_up_connected);
  RUN(test_both_hang_up_ringing);
  RUN(test_cancel_vs_accept);
  RUN(test_cancel_vs_reject);
  RUN(test_glare);
  CHECK_INT(h_rec_pending(alice_.r, ""), 0);
  CHECK_INT(h_rec_pending(bob_.r, ""), 0);
  crvm_destroy(alice_.c);
  crvm_destroy(bob_.c);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
