/* See harness.h. Compiled with _XOPEN_SOURCE=700 (set by CMake). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifndef CRVM_SERVER_PATH
#define CRVM_SERVER_PATH "crvm-server"
#endif
#ifndef CRVM_FAULTPROXY_PATH
#define CRVM_FAULTPROXY_PATH "crvm-faultproxy"
#endif

#define MAX_SERVERS 16
#define MAX_RECS 64
#define MAX_TEMP_DIRS 64

static h_server *g_servers[MAX_SERVERS];
static int g_nservers;
static h_rec *g_recs[MAX_RECS];
static int g_nrecs;
static char *g_temp_dirs[MAX_TEMP_DIRS];
static int g_ntemp_dirs;
static atomic_int g_failing;
/* Links lost and resumed, with CRVM_TEST_DROPS. */
static atomic_int g_reconnects, g_resumes;

/* The drop interval of CRVM_TEST_DROPS in ms, or 0. */
static int drops_ms(void) {
  const char *env = getenv("CRVM_TEST_DROPS");
  long v = env ? strtol(env, NULL, 10) : 0;
  return v > 0 && v <= 600000 ? (int)v : 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The number of nodes of CRVM_TEST_CLUSTER (each server a cluster on its own Redis), or 0. */
static int cluster_nodes(void) {
  const char *env = getenv("CRVM_TEST_CLUSTER");
  long v = env ? strtol(env, NULL, 10) : 0;
  return v >= 2 && v <= H_MAX_NODES ? (int)v : 0;
}

static const char *server_path(void) {
  const char *env = getenv("CRVM_SERVER");
  return env && *env ? env : CRVM_SERVER_PATH;
}

/* ------------------------------------------------------------------------------------------ */
/* Failure and cleanup                                                                         */

static void dump_events(void);

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Kills every server still running; removes temp dirs unless the test failed. */
static void stop_proxy(h_server *s) {
  if (s->proxy_pid > 0) {
    close(s->proxy_in);
    kill(s->proxy_pid, SIGKILL);
    waitpid(s->proxy_pid, NULL, 0);
    s->proxy_pid = 0;
  }
}

/* Kills the other nodes and the Redis of a cluster server. */
static void stop_cluster(h_server *s) {
  for (int i = 1; i < s->nodes; i++) {
    if (s->node_pid[i] > 0) {
      kill(s->node_pid[i], SIGKILL);
      waitpid(s->node_pid[i], NULL, 0);
      s->node_pid[i] = 0;
    }
  }
  if (s->redis_pid > 0) {
    kill(s->redis_pid, SIGKILL);
    waitpid(s->redis_pid, NULL, 0);
    s->redis_pid = 0;
  }
}

static void cleanup(void) {
  int failed = atomic_load(&g_failing);
  if (drops_ms() > 0)
    fprintf(stderr, "drops injected: %d links lost, %d resumed\n", atomic_load(&g_reconnects),
            atomic_load(&g_resumes));
  for (int i = 0; i < g_nservers; i++) {
    h_server *s = g_servers[i];
    stop_proxy(s);
    if (s->pid > 0) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
      s->pid = 0;
    }
    stop_cluster(s);
    if (failed)
      fprintf(stderr, "  server %d kept for inspection: %s (server.log, config.toml)\n", i,
              s->dir);
    else
      nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }
  for (int i = 0; i < g_ntemp_dirs; i++)
    nftw(g_temp_dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  g_ntemp_dirs = 0;
}

void h_fail(const char *file, int line, const char *fmt, ...) {
  /* Only the first failure reports; a second thread failing meanwhile just exits. */
  if (atomic_exchange(&g_failing, 1)) _exit(1);
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  dump_events();
  cleanup();
  fflush(NULL);
  _exit(1); /* not exit(): client threads may still be running callbacks */
}

/* ------------------------------------------------------------------------------------------ */
/* Processes                                                                                   */

/* fork + exec `argv` with stdout to a pipe (returned in *out_fd) and stderr to `log_path`. The
 * child is killed if this thread dies. Everything is prepared before fork: the child only
 * calls async-signal-safe functions. */
static pid_t spawn(char *const argv[], const char *log_path, int *out_fd) {
  int p[2];
  if (pipe(p) != 0) h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
  fcntl(p[0], F_SETFD, FD_CLOEXEC);
  fcntl(p[1], F_SETFD, FD_CLOEXEC);
  int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) h_fail(__FILE__, __LINE__, "open %s: %s", log_path, strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) h_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
#endif
    execvp(argv[0], argv);
    _exit(127);
  }
  (void)parent;
  close(p[1]);
  close(log_fd);
  *out_fd = p[0];
  return pid;
}

