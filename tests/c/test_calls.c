/* docs/API.md §3.4 calls between online users: call → accept → hang-up by either side, reject (606),
 * cancel while ringing, meet_obj and usr_ext_dat carried verbatim (the caller's meet_obj comes
 * back when the callee accepts with ""), 603 offline/unknown/other tenant, 602 busy and DND
 * (the callee is not disturbed), 601 already in a call, 5 self-call, 600 for the wrong actor,
 * an unknown or an ended call, userStatus 2 while ringing or connected, the ordering of a
 * party's own results before the other party's notifications, and the synchronous refusals.
 * Link events (timeout, logout, kick, server death) are in test_call_links.c. */
#include <stdarg.h>
#include <stdio.h>

#include "harness.h"

#define ST H_STATUS

/* The next status push about `user` (pushes about one user keep their order; pushes about
 * different users and call events may interleave). */
#define PUSH(r, user, status, dnd, cookie)                                                    \
  CHECK_STR(WAIT((r), "notify_user_status {\"userID\":\"" user "\","),                       \
            "notify_user_status " ST(user, status, dnd) " " cookie)

static h_server *srv;

#define F h_fmt

typedef struct user {
  const char *id; /* the user ID */
  h_rec *r;
  crvm_client *c;
} user;

static user login_as(const char *label, const char *app, const char *secret, const char *id) {
  user u = {id, h_rec_new(label), NULL};
  u.c = h_client(srv->addr, u.r);
  h_login(u.c, u.r, app, secret, id);
  return u;
}

static user demo_user(const char *id) { return login_as(id, H_APP, H_SECRET, id); }

/* `from` calls `to`, which rings: `to` gets notify_call_in, `from` gets call_success. */
static void ring(user *from, user *to, const char *meet, const char *ext, char *id) {
  CHECK_INT(crvm_call(from->c, to->id, meet, ext, "ring", id, CRVM_ID_BUF_LEN), 0);
  CHECK(strlen(id) > 0 && strlen(id) < CRVM_ID_BUF_LEN);
  EXPECT_NEXT(to->r, F("notify_call_in %s %s %s %s", id, meet ? meet : "", from->id,
                       ext ? ext : ""));
  EXPECT_NEXT(from->r, F("call_success %s ring", id));
}

/* `from` calls `to` and the server refuses with `code` (callers check with a barrier that
 * `to` was not rung). */
static void call_fails(user *from, const char *to, int code) {
  char id[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_call(from->c, to, "", "x", "cf", id, sizeof id), 0);
  EXPECT_NEXT(from->r, F("call_fail %s %d cf", id, code));
}

/* `u`'s view of the tenant, as the next event (so nothing else came first). */
static void statuses(user *u, const char *want) {
  CHECK_INT(crvm_get_user_status(u->c, "st"), 0);
  EXPECT_NEXT(u->r, F("get_user_status_success [%s] st", want));
}

/* Nothing may be left unconsumed; then everyone logs out. */
static void done(user *users, int n) {
  for (int i = 0; i < n; i++) CHECK_INT(h_rec_pending(users[i].r, ""), 0);
  for (int i = 0; i < n; i++) crvm_destroy(users[i].c);
}

/* A meeting object as create_meeting_success delivers it (cookie "m" stripped). */
static void create_meeting(user *u, char *out, size_t cap) {
  CHECK_INT(crvm_create_meeting(u->c, "call me", 1, "m"), 0);
  const char *ev = NEXT(u->r);
  const char *prefix = "create_meeting_success {";
  CHECK(strncmp(ev, prefix, strlen(prefix)) == 0);
  size_t len = strlen(ev) - strlen("create_meeting_success ") - strlen(" m");
  CHECK(len < cap);
  memcpy(out, ev + strlen("create_meeting_success "), len);
  out[len] = '\0';
  CHECK_STR(ev + strlen(ev) - 2, " m");
}

