/*
 * cmd_throughput: acked small-message throughput through libcrvm (the C API) and through libnats
 * (the C NATS client), the same shape on both: S sender connections → 1 receiver, each message
 * acknowledged end to end. crvm-bench's section (j) builds it (cc -O2, against the libcrvm.so of
 * crvm-bench's own build and Debian's libnats-dev) and drives it; see docs/PERFORMANCE.md.
 *
 * Roles, one process each (the servers are processes of their own):
 *
 *   cmd_throughput recv crvm HOST:PORT USER       a crvm_client logged in as USER counting
 *                                                 notify_cmd_data
 *   cmd_throughput recv nats URL SUBJECT          a NATS connection subscribed to SUBJECT that
 *                                                 replies (empty) to every message
 *   cmd_throughput send crvm HOST:PORT TARGET S   S crvm_clients (one thread each) sending cmds
 *                                                 to TARGET; acked by send_cmd_rlst
 *   cmd_throughput send nats URL SUBJECT S        S NATS connections (one thread each)
 *                                                 publishing to SUBJECT with a reply inbox;
 *                                                 acked by the reply
 *
 * Each prints "ready" once logged in / subscribed, then answers lines on stdin:
 *   recv: "count" → "count N" (messages received so far)
 *   send: "go N SIZE" → "took NS" once every sender has had all N messages of SIZE bytes
 *         acknowledged (NS: nanoseconds from the start of the first send), or "error TEXT"
 *   both: "quit" or the end of stdin → "bye", exit.
 *
 * In flight: each sender keeps at most WINDOW messages and WINDOW_BYTES of data unacknowledged,
 * crvm's own per-sender cmd window (proto's xfer::CMD_WINDOW / CMD_WINDOW_BYTES), on both
 * sides; once full it refills when half of it has been acknowledged.
 */
#define _POSIX_C_SOURCE 200809L

#include <crvm.h>
#include <nats/nats.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 2048
#define WINDOW_BYTES (4L * 1024 * 1024)
#define MAX_SENDERS 64

static void die(const char *what, long code) {
  printf("error %s (%ld)\n", what, code);
  fflush(stdout);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *base64(const unsigned char *in, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((n + 2) / 3) + 1);
  if (!out) die("out of memory", 0);
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = tab[(v >> 18) & 63];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = 0;
  return out;
}

/* Reads the next stdin line into `buf`; 0 at the end of stdin. */
static int next_line(char *buf, size_t cap) {
  if (!fgets(buf, (int)cap, stdin)) return 0;
  buf[strcspn(buf, "\r\n")] = 0;
  return 1;
}

/* ---- crvm: login ----------------------------------------------------------------------- */

struct login_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state; /* 0 waiting, 1 logged in, -code failed */
};

static void login_done(struct login_wait *w, int state) {
  pthread_mutex_lock(&w->mu);
  w->state = state;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void crvm_login_and_wait(crvm_client *c, const char *user, struct login_wait *w) {
  int32_t r = crvm_login(c, "demo", "demo-secret", user, user, "", "");
  if (r != 0) die("crvm_login refused", r);
  pthread_mutex_lock(&w->mu);
  while (w->state == 0) pthread_cond_wait(&w->cv, &w->mu);
  int state = w->state;
  pthread_mutex_unlock(&w->mu);
  if (state != 1) die("login failed", -state);
}

/* ---- receivers --------------------------------------------------------------------------- */

static atomic_long received;

struct crvm_rx {
  struct login_wait login;
};

static void rx_login_success(void *ud, const char *usr, const char *cookie) {
  (void)usr, (void)cookie;
  login_done(&((struct crvm_rx *)ud)->login, 1);
}

static void rx_login_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  login_done(&((struct crvm_rx *)ud)->login, -err);
}

static void rx_cmd(void *ud, const char *from, const char *data_b64) {
  (void)ud, (void)from, (void)data_b64;
  atomic_fetch_add_explicit(&received, 1, memory_order_relaxed);
}

static void rx_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud) {
  (void)sub, (void)ud;
  /* The ack: an empty reply, sent once this handler (the app) has the message. */
  natsStatus s = natsConnection_Publish(nc, natsMsg_GetReply(msg), NULL, 0);
  natsMsg_Destroy(msg);
  if (s != NATS_OK) die("nats reply", s);
  atomic_fetch_add_explicit(&received, 1, memory_order_relaxed);
}