/* Reads one line (without '\n') from fd, waiting at most until `deadline` (now_ms clock).
 * Returns 0 on success, -1 on EOF or timeout. */
static int read_line(int fd, char *buf, size_t cap, int64_t deadline) {
  size_t n = 0;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char ch;
    ssize_t got = read(fd, &ch, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    if (ch == '\n') break;
    if (n + 1 < cap) buf[n++] = ch;
  }
  buf[n] = '\0';
  return 0;
}

/* Drains the rest of the server's stdout so it never blocks on a full pipe. */
static void *drain(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  close(fd);
  return NULL;
}

/* Waits for `pid` up to `timeout_ms`; returns 1 and the status if it exited. */
static int wait_exit(pid_t pid, int timeout_ms, int *status) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return 1;
    if (r < 0 && errno != EINTR) return 1; /* already reaped */
    if (now_ms() >= deadline) return 0;
    /* Polling a child's exit with a deadline; no event to wait on portably. */
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Servers                                                                                     */

/* Puts a fault proxy in front of `s` (see CRVM_TEST_DROPS in harness.h). */
static void start_proxy(h_server *s) {
  stop_proxy(s);
  char log_path[320];
  snprintf(log_path, sizeof log_path, "%s/faultproxy.log", s->dir);
  const char *path = getenv("CRVM_FAULTPROXY");
  char *argv[] = {(char *)(path && *path ? path : CRVM_FAULTPROXY_PATH), s->server_addr, NULL};
  int in[2];
  if (pipe(in) != 0) h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
  fcntl(in[1], F_SETFD, FD_CLOEXEC);
  /* spawn() wires stdout; the proxy's stdin is the read end of `in`, set up around it. */
  int saved = dup(STDIN_FILENO);
  dup2(in[0], STDIN_FILENO);
  close(in[0]);
  int fd;
  s->proxy_pid = spawn(argv, log_path, &fd);
  dup2(saved, STDIN_FILENO);
  close(saved);
  s->proxy_in = in[1];
  char line[256];
  const char *prefix = "crvm-faultproxy listening on ";
  if (read_line(fd, line, sizeof line, now_ms() + H_TIMEOUT_MS) != 0 ||
      strncmp(line, prefix, strlen(prefix)) != 0 || strlen(line) - strlen(prefix) >= sizeof s->addr)
    h_fail(__FILE__, __LINE__, "%s did not start; see %s", argv[0], log_path);
  const char *addr = line + strlen(prefix);
  memcpy(s->addr, addr, strlen(addr) + 1); /* its length was checked above */
  char cmd[64];
  int n = snprintf(cmd, sizeof cmd, "flap %d\n", drops_ms());
  if (write(s->proxy_in, cmd, (size_t)n) != n) h_fail(__FILE__, __LINE__, "faultproxy: write");
  pthread_t t;
  pthread_create(&t, NULL, drain, (void *)(intptr_t)fd);
  pthread_detach(t);
}

/* Starts `crvm-server` with `config` and `data_dir`, logging to `log_name` in the server's
 * directory; returns its pid and puts its address in `addr` (capacity 64). */
static pid_t launch_one(h_server *s, const char *config, const char *data_dir,
                        const char *log_name, char *addr_out) {
  char log_path[320];
  snprintf(log_path, sizeof log_path, "%s/%s", s->dir, log_name);
  char *argv[] = {(char *)server_path(), "--listen", "127.0.0.1:0", "--data-dir",
                  (char *)data_dir, "--config", (char *)config, NULL};
  int fd;
  pid_t pid = spawn(argv, log_path, &fd);
  char line[256];
  const char *prefix = "crvm-server listening on ";
  if (read_line(fd, line, sizeof line, now_ms() + H_TIMEOUT_MS) != 0)
    h_fail(__FILE__, __LINE__, "%s did not print its listening line; see %s", argv[0],
           log_path);
  if (strncmp(line, prefix, strlen(prefix)) != 0)
    h_fail(__FILE__, __LINE__, "unexpected first server line: \"%s\"", line);
  const char *addr = line + strlen(prefix);
  if (strlen(addr) >= 64) h_fail(__FILE__, __LINE__, "server address too long: \"%s\"", addr);
  memcpy(addr_out, addr, strlen(addr) + 1);
  pthread_t t;
  pthread_create(&t, NULL, drain, (void *)(intptr_t)fd);
  pthread_detach(t);
  return pid;
}