static void test_accept_then_caller_hangs_up(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  char meet[1024], id[CRVM_ID_BUF_LEN];
  create_meeting(a, meet, sizeof meet);

  ring(a, b, meet, "hello bob", id);
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 0));
  /* The callee's own meet_obj goes to the caller. */
  const char *bobs_meet = "{\"ID\":42,\"subject\":\"bob's room\"}";
  CHECK_INT(crvm_accept_call(b->c, id, bobs_meet, "on my way", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s on my way %s", id, bobs_meet));
  statuses(b, ST("alice", 2, 0) "," ST("bob", 2, 0));

  CHECK_INT(crvm_hungup_call(a->c, id, "bye bob", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s bye bob", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));

  /* Both are idle again: bob calls alice, with NULL optional arguments. */
  char id2[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_call(b->c, "alice", NULL, NULL, NULL, id2, sizeof id2), 0);
  CHECK(strcmp(id, id2) != 0);
  EXPECT_NEXT(a->r, F("notify_call_in %s  bob ", id2));
  EXPECT_NEXT(b->r, F("call_success %s ", id2));
  CHECK_INT(crvm_hungup_call(b->c, id2, NULL, NULL), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s ", id2));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id2));
  done(u, 2);
}

static void test_accept_then_callee_hangs_up(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  /* Verbatim: spacing, key order, escapes and non-ASCII text survive unchanged. */
  const char *meet = "{ \"subject\" : \"R\xc3\xa9union \\\"hebdo\\\"\",\"ID\":  7, "
                     "\"nested\":{\"a\":[1, 2.50, null]} }";
  const char *ext = "  {\"not\":\"parsed\"} \xe2\x9c\x93 tabs\tand spaces  ";
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, meet, ext, id);
  /* Accepting with "" hands the caller's own meet_obj back to the caller. */
  CHECK_INT(crvm_accept_call(b->c, id, "", ext, "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s %s %s", id, ext, meet));

  CHECK_INT(crvm_hungup_call(b->c, id, ext, "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s %s", id, ext));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));

  /* NULL meet_obj on accept reads as "": the caller's comes back. */
  ring(b, a, "{}", "", id);
  CHECK_INT(crvm_accept_call(a->c, id, NULL, NULL, NULL), 0);
  EXPECT_NEXT(a->r, F("accept_call_success %s ", id));
  EXPECT_NEXT(b->r, F("notify_call_accepted %s  {}", id));
  CHECK_INT(crvm_hungup_call(a->c, id, "", ""), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s ", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));

  /* With no meet_obj on either side, the caller is told "". */
  ring(a, b, "", "", id);
  CHECK_INT(crvm_accept_call(b->c, id, "", "", ""), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s ", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  CHECK_INT(crvm_hungup_call(b->c, id, "", ""), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s ", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));
  done(u, 2);
}

static void test_reject(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, "{\"ID\":1}", "lunch?", id);
  CHECK_INT(crvm_reject_call(b->c, id, "busy, sorry", "rej"), 0);
  EXPECT_NEXT(b->r, F("reject_call_success %s rej", id));
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 606 busy, sorry", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));
  /* The rejected call is over: it can be neither accepted nor hung up. */
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "late"), 0);
  EXPECT_NEXT(b->r, F("accept_call_fail %s 600 late", id));
  CHECK_INT(crvm_hungup_call(a->c, id, "", "late"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_fail %s 600 late", id));
  /* NULL usr_ext_dat reads as "". */
  ring(b, a, "", "", id);
  CHECK_INT(crvm_reject_call(a->c, id, NULL, NULL), 0);
  EXPECT_NEXT(a->r, F("reject_call_success %s ", id));
  EXPECT_NEXT(b->r, F("notify_call_rejected %s 606 ", id));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));
  done(u, 2);
}

