/* See data_util.h. Compiled with _XOPEN_SOURCE=700 (set by CMake). */
#include "data_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define IO_CHUNK (1024 * 1024)
#define RING 16

static char *ring_buf(void) {
  static char ring[RING][8192];
  static int next;
  return ring[next++ % RING];
}

const char *F(const char *fmt, ...) {
  char *buf = ring_buf();
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, 8192, fmt, ap);
  va_end(ap);
  if (n >= 8192) h_fail(__FILE__, __LINE__, "F(): %d bytes do not fit", n);
  return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Data                                                                                        */

#define GOLDEN 0x9E3779B97F4A7C15ULL

static unsigned char pattern_byte(uint64_t pos, uint64_t seed) {
  uint64_t w = (pos / 8) * GOLDEN + seed;
  return (unsigned char)(w >> (8 * (pos % 8)));
}

void d_fill(unsigned char *buf, uint64_t off, size_t n, uint64_t seed) {
  size_t i = 0;
  for (; i < n && (off + i) % 8 != 0; i++) buf[i] = pattern_byte(off + i, seed);
  uint64_t word = (off + i) / 8;
  for (; i + 8 <= n; i += 8, word++) {
    uint64_t w = word * GOLDEN + seed;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(buf + i, &w, 8);
#else
    for (int b = 0; b < 8; b++) buf[i + b] = (unsigned char)(w >> (8 * b));
#endif
  }
  for (; i < n; i++) buf[i] = pattern_byte(off + i, seed);
}

unsigned char *d_pattern(size_t n, uint64_t seed) {
  unsigned char *p = malloc(n ? n : 1);
  if (!p) h_fail(__FILE__, __LINE__, "out of memory");
  d_fill(p, 0, n, seed);
  return p;
}

char *d_base64(const unsigned char *data, size_t n) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc((n + 2) / 3 * 4 + 1);
  if (!out) h_fail(__FILE__, __LINE__, "out of memory");
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)data[i] << 16;
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return out;
}

char *d_pattern_b64(size_t n, uint64_t seed) {
  unsigned char *p = d_pattern(n, seed);
  char *b = d_base64(p, n);
  free(p);
  return b;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                       */

static int open_or_fail(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) h_fail(__FILE__, __LINE__, "open %s: %s", path, strerror(errno));
  return fd;
}

static void write_all(int fd, const char *path, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) h_fail(__FILE__, __LINE__, "write %s: %s", path, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Reads up to n bytes (fewer only at end of file). */
static size_t read_full(int fd, const char *path, unsigned char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) h_fail(__FILE__, __LINE__, "read %s: %s", path, strerror(errno));
    if (r == 0) break;
    got += (size_t)r;
  }
  return got;
}

void d_write_pattern_file(const char *path, uint64_t size, uint64_t seed) {
  int fd = open_or_fail(path, O_WRONLY | O_CREAT | O_TRUNC);
  unsigned char *buf = malloc(IO_CHUNK);
  for (uint64_t off = 0; off < size; off += IO_CHUNK) {
    size_t n = size - off < IO_CHUNK ? (size_t)(size - off) : IO_CHUNK;
    d_fill(buf, off, n, seed);
    write_all(fd, path, buf, n);
  }
  free(buf);
  close(fd);
}

void d_write_text(const char *path, const char *text) {
  int fd = open_or_fail(path, O_WRONLY | O_CREAT | O_TRUNC);
  write_all(fd, path, (const unsigned char *)text, strlen(text));
  close(fd);
}

void d_sparse_file(const char *path, uint64_t size) {
  int fd = open_or_fail(path, O_WRONLY | O_CREAT | O_TRUNC);
  if (ftruncate(fd, (off_t)size) != 0) h_fail(__FILE__, __LINE__, "ftruncate %s", path);
  close(fd);
}

static uint64_t file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) h_fail(__FILE__, __LINE__, "stat %s: %s", path, strerror(errno));
  return (uint64_t)st.st_size;
}

static size_t first_difference(const unsigned char *a, const unsigned char *b, size_t n) {
  size_t i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}

