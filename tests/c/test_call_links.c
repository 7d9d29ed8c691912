/* docs/API.md §3.4 calls ended by time or by a party going away: no answer within call_timeout_s
 * (caller 604, callee hung up; accepting afterwards is 600), logout and crvm_destroy while
 * ringing or connected (a vanished ringing callee is 603 for the caller, otherwise the peer is
 * hung up; the one leaving hears nothing), a party whose process dies (its connection just
 * drops), a kick by a newer login and the death or shutdown of the server (the library ends its
 * active call with notify_call_hungup just before line_off). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "harness.h"

#define ST H_STATUS

/* The next status push about `user` (pushes about different users may interleave). */
#define PUSH(r, user, status, dnd, cookie)                                                    \
  CHECK_STR(WAIT((r), "notify_user_status {\"userID\":\"" user "\","),                       \
            "notify_user_status " ST(user, status, dnd) " " cookie)

static h_server *srv;

#define F h_fmt

typedef struct user {
  const char *id;
  h_rec *r;
  crvm_client *c;
} user;

static user login_on(h_server *s, const char *label, const char *id) {
  user u = {id, h_rec_new(label), NULL};
  u.c = h_client(s->addr, u.r);
  h_login(u.c, u.r, H_APP, H_SECRET, id);
  return u;
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

static void statuses(user *u, const char *want) {
  CHECK_INT(crvm_get_user_status(u->c, "st"), 0);
  EXPECT_NEXT(u->r, F("get_user_status_success [%s] st", want));
}

static void done(user *users, int n) {
  for (int i = 0; i < n; i++) CHECK_INT(h_rec_pending(users[i].r, ""), 0);
  for (int i = 0; i < n; i++) crvm_destroy(users[i].c);
}

static void test_no_answer(void) {
  h_server *s = h_server_start(H_NO_RESUME "call_timeout_s = 1\n");
  user u[4] = {login_on(s, "alice", "alice"), login_on(s, "bob", "bob"),
               login_on(s, "carol", "carol"), login_on(s, "dave", "dave")};
  user *a = &u[0], *b = &u[1], *c = &u[2], *d = &u[3];
  CHECK_INT(crvm_start_user_status_notify(c->c, "sub"), 0);
  EXPECT_NEXT(c->r, "start_user_status_notify_rslt 0 sub");
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, id);
  PUSH(c->r, "alice", 2, 0, "sub");
  PUSH(c->r, "bob", 2, 0, "sub");
  /* Nobody answers: the caller hears 604, the callee is hung up, both are idle again. */
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 604 ", id));
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  PUSH(c->r, "alice", 1, 0, "sub");
  PUSH(c->r, "bob", 1, 0, "sub");
  CHECK_INT(crvm_stop_user_status_notify(c->c, "unsub"), 0);
  EXPECT_NEXT(c->r, "stop_user_status_notify_rslt 0 unsub");
  /* Too late to answer, reject or cancel. */
  CHECK_INT(crvm_accept_call(b->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(b->r, F("accept_call_fail %s 600 acc", id));
  CHECK_INT(crvm_reject_call(b->c, id, "", "rej"), 0);
  EXPECT_NEXT(b->r, F("reject_call_fail %s 600 rej", id));
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_fail %s 600 h", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0) "," ST("dave", 1, 0));

  /* The timer only concerns ringing calls: alice and bob connect, then carol's call to dave
   * (started later) times out; alice and bob are still connected after it. */
  connect_call(a, b, id);
  char id2[CRVM_ID_BUF_LEN];
  ring(c, d, id2);
  EXPECT_NEXT(c->r, F("notify_call_rejected %s 604 ", id2));
  EXPECT_NEXT(d->r, F("notify_call_hungup %s ", id2));
  statuses(a, ST("alice", 2, 0) "," ST("bob", 2, 0) "," ST("carol", 1, 0) "," ST("dave", 1, 0));
  CHECK_INT(crvm_hungup_call(b->c, id, "late", "h"), 0);
  EXPECT_NEXT(b->r, F("hungup_call_success %s h", id));
  EXPECT_NEXT(a->r, F("notify_call_hungup %s late", id));
  statuses(c, ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0) "," ST("dave", 1, 0));
  done(u, 4);
  CHECK_INT(h_server_stop(s), 0);
}

/* `leaver` logs out during a call with `peer`; `peer` hears `peer_event`; `leaver` hears
 * nothing about the call, as its next login shows. */
static void leave(user *leaver, user *peer, const char *peer_event) {
  CHECK_INT(crvm_logout(leaver->c), 0);
  EXPECT_NEXT(peer->r, peer_event);
  h_login(leaver->c, leaver->r, H_APP, H_SECRET, leaver->id);
  CHECK_INT(h_rec_pending(leaver->r, ""), 0);
  statuses(peer, ST("alice", 1, 0) "," ST("bob", 1, 0));
}

static void test_logout(void) {
  user u[2] = {login_on(srv, "alice", "alice"), login_on(srv, "bob", "bob")};
  user *a = &u[0], *b = &u[1];
  char id[CRVM_ID_BUF_LEN];
  ring(a, b, id); /* ringing, the callee leaves: 603 for the caller */
  leave(b, a, F("notify_call_rejected %s 603 ", id));
  ring(a, b, id); /* ringing, the caller leaves: the callee is hung up */
  leave(a, b, F("notify_call_hungup %s ", id));
  connect_call(a, b, id); /* connected, the callee leaves */
  leave(b, a, F("notify_call_hungup %s ", id));
  connect_call(b, a, id); /* connected, the caller leaves */
  leave(b, a, F("notify_call_hungup %s ", id));
  /* The call is over for the one who stayed too. */
  CHECK_INT(crvm_hungup_call(a->c, id, "", "h"), 0);
  EXPECT_NEXT(a->r, F("hungup_call_fail %s 600 h", id));
  done(u, 2);
}

static void test_destroy_in_call(void) {
  user u[2] = {login_on(srv, "alice", "alice"), login_on(srv, "bob", "bob")};
  user *a = &u[0], *b = &u[1];
  char id[CRVM_ID_BUF_LEN];
  /* crvm_destroy logs out cleanly: the peer is told, the destroyed client hears nothing. */
  connect_call(a, b, id);
  crvm_destroy(b->c);
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  CHECK_INT(h_rec_pending(b->r, ""), 0);
  statuses(a, ST("alice", 1, 0));
  /* Ringing, the callee's client is destroyed: 603. */
  user b2 = login_on(srv, "bob-2", "bob");
  ring(a, &b2, id);
  crvm_destroy(b2.c);
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 603 ", id));
  CHECK_INT(h_rec_pending(b2.r, ""), 0);
  statuses(a, ST("alice", 1, 0));
  done(u, 1);
}

/* ---- a party in another process, to be killed with SIGKILL (its socket just closes) ---- */

/* `test_call_links --peer ADDR USER MODE`: logs in as USER and reports on stdout, one line
 * each: "ready", "rung ID", "accepted ID", "calling ID". MODE: "wait" (let it ring), "accept"
 * (accept when rung), or "call:CALLEE". Then waits to be killed. */
static const char *peer_mode;
static crvm_client *peer_client;

static void peer_say(const char *what, const char *id) {
  printf("%s%s%s\n", what, id ? " " : "", id ? id : "");
  fflush(stdout);
}
static void peer_login_success(void *ud, const char *usr_id, const char *cookie) {
  (void)ud, (void)usr_id, (void)cookie;
  char id[CRVM_ID_BUF_LEN];
  if (strncmp(peer_mode, "call:", 5) == 0 &&
      crvm_call(peer_client, peer_mode + 5, "", "", "", id, sizeof id) != 0)
    _exit(3);
  peer_say("ready", NULL);
}
static void peer_call_in(void *ud, const char *id, const char *meet, const char *caller,
                         const char *ext) {
  (void)ud, (void)meet, (void)caller, (void)ext;
  if (strcmp(peer_mode, "accept") == 0 && crvm_accept_call(peer_client, id, "", "", "") != 0)
    _exit(3);
  peer_say("rung", id);
}
static void peer_accepted(void *ud, const char *id, const char *cookie) {
  (void)ud, (void)cookie;
  peer_say("accepted", id);
}
static void peer_calling(void *ud, const char *id, const char *cookie) {
  (void)ud, (void)cookie;
  peer_say("calling", id);
}

static int peer_main(const char *addr, const char *user, const char *mode) {
  peer_mode = mode;
  crvm_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.login_success = peer_login_success;
  cb.notify_call_in = peer_call_in;
  cb.accept_call_success = peer_accepted;
  cb.call_success = peer_calling;
  if (crvm_create(addr, &cb, sizeof cb, NULL, &peer_client) != 0 ||
      crvm_login(peer_client, H_APP, H_SECRET, "", user, "", "") != 0)
    return 2;
  for (;;) pause(); /* until killed */
}

typedef struct peer {
  pid_t pid;
  int out; /* its stdout */
} peer;

static peer peer_start(const char *user, const char *mode) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = '\0';
  int p[2];
  CHECK_INT(pipe(p), 0);
  char *argv[] = {self, "--peer", srv->addr, (char *)user, (char *)mode, NULL};
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    close(p[0]);
    close(p[1]);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failing test */
    if (getppid() != parent) _exit(127);
#endif
    execv(self, argv);
    _exit(127);
  }
  (void)parent;
  close(p[1]);
  return (peer){pid, p[0]};
}