static void test_cancel_while_ringing(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, "", "ring ring", id);
  CHECK_INT(crvm_hungup_call(a->c, id, "never mind", "cancel"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s cancel", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s never mind", id));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));
  /* Too late for bob. */
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_fail %s 600 acc", id));
  CHECK_INT(crvm_reject_call(b->c, id, "", "rej"), 0);
  EXPECT_NEXT(b->r, F("reject_call_fail %s 600 rej", id));

  /* The callee may also hang up a ringing call (the caller hears notify_call_hungup). */
  ring(a, b, "", "", id);
  CHECK_INT(crvm_hungup_call(b->c, id, "not now", "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s not now", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  done(u, 2);
}

static void test_offline_and_unknown(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  call_fails(a, "nobody", 603);
  call_fails(a, h_repeat("z", 128), 603); /* the longest user ID, nobody's */
  /* bob logs out: offline now, so 603 too; and he is not rung after logging back in. */
  CHECK_INT(crvm_start_user_status_notify(a->c, "sub"), 0);
  EXPECT_NEXT(a->r, "start_user_status_notify_rslt 0 sub");
  CHECK_INT(crvm_logout(b->c), 0);
  EXPECT_NEXT(a->r, "notify_user_status " ST("bob", 0, 0) " sub");
  call_fails(a, "bob", 603);
  h_login(b->c, b->r, H_APP, H_SECRET, "bob");
  EXPECT_NEXT(a->r, "notify_user_status " ST("bob", 1, 0) " sub");
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));
  done(u, 2);
}