void d_check_pattern_file(const char *path, uint64_t size, uint64_t seed) {
  uint64_t have = file_size(path);
  if (have != size)
    h_fail(__FILE__, __LINE__, "%s has %llu bytes, expected %llu", path,
           (unsigned long long)have, (unsigned long long)size);
  int fd = open_or_fail(path, O_RDONLY);
  unsigned char *got = malloc(IO_CHUNK), *want = malloc(IO_CHUNK);
  for (uint64_t off = 0; off < size; off += IO_CHUNK) {
    size_t n = size - off < IO_CHUNK ? (size_t)(size - off) : IO_CHUNK;
    if (read_full(fd, path, got, n) != n) h_fail(__FILE__, __LINE__, "%s: short read", path);
    d_fill(want, off, n, seed);
    if (memcmp(got, want, n) != 0)
      h_fail(__FILE__, __LINE__, "%s differs from pattern %llu at byte %llu", path,
             (unsigned long long)seed,
             (unsigned long long)(off + first_difference(got, want, n)));
  }
  free(got);
  free(want);
  close(fd);
}

void d_check_same_files(const char *a, const char *b) {
  uint64_t sa = file_size(a), sb = file_size(b);
  if (sa != sb)
    h_fail(__FILE__, __LINE__, "%s has %llu bytes, %s %llu", a, (unsigned long long)sa, b,
           (unsigned long long)sb);
  int fa = open_or_fail(a, O_RDONLY), fb = open_or_fail(b, O_RDONLY);
  unsigned char *ba = malloc(IO_CHUNK), *bb = malloc(IO_CHUNK);
  for (uint64_t off = 0;; off += IO_CHUNK) {
    size_t na = read_full(fa, a, ba, IO_CHUNK), nb = read_full(fb, b, bb, IO_CHUNK);
    if (na != nb) h_fail(__FILE__, __LINE__, "%s and %s: lengths differ at %llu", a, b,
                         (unsigned long long)off);
    if (memcmp(ba, bb, na) != 0)
      h_fail(__FILE__, __LINE__, "%s and %s differ at byte %llu", a, b,
             (unsigned long long)(off + first_difference(ba, bb, na)));
    if (na < IO_CHUNK) break;
  }
  free(ba);
  free(bb);
  close(fa);
  close(fb);
}

const char *d_real(const char *path) {
  char *buf = ring_buf();
  char tmp[PATH_MAX];
  if (!realpath(path, tmp)) h_fail(__FILE__, __LINE__, "realpath %s: %s", path, strerror(errno));
  snprintf(buf, 8192, "%s", tmp);
  return buf;
}

const char *d_path(const char *dir, const char *name) { return F("%s/%s", dir, name); }

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *d_ls(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) h_fail(__FILE__, __LINE__, "opendir %s: %s", dir, strerror(errno));
  char *names[256];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (n == 256) h_fail(__FILE__, __LINE__, "%s: too many entries", dir);
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof names[0], cmp_str);
  char *buf = ring_buf();
  size_t len = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(buf + len, 8192 - len, "%s%s", i ? "|" : "", names[i]);
    if (w < 0 || (size_t)w >= 8192 - len) h_fail(__FILE__, __LINE__, "%s: listing too long", dir);
    len += (size_t)w;
    free(names[i]);
  }
  return buf;
}

void d_mkdir(const char *path) {
  if (mkdir(path, 0755) != 0) h_fail(__FILE__, __LINE__, "mkdir %s: %s", path, strerror(errno));
}

long long d_proc_kib(pid_t pid, const char *key) {
  char path[64], line[256], want[32];
  if (pid)
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  else
    snprintf(path, sizeof path, "/proc/self/status");
  snprintf(want, sizeof want, "%s: %%lld kB", key);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long long kib = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, want, &kib) == 1) break;
  fclose(f);
  return kib;
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                      */

