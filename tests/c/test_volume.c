/* docs/API.md §3.5, "Volume is never a failure": cmds sent in a loop, from one thread or many, are
 * each delivered exactly once, in order per sender, and each gets its send_cmd_rlst 0; buffers
 * and files beyond what runs at once wait their turn; a slow receiver slows its senders down
 * while the server's memory stays flat; the one refusal is max_pending_bytes (1000), at once,
 * with nothing sent.
 *
 * Cmds here are counted by the test's own callbacks rather than the event recorder (tens of
 * thousands of events): each cmd's text is "<sender>:<n>", and the receiver checks that every
 * sender's numbers arrive as 0, 1, 2, … with no gap and no repeat. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data_util.h"

static h_server *srv;

enum { MAX_SENDERS = 8 };

/* What one client saw, counted on its callback thread. */
typedef struct counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int logged_in;
  /* as a sender */
  long ok, failed, last_err;
  /* as a receiver: next expected number per sender, and disorder seen */
  long next[MAX_SENDERS];
  long received, disorder;
  int sleep_ms; /* each cmd callback sleeps this long */
} counter;

static void counter_init(counter *k) {
  memset(k, 0, sizeof *k);
  pthread_mutex_init(&k->mu, NULL);
  pthread_cond_init(&k->cv, NULL);
}