static void test_busy(void) {
  user u[3] = {demo_user("alice"), demo_user("bob"), demo_user("carol")};
  user *a = &u[0], *b = &u[1], *c = &u[2];
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, "", "", id);
  /* Ringing: both parties are busy for carol. */
  call_fails(c, "bob", 602);
  call_fails(c, "alice", 602);
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  /* Connected: still busy. */
  call_fails(c, "bob", 602);
  call_fails(c, "alice", 602);
  statuses(c, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  /* Neither was disturbed (their next events are these barriers); the call goes on. */
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  statuses(b, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  CHECK_INT(crvm_hungup_call(b->c, id, "", "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  /* Free again. */
  ring(c, b, "", "", id);
  CHECK_INT(crvm_reject_call(b->c, id, "", "r"), 0);
  EXPECT_NEXT(b->r, F("reject_call_success %s r", id));
  EXPECT_NEXT(c->r, F("notify_call_rejected %s 606 ", id));
  done(u, 3);
}

static void test_dnd(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  CHECK_INT(crvm_set_dnd_status(b->c, 1, "d"), 0);
  EXPECT_NEXT(b->r, "set_dnd_status_success d");
  call_fails(a, "bob", 602);
  /* bob was not disturbed: his next event is this barrier's answer. */
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 1));
  CHECK_NONE(b->r, "notify_call_in");
  CHECK_INT(crvm_set_dnd_status(b->c, 9, "d"), 0); /* any non-zero value */
  EXPECT_NEXT(b->r, "set_dnd_status_success d");
  call_fails(a, "bob", 602);
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 9));

  /* With DND on, bob may still call out; alice (DND off) is rung. */
  char id[CRVM_ID_BUF_LEN];
  ring(b, a, "", "", id);
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 9));
  CHECK_INT(crvm_hungup_call(b->c, id, "", "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));

  CHECK_INT(crvm_set_dnd_status(b->c, 0, "d"), 0);
  EXPECT_NEXT(b->r, "set_dnd_status_success d");
  ring(a, b, "", "now?", id);
  CHECK_INT(crvm_reject_call(b->c, id, "", "r"), 0);
  EXPECT_NEXT(b->r, F("reject_call_success %s r", id));
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 606 ", id));
  done(u, 2);
}

static void test_already_in_call(void) {
  user u[3] = {demo_user("alice"), demo_user("bob"), demo_user("carol")};
  user *a = &u[0], *b = &u[1], *c = &u[2];
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, "", "", id);
  /* Ringing: the caller and the callee are each already in a call. */
  call_fails(a, "carol", 601);
  call_fails(b, "carol", 601);
  call_fails(a, "bob", 601);
  call_fails(b, "alice", 601);
  call_fails(a, "nobody", 601); /* 601 is checked before the callee */
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  /* Connected: the same. */
  call_fails(a, "carol", 601);
  call_fails(b, "carol", 601);
  /* carol was never rung; the call is unharmed. */
  statuses(c, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  ring(a, c, "", "", id);
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(c->r, F("notify_call_hungup %s ", id));
  done(u, 3);
}

static void test_self_call(void) {
  user u[1] = {demo_user("alice")};
  call_fails(&u[0], "alice", 5);
  statuses(&u[0], ST("alice", 1, 0));
  done(u, 1);
}

/* accept, reject and hangup of `id` by `x` all fail with 600. */
static void all_fail_600(user *x, const char *id) {
  CHECK_INT(crvm_accept_call(x->c, id, "", "", "a"), 0);
  EXPECT_NEXT(x->r, F("accept_call_fail %s 600 a", id));
  CHECK_INT(crvm_reject_call(x->c, id, "", "r"), 0);
  EXPECT_NEXT(x->r, F("reject_call_fail %s 600 r", id));
  CHECK_INT(crvm_hungup_call(x->c, id, "", "h"), 0);
  EXPECT_NEXT(x->r, F("hungup_call_fail %s 600 h", id));
}

static void test_invalid_call_id(void) {
  user u[3] = {demo_user("alice"), demo_user("bob"), demo_user("carol")};
  user *a = &u[0], *b = &u[1], *c = &u[2];
  /* Unknown calls, including the longest ID. */
  all_fail_600(a, "no-such-call");
  all_fail_600(a, h_repeat("9", 63));

  char id[CRVM_ID_BUF_LEN];
  ring(a, b, "", "", id);
  /* Ringing: the caller can neither accept nor reject its own call; a stranger can do
   * nothing with it. */
  CHECK_INT(crvm_accept_call(a->c, id, "", "", "a"), 0);
  EXPECT_NEXT(a->r, F("accept_call_fail %s 600 a", id));
  CHECK_INT(crvm_reject_call(a->c, id, "", "r"), 0);
  EXPECT_NEXT(a->r, F("reject_call_fail %s 600 r", id));
  all_fail_600(c, id);
  statuses(c, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));

  /* Connected: no second accept, no reject; a stranger still can do nothing. */
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "a"), 0);
  EXPECT_NEXT(b->r, F("accept_call_fail %s 600 a", id));
  CHECK_INT(crvm_reject_call(b->c, id, "", "r"), 0);
  EXPECT_NEXT(b->r, F("reject_call_fail %s 600 r", id));
  CHECK_INT(crvm_accept_call(a->c, id, "", "", "a"), 0);
  EXPECT_NEXT(a->r, F("accept_call_fail %s 600 a", id));
  CHECK_INT(crvm_reject_call(a->c, id, "", "r"), 0);
  EXPECT_NEXT(a->r, F("reject_call_fail %s 600 r", id));
  all_fail_600(c, id);

  /* The failed attempts changed nothing: the call is still up, and ends normally. */
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  statuses(b, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  CHECK_INT(crvm_hungup_call(b->c, id, "x", "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s x", id));

  /* Ended: 600 for both parties and the stranger. */
  all_fail_600(a, id);
  all_fail_600(b, id);
  all_fail_600(c, id);
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0));
  done(u, 3);
}