/* Waits until the log `log_name` of `s` contains `needle` (a cluster node says "joined" once
 * it serves). There is no other signal from another process's log than the file itself. */
static void wait_log(h_server *s, const char *log_name, const char *needle) {
  char path[320];
  snprintf(path, sizeof path, "%s/%s", s->dir, log_name);
  int64_t deadline = now_ms() + H_TIMEOUT_MS;
  static char buf[1 << 16];
  for (;;) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    if (strstr(buf, needle)) return;
    if (now_ms() > deadline) h_fail(__FILE__, __LINE__, "%s never said \"%s\"", path, needle);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* With CRVM_TEST_CLUSTER: a Redis of the server's own on a Unix socket in its directory. */
static void start_redis(h_server *s) {
  char sock[320], log_path[320];
  snprintf(sock, sizeof sock, "%s/redis.sock", s->dir);
  snprintf(log_path, sizeof log_path, "%s/redis.log", s->dir);
  char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                  "--appendonly", "no", "--dir", s->dir, NULL};
  int fd;
  s->redis_pid = spawn(argv, log_path, &fd);
  char line[512];
  for (;;) {
    if (read_line(fd, line, sizeof line, now_ms() + H_TIMEOUT_MS) != 0)
      h_fail(__FILE__, __LINE__, "redis-server did not start (is it installed?)");
    if (strstr(line, "eady to accept connections")) break;
  }
  pthread_t t;
  pthread_create(&t, NULL, drain, (void *)(intptr_t)fd);
  pthread_detach(t);
}

static void launch(h_server *s) {
  if (s->nodes > 0) {
    for (int i = 0; i < s->nodes; i++) {
      char log_name[32], config[320];
      snprintf(log_name, sizeof log_name, "server-n%d.log", i + 1);
      snprintf(config, sizeof config, "%s/config-n%d.toml", s->dir, i + 1);
      pid_t pid = launch_one(s, config, s->data_dir, log_name, s->node_addr[i]);
      if (i == 0) s->pid = pid;
      s->node_pid[i] = pid;
      wait_log(s, log_name, "joined");
    }
    memcpy(s->addr, s->node_addr[0], sizeof s->addr);
    memcpy(s->server_addr, s->node_addr[0], sizeof s->server_addr);
    return;
  }
  s->pid = launch_one(s, s->config, s->data_dir, "server.log", s->addr);
  memcpy(s->server_addr, s->addr, sizeof s->server_addr);
  if (drops_ms() > 0) start_proxy(s);
}

/* Writes the config of `s` to `path`; `node` (1-based) makes it that node's of a cluster. */
static void write_config(h_server *s, const char *path, const char *extra_toml, int node) {
  FILE *f = fopen(path, "w");
  if (!f) h_fail(__FILE__, __LINE__, "cannot write %s", path);
  /* Top-level keys must precede the tables. */
  fprintf(f, "listen = \"127.0.0.1:0\"\ndata_dir = \"%s\"\n%s\n", s->data_dir,
          extra_toml ? extra_toml : "");
  if (node > 0)
    fprintf(f, "[cluster]\nredis = \"unix://%s/redis.sock\"\nnode_id = \"n%d\"\n\n", s->dir,
            node);
  fprintf(f, "[[tenant]]\napp_id = \"%s\"\nsecret = \"%s\"\nauth = \"secret\"\n\n", H_APP,
          H_SECRET);
  fprintf(f, "[[tenant]]\napp_id = \"%s\"\nsecret = \"%s\"\nauth = \"secret\"\n\n", H_APP2,
          H_SECRET2);
  fprintf(f, "[[tenant]]\napp_id = \"%s\"\nsecret = \"%s\"\nauth = \"token\"\n\n", H_TOKEN_APP,
          H_TOKEN_SECRET);
  fprintf(f, "[[tenant]]\napp_id = \"%s\"\nsecret = \"%s\"\nauth = \"either\"\n",
          H_EITHER_APP, H_EITHER_SECRET);
  fclose(f);
}