/* Checks one progress event of `task` against the previous `*last`. */
static void progress_step(const char *file, int line, const char *ev, const char *task,
                          int64_t total, int first, long long *last) {
  size_t plen = strlen("send_progress ") + strlen(task) + 1;
  long long sent, tot;
  char end;
  if (sscanf(ev + plen, "%lld %lld%c", &sent, &tot, &end) != 3 || end != ' ' ||
      ev[strlen(ev) - 1] != ' ')
    h_fail(file, line, "malformed progress \"%s\" (the cookie must be empty)", ev);
  if (tot != total) h_fail(file, line, "\"%s\": total should be %lld", ev, (long long)total);
  int empty_once = total == 0 && first && sent == 0;
  if (!empty_once && (sent <= *last || sent > total))
    h_fail(file, line, "\"%s\" after %lld: not increasing within 1..total", ev, *last);
  if (sent - *last > MiB)
    h_fail(file, line, "\"%s\" after %lld: more than 1 MiB apart", ev, *last);
  *last = sent;
}

int d_progress_then(const char *file, int line, h_rec *r, const char *task, int64_t total,
                    const char *result) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "send_progress %s ", task);
  long long last = 0;
  int n = 0;
  for (;;) {
    const char *ev = h_next(file, line, r, H_TIMEOUT_MS);
    if (strcmp(ev, result) == 0) break;
    if (strncmp(ev, prefix, strlen(prefix)) != 0)
      h_fail(file, line, "got \"%.300s\", expected \"%s...\" or \"%s\"", ev, prefix, result);
    progress_step(file, line, ev, task, total, n++ == 0, &last);
  }
  if (n == 0 || last != total)
    h_fail(file, line, "%d progress events of %s, the last at %lld; expected it at %lld", n,
           task, last, (long long)total);
  return n;
}

int d_check_progress(const char *file, int line, h_rec *r, const char *task, int64_t total) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "send_progress %s ", task);
  int n = h_rec_pending(r, prefix);
  long long last = 0;
  for (int i = 0; i < n; i++)
    progress_step(file, line, h_wait(file, line, r, prefix, 0), task, total, i == 0, &last);
  if (n == 0 || last != total)
    h_fail(file, line, "%d progress events of %s, the last at %lld; expected it at %lld", n,
           task, last, (long long)total);
  return n;
}

static void check_data(const char *file, int line, h_rec *r, const char *ev, const char *head,
                       const char *data) {
  size_t hl = strlen(head);
  if (strncmp(ev, head, hl) != 0)
    h_fail(file, line, "got \"%.200s...\", expected \"%s...\"", ev, head);
  if (strcmp(ev + hl, data) != 0) {
    size_t i = 0;
    while (ev[hl + i] && ev[hl + i] == data[i]) i++;
    h_fail(file, line, "\"%s...\": %zu base64 chars, expected %zu; first difference at %zu",
           head, strlen(ev + hl), strlen(data), i);
  }
  (void)r;
}

void d_next_data(const char *file, int line, h_rec *r, const char *head, const char *data) {
  check_data(file, line, r, h_next(file, line, r, H_TIMEOUT_MS), head, data);
}