static void test_status_pushes(void) {
  user u[3] = {demo_user("alice"), demo_user("bob"), demo_user("carol")};
  user *a = &u[0], *b = &u[1], *c = &u[2];
  CHECK_INT(crvm_start_user_status_notify(c->c, "sub"), 0);
  EXPECT_NEXT(c->r, "start_user_status_notify_rslt 0 sub");
  char id[CRVM_ID_BUF_LEN];

  /* Ringing → 2 for both; accept changes nothing; hang-up → 1 for both. */
  ring(a, b, "", "", id);
  PUSH(c->r, "alice", 2, 0, "sub");
  PUSH(c->r, "bob", 2, 0, "sub");
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  statuses(c, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0));
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  PUSH(c->r, "alice", 1, 0, "sub");
  PUSH(c->r, "bob", 1, 0, "sub");

  /* A rejected call: 2 then 1 again. */
  ring(b, a, "", "", id);
  PUSH(c->r, "bob", 2, 0, "sub");
  PUSH(c->r, "alice", 2, 0, "sub");
  CHECK_INT(crvm_reject_call(a->c, id, "", "r"), 0);
  EXPECT_NEXT(a->r, F("reject_call_success %s r", id));
  EXPECT_NEXT(b->r, F("notify_call_rejected %s 606 ", id));
  PUSH(c->r, "bob", 1, 0, "sub");
  PUSH(c->r, "alice", 1, 0, "sub");

  /* Refused calls change nobody's status (the barrier is carol's next event). */
  call_fails(a, "nobody", 603);
  call_fails(a, "alice", 5);
  statuses(c, ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0));

  /* The parties see their own changes too once subscribed; DND is kept through a call. */
  CHECK_INT(crvm_set_dnd_status(a->c, 4, "d"), 0);
  EXPECT_NEXT(a->r, "set_dnd_status_success d");
  PUSH(c->r, "alice", 1, 4, "sub");
  CHECK_INT(crvm_start_user_status_notify(a->c, "mine"), 0);
  EXPECT_NEXT(a->r, "start_user_status_notify_rslt 0 mine");
  CHECK_INT(crvm_call(a->c, "carol", "", "", "c", id, sizeof id), 0);
  EXPECT_EVENT(c->r, F("notify_call_in %s  alice ", id));
  EXPECT_EVENT(a->r, F("call_success %s c", id));
  PUSH(a->r, "alice", 2, 4, "mine");
  PUSH(a->r, "carol", 2, 0, "mine");
  PUSH(c->r, "alice", 2, 4, "sub");
  PUSH(c->r, "carol", 2, 0, "sub");
  statuses(b, ST("alice", 2, 4) "," ST("bob", 1, 0) "," ST("carol", 2, 0));
  CHECK_INT(crvm_hungup_call(c->c, id, "", "h"), 0);
  EXPECT_EVENT(c->r, F("hungup_call_success %s h", id));
  EXPECT_EVENT(a->r, F("notify_call_hungup %s ", id));
  PUSH(a->r, "alice", 1, 4, "mine");
  PUSH(a->r, "carol", 1, 0, "mine");
  PUSH(c->r, "alice", 1, 4, "sub");
  PUSH(c->r, "carol", 1, 0, "sub");
  statuses(a, ST("alice", 1, 4) "," ST("bob", 1, 0) "," ST("carol", 1, 0));
  statuses(c, ST("alice", 1, 4) "," ST("bob", 1, 0) "," ST("carol", 1, 0));
  done(u, 3);
}

static void test_tenant_isolation(void) {
  user u[4] = {demo_user("alice"), demo_user("bob"),
               login_as("acme/carol", H_APP2, H_SECRET2, "carol"),
               login_as("acme/bob", H_APP2, H_SECRET2, "bob")};
  user *a = &u[0], *b = &u[1], *xc = &u[2], *xb = &u[3];
  /* carol exists only in acme: offline for demo, and never rung. */
  call_fails(a, "carol", 603);
  call_fails(xc, "alice", 603);
  statuses(xc, ST("bob", 1, 0) "," ST("carol", 1, 0));
  /* "bob" in each tenant is a different user: demo's call rings demo/bob only... */
  char id[CRVM_ID_BUF_LEN], xid[CRVM_ID_BUF_LEN];
  ring(a, b, "", "demo", id);
  statuses(xb, ST("bob", 1, 0) "," ST("carol", 1, 0));
  /* ...and acme/bob is not busy because demo/bob is. */
  ring(xc, xb, "", "acme", xid);
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 0));
  statuses(xc, ST("bob", 2, 0) "," ST("carol", 2, 0));
  /* A call ID of one tenant means nothing in the other. */
  all_fail_600(xb, id);
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  CHECK_INT(crvm_hungup_call(xb->c, xid, "", "h"), 0);
  EXPECT_NEXT(xb->r, F("hungup_call_success %s h", xid));
  EXPECT_NEXT(xc->r, F("notify_call_hungup %s ", xid));
  done(u, 4);
}