static void on_login(void *ud, const char *user, const char *cookie) {
  (void)user, (void)cookie;
  counter *k = ud;
  pthread_mutex_lock(&k->mu);
  k->logged_in = 1;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

static void on_rlst(void *ud, const char *task, int32_t err, const char *cookie) {
  (void)task, (void)cookie;
  counter *k = ud;
  pthread_mutex_lock(&k->mu);
  if (err == 0) {
    k->ok++;
  } else {
    k->failed++;
    k->last_err = err;
  }
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* The base64 decoder of the test: cmds are short ASCII texts. */
static int unb64(const char *in, char *out, size_t cap) {
  static const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = 0;
  unsigned acc = 0;
  int bits = 0;
  for (const char *p = in; *p && *p != '='; p++) {
    const char *at = strchr(abc, *p);
    if (!at) return -1;
    acc = (acc << 6) | (unsigned)(at - abc);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n + 1 >= cap) return -1;
      out[n++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[n] = 0;
  return (int)n;
}

static void on_cmd(void *ud, const char *from, const char *b64) {
  (void)from;
  counter *k = ud;
  char text[64 * 1024];
  long sender = -1, n = -1;
  if (unb64(b64, text, sizeof text) > 0) sscanf(text, "%ld:%ld", &sender, &n);
  if (k->sleep_ms) {
    struct timespec ts = {0, (long)k->sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&k->mu);
  if (sender < 0 || sender >= MAX_SENDERS || n != k->next[sender])
    k->disorder++;
  else
    k->next[sender]++;
  k->received++;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* Waits until `cond` holds for `k` (checked under its lock), at most H_TIMEOUT_MS after the
 * last change it saw: progress keeps a long flow alive, a stall fails it. */
#define AWAIT(k, cond)                                                                        \
  do {                                                                                        \
    pthread_mutex_lock(&(k)->mu);                                                             \
    long seen_ = -1;                                                                          \
    while (!(cond)) {                                                                         \
      long now_ = (k)->ok + (k)->failed + (k)->received;                                      \
      struct timespec dl_;                                                                    \
      clock_gettime(CLOCK_REALTIME, &dl_);                                                    \
      dl_.tv_sec += H_TIMEOUT_MS / 1000 + 1;                                                  \
      if (pthread_cond_timedwait(&(k)->cv, &(k)->mu, &dl_) != 0 && now_ == seen_) {           \
        pthread_mutex_unlock(&(k)->mu);                                                       \
        h_fail(__FILE__, __LINE__, "stalled waiting for %s", #cond);                          \
      }                                                                                       \
      seen_ = now_;                                                                           \
    }                                                                                         \
    pthread_mutex_unlock(&(k)->mu);                                                           \
  } while (0)

static crvm_client *login(counter *k, const char *user) {
  counter_init(k);
  crvm_callbacks cb = {0};
  cb.login_success = on_login;
  cb.send_cmd_rlst = on_rlst;
  cb.send_buffer_rlst = on_rlst;
  cb.notify_cmd_data = on_cmd;
  crvm_client *c = NULL;
  CHECK_INT(crvm_create(srv->addr, &cb, sizeof cb, k, &c), 0);
  CHECK_INT(crvm_login(c, H_APP, H_SECRET, "", user, "", ""), 0);
  AWAIT(k, k->logged_in);
  return c;
}

/* The cmd "<sender>:<n>" in base64, padded with 'x' to `size` bytes. */
static char *cmd_b64(int sender, long n, size_t size) {
  char *text = malloc(size + 32);
  int len = snprintf(text, size + 32, "%d:%ld:", sender, n);
  while ((size_t)len < size) text[len++] = 'x';
  char *b64 = d_base64((unsigned char *)text, (size_t)len);
  free(text);
  return b64;
}

/* KiB resident now of process `pid` (0: this one). */
static long rss_kib(pid_t pid) {
  long long kib = d_proc_kib(pid, "VmRSS");
  CHECK(kib >= 0);
  return (long)kib;
}

/* ---- 10,000 cmds in a loop from one sender ---- */

static void test_ten_thousand_in_a_loop(void) {
  enum { N = 10000 };
  counter a, b;
  crvm_client *ca = login(&a, "alice"), *cb = login(&b, "bob");
  char task[CRVM_ID_BUF_LEN];
  for (long i = 0; i < N; i++) {
    char *m = cmd_b64(0, i, 100);
    CHECK_INT(crvm_send_cmd(ca, "bob", m, task, sizeof task), 0);
    free(m);
  }
  AWAIT(&a, a.ok + a.failed == N);
  AWAIT(&b, b.received == N);
  CHECK_INT(a.ok, N);
  CHECK_INT(b.disorder, 0);
  CHECK_INT(b.next[0], N);
  crvm_destroy(ca);
  crvm_destroy(cb);
}

/* ---- 8 senders × 2,000 cmds to one receiver, at once ---- */

typedef struct burst {
  crvm_client *c;
  int index;
  long n;
  size_t size;
} burst;

static void *send_burst(void *arg) {
  burst *b = arg;
  char task[CRVM_ID_BUF_LEN];
  for (long i = 0; i < b->n; i++) {
    char *m = cmd_b64(b->index, i, b->size);
    int32_t rc = crvm_send_cmd(b->c, "bob", m, task, sizeof task);
    free(m);
    if (rc != 0) return (void *)(intptr_t)rc;
  }
  return NULL;
}

/* `senders` threads, each with its own client, send `n` cmds of `size` bytes to bob; returns
 * when all are delivered and answered. */
static void many_to_one(int senders, long n, size_t size, counter *b) {
  counter k[MAX_SENDERS];
  burst bu[MAX_SENDERS];
  pthread_t t[MAX_SENDERS];
  for (int i = 0; i < senders; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    bu[i] = (burst){login(&k[i], name), i, n, size};
  }
  for (int i = 0; i < senders; i++) pthread_create(&t[i], NULL, send_burst, &bu[i]);
  for (int i = 0; i < senders; i++) {
    void *rc;
    pthread_join(t[i], &rc);
    CHECK_INT((intptr_t)rc, 0);
  }
  AWAIT(b, b->received == senders * n);
  for (int i = 0; i < senders; i++) {
    AWAIT(&k[i], k[i].ok + k[i].failed == n);
    CHECK_INT(k[i].ok, n);
    CHECK_INT(b->next[i], n);
    crvm_destroy(bu[i].c);
  }
  CHECK_INT(b->disorder, 0);
}

static void test_eight_senders_at_once(void) {
  counter b;
  crvm_client *cb = login(&b, "bob");
  many_to_one(8, 2000, 100, &b);
  crvm_destroy(cb);
}

/* ---- a receiver whose callbacks sleep 5 ms each ---- */

static void test_slow_receiver_slows_senders_memory_stays_flat(void) {
  /* 4 senders × 400 cmds of 40 KiB (64 MB in all) against 5 ms per cmd: the senders' libraries
   * hold what they accepted, the server only what the flow-control windows allow (4 MiB of
   * unfinished cmds per sender, 4 MiB handed to the receiver). The server's memory, sampled as
   * the cmds flow, stays within those windows of where it started (holding the flow would take
   * the 64 MB), and so does this process's after the first quarter. */
  enum { SENDERS = 4, EACH = 400, SIZE = 40 * 1024 };
  counter b;
  crvm_client *cb = login(&b, "bob");
  b.sleep_ms = 5;
  counter k[SENDERS];
  crvm_client *cs[SENDERS];
  for (int i = 0; i < SENDERS; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    cs[i] = login(&k[i], name);
  }
  long server_before = rss_kib(srv->pid);
  char task[CRVM_ID_BUF_LEN];
  for (long n = 0; n < EACH; n++)
    for (int i = 0; i < SENDERS; i++) {
      char *m = cmd_b64(i, n, SIZE);
      CHECK_INT(crvm_send_cmd(cs[i], "bob", m, task, sizeof task), 0);
      free(m);
    }
  long server_peak = 0, self_quarter = 0, self_peak = 0;
  for (int q = 1; q <= 4; q++) {
    AWAIT(&b, b.received >= q * SENDERS * EACH / 4);
    long s = rss_kib(srv->pid), me = rss_kib(0);
    if (s > server_peak) server_peak = s;
    if (q == 1) self_quarter = me;
    if (me > self_peak) self_peak = me;
    printf("  after %d/4: server RSS %ld KiB (start %ld), this process %ld KiB\n", q, s,
           server_before, me);
    fflush(stdout);
  }
  for (int i = 0; i < SENDERS; i++) {
    AWAIT(&k[i], k[i].ok == EACH);
    CHECK_INT(k[i].failed, 0);
    CHECK_INT(b.next[i], EACH);
  }
  CHECK_INT(b.disorder, 0);
  CHECK_INT(b.received, SENDERS * EACH);
  /* Windows: 4 senders × 4 MiB, the receiver's 4 MiB, and 8 MiB of slack (buffers, allocator). */
  long bound = 28 * 1024;
  if (server_peak - server_before > bound)
    h_fail(__FILE__, __LINE__, "server grew by %ld KiB (bound %ld)", server_peak - server_before,
           bound);
  /* (A sanitizer's own bookkeeping, such as ASan's quarantine of freed memory, grows with the
   * traffic: the process's figure means something only without one.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const int sanitized = 1;
#else
  const int sanitized = 0;
#endif
  if (!sanitized && self_peak - self_quarter > bound)
    h_fail(__FILE__, __LINE__, "clients grew by %ld KiB after the first quarter (bound %ld)",
           self_peak - self_quarter, bound);
  for (int i = 0; i < SENDERS; i++) crvm_destroy(cs[i]);
  crvm_destroy(cb);
}

/* ---- max_pending_bytes: the one refusal ---- */

/* bob's cmd callback waits on this gate: nothing he receives is acknowledged meanwhile. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void on_cmd_gated(void *ud, const char *from, const char *b64) {
  pthread_mutex_lock(&gate_mu);
  while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  on_cmd(ud, from, b64);
}

static void test_max_pending_bytes_refuses_at_once_and_sends_nothing(void) {
  counter a, b;
  counter_init(&b);
  crvm_callbacks cbb = {0};
  cbb.login_success = on_login;
  cbb.notify_cmd_data = on_cmd_gated;
  crvm_client *cb = NULL;
  CHECK_INT(crvm_create(srv->addr, &cbb, sizeof cbb, &b, &cb), 0);
  CHECK_INT(crvm_login(cb, H_APP, H_SECRET, "", "bob", "", ""), 0);
  AWAIT(&b, b.logged_in);
  counter_init(&a);
  crvm_callbacks cba = {0};
  cba.login_success = on_login;
  cba.send_cmd_rlst = on_rlst;
  cba.send_buffer_rlst = on_rlst;
  crvm_client *ca = NULL;
  CHECK_INT(crvm_create(srv->addr, &cba, sizeof cba, &a, &ca), 0);
  /* Room for exactly ten 4 KiB cmds. */
  CHECK_INT(crvm_set_option(ca, "max_pending_bytes", "40960"), 0);
  CHECK_INT(crvm_login(ca, H_APP, H_SECRET, "", "alice", "", ""), 0);
  AWAIT(&a, a.logged_in);
  char task[CRVM_ID_BUF_LEN];
  long accepted = 0;
  for (long n = 0;; n++) {
    char *m = cmd_b64(0, n, 4096);
    int32_t rc = crvm_send_cmd(ca, "bob", m, task, sizeof task);
    free(m);
    if (rc != 0) {
      CHECK_INT(rc, CRVIDEOSDK_SENDFAIL);
      break;
    }
    accepted++;
    CHECK(accepted <= 10);
  }
  CHECK_INT(accepted, 10);
  /* A buffer is refused the same way while the cmds are pending. */
  CHECK_INT(crvm_send_buffer(ca, "bob", "eA==", task, sizeof task), CRVIDEOSDK_SENDFAIL);
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  AWAIT(&a, a.ok == accepted);
  AWAIT(&b, b.received == accepted);
  /* The refused cmd was never sent: the next one bob gets is the next one accepted. */
  char *m = cmd_b64(0, accepted, 4096);
  CHECK_INT(crvm_send_cmd(ca, "bob", m, task, sizeof task), 0);
  free(m);
  AWAIT(&b, b.received == accepted + 1);
  AWAIT(&a, a.ok == accepted + 1);
  CHECK_INT(b.disorder, 0);
  CHECK_INT(a.failed, 0);
  crvm_destroy(ca);
  crvm_destroy(cb);
}

/* ---- 100 files at once to one receiver ---- */

static void test_hundred_files_at_once(void) {
  /* Five senders × twenty files: more than a sender's library runs at once (8), more than the
   * server lets one receiver take at once (32). Each arrives once, intact. */
  enum { SENDERS = 5, EACH = 20 };
  user u[SENDERS + 1];
  u[SENDERS] = d_login(srv, "bob");
  user *b = &u[SENDERS];
  const char *src = h_temp_dir("vol-src");
  char t[SENDERS][EACH][CRVM_ID_BUF_LEN];
  static const char *names[SENDERS] = {"f0", "f1", "f2", "f3", "f4"};
  for (int k = 0; k < SENDERS; k++) u[k] = d_login(srv, names[k]);
  for (int i = 0; i < EACH; i++)
    for (int k = 0; k < SENDERS; k++) {
      char path[512];
      snprintf(path, sizeof path, "%s/f%d-%d.bin", src, k, i);
      d_write_pattern_file(path, 50000 + (uint64_t)(k * EACH + i), (uint64_t)(k * EACH + i));
      CHECK_INT(crvm_send_file(u[k].c, "bob", path, t[k][i], sizeof t[k][i]), 0);
    }
  for (int k = 0; k < SENDERS; k++)
    for (int i = 0; i < EACH; i++) {
      char name[64];
      snprintf(name, sizeof name, "f%d-%d.bin", k, i);
      EXPECT_EVENT(b->r, F("notify_file_data f%d %s/%s %s", k, d_real(b->dir), name, name));
      d_check_pattern_file(d_path(b->dir, name), 50000 + (uint64_t)(k * EACH + i),
                           (uint64_t)(k * EACH + i));
      char path[512];
      snprintf(path, sizeof path, "%s/%s", src, name);
      EXPECT_EVENT(u[k].r, F("send_file_rlst %s %s 0 ", t[k][i], path));
      CHECK_PROGRESS(u[k].r, t[k][i], 50000 + k * EACH + i);
    }
  d_done(u, SENDERS + 1);
}

int main(int argc, char **argv) {
  if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);
  srv = h_server_start(NULL);
  RUN(test_ten_thousand_in_a_loop);
  RUN(test_eight_senders_at_once);
  RUN(test_max_pending_bytes_refuses_at_once_and_sends_nothing);
  RUN(test_hundred_files_at_once);
  RUN(test_slow_receiver_slows_senders_memory_stays_flat);
  return 0;
}