char *d_until(const char *file, int line, h_rec *r, const char *last, int timeout_ms,
              const char *const *allowed) {
  size_t cap = 256, len = 0;
  char *out = malloc(cap);
  out[0] = '\0';
  for (;;) {
    const char *ev = h_next(file, line, r, timeout_ms);
    if (strncmp(ev, last, strlen(last)) == 0) break;
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strncmp(ev, *a, strlen(*a)) == 0;
    if (!ok) h_fail(file, line, "unexpected \"%.300s\" before \"%s\"", ev, last);
    size_t n = strlen(ev);
    while (len + n + 2 > cap) out = realloc(out, cap *= 2);
    if (len) out[len++] = '\n';
    memcpy(out + len, ev, n + 1);
    len += n;
  }
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Users                                                                                       */

user d_login_as(h_server *s, const char *label, const char *app, const char *secret,
                const char *id, const char *dir) {
  user u = {id, h_rec_new(label), NULL, dir ? dir : h_temp_dir(label)};
  u.c = h_client(s->addr, u.r);
  CHECK_INT(crvm_set_option(u.c, "download_dir", u.dir), 0);
  h_login(u.c, u.r, app, secret, id);
  return u;
}

user d_login(h_server *s, const char *id) { return d_login_as(s, id, H_APP, H_SECRET, id, NULL); }

void d_done(user *users, int n) {
  for (int i = 0; i < n; i++)
    if (h_rec_pending(users[i].r, ""))
      h_fail(__FILE__, __LINE__, "[%s] has unexpected events", users[i].id);
  for (int i = 0; i < n; i++) crvm_destroy(users[i].c);
}

void d_sync(user *from, user *to) {
  char task[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_send_cmd(from->c, to->id, "c3luYw==", task, sizeof task), 0); /* "sync" */
  EXPECT_EVENT(to->r, F("notify_cmd_data %s c3luYw==", from->id));
  EXPECT_EVENT(from->r, F("send_cmd_rlst %s 0 ", task));
}

/* ------------------------------------------------------------------------------------------ */
/* Triggers                                                                                    */

static void trigger_hook(h_rec *r, const char *event, void *arg) {
  trigger *t = arg;
  char prefix[128];
  pthread_mutex_lock(&t->mu);
  snprintf(prefix, sizeof prefix, "send_progress %s ", t->task);
  int go = t->armed && !t->fired && strncmp(event, prefix, strlen(prefix)) == 0;
  if (go) t->fired = 1;
  pthread_mutex_unlock(&t->mu);
  if (!go) return;
  switch (t->what) {
    case CANCEL_TWICE:
      if (crvm_cancel_send(t->client, t->task) != 0) h_fail(__FILE__, __LINE__, "cancel");
      /* fallthrough */
    case CANCEL:
      if (crvm_cancel_send(t->client, t->task) != 0) h_fail(__FILE__, __LINE__, "cancel");
      break;
    case KILL_PEER: kill(t->pid, SIGKILL); break;
    case LOGOUT: crvm_logout(t->client); break;
    case DESTROY: crvm_destroy(t->client); break;
    case PAUSE_SERVER: h_server_pause(t->server); break;
  }
  h_note(r, "hook fired");
}

trigger *d_trigger(h_rec *sender, d_action what) {
  static trigger *kept[256]; /* reachable until exit: a hook may still hold one */
  static size_t nkept;
  trigger *t = calloc(1, sizeof *t);
  if (nkept < sizeof kept / sizeof kept[0]) kept[nkept++] = t;
  pthread_mutex_init(&t->mu, NULL);
  t->what = what;
  h_rec_set_hook(sender, trigger_hook, t);
  return t;
}

void d_arm(trigger *t, const char *task) {
  pthread_mutex_lock(&t->mu);
  snprintf(t->task, sizeof t->task, "%s", task);
  t->armed = 1;
  pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------------------------------------ */
/* Peers                                                                                       */

typedef struct reader {
  int fd;
  h_rec *r;
} reader;

/* Turns each line the peer prints into an event of its recorder, until it exits. */
static void *read_peer(void *arg) {
  reader *rd = arg;
  char line[4096];
  size_t len = 0;
  char buf[4096];
  ssize_t n;
  while ((n = read(rd->fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n') {
        line[len] = '\0';
        h_note(rd->r, line);
        len = 0;
      } else if (len + 1 < sizeof line) {
        line[len++] = buf[i];
      }
    }
  }
  close(rd->fd);
  free(rd);
  return NULL;
}

d_peer d_peer_start(h_server *s, const char *label, const char *id, const char *dir,
                    const char *const *options) {
  static char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = '\0';
  char *argv[16] = {self, "--peer", s->addr, (char *)id, (char *)dir};
  int argc = 5;
  for (; *options; options++) {
    CHECK(argc < 15);
    argv[argc++] = (char *)*options;
  }
  argv[argc] = NULL;
  int p[2];
  CHECK_INT(pipe(p), 0);
  fcntl(p[0], F_SETFD, FD_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failing test */
    if (getppid() != parent) _exit(127);
#endif
    execv(self, argv);
    _exit(127);
  }
  (void)parent;
  close(p[1]);
  d_peer pr = {pid, h_rec_new(label), id, dir};
  reader *rd = malloc(sizeof *rd);
  *rd = (reader){p[0], pr.r};
  pthread_t t;
  pthread_create(&t, NULL, read_peer, rd);
  pthread_detach(t);
  CHECK_STR(WAIT(pr.r, "login_success"), F("login_success %s login-%s", id, id));
  return pr;
}

static void wait_stopped(d_peer *p) {
  int st;
  pid_t r;
  while ((r = waitpid(p->pid, &st, WUNTRACED)) < 0 && errno == EINTR) {
  }
  if (r != p->pid || !WIFSTOPPED(st)) h_fail(__FILE__, __LINE__, "peer %s did not stop", p->id);
}

void d_peer_stop(d_peer *p) {
  kill(p->pid, SIGSTOP);
  wait_stopped(p);
}

void d_peer_stopped(d_peer *p) {
  /* It prints its first progress, then stops: bounded by the WAIT, then immediate. */
  WAIT(p->r, "send_progress ");
  wait_stopped(p);
}

void d_peer_cont(d_peer *p) { kill(p->pid, SIGCONT); }

void d_peer_kill(d_peer *p) {
  if (p->pid <= 0) return;
  kill(p->pid, SIGKILL);
  while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  p->pid = 0;
}

int d_is_peer(int argc, char **argv) { return argc >= 5 && strcmp(argv[1], "--peer") == 0; }

/* ---- the peer process ---- */

static int g_stop_at_progress;
/* Held by the peer's main thread until it has printed "task ID": the peer never stops itself
 * before the test has learnt the task. */
static pthread_mutex_t g_task_mu = PTHREAD_MUTEX_INITIALIZER;

/* One line to stdout in one write (atomic for a pipe up to PIPE_BUF). */
static void say(const char *text) {
  char line[4000];
  size_t n = strlen(text);
  if (n > sizeof line - 1) n = sizeof line - 1;
  memcpy(line, text, n);
  line[n] = '\n';
  write_all(STDOUT_FILENO, "stdout", (const unsigned char *)line, n + 1);
}

static void peer_hook(h_rec *r, const char *event, void *arg) {
  (void)r, (void)arg;
  say(event);
  if (g_stop_at_progress && strncmp(event, "send_progress ", 14) == 0) {
    g_stop_at_progress = 0;
    pthread_mutex_lock(&g_task_mu);
    pthread_mutex_unlock(&g_task_mu);
    raise(SIGSTOP); /* the whole process, client threads included */
  }
}

int d_peer_main(int argc, char **argv) {
  const char *addr = argv[2], *id = argv[3], *dir = argv[4];
  const char *send_to = NULL, *send_path = NULL;
  char target[256];
  for (int i = 5; i < argc; i++) {
    const char *o = argv[i];
    if (strcmp(o, "-") == 0) {
      /* no option */
    } else if (strncmp(o, "fsize=", 6) == 0) {
      struct rlimit rl = {(rlim_t)strtoull(o + 6, NULL, 10), (rlim_t)strtoull(o + 6, NULL, 10)};
      signal(SIGXFSZ, SIG_IGN);
      if (setrlimit(RLIMIT_FSIZE, &rl) != 0) h_fail(__FILE__, __LINE__, "setrlimit");
    } else if (strncmp(o, "send_file=", 10) == 0) {
      const char *colon = strchr(o + 10, ':');
      CHECK(colon != NULL);
      snprintf(target, sizeof target, "%.*s", (int)(colon - (o + 10)), o + 10);
      send_to = target;
      send_path = colon + 1;
    } else if (strcmp(o, "stop_at_progress") == 0) {
      g_stop_at_progress = 1;
    } else {
      h_fail(__FILE__, __LINE__, "unknown peer option %s", o);
    }
  }
  h_rec *r = h_rec_new(id);
  h_rec_set_hook(r, peer_hook, NULL);
  crvm_client *c = h_client(addr, r);
  CHECK_INT(crvm_set_option(c, "download_dir", dir), 0);
  h_login(c, r, H_APP, H_SECRET, id);
  if (send_to) {
    char task[CRVM_ID_BUF_LEN];
    pthread_mutex_lock(&g_task_mu);
    CHECK_INT(crvm_send_file(c, send_to, send_path, task, sizeof task), 0);
    say(F("task %s", task));
    pthread_mutex_unlock(&g_task_mu);
  }
  for (;;) pause(); /* until killed */
}