/* A party's own result always precedes the other party's notifications about the call, even
 * when the other party reacts from inside its callback at once. */
typedef struct auto_party {
  crvm_client *c;
  const char *on[2]; /* event prefixes that trigger... */
  int action[2];     /* ...'a' accept or 'h' hang up */
} auto_party;

static void auto_hook(h_rec *r, const char *event, void *arg) {
  (void)r;
  auto_party *p = arg;
  for (int i = 0; i < 2; i++) {
    char id[CRVM_ID_BUF_LEN + 8];
    size_t n = p->on[i] ? strlen(p->on[i]) : 0;
    if (!n || strncmp(event, p->on[i], n) != 0 || sscanf(event + n, "%63s", id) != 1) continue;
    if (p->action[i] == 'a') CHECK_INT(crvm_accept_call(p->c, id, "", "", "auto"), 0);
    if (p->action[i] == 'h') CHECK_INT(crvm_hungup_call(p->c, id, "", "auto"), 0);
  }
}

static void test_own_result_first(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  /* bob accepts the moment he is rung; alice hangs up the moment she hears it. */
  auto_party pb = {b->c, {"notify_call_in "}, {'a'}};
  auto_party pa = {a->c, {"notify_call_accepted "}, {'h'}};
  h_rec_set_hook(b->r, auto_hook, &pb);
  h_rec_set_hook(a->r, auto_hook, &pa);
  for (int i = 0; i < 20; i++) {
    char id[CRVM_ID_BUF_LEN];
    CHECK_INT(crvm_call(a->c, "bob", "{\"n\":1}", "", "c", id, sizeof id), 0);
    EXPECT_NEXT(a->r, F("call_success %s c", id));
    EXPECT_NEXT(a->r, F("notify_call_accepted %s  {\"n\":1}", id));
    EXPECT_NEXT(a->r, F("hungup_call_success %s auto", id));
    EXPECT_NEXT(b->r, F("notify_call_in %s {\"n\":1} alice ", id));
    EXPECT_NEXT(b->r, F("accept_call_success %s auto", id));
    EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  }
  /* And the other way round: bob accepts at once and hangs up once his accept is confirmed. */
  h_rec_set_hook(a->r, NULL, NULL);
  auto_party pb2 = {b->c, {"notify_call_in ", "accept_call_success "}, {'a', 'h'}};
  h_rec_set_hook(b->r, auto_hook, &pb2);
  for (int i = 0; i < 20; i++) {
    char id[CRVM_ID_BUF_LEN];
    CHECK_INT(crvm_call(a->c, "bob", "", "", "c", id, sizeof id), 0);
    EXPECT_NEXT(b->r, F("notify_call_in %s  alice ", id));
    EXPECT_NEXT(b->r, F("accept_call_success %s auto", id));
    EXPECT_NEXT(b->r, F("hungup_call_success %s auto", id));
    EXPECT_NEXT(a->r, F("call_success %s c", id));
    EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
    EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  }
  h_rec_set_hook(b->r, NULL, NULL);
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  done(u, 2);
}

/* Refused synchronously (nothing sent, no event): buffer, callee, meet_obj, usr_ext_dat,
 * cookie and call ID limits, NULLs, invalid UTF-8, bad handle; not logged in → 12. */