/* The peer's next line, which must start with `prefix`; returns what follows it. */
static const char *peer_line(peer *pr, const char *prefix) {
  static char line[256];
  size_t len = 0;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    long left = H_TIMEOUT_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd pfd = {.fd = pr->out, .events = POLLIN};
    int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
    if (r < 0 && errno == EINTR) continue;
    char ch;
    if (r <= 0 || read(pr->out, &ch, 1) != 1)
      h_fail(__FILE__, __LINE__, "peer: no line \"%s...\" (got \"%.*s\")", prefix, (int)len, line);
    if (ch == '\n') break;
    if (len + 1 < sizeof line) line[len++] = ch;
  }
  line[len] = '\0';
  if (strncmp(line, prefix, strlen(prefix)) != 0)
    h_fail(__FILE__, __LINE__, "peer said \"%s\", expected \"%s...\"", line, prefix);
  return line + strlen(prefix);
}

static void peer_kill(peer *pr) {
  kill(pr->pid, SIGKILL);
  waitpid(pr->pid, NULL, 0);
  close(pr->out);
}

static void test_peer_process_dies(void) {
  user u[1] = {login_on(srv, "alice", "alice")};
  user *a = &u[0];
  char id[CRVM_ID_BUF_LEN];

  /* Ringing, the callee's process dies: 603 for the caller. */
  peer p = peer_start("bob", "wait");
  peer_line(&p, "ready");
  CHECK_INT(crvm_call(a->c, "bob", "", "", "c", id, sizeof id), 0);
  EXPECT_NEXT(a->r, F("call_success %s c", id));
  CHECK_STR(peer_line(&p, "rung "), id);
  peer_kill(&p);
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 603 ", id));
  statuses(a, ST("alice", 1, 0));

  /* Connected, the callee's process dies: the caller is hung up. */
  p = peer_start("bob", "accept");
  peer_line(&p, "ready");
  CHECK_INT(crvm_call(a->c, "bob", "", "", "c", id, sizeof id), 0);
  EXPECT_NEXT(a->r, F("call_success %s c", id));
  EXPECT_NEXT(a->r, F("notify_call_accepted %s  ", id));
  CHECK_STR(peer_line(&p, "rung "), id);
  CHECK_STR(peer_line(&p, "accepted "), id);
  peer_kill(&p);
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  statuses(a, ST("alice", 1, 0));

  /* Ringing, the caller's process dies: the callee is hung up. */
  p = peer_start("bob", "call:alice");
  peer_line(&p, "ready");
  snprintf(id, sizeof id, "%s", peer_line(&p, "calling "));
  EXPECT_NEXT(a->r, F("notify_call_in %s  bob ", id));
  peer_kill(&p);
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  statuses(a, ST("alice", 1, 0));

  /* Connected, the caller's process dies: the callee is hung up. */
  p = peer_start("bob", "call:alice");
  peer_line(&p, "ready");
  snprintf(id, sizeof id, "%s", peer_line(&p, "calling "));
  EXPECT_NEXT(a->r, F("notify_call_in %s  bob ", id));
  CHECK_INT(crvm_accept_call(a->c, id, "", "", "acc"), 0);
  EXPECT_NEXT(a->r, F("accept_call_success %s acc", id));
  peer_kill(&p);
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  statuses(a, ST("alice", 1, 0));
  done(u, 1);
}

