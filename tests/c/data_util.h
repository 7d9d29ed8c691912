/*
 * Helpers for the data tests (docs/API.md §3.5), on top of harness.h: base64, patterned files and
 * buffers, directory checks, progress checks, and users living in child processes ("peers")
 * that can be paused or killed mid-transfer.
 *
 * Patterned data: byte i of pattern `seed` is byte (i % 8) (little-endian) of the 64-bit word
 * (i / 8) * 0x9E3779B97F4A7C15 + seed, so every 8-byte word encodes its own position: a lost,
 * repeated or misordered chunk never compares equal.
 */
#ifndef CRVM_TEST_DATA_UTIL_H
#define CRVM_TEST_DATA_UTIL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define KiB 1024LL
#define MiB (1024LL * 1024LL)
#define GiB (1024LL * 1024LL * 1024LL)

/* printf into one of a ring of buffers (main thread only): expected events built on the fly. */
const char *F(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- data ---- */

/* `n` bytes of pattern `seed` starting at stream offset `off`. */
void d_fill(unsigned char *buf, uint64_t off, size_t n, uint64_t seed);
/* malloc'd `n` bytes of pattern `seed` (the caller frees). */
unsigned char *d_pattern(size_t n, uint64_t seed);
/* Standard base64 with padding; malloc'd, the caller frees. */
char *d_base64(const unsigned char *data, size_t n);
/* base64 of `n` bytes of pattern `seed`; malloc'd, the caller frees. */
char *d_pattern_b64(size_t n, uint64_t seed);

/* ---- files ---- */

/* Writes `size` bytes of pattern `seed` to `path` (created or truncated). */
void d_write_pattern_file(const char *path, uint64_t size, uint64_t seed);
/* Writes `text` to `path`. */
void d_write_text(const char *path, const char *text);
/* A sparse file of `size` zero bytes: instant, and takes no disk (for transfers that are
 * cancelled or broken long before they could finish). */
void d_sparse_file(const char *path, uint64_t size);
/* Fails the test unless `path` holds exactly `size` bytes of pattern `seed`. */
void d_check_pattern_file(const char *path, uint64_t size, uint64_t seed);
/* Fails the test unless files `a` and `b` are byte-identical (read in 1 MiB chunks). */
void d_check_same_files(const char *a, const char *b);
/* realpath() of `path` into a ring buffer (main thread only). */
const char *d_real(const char *path);
/* `dir` joined with `name`, into a ring buffer (main thread only). */
const char *d_path(const char *dir, const char *name);
/* The names in `dir` (without "." and ".."), sorted, joined with "|"; "" when empty. Into a
 * ring buffer (main thread only). */
const char *d_ls(const char *dir);
/* mkdir, failing the test on error. */
void d_mkdir(const char *path);
/* A memory figure of process `pid` (0: this one) from /proc/PID/status, in KiB: `key` is
 * "VmRSS" (resident now) or "VmHWM" (peak). -1 without procfs. */
long long d_proc_kib(pid_t pid, const char *key);

/* ---- events ---- */

/* Progress of `task` (`total` bytes), docs/API.md §3.5: each "send_progress TASK SENT TOTAL " with an
 * empty cookie, SENT increasing, at most 1 MiB apart (at least every 1 MiB), the last one
 * SENT == TOTAL. (An empty transfer reports "0 0" once.) */
/* The strict form: the sender's next events are exactly its progress, then `result`. Returns
 * how many progress events there were. */
int d_progress_then(const char *file, int line, h_rec *r, const char *task, int64_t total,
                    const char *result);
#define PROGRESS_THEN(r, task, total, result)                                                 \
  d_progress_then(__FILE__, __LINE__, (r), (task), (total), (result))
/* With other events interleaved: consumes the progress events of `task` recorded so far; call
 * after its send_*_rlst arrived (they all come before it). */
int d_check_progress(const char *file, int line, h_rec *r, const char *task, int64_t total);
#define CHECK_PROGRESS(r, task, total) d_check_progress(__FILE__, __LINE__, (r), (task), (total))
/* The next event carries `data` (base64, possibly megabytes): it is `head` + `data` exactly.
 * A mismatch reports lengths, not contents. */
void d_next_data(const char *file, int line, h_rec *r, const char *head, const char *data);
#define NEXT_DATA(r, head, data) d_next_data(__FILE__, __LINE__, (r), (head), (data))
/* Consumes events up to and including the first that starts with `last`; fails unless it
 * comes within `timeout_ms` and every event before it starts with one of the NULL-terminated
 * `allowed` prefixes. Returns the events before `last`, joined with "\n" (malloc'd; the caller
 * frees). UNTIL(r, last, allowed...) waits H_TIMEOUT_MS per event. */
char *d_until(const char *file, int line, h_rec *r, const char *last, int timeout_ms,
              const char *const *allowed);
#define UNTIL(r, last, ...)                                                                   \
  d_until(__FILE__, __LINE__, (r), (last), H_TIMEOUT_MS,                                      \
          (const char *const[]){__VA_ARGS__, NULL})

/* ---- users ---- */

typedef struct user {
  const char *id;
  h_rec *r;
  crvm_client *c;
  const char *dir; /* its download_dir */
} user;

/* A client of `s` (tenant demo) whose download_dir is a fresh temp dir, logged in as `id`. */
user d_login(h_server *s, const char *id);
/* The same with a given tenant and download_dir (NULL: a fresh temp dir). */
user d_login_as(h_server *s, const char *label, const char *app, const char *secret,
                const char *id, const char *dir);
/* Every user has consumed all its events; then destroys them all. */
void d_done(user *users, int n);
/* A cmd round trip from `from` to `to` (waits for its notify_cmd_data and its send_cmd_rlst 0):
 * control messages sent earlier on those links have been handled by then. */
void d_sync(user *from, user *to);

/* ---- acting at a transfer's first progress, on the sender's callback thread ---- */

typedef enum d_action {
  CANCEL,       /* crvm_cancel_send(client, task) */
  CANCEL_TWICE, /* the same, twice in a row */
  KILL_PEER,    /* SIGKILL pid */
  LOGOUT,       /* crvm_logout(client) */
  DESTROY,      /* crvm_destroy(client) */
  PAUSE_SERVER, /* h_server_pause(server) */
} d_action;

/* Installed as the sender's recorder hook: once armed with a task, the first send_progress of
 * that task performs the action, then notes "hook fired" in the sender's recorder (right
 * after that progress). Acting in the callback, while a 1 GiB file is far from done, catches
 * the transfer mid-way without any sleep. */
typedef struct trigger {
  d_action what;
  crvm_client *client;
  pid_t pid;
  h_server *server;
  /* private */
  pthread_mutex_t mu;
  char task[CRVM_ID_BUF_LEN];
  int armed, fired;
} trigger;
trigger *d_trigger(h_rec *sender, d_action what); /* set client/pid/server, then d_arm */
void d_arm(trigger *t, const char *task);

/* ---- peers: a user in a child process (the test binary re-executed with --peer) ---- */

typedef struct d_peer {
  pid_t pid;
  h_rec *r; /* the peer's events, as lines it printed; plus "task ID" after a send */
  const char *id;
  const char *dir;
} d_peer;

/* Starts `test --peer ADDR USER DIR [OPTION...]` and waits for its login_success. Options
 * ("-" for none):
 *   "fsize=N"            RLIMIT_FSIZE of N bytes, SIGXFSZ ignored (a "full disk": writes past
 *                        N bytes fail with EFBIG)
 *   "send_file=TARGET:PATH"  after login, sends PATH to TARGET and prints "task ID"
 *   "stop_at_progress"   on its first send_progress, stops itself (SIGSTOP) so the transfer
 *                        freezes mid-way; d_peer_stopped() waits for that
 * Every event the peer gets is printed (truncated) and lands in `r`. */
d_peer d_peer_start(h_server *s, const char *label, const char *id, const char *dir,
                    const char *const *options);
#define PEER(s, label, id, dir, ...)                                                          \
  d_peer_start((s), (label), (id), (dir), (const char *const[]){__VA_ARGS__, NULL})
void d_peer_stop(d_peer *p);    /* SIGSTOP, and wait until it is stopped */
void d_peer_stopped(d_peer *p); /* wait until it has stopped itself (stop_at_progress) */
void d_peer_cont(d_peer *p);    /* SIGCONT */
void d_peer_kill(d_peer *p);    /* SIGKILL and reap (also if stopped) */
/* In main(): `if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);` */
int d_is_peer(int argc, char **argv);
int d_peer_main(int argc, char **argv);

#endif