h_server *h_server_start(const char *extra_toml) {
  if (g_nservers == MAX_SERVERS) h_fail(__FILE__, __LINE__, "too many servers");
  if (g_nservers == 0 && g_nrecs == 0 && g_ntemp_dirs == 0) atexit(cleanup);
  h_server *s = calloc(1, sizeof *s);
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/crvm-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(s->dir)) h_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
  g_servers[g_nservers++] = s;
  snprintf(s->data_dir, sizeof s->data_dir, "%s/data", s->dir);
  snprintf(s->config, sizeof s->config, "%s/config.toml", s->dir);
  mkdir(s->data_dir, 0755);
  write_config(s, s->config, extra_toml, 0);
  s->nodes = cluster_nodes();
  if (s->nodes > 0) {
    start_redis(s);
    for (int i = 1; i <= s->nodes; i++) {
      char path[320];
      snprintf(path, sizeof path, "%s/config-n%d.toml", s->dir, i);
      write_config(s, path, extra_toml, i);
    }
  }
  launch(s);
  return s;
}

void h_server_restart(h_server *s) {
  if (s->pid > 0) h_fail(__FILE__, __LINE__, "restart of a running server");
  launch(s);
}

int h_patience_ms(void) {
  /* Read each time: no shared state between the test's threads. */
  const char *env = getenv("H_PATIENCE_MS");
  long v = env ? strtol(env, NULL, 10) : 0;
  return v > 0 && v <= 3600000 ? (int)v : 15000;
}

