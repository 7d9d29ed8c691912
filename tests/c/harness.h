/*
 * Test harness for the crvm C tests: real crvm-server processes, an event recorder that
 * turns every callback into a line of text, and assertion macros.
 *
 * Servers: each listens on 127.0.0.1:0 with its own temp data dir and config. Every server a
 * test starts is killed when the test exits, whether it passed or failed (atexit, and
 * PR_SET_PDEATHSIG should the test itself be killed).
 *
 * Events: every crvm_callbacks member appends one line to its client's recorder, e.g.
 * "login_success alice cookie" or "login_fail 7 c1": the event name, then its arguments in
 * the header's order, separated by single spaces (NULL strings print as "(null)"). Tests wait for
 * events with WAIT (first unconsumed event starting with a prefix) or NEXT (strictly the next
 * unconsumed event). Timeouts only bound failures; nothing here sleeps to synchronise.
 */
#ifndef CRVM_TEST_HARNESS_H
#define CRVM_TEST_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "crvm.h"

/* Longest wait for any one expected thing: generous, it only bounds how long a failing test
 * takes. 15 s, or H_PATIENCE_MS from the environment (the ThreadSanitizer run, whose
 * instrumented library is many times slower, raises it). */
int h_patience_ms(void);
#define H_TIMEOUT_MS h_patience_ms()

/* Tenants of every test server (see h_server_start). */
#define H_APP "demo"
#define H_SECRET "demo-secret"
#define H_APP2 "acme"
#define H_SECRET2 "acme-secret"
#define H_TOKEN_APP "tok" /* auth = "token" */
#define H_TOKEN_SECRET "tok-secret"
#define H_EITHER_APP "mix" /* auth = "either" */
#define H_EITHER_SECRET "mix-secret"

/* ---- assertions: print file:line, dump the recorded events, kill servers, exit 1 ---- */

_Noreturn void h_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (!(cond)) h_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);                       \
  } while (0)