static void serve_receiver(void) {
  char line[256];
  printf("ready\n");
  fflush(stdout);
  while (next_line(line, sizeof line) && strcmp(line, "quit") != 0) {
    if (strcmp(line, "count") == 0) {
      printf("count %ld\n", atomic_load(&received));
      fflush(stdout);
    }
  }
}

static int run_recv(int nats, const char *addr, const char *name) {
  if (nats) {
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, addr);
    if (s != NATS_OK) die("nats connect", s);
    s = natsConnection_Subscribe(&sub, nc, name, rx_nats_msg, NULL);
    /* No slow-consumer drops: the senders' windows bound what is pending. */
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (s == NATS_OK) s = natsConnection_Flush(nc);
    if (s != NATS_OK) die("nats subscribe", s);
    serve_receiver();
    int64_t dropped = 0;
    natsSubscription_GetDropped(sub, &dropped);
    if (dropped) die("nats receiver dropped messages", (long)dropped);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    nats_Close();
  } else {
    static struct crvm_rx rx = {{PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}};
    crvm_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.login_success = rx_login_success;
    cb.login_fail = rx_login_fail;
    cb.notify_cmd_data = rx_cmd;
    crvm_client *c = NULL;
    int32_t r = crvm_create(addr, &cb, sizeof cb, &rx, &c);
    if (r != 0) die("crvm_create", r);
    crvm_login_and_wait(c, name, &rx.login);
    serve_receiver();
    crvm_destroy(c);
  }
  printf("bye\n");
  return 0;
}

/* ---- senders ----------------------------------------------------------------------------- */

struct sender {
  int nats;
  const char *target; /* crvm: the receiver's user; NATS: the subject */
  crvm_client *c;
  struct login_wait login;
  natsConnection *nc;
  natsSubscription *replies;
  char inbox[128];
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long window, n, in_flight, acked;
  long failed; /* first error code, 0 if none */
  const char *payload; /* crvm: base64; NATS: raw bytes */
  size_t size;
};

static struct sender senders[MAX_SENDERS];
static pthread_barrier_t start_line;

/* One message acknowledged (code 0) or failed. */
static void acked(struct sender *s, long code) {
  pthread_mutex_lock(&s->mu);
  s->in_flight--;
  s->acked++;
  if (code && !s->failed) s->failed = code;
  if (code || s->in_flight == s->window / 2 || s->acked == s->n) pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void tx_login_success(void *ud, const char *usr, const char *cookie) {
  (void)usr, (void)cookie;
  login_done(&((struct sender *)ud)->login, 1);
}

static void tx_login_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  login_done(&((struct sender *)ud)->login, -err);
}

static void tx_cmd_rlst(void *ud, const char *task, int32_t err, const char *cookie) {
  (void)task, (void)cookie;
  acked(ud, err);
}

static void tx_nats_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *ud) {
  (void)nc, (void)sub;
  natsMsg_Destroy(msg);
  acked(ud, 0);
}

static long send_one(struct sender *s) {
  if (s->nats) {
    return natsConnection_PublishRequest(s->nc, s->target, s->inbox, s->payload, (int)s->size);
  }
  char task[CRVM_ID_BUF_LEN];
  return crvm_send_cmd(s->c, s->target, s->payload, task, sizeof task);
}