int h_server_stop(h_server *s) {
  if (s->pid <= 0) return -1;
  /* A cluster's other nodes stop first, each as it would alone. */
  int others = 0;
  for (int i = 1; i < s->nodes; i++) {
    int st = 0;
    kill(s->node_pid[i], SIGTERM);
    if (!wait_exit(s->node_pid[i], H_TIMEOUT_MS, &st) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      others = -1;
    s->node_pid[i] = 0;
  }
  int status = 0;
  kill(s->pid, SIGTERM);
  kill(s->pid, SIGCONT);
  if (!wait_exit(s->pid, H_TIMEOUT_MS, &status)) {
    fprintf(stderr, "server %d ignored SIGTERM for %d ms; killing it\n", (int)s->pid,
            H_TIMEOUT_MS);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
  }
  s->pid = 0;
  stop_cluster(s);
  if (others != 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void h_server_kill(h_server *s) {
  stop_proxy(s);
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

void h_server_pause(h_server *s) {
  kill(s->pid, SIGSTOP);
  /* Wait until the kernel reports it stopped, so no request can slip through. */
  int status;
  if (waitpid(s->pid, &status, WUNTRACED) != s->pid || !WIFSTOPPED(status))
    h_fail(__FILE__, __LINE__, "server did not stop");
}

void h_server_resume(h_server *s) { kill(s->pid, SIGCONT); }

void h_server_token(h_server *s, const char *app, const char *user, const char *ttl, char *out,
                    size_t cap) {
  char log_path[320];
  snprintf(log_path, sizeof log_path, "%s/token.log", s->dir);
  char *argv[] = {(char *)server_path(), "token", "--app", (char *)app, "--user", (char *)user,
                  "--ttl", (char *)ttl, "--config", s->config, NULL};
  int fd, status = 0;
  pid_t pid = spawn(argv, log_path, &fd);
  int r = read_line(fd, out, cap, now_ms() + H_TIMEOUT_MS);
  close(fd);
  if (!wait_exit(pid, H_TIMEOUT_MS, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  if (r != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || out[0] == '\0')
    h_fail(__FILE__, __LINE__, "crvm-server token --ttl %s failed; see %s", ttl, log_path);
}

/* ------------------------------------------------------------------------------------------ */
/* Event recorder                                                                              */

typedef struct event {
  char *text;
  int consumed;
} event;

struct h_rec {
  const char *name;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  event *ev;
  size_t len, cap;
  h_hook hook;
  void *hook_arg;
};

static int g_verbose = -1;

h_rec *h_rec_new(const char *name) {
  if (g_nrecs == MAX_RECS) h_fail(__FILE__, __LINE__, "too many recorders");
  if (g_nservers == 0 && g_nrecs == 0 && g_ntemp_dirs == 0) atexit(cleanup);
  h_rec *r = calloc(1, sizeof *r);
  r->name = name;
  pthread_mutex_init(&r->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  g_recs[g_nrecs++] = r;
  return r;
}

void h_rec_set_hook(h_rec *r, h_hook hook, void *arg) {
  pthread_mutex_lock(&r->mu);
  r->hook = hook;
  r->hook_arg = arg;
  pthread_mutex_unlock(&r->mu);
}

static void record(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record(void *ud, const char *fmt, ...) {
  h_rec *r = ud;
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *text = malloc((size_t)n + 1);
  vsnprintf(text, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  if (g_verbose < 0) g_verbose = getenv("H_VERBOSE") != NULL;
  if (g_verbose) fprintf(stderr, "  [%s] %.300s\n", r->name, text);

  pthread_mutex_lock(&r->mu);
  if (r->len == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
  }
  r->ev[r->len++] = (event){text, 0};
  h_hook hook = r->hook;
  void *arg = r->hook_arg;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (hook) hook(r, text, arg); /* no harness lock held while test code runs */
}

void h_note(h_rec *r, const char *text) { record(r, "%s", text); }

/* Finds, marks consumed and returns the first unconsumed event matching prefix (NULL: any). */
static const char *take(h_rec *r, const char *prefix) {
  for (size_t i = 0; i < r->len; i++) {
    if (r->ev[i].consumed) continue;
    if (prefix && strncmp(r->ev[i].text, prefix, strlen(prefix)) != 0) continue;
    r->ev[i].consumed = 1;
    return r->ev[i].text;
  }
  return NULL;
}

static const char *wait_for(const char *file, int line, h_rec *r, const char *prefix,
                            int timeout_ms) {
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&r->mu);
  const char *got;
  int rc = 0;
  while (!(got = take(r, prefix)) && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&r->cv, &r->mu, &dl);
  pthread_mutex_unlock(&r->mu);
  if (!got)
    h_fail(file, line, "[%s] no event %s%s%s within %d ms", r->name, prefix ? "\"" : "",
           prefix ? prefix : "at all", prefix ? "...\"" : "", timeout_ms);
  return got;
}

const char *h_wait(const char *file, int line, h_rec *r, const char *prefix, int timeout_ms) {
  return wait_for(file, line, r, prefix, timeout_ms);
}

const char *h_next(const char *file, int line, h_rec *r, int timeout_ms) {
  return wait_for(file, line, r, NULL, timeout_ms);
}

size_t h_rec_count(h_rec *r) {
  pthread_mutex_lock(&r->mu);
  size_t n = r->len;
  pthread_mutex_unlock(&r->mu);
  return n;
}

int h_rec_pending(h_rec *r, const char *prefix) {
  int n = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->len; i++)
    if (!r->ev[i].consumed && strncmp(r->ev[i].text, prefix, strlen(prefix)) == 0) n++;
  pthread_mutex_unlock(&r->mu);
  return n;
}

static void dump_events(void) {
  for (int i = 0; i < g_nrecs; i++) {
    h_rec *r = g_recs[i];
    /* trylock: the failing thread may be a callback holding nothing, but never block here */
    int locked = pthread_mutex_trylock(&r->mu) == 0;
    fprintf(stderr, "  events of [%s]%s:\n", r->name, r->len ? "" : " none");
    for (size_t j = 0; j < r->len; j++)
      fprintf(stderr, "    %c %.400s\n", r->ev[j].consumed ? '+' : ' ', r->ev[j].text);
    if (locked) pthread_mutex_unlock(&r->mu);
  }
}

/* One recorder function per crvm_callbacks member, in the pinned order. */
#define S(x) ((x) ? (x) : "(null)")
static void cb_login_success(void *ud, const char *usr_id, const char *cookie) {
  record(ud, "login_success %s %s", S(usr_id), S(cookie));
}
static void cb_login_fail(void *ud, int32_t err, const char *cookie) {
  record(ud, "login_fail %d %s", err, S(cookie));
}
static void cb_line_off(void *ud, int32_t err) { record(ud, "line_off %d", err); }
static void cb_line_reconnecting(void *ud, int32_t err) {
  if (drops_ms() > 0)
    atomic_fetch_add(&g_reconnects, 1);
  else
    record(ud, "line_reconnecting %d", err);
}
static void cb_line_resumed(void *ud, int64_t offline_ms) {
  (void)offline_ms; /* a duration: not comparable between runs */
  if (drops_ms() > 0)
    atomic_fetch_add(&g_resumes, 1);
  else
    record(ud, "line_resumed");
}
static void cb_set_dnd_status_success(void *ud, const char *cookie) {
  record(ud, "set_dnd_status_success %s", S(cookie));
}
static void cb_set_dnd_status_fail(void *ud, int32_t err, const char *cookie) {
  record(ud, "set_dnd_status_fail %d %s", err, S(cookie));
}
static void cb_get_user_status_success(void *ud, const char *users, const char *cookie) {
  record(ud, "get_user_status_success %s %s", S(users), S(cookie));
}
static void cb_get_user_status_fail(void *ud, int32_t err, const char *cookie) {
  record(ud, "get_user_status_fail %d %s", err, S(cookie));
}
static void cb_notify_user_status(void *ud, const char *status, const char *cookie) {
  record(ud, "notify_user_status %s %s", S(status), S(cookie));
}
static void cb_start_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  record(ud, "start_user_status_notify_rslt %d %s", err, S(cookie));
}
static void cb_stop_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  record(ud, "stop_user_status_notify_rslt %d %s", err, S(cookie));
}
static void cb_create_meeting_success(void *ud, const char *meet, const char *cookie) {
  record(ud, "create_meeting_success %s %s", S(meet), S(cookie));
}
static void cb_create_meeting_fail(void *ud, int32_t err, const char *cookie) {
  record(ud, "create_meeting_fail %d %s", err, S(cookie));
}
static void cb_destroy_meeting_rslt(void *ud, int32_t err, const char *cookie) {
  record(ud, "destroy_meeting_rslt %d %s", err, S(cookie));
}
static void cb_get_meetings_success(void *ud, const char *meetings, const char *cookie) {
  record(ud, "get_meetings_success %s %s", S(meetings), S(cookie));
}
static void cb_get_meetings_fail(void *ud, int32_t err, const char *cookie) {
  record(ud, "get_meetings_fail %d %s", err, S(cookie));
}
static void cb_call_success(void *ud, const char *call_id, const char *cookie) {
  record(ud, "call_success %s %s", S(call_id), S(cookie));
}
static void cb_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  record(ud, "call_fail %s %d %s", S(call_id), err, S(cookie));
}
static void cb_accept_call_success(void *ud, const char *call_id, const char *cookie) {
  record(ud, "accept_call_success %s %s", S(call_id), S(cookie));
}
static void cb_accept_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  record(ud, "accept_call_fail %s %d %s", S(call_id), err, S(cookie));
}
static void cb_reject_call_success(void *ud, const char *call_id, const char *cookie) {
  record(ud, "reject_call_success %s %s", S(call_id), S(cookie));
}
static void cb_reject_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  record(ud, "reject_call_fail %s %d %s", S(call_id), err, S(cookie));
}
static void cb_hungup_call_success(void *ud, const char *call_id, const char *cookie) {
  record(ud, "hungup_call_success %s %s", S(call_id), S(cookie));
}
static void cb_hungup_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  record(ud, "hungup_call_fail %s %d %s", S(call_id), err, S(cookie));
}
static void cb_notify_call_in(void *ud, const char *call_id, const char *meet_obj,
                              const char *caller_id, const char *usr_ext_dat) {
  record(ud, "notify_call_in %s %s %s %s", S(call_id), S(meet_obj), S(caller_id),
         S(usr_ext_dat));
}
static void cb_notify_call_accepted(void *ud, const char *call_id, const char *usr_ext_dat,
                                    const char *meet_obj) {
  record(ud, "notify_call_accepted %s %s %s", S(call_id), S(usr_ext_dat), S(meet_obj));
}
static void cb_notify_call_rejected(void *ud, const char *call_id, int32_t reason,
                                    const char *usr_ext_dat) {
  record(ud, "notify_call_rejected %s %d %s", S(call_id), reason, S(usr_ext_dat));
}
static void cb_notify_call_hungup(void *ud, const char *call_id, const char *usr_ext_dat) {
  record(ud, "notify_call_hungup %s %s", S(call_id), S(usr_ext_dat));
}
static void cb_send_cmd_rlst(void *ud, const char *task_id, int32_t err, const char *cookie) {
  record(ud, "send_cmd_rlst %s %d %s", S(task_id), err, S(cookie));
}
static void cb_send_buffer_rlst(void *ud, const char *task_id, int32_t err, const char *cookie) {
  record(ud, "send_buffer_rlst %s %d %s", S(task_id), err, S(cookie));
}
static void cb_send_file_rlst(void *ud, const char *task_id, const char *file_name, int32_t err,
                              const char *cookie) {
  record(ud, "send_file_rlst %s %s %d %s", S(task_id), S(file_name), err, S(cookie));
}
static void cb_send_progress(void *ud, const char *task_id, int64_t sent, int64_t total,
                             const char *cookie) {
  record(ud, "send_progress %s %lld %lld %s", S(task_id), (long long)sent, (long long)total,
         S(cookie));
}
static void cb_cancel_send_rlst(void *ud, const char *task_id, int32_t err, const char *cookie) {
  record(ud, "cancel_send_rlst %s %d %s", S(task_id), err, S(cookie));
}
static void cb_notify_cmd_data(void *ud, const char *source, const char *data) {
  record(ud, "notify_cmd_data %s %s", S(source), S(data));
}
static void cb_notify_buffer_data(void *ud, const char *source, const char *data) {
  record(ud, "notify_buffer_data %s %s", S(source), S(data));
}
static void cb_notify_file_data(void *ud, const char *source, const char *tmp_file,
                                const char *org_name) {
  record(ud, "notify_file_data %s %s %s", S(source), S(tmp_file), S(org_name));
}
static void cb_notify_cancel_send(void *ud, const char *send_id) {
  record(ud, "notify_cancel_send %s", S(send_id));
}

static const crvm_callbacks g_callbacks = {
    .login_success = cb_login_success,
    .login_fail = cb_login_fail,
    .line_off = cb_line_off,
    .line_reconnecting = cb_line_reconnecting,
    .line_resumed = cb_line_resumed,
    .set_dnd_status_success = cb_set_dnd_status_success,
    .set_dnd_status_fail = cb_set_dnd_status_fail,
    .get_user_status_success = cb_get_user_status_success,
    .get_user_status_fail = cb_get_user_status_fail,
    .notify_user_status = cb_notify_user_status,
    .start_user_status_notify_rslt = cb_start_user_status_notify_rslt,
    .stop_user_status_notify_rslt = cb_stop_user_status_notify_rslt,
    .create_meeting_success = cb_create_meeting_success,
    .create_meeting_fail = cb_create_meeting_fail,
    .destroy_meeting_rslt = cb_destroy_meeting_rslt,
    .get_meetings_success = cb_get_meetings_success,
    .get_meetings_fail = cb_get_meetings_fail,
    .call_success = cb_call_success,
    .call_fail = cb_call_fail,
    .accept_call_success = cb_accept_call_success,
    .accept_call_fail = cb_accept_call_fail,
    .reject_call_success = cb_reject_call_success,
    .reject_call_fail = cb_reject_call_fail,
    .hungup_call_success = cb_hungup_call_success,
    .hungup_call_fail = cb_hungup_call_fail,
    .notify_call_in = cb_notify_call_in,
    .notify_call_accepted = cb_notify_call_accepted,
    .notify_call_rejected = cb_notify_call_rejected,
    .notify_call_hungup = cb_notify_call_hungup,
    .send_cmd_rlst = cb_send_cmd_rlst,
    .send_buffer_rlst = cb_send_buffer_rlst,
    .send_file_rlst = cb_send_file_rlst,
    .send_progress = cb_send_progress,
    .cancel_send_rlst = cb_cancel_send_rlst,
    .notify_cmd_data = cb_notify_cmd_data,
    .notify_buffer_data = cb_notify_buffer_data,
    .notify_file_data = cb_notify_file_data,
    .notify_cancel_send = cb_notify_cancel_send,
};

const crvm_callbacks *h_callbacks(void) { return &g_callbacks; }

/* ------------------------------------------------------------------------------------------ */
/* Clients and helpers                                                                         */

crvm_client *h_client(const char *addr, h_rec *r) {
  /* Clients of a cluster server are spread over its nodes, in turn. */
  for (int i = 0; i < g_nservers; i++) {
    h_server *s = g_servers[i];
    if (s->nodes > 0 && strcmp(addr, s->addr) == 0) {
      int k = atomic_fetch_add(&s->next_node, 1);
      addr = s->node_addr[k % s->nodes];
      break;
    }
  }
  crvm_client *c = NULL;
  int32_t rc = crvm_create(addr, &g_callbacks, sizeof g_callbacks, r, &c);
  if (rc != 0 || !c) h_fail(__FILE__, __LINE__, "crvm_create(%s) = %d", addr, rc);
  return c;
}

void h_login(crvm_client *c, h_rec *r, const char *app, const char *secret, const char *user) {
  char cookie[200], want[400];
  snprintf(cookie, sizeof cookie, "login-%s", user);
  int32_t rc = crvm_login(c, app, secret, "", user, "", cookie);
  if (rc != 0) h_fail(__FILE__, __LINE__, "crvm_login(%s, %s) = %d", app, user, rc);
  snprintf(want, sizeof want, "login_success %s %s", user, cookie);
  const char *got = h_wait(__FILE__, __LINE__, r, "login_", H_TIMEOUT_MS);
  if (strcmp(got, want) != 0)
    h_fail(__FILE__, __LINE__, "[%s] got \"%s\", expected \"%s\"", user, got, want);
}

static const char *json_value(const char *json, const char *key) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p) h_fail(__FILE__, __LINE__, "no \"%s\" in %s", key, json ? json : "(null)");
  return p + strlen(pat);
}