static void test_refusals(void) {
  user u[1] = {demo_user("alice")};
  user *a = &u[0];
  char id[CRVM_ID_BUF_LEN];
  char *k8192 = h_repeat("k", 8192), *k8193 = h_repeat("k", 8193);
  char *id129 = h_repeat("u", 129), *id64 = h_repeat("9", 64);
  /* A JSON object of exactly 8 KiB, and one byte more. */
  char *meet8192 = h_repeat("x", 8192), *meet8193 = h_repeat("x", 8193);
  memcpy(meet8192, "{\"p\":\"", 6), memcpy(meet8192 + 8190, "\"}", 2);
  memcpy(meet8193, "{\"p\":\"", 6), memcpy(meet8193 + 8191, "\"}", 2);

  CHECK_INT(crvm_call(a->c, "bob", "", "", "", id, CRVM_ID_BUF_LEN - 1), 5);
  CHECK_INT(crvm_call(a->c, "bob", "", "", "", id, 0), 5);
  CHECK_INT(crvm_call(a->c, "bob", "", "", "", NULL, CRVM_ID_BUF_LEN), 5);
  CHECK_INT(crvm_call(a->c, NULL, "", "", "", id, sizeof id), 5);
  CHECK_INT(crvm_call(a->c, "", "", "", "", id, sizeof id), 5);
  CHECK_INT(crvm_call(a->c, id129, "", "", "", id, sizeof id), 5);
  static const char *const bad_meet[] = {"[]", "x", "{", "\"s\"", "1", "null", "{} {}",
                                         "{\"a\":}"};
  for (size_t i = 0; i < sizeof bad_meet / sizeof bad_meet[0]; i++)
    CHECK_INT(crvm_call(a->c, "bob", bad_meet[i], "", "", id, sizeof id), 5);
  CHECK_INT(crvm_call(a->c, "bob", meet8193, "", "", id, sizeof id), 5);
  CHECK_INT(crvm_call(a->c, "bob", "", k8193, "", id, sizeof id), 5);
  CHECK_INT(crvm_call(a->c, "bob", "", "", k8193, id, sizeof id), 5);
  static const char *const bad_utf8[] = {"b\x80ob", "bob\xc3", "\xed\xa0\x80"};
  for (size_t i = 0; i < 3; i++) {
    const char *b = bad_utf8[i];
    CHECK_INT(crvm_call(a->c, b, "", "", "", id, sizeof id), 5);
    CHECK_INT(crvm_call(a->c, "bob", "", b, "", id, sizeof id), 5);
    CHECK_INT(crvm_call(a->c, "bob", "", "", b, id, sizeof id), 5);
    CHECK_INT(crvm_accept_call(a->c, b, "", "", ""), 5);
    CHECK_INT(crvm_accept_call(a->c, "x", "", b, ""), 5);
    CHECK_INT(crvm_reject_call(a->c, "x", b, ""), 5);
    CHECK_INT(crvm_hungup_call(a->c, "x", "", b), 5);
  }
  CHECK_INT(crvm_call(NULL, "bob", "", "", "", id, sizeof id), 5);

  CHECK_INT(crvm_accept_call(a->c, NULL, "", "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "", "", "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, id64, "", "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "x", "[]", "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "x", "{", "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "x", meet8193, "", ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "x", "", k8193, ""), 5);
  CHECK_INT(crvm_accept_call(a->c, "x", "", "", k8193), 5);
  CHECK_INT(crvm_accept_call(NULL, "x", "", "", ""), 5);
  CHECK_INT(crvm_reject_call(a->c, NULL, "", ""), 5);
  CHECK_INT(crvm_reject_call(a->c, "", "", ""), 5);
  CHECK_INT(crvm_reject_call(a->c, id64, "", ""), 5);
  CHECK_INT(crvm_reject_call(a->c, "x", k8193, ""), 5);
  CHECK_INT(crvm_reject_call(a->c, "x", "", k8193), 5);
  CHECK_INT(crvm_reject_call(NULL, "x", "", ""), 5);
  CHECK_INT(crvm_hungup_call(a->c, NULL, "", ""), 5);
  CHECK_INT(crvm_hungup_call(a->c, "", "", ""), 5);
  CHECK_INT(crvm_hungup_call(a->c, id64, "", ""), 5);
  CHECK_INT(crvm_hungup_call(a->c, "x", k8193, ""), 5);
  CHECK_INT(crvm_hungup_call(a->c, "x", "", k8193), 5);
  CHECK_INT(crvm_hungup_call(NULL, "x", "", ""), 5);
  CHECK_INT(h_rec_count(a->r), 1); /* login_success only */

  /* Nothing was sent: the next events answer these, at the limits (a 128-byte callee, 8 KiB
   * meet_obj, usr_ext_dat and cookie, a 63-byte call ID). */
  CHECK_INT(crvm_call(a->c, h_repeat("u", 128), meet8192, k8192, k8192, id, sizeof id), 0);
  EXPECT_NEXT(a->r, F("call_fail %s 603 %s", id, k8192));
  char *id63 = h_repeat("9", 63);
  CHECK_INT(crvm_accept_call(a->c, id63, meet8192, k8192, k8192), 0);
  EXPECT_NEXT(a->r, F("accept_call_fail %s 600 %s", id63, k8192));
  CHECK_INT(crvm_reject_call(a->c, id63, k8192, k8192), 0);
  EXPECT_NEXT(a->r, F("reject_call_fail %s 600 %s", id63, k8192));
  CHECK_INT(crvm_hungup_call(a->c, id63, k8192, k8192), 0);
  EXPECT_NEXT(a->r, F("hungup_call_fail %s 600 %s", id63, k8192));

  /* Not logged in → 12 (after logout, and before any login). */
  CHECK_INT(crvm_logout(a->c), 0);
  CHECK_INT(crvm_call(a->c, "bob", "", "", "", id, sizeof id), 12);
  CHECK_INT(crvm_accept_call(a->c, "x", "", "", ""), 12);
  CHECK_INT(crvm_reject_call(a->c, "x", "", ""), 12);
  CHECK_INT(crvm_hungup_call(a->c, "x", "", ""), 12);
  h_rec *r = h_rec_new("never-logged-in");
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_call(c, "bob", "", "", "", id, sizeof id), 12);
  CHECK_INT(crvm_accept_call(c, "x", "", "", ""), 12);
  CHECK_INT(crvm_reject_call(c, "x", "", ""), 12);
  CHECK_INT(crvm_hungup_call(c, "x", "", ""), 12);
  crvm_destroy(c);
  CHECK_INT(h_rec_count(r), 0);
  done(u, 1);
}

/* Big meet_obj and usr_ext_dat travel verbatim through every event that carries them. */
static void test_large_payloads(void) {
  user u[2] = {demo_user("alice"), demo_user("bob")};
  user *a = &u[0], *b = &u[1];
  char *meet = h_repeat("y", 8192), *ext = h_repeat("e\xc3\xa9", 2730); /* 8190 bytes */
  memcpy(meet, "{\"p\":\"", 6), memcpy(meet + 8190, "\"}", 2);
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, meet, ext, id);
  CHECK_INT(crvm_accept_call(b->c, id, "", ext, "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_success %s acc", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s %s %s", id, ext, meet));
  CHECK_INT(crvm_hungup_call(a->c, id, ext, "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s %s", id, ext));
  ring(b, a, "", ext, id);
  CHECK_INT(crvm_reject_call(a->c, id, ext, "r"), 0);
  EXPECT_NEXT(a->r, F("reject_call_success %s r", id));
  EXPECT_NEXT(b->r, F("notify_call_rejected %s 606 %s", id, ext));
  done(u, 2);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_accept_then_caller_hangs_up);
  RUN(test_accept_then_callee_hangs_up);
  RUN(test_reject);
  RUN(test_cancel_while_ringing);
  RUN(test_offline_and_unknown);
  RUN(test_busy);
  RUN(test_dnd);
  RUN(test_already_in_call);
  RUN(test_self_call);
  RUN(test_invalid_call_id);
  RUN(test_status_pushes);
  RUN(test_tenant_isolation);
  RUN(test_own_result_first);
  RUN(test_refusals);
  RUN(test_large_payloads);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