#define CHECK_INT(got, want)                                                                  \
  do {                                                                                        \
    long long got_ = (long long)(got), want_ = (long long)(want);                             \
    if (got_ != want_)                                                                        \
      h_fail(__FILE__, __LINE__, "%s = %lld, expected %lld", #got, got_, want_);              \
  } while (0)

#define CHECK_STR(got, want)                                                                  \
  do {                                                                                        \
    const char *got_ = (got), *want_ = (want);                                                \
    if (got_ == NULL || strcmp(got_, want_) != 0)                                             \
      h_fail(__FILE__, __LINE__, "%s = \"%s\", expected \"%s\"", #got,                        \
             got_ ? got_ : "(null)", want_);                                                  \
  } while (0)

/* ---- servers ---- */

#define H_MAX_NODES 8

typedef struct h_server {
  pid_t pid;          /* 0 when not running (in a cluster: its first node) */
  char addr[64];      /* "127.0.0.1:PORT" clients connect to: the server, or its fault proxy */
  char server_addr[64]; /* the server's own address */
  pid_t proxy_pid;    /* with CRVM_TEST_DROPS: the fault proxy in front of it (else 0) */
  int proxy_in;       /* its command pipe */
  char dir[256];      /* temp root holding config.toml, server.log and data/ */
  char data_dir[300];
  char config[300];
  /* With CRVM_TEST_CLUSTER=N: the server is N nodes on a Redis of its own, and clients made
   * with h_client(addr) are spread over the nodes in turn. */
  int nodes;
  pid_t node_pid[H_MAX_NODES];
  char node_addr[H_MAX_NODES][64];
  atomic_int next_node;
  pid_t redis_pid;
} h_server;

/* With CRVM_TEST_CLUSTER=N (2 to H_MAX_NODES), every server is a cluster of N nodes sharing a
 * redis-server of its own (docs/API.md §4.1), and the clients of a test are spread over the nodes.
 *
 * With CRVM_TEST_DROPS=MS in the environment, every server gets a fault proxy in front of it
 * (tests/faultproxy) that resets its connections at random intervals around MS milliseconds:
 * sessions are resumed (docs/API.md §3.6) and every test must see exactly the events it would without
 * drops. `line_reconnecting`/`line_resumed` are then counted, not recorded. */

/* Starts a server with the four tenants above. `extra_toml` (may be NULL) holds top-level
 * config lines such as "call_timeout_s = 2\n". */
h_server *h_server_start(const char *extra_toml);
/* Starts a stopped server again on the same data dir and config (the port may change). */
void h_server_restart(h_server *s);
/* SIGTERM (and SIGCONT, in case it is paused), then waits; SIGKILL if it takes over 15 s.
 * Returns the exit code, or -1 if it died of a signal or had to be killed. */
int h_server_stop(h_server *s);
void h_server_kill(h_server *s);   /* SIGKILL and reap */
void h_server_pause(h_server *s);  /* SIGSTOP: the port still accepts, nothing answers */
void h_server_resume(h_server *s); /* SIGCONT */
/* Runs `crvm-server token --app A --user U --ttl TTL --config C`; fails the test on error. */
void h_server_token(h_server *s, const char *app, const char *user, const char *ttl, char *out,
                    size_t cap);

/* ---- event recorder ---- */

typedef struct h_rec h_rec;

h_rec *h_rec_new(const char *name);      /* name labels the recorder in failure dumps */
const crvm_callbacks *h_callbacks(void); /* every member set; user_data must be an h_rec* */

/* Runs after each event is recorded, on the thread that delivered it. */
typedef void (*h_hook)(h_rec *r, const char *event, void *arg);
void h_rec_set_hook(h_rec *r, h_hook hook, void *arg);

const char *h_wait(const char *file, int line, h_rec *r, const char *prefix, int timeout_ms);
const char *h_next(const char *file, int line, h_rec *r, int timeout_ms);
/* Appends an event of the test's own (e.g. from a hook, to tell the main thread). */
void h_note(h_rec *r, const char *text);
size_t h_rec_count(h_rec *r);                      /* events recorded so far */
int h_rec_pending(h_rec *r, const char *prefix);   /* unconsumed events matching, right now */

/* First unconsumed event of `r` that starts with `prefix`; waits up to H_TIMEOUT_MS. The
 * returned string lives as long as the recorder. */
#define WAIT(r, prefix) h_wait(__FILE__, __LINE__, (r), (prefix), H_TIMEOUT_MS)
/* The next unconsumed event, whatever it is (to check order). */
#define NEXT(r) h_next(__FILE__, __LINE__, (r), H_TIMEOUT_MS)
/* The next unconsumed event must be exactly `want`. */
#define EXPECT_NEXT(r, want) CHECK_STR(NEXT(r), (want))
/* Waits for an event that is exactly `want` (other events may come before it). */
#define EXPECT_EVENT(r, want) CHECK_STR(WAIT((r), (want)), (want))
/* No unconsumed event starting with `prefix` has been recorded. */
#define CHECK_NONE(r, prefix)                                                                 \
  do {                                                                                        \
    if (h_rec_pending((r), (prefix)))                                                         \
      h_fail(__FILE__, __LINE__, "unexpected event \"%s...\"", (prefix));                     \
  } while (0)

/* ---- clients ---- */

/* crvm_create against `addr`, all callbacks recording into `r`. */
crvm_client *h_client(const char *addr, h_rec *r);
/* crvm_login (must return 0), then waits for "login_success <user> <cookie>" with the
 * cookie "login-<user>". */
/* Server config for tests whose parties (or server) are killed and must be gone at once: no
 * session is held for resumption (docs/API.md §3.6 resume_window_s = 0). */
#define H_NO_RESUME "resume_window_s = 0\n"

void h_login(crvm_client *c, h_rec *r, const char *app, const char *secret, const char *user);

/* ---- small helpers ---- */

/* A fresh empty directory "$TMPDIR/crvm-<label>-XXXXXX" (TMPDIR defaults to /tmp);
 * removed with everything in it when the test exits, whether it passed or failed (unlike the
 * servers' dirs, which a failure keeps). For bulky test data. Valid until exit. */
const char *h_temp_dir(const char *label);

/* Integer / string value of the first "key" in a JSON text; fails the test if absent. */
long long h_json_int(const char *json, const char *key);
void h_json_str(const char *json, const char *key, char *out, size_t cap);
/* A string of `n` copies of `unit`, valid until the test exits. */
char *h_repeat(const char *unit, size_t n);
/* printf into one of a ring of 8 buffers, for expected events built on the fly (one thread). */
const char *h_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A user status object, as pushes and status lists spell it. */
#define H_STATUS(user, status, dnd)                                                           \
  "{\"userID\":\"" user "\",\"userStatus\":" #status ",\"DNDType\":" #dnd "}"

/* Runs one test function, printing its name and "ok". With H_ONLY=substring in the
 * environment, only the test functions whose name contains it run (the others print "skip"). */
#define RUN(fn)                                                                               \
  do {                                                                                        \
    if (h_begin(#fn)) {                                                                       \
      fn();                                                                                   \
      h_end(#fn);                                                                             \
    }                                                                                         \
  } while (0)
int h_begin(const char *name);
void h_end(const char *name);

#endif