long long h_json_int(const char *json, const char *key) {
  const char *v = json_value(json, key);
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v) h_fail(__FILE__, __LINE__, "\"%s\" is not a number in %s", key, json);
  return n;
}

void h_json_str(const char *json, const char *key, char *out, size_t cap) {
  const char *v = json_value(json, key);
  if (*v != '"') h_fail(__FILE__, __LINE__, "\"%s\" is not a string in %s", key, json);
  size_t n = 0;
  for (v++; *v && *v != '"'; v++) {
    if (*v == '\\' && v[1]) v++;
    if (n + 1 < cap) out[n++] = *v;
  }
  out[n] = '\0';
}

const char *h_temp_dir(const char *label) {
  if (g_ntemp_dirs == MAX_TEMP_DIRS) h_fail(__FILE__, __LINE__, "too many temp dirs");
  if (g_nservers == 0 && g_nrecs == 0 && g_ntemp_dirs == 0) atexit(cleanup);
  const char *tmp = getenv("TMPDIR");
  char *dir = malloc(512);
  snprintf(dir, 512, "%s/crvm-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", label);
  if (!mkdtemp(dir)) h_fail(__FILE__, __LINE__, "mkdtemp %s: %s", dir, strerror(errno));
  g_temp_dirs[g_ntemp_dirs++] = dir;
  return dir;
}

char *h_repeat(const char *unit, size_t n) {
  static char *kept[256]; /* reachable until exit, so leak checkers stay quiet */
  static size_t nkept;
  size_t u = strlen(unit);
  char *s = malloc(u * n + 1);
  if (nkept < sizeof kept / sizeof kept[0]) kept[nkept++] = s;
  for (size_t i = 0; i < n; i++) memcpy(s + i * u, unit, u);
  s[u * n] = '\0';
  return s;
}

int h_begin(const char *name) {
  const char *only = getenv("H_ONLY");
  if (only && *only && !strstr(name, only)) {
    fprintf(stderr, "skip %s\n", name);
    return 0;
  }
  fprintf(stderr, "-- %s\n", name);
  return 1;
}

void h_end(const char *name) {
  fprintf(stderr, "ok %s\n", name);
}

const char *h_fmt(const char *fmt, ...) {
  /* Room for events that carry 8 KiB values (meet_obj, usr_ext_dat, cookies) twice over. */
  static char ring[8][24 * 1024];
  static int next;
  char *buf = ring[next++ % 8];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof ring[0], fmt, ap);
  va_end(ap);
  return buf;
}