static void *sender_thread(void *arg) {
  struct sender *s = arg;
  long sent = 0;
  pthread_barrier_wait(&start_line);
  pthread_mutex_lock(&s->mu);
  while (sent < s->n && !s->failed) {
    if (s->in_flight >= s->window) {
      while (s->in_flight > s->window / 2 && !s->failed) pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    long k = s->window - s->in_flight;
    if (k > s->n - sent) k = s->n - sent;
    /* Counted before they are sent, so that an early ack finds them. */
    s->in_flight += k;
    pthread_mutex_unlock(&s->mu);
    long err = 0, i = 0;
    for (; i < k && !err; i++) err = send_one(s);
    pthread_mutex_lock(&s->mu);
    sent += err ? i - 1 : i;
    if (err) {
      s->in_flight -= k - i + 1; /* the refused one and those never tried */
      if (!s->failed) s->failed = err;
    }
  }
  if (s->nats && !s->failed) {
    /* The client's flusher thread writes on its own; this only makes sure the tail is out. */
    pthread_mutex_unlock(&s->mu);
    natsStatus st = natsConnection_FlushTimeout(s->nc, 60000);
    pthread_mutex_lock(&s->mu);
    if (st != NATS_OK && !s->failed) s->failed = st;
  }
  while (s->acked < sent && !s->failed) pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void setup_sender(struct sender *s, int nats, const char *addr, const char *target,
                         int i) {
  s->nats = nats;
  s->target = target;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (nats) {
    natsStatus st = natsConnection_ConnectTo(&s->nc, addr);
    if (st != NATS_OK) die("nats connect", st);
    snprintf(s->inbox, sizeof s->inbox, "_INBOX.bench.%ld.%d", (long)getpid(), i);
    st = natsConnection_Subscribe(&s->replies, s->nc, s->inbox, tx_nats_reply, s);
    if (st == NATS_OK) st = natsSubscription_SetPendingLimits(s->replies, -1, -1);
    if (st == NATS_OK) st = natsConnection_Flush(s->nc);
    if (st != NATS_OK) die("nats subscribe", st);
    return;
  }
  pthread_mutex_init(&s->login.mu, NULL);
  pthread_cond_init(&s->login.cv, NULL);
  crvm_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.login_success = tx_login_success;
  cb.login_fail = tx_login_fail;
  cb.send_cmd_rlst = tx_cmd_rlst;
  int32_t r = crvm_create(addr, &cb, sizeof cb, s, &s->c);
  if (r != 0) die("crvm_create", r);
  char user[64];
  snprintf(user, sizeof user, "tx%ld-%d", (long)getpid(), i);
  crvm_login_and_wait(s->c, user, &s->login);
}

/* One round: every sender sends `n` messages of `size` bytes; nanoseconds until all are acked,
 * or 0 after printing the error. */
static uint64_t round_of(int count, long n, size_t size) {
  unsigned char *raw = malloc(size ? size : 1);
  if (!raw) die("out of memory", 0);
  for (size_t i = 0; i < size; i++) raw[i] = (unsigned char)(i * 31 % 251 + 1);
  char *b64 = base64(raw, size);
  long window = WINDOW_BYTES / (long)(size ? size : 1);
  if (window > WINDOW) window = WINDOW;
  if (window < 1) window = 1;
  for (int i = 0; i < count; i++) {
    struct sender *s = &senders[i];
    s->payload = s->nats ? (const char *)raw : b64;
    s->size = size;
    s->window = window;
    s->n = n;
    s->in_flight = s->acked = s->failed = 0;
    pthread_create(&s->th, NULL, sender_thread, s);
  }
  pthread_barrier_wait(&start_line);
  uint64_t t0 = now_ns();
  for (int i = 0; i < count; i++) pthread_join(senders[i].th, NULL);
  uint64_t took = now_ns() - t0;
  free(raw);
  free(b64);
  for (int i = 0; i < count; i++) {
    if (senders[i].failed) {
      printf("error sender %d: code %ld after %ld acks\n", i, senders[i].failed,
             senders[i].acked);
      return 0;
    }
  }
  return took;
}

static int run_send(int nats, const char *addr, const char *target, int count) {
  if (count < 1 || count > MAX_SENDERS) die("sender count out of range", count);
  for (int i = 0; i < count; i++) setup_sender(&senders[i], nats, addr, target, i);
  pthread_barrier_init(&start_line, NULL, (unsigned)count + 1);
  char line[256];
  printf("ready\n");
  fflush(stdout);
  while (next_line(line, sizeof line) && strcmp(line, "quit") != 0) {
    long n;
    size_t size;
    if (sscanf(line, "go %ld %zu", &n, &size) == 2 && n > 0) {
      uint64_t took = round_of(count, n, size);
      if (took) printf("took %llu\n", (unsigned long long)took);
    } else {
      printf("error bad command \"%s\"\n", line);
    }
    fflush(stdout);
  }
  for (int i = 0; i < count; i++) {
    if (nats) {
      natsSubscription_Destroy(senders[i].replies);
      natsConnection_Destroy(senders[i].nc);
    } else {
      crvm_destroy(senders[i].c);
    }
  }
  if (nats) nats_Close();
  printf("bye\n");
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 5 && strcmp(argv[1], "recv") == 0) {
    return run_recv(strcmp(argv[2], "nats") == 0, argv[3], argv[4]);
  }
  if (argc >= 6 && strcmp(argv[1], "send") == 0) {
    return run_send(strcmp(argv[2], "nats") == 0, argv[3], argv[4], atoi(argv[5]));
  }
  fprintf(stderr,
          "usage: cmd_throughput recv crvm|nats ADDR USER|SUBJECT\n"
          "       cmd_throughput send crvm|nats ADDR TARGET|SUBJECT SENDERS\n");
  return 2;
}