/* `victim`'s session is taken over by a new login of the same user (`heir`). */
static void kick(user *victim, user *heir, const char *id) {
  h_login(heir->c, heir->r, H_APP, H_SECRET, victim->id);
  EXPECT_NEXT(victim->r, F("notify_call_hungup %s ", id));
  EXPECT_NEXT(victim->r, "line_off 10");
  CHECK_INT(crvm_hungup_call(victim->c, id, "", ""), 12);
}

static void test_kicked(void) {
  user u[2] = {login_on(srv, "alice", "alice"), login_on(srv, "bob", "bob")};
  user *a = &u[0], *b = &u[1];
  char id[CRVM_ID_BUF_LEN];

  /* Connected, the callee is kicked: the caller is hung up. The new session is idle, is not
   * part of the old call, and can be called. */
  connect_call(a, b, id);
  user b2 = {"bob", h_rec_new("bob-2"), NULL};
  b2.c = h_client(srv->addr, b2.r);
  kick(b, &b2, id);
  EXPECT_NEXT(a->r, F("notify_call_hungup %s ", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  CHECK_INT(crvm_hungup_call(b2.c, id, "", "h"), 0);
  EXPECT_NEXT(b2.r, F("hungup_call_fail %s 600 h", id));
  ring(a, &b2, id);
  /* Ringing, the callee is kicked (by the first client logging in again): 603. */
  kick(&b2, b, id);
  EXPECT_NEXT(a->r, F("notify_call_rejected %s 603 ", id));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));

  /* Ringing, the caller is kicked: the callee is hung up. */
  ring(a, b, id);
  user a2 = {"alice", h_rec_new("alice-2"), NULL};
  a2.c = h_client(srv->addr, a2.r);
  kick(a, &a2, id);
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  statuses(b, ST("alice", 1, 0) "," ST("bob", 1, 0));

  /* Connected, the caller is kicked: the callee is hung up. */
  connect_call(&a2, b, id);
  kick(&a2, a, id);
  EXPECT_NEXT(b->r, F("notify_call_hungup %s ", id));
  statuses(a, ST("alice", 1, 0) "," ST("bob", 1, 0));
  user all[4] = {*a, *b, a2, b2};
  done(all, 4);
}

/* The server dies mid-call: each party's library ends its call itself, then reports the loss.
 * Requests in flight get their 207 first; a call that never rang is not "hung up". */
static void test_server_killed(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  user u[6] = {login_on(s, "alice", "alice"), login_on(s, "bob", "bob"),
               login_on(s, "carol", "carol"), login_on(s, "dave", "dave"),
               login_on(s, "erin", "erin"),   login_on(s, "frank", "frank")};
  char ab[CRVM_ID_BUF_LEN], cd[CRVM_ID_BUF_LEN], ef[CRVM_ID_BUF_LEN];
  connect_call(&u[0], &u[1], ab); /* alice-bob connected */
  ring(&u[2], &u[3], cd);    /* carol-dave ringing */
  h_server_pause(s);
  CHECK_INT(crvm_hungup_call(u[0].c, ab, "", "h"), 0);          /* never answered */
  CHECK_INT(crvm_call(u[4].c, "frank", "", "", "c", ef, sizeof ef), 0); /* never rang */
  h_server_kill(s);
  EXPECT_NEXT(u[0].r, F("hungup_call_fail %s 207 h", ab));
  EXPECT_NEXT(u[0].r, F("notify_call_hungup %s ", ab));
  EXPECT_NEXT(u[0].r, "line_off 207");
  EXPECT_NEXT(u[1].r, F("notify_call_hungup %s ", ab));
  EXPECT_NEXT(u[1].r, "line_off 207");
  EXPECT_NEXT(u[2].r, F("notify_call_hungup %s ", cd));
  EXPECT_NEXT(u[2].r, "line_off 207");
  EXPECT_NEXT(u[3].r, F("notify_call_hungup %s ", cd));
  EXPECT_NEXT(u[3].r, "line_off 207");
  EXPECT_NEXT(u[4].r, F("call_fail %s 207 c", ef));
  EXPECT_NEXT(u[4].r, "line_off 207");
  EXPECT_NEXT(u[5].r, "line_off 207");
  for (int i = 0; i < 6; i++) CHECK_INT(crvm_hungup_call(u[i].c, ab, "", ""), 12);

  /* After a restart everyone is idle and the old calls are unknown. */
  h_server_restart(s);
  for (int i = 0; i < 6; i++) {
    crvm_destroy(u[i].c);
    u[i].c = h_client(s->addr, u[i].r);
    h_login(u[i].c, u[i].r, H_APP, H_SECRET, u[i].id);
  }
  statuses(&u[0], ST("alice", 1, 0) "," ST("bob", 1, 0) "," ST("carol", 1, 0) "," ST("dave", 1, 0)
                  "," ST("erin", 1, 0) "," ST("frank", 1, 0));
  CHECK_INT(crvm_hungup_call(u[1].c, ab, "", "h"), 0);
  EXPECT_NEXT(u[1].r, F("hungup_call_fail %s 600 h", ab));
  CHECK_INT(crvm_accept_call(u[3].c, cd, "", "", "a"), 0);
  EXPECT_NEXT(u[3].r, F("accept_call_fail %s 600 a", cd));
  done(u, 6);
  CHECK_INT(h_server_stop(s), 0);
}

/* A server shutting down (SIGTERM): the same, with 206. */
static void test_server_shutdown(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  user u[4] = {login_on(s, "alice", "alice"), login_on(s, "bob", "bob"),
               login_on(s, "carol", "carol"), login_on(s, "dave", "dave")};
  char ab[CRVM_ID_BUF_LEN], cd[CRVM_ID_BUF_LEN];
  connect_call(&u[0], &u[1], ab);
  ring(&u[2], &u[3], cd);
  CHECK_INT(h_server_stop(s), 0);
  const char *ids[4] = {ab, ab, cd, cd};
  for (int i = 0; i < 4; i++) {
    /* The server may end the call itself on the way out; either way, one hang-up each. */
    EXPECT_NEXT(u[i].r, F("notify_call_hungup %s ", ids[i]));
    EXPECT_NEXT(u[i].r, "line_off 206");
  }
  done(u, 4);
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--peer") == 0) return peer_main(argv[2], argv[3], argv[4]);
  srv = h_server_start(H_NO_RESUME);
  RUN(test_no_answer);
  RUN(test_logout);
  RUN(test_destroy_in_call);
  RUN(test_peer_process_dies);
  RUN(test_kicked);
  RUN(test_server_killed);
  RUN(test_server_shutdown);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
