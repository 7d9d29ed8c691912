/* docs/API.md §3.5 "several transfers may run at once, in both directions": files and buffers
 * between the same pair both ways and between different pairs at the same time, two files of
 * the same name from two senders landing in one download_dir (one becomes "same (1).bin"),
 * cmds passing through all of it, while one transfer is cancelled (alice→bob, at its first
 * progress), one cannot be stored (carol→dave: download_dir gone, 1402) and one loses its
 * receiver (bob→erin: erin's process killed, 1102): every other transfer arrives
 * byte-identical with its own monotonic progress, and download_dirs hold exactly the
 * delivered files. Then dozens of small buffers and files at once, both ways. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data_util.h"

static h_server *srv;
static char src[512];
static char big[1024]; /* sparse 1 GiB: cancelled or broken long before it could finish */

/* A file that was sent: where it came from and what it holds. */
typedef struct sent_file {
  const char *from, *to; /* user IDs */
  char name[64];         /* base name, as sent (also the expected org_file_name) */
  uint64_t size, seed;
  char task[CRVM_ID_BUF_LEN];
  char path[1024];
  int found;
} sent_file;

typedef struct sent_buf {
  const char *from, *to;
  size_t size;
  char *b64;
  char task[CRVM_ID_BUF_LEN];
  int found;
} sent_buf;

static user *who(user *users, int n, const char *id) {
  for (int i = 0; i < n; i++)
    if (strcmp(users[i].id, id) == 0) return &users[i];
  h_fail(__FILE__, __LINE__, "no user %s", id);
}

static void start_file(user *users, int n, sent_file *f) {
  /* each source file lives in a dir of its own, under the name it is sent as */
  char dir[700];
  snprintf(dir, sizeof dir, "%s/%s-%llu", src, f->from, (unsigned long long)f->seed);
  d_mkdir(dir);
  snprintf(f->path, sizeof f->path, "%s/%s", dir, f->name);
  d_write_pattern_file(f->path, f->size, f->seed);
  CHECK_INT(crvm_send_file(who(users, n, f->from)->c, f->to, f->path, f->task, sizeof f->task),
            0);
}

static void start_buf(user *users, int n, sent_buf *b, uint64_t seed) {
  b->b64 = d_pattern_b64(b->size, seed);
  CHECK_INT(crvm_send_buffer(who(users, n, b->from)->c, b->to, b->b64, b->task, sizeof b->task),
            0);
}

/* Receiver side: takes `count` notify_file_data events of `to` and matches each with the file
 * sent under that (source, org_file_name), checking its content; returns nothing, fails on a
 * stranger or a duplicate. */
static void receive_files(user *to, int count, sent_file *files, int nfiles) {
  const char *real = d_real(to->dir);
  char realdir[4096];
  snprintf(realdir, sizeof realdir, "%s", real);
  for (int k = 0; k < count; k++) {
    const char *ev = WAIT(to->r, "notify_file_data ");
    /* "notify_file_data SRC PATH ORG": SRC and ORG have no spaces here, PATH may. */
    const char *p = ev + strlen("notify_file_data ");
    const char *sp = strchr(p, ' ');
    const char *org = strrchr(ev, ' ') + 1;
    char srcid[64], path[4096];
    snprintf(srcid, sizeof srcid, "%.*s", (int)(sp - p), p);
    snprintf(path, sizeof path, "%.*s", (int)(org - 1 - (sp + 1)), sp + 1);
    sent_file *f = NULL;
    for (int i = 0; i < nfiles && !f; i++)
      if (!files[i].found && strcmp(files[i].to, to->id) == 0 &&
          strcmp(files[i].from, srcid) == 0 && strcmp(files[i].name, org) == 0)
        f = &files[i];
    if (!f) h_fail(__FILE__, __LINE__, "[%s] unexpected \"%s\"", to->id, ev);
    f->found = 1;
    if (strncmp(path, realdir, strlen(realdir)) != 0 || path[strlen(realdir)] != '/')
      h_fail(__FILE__, __LINE__, "\"%s\" is not in %s", path, realdir);
    d_check_pattern_file(path, f->size, f->seed);
    d_check_same_files(f->path, path);
  }
}

/* Takes `count` notify_buffer_data events of `to`, each equal to one of the buffers sent to
 * it (each once). */
static void receive_bufs(user *to, int count, sent_buf *bufs, int nbufs) {
  for (int k = 0; k < count; k++) {
    const char *ev = WAIT(to->r, "notify_buffer_data ");
    sent_buf *b = NULL;
    for (int i = 0; i < nbufs && !b; i++) {
      if (bufs[i].found || strcmp(bufs[i].to, to->id) != 0) continue;
      char head[128];
      snprintf(head, sizeof head, "notify_buffer_data %s ", bufs[i].from);
      if (strncmp(ev, head, strlen(head)) == 0 && strcmp(ev + strlen(head), bufs[i].b64) == 0)
        b = &bufs[i];
    }
    if (!b)
      h_fail(__FILE__, __LINE__, "[%s] a buffer that was not sent: \"%.80s...\" (%zu chars)",
             to->id, ev, strlen(ev));
    b->found = 1;
  }
}

static void test_mixed_with_failures(void) {
  user u[4] = {d_login(srv, "alice"), d_login(srv, "bob"), d_login(srv, "carol"),
               d_login(srv, "dave")};
  user *a = &u[0], *b = &u[1], *c = &u[2], *d = &u[3];
  d_peer erin = PEER(srv, "erin (peer)", "erin", h_temp_dir("erin"), "-");
  CHECK_INT(rmdir(d->dir), 0); /* dave cannot store files */

  sent_file files[] = {
      {"alice", "bob", "f1.bin", 6 * MiB + 1, 1, "", "", 0},
      {"alice", "bob", "same.bin", 3 * MiB + 5, 3, "", "", 0},
      {"bob", "alice", "f3.bin", 5 * MiB, 4, "", "", 0},
      {"carol", "alice", "f4.bin", 4 * MiB + 3, 6, "", "", 0},
      {"alice", "carol", "f5.bin", 2 * MiB, 8, "", "", 0},
      {"carol", "bob", "same.bin", 2 * MiB + 2, 9, "", "", 0},
  };
  sent_buf bufs[] = {
      {"alice", "bob", (size_t)(3 * MiB), NULL, "", 0},
      {"bob", "alice", (size_t)(2 * MiB + 7), NULL, "", 0},
      {"alice", "carol", (size_t)(1 * MiB + 1), NULL, "", 0},
  };
  const int nf = sizeof files / sizeof files[0], nb = sizeof bufs / sizeof bufs[0];
  user all[4] = {*a, *b, *c, *d};

  /* The doomed ones first, so they are in flight alongside all the others. */
  char tx[CRVM_ID_BUF_LEN], te[CRVM_ID_BUF_LEN], td[CRVM_ID_BUF_LEN], tc[CRVM_ID_BUF_LEN],
      tc2[CRVM_ID_BUF_LEN], dpath[1024];
  trigger *cancel = d_trigger(a->r, CANCEL);
  cancel->client = a->c;
  trigger *kill_erin = d_trigger(b->r, KILL_PEER);
  kill_erin->pid = erin.pid;
  CHECK_INT(crvm_send_file(a->c, "bob", big, tx, sizeof tx), 0);
  CHECK_INT(crvm_send_file(b->c, "erin", big, te, sizeof te), 0);
  snprintf(dpath, sizeof dpath, "%s/for-dave.bin", src);
  d_write_pattern_file(dpath, 2 * MiB, 10);
  CHECK_INT(crvm_send_file(c->c, "dave", dpath, td, sizeof td), 0);
  for (int i = 0; i < nf; i++) start_file(all, 4, &files[i]);
  for (int i = 0; i < nb; i++) start_buf(all, 4, &bufs[i], 20 + (uint64_t)i);
  CHECK_INT(crvm_send_cmd(b->c, "alice", "aGVsbG8=", tc, sizeof tc), 0);
  CHECK_INT(crvm_send_cmd(a->c, "carol", "aGk=", tc2, sizeof tc2), 0);
  d_arm(cancel, tx);
  d_arm(kill_erin, te);

  /* The three that do not make it. */
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 0 ", tx));
  EXPECT_EVENT(b->r, F("notify_cancel_send %s", tx));
  EXPECT_EVENT(b->r, F("send_file_rlst %s %s 1102 ", te, big));
  EXPECT_EVENT(c->r, F("send_file_rlst %s %s 1402 ", td, dpath));
  /* cmds pass through. */
  EXPECT_EVENT(a->r, "notify_cmd_data bob aGVsbG8=");
  EXPECT_EVENT(b->r, F("send_cmd_rlst %s 0 ", tc));
  EXPECT_EVENT(c->r, "notify_cmd_data alice aGk=");
  EXPECT_EVENT(a->r, F("send_cmd_rlst %s 0 ", tc2));
  /* Everything else arrives intact, with its result and progress. */
  receive_files(a, 2, files, nf);
  receive_files(b, 2 + 1, files, nf);
  receive_files(c, 1, files, nf);
  receive_bufs(a, 1, bufs, nb);
  receive_bufs(b, 1, bufs, nb);
  receive_bufs(c, 1, bufs, nb);
  for (int i = 0; i < nf; i++) {
    user *s = who(all, 4, files[i].from);
    EXPECT_EVENT(s->r, F("send_file_rlst %s %s 0 ", files[i].task, files[i].path));
    CHECK_PROGRESS(s->r, files[i].task, (int64_t)files[i].size);
  }
  for (int i = 0; i < nb; i++) {
    user *s = who(all, 4, bufs[i].from);
    EXPECT_EVENT(s->r, F("send_buffer_rlst %s 0 ", bufs[i].task));
    CHECK_PROGRESS(s->r, bufs[i].task, (int64_t)bufs[i].size);
    free(bufs[i].b64);
  }
  /* The cancelled and the broken transfer reported some progress first, and nothing else. */
  WAIT(a->r, "hook fired");
  WAIT(b->r, "hook fired");
  while (h_rec_pending(a->r, F("send_progress %s ", tx))) WAIT(a->r, F("send_progress %s ", tx));
  while (h_rec_pending(b->r, F("send_progress %s ", te))) WAIT(b->r, F("send_progress %s ", te));
  while (h_rec_pending(c->r, F("send_progress %s ", td))) WAIT(c->r, F("send_progress %s ", td));
  h_rec_set_hook(a->r, NULL, NULL);
  h_rec_set_hook(b->r, NULL, NULL);
  d_peer_kill(&erin);
  d_sync(a, b);
  d_sync(c, b);
  d_sync(b, a);
  CHECK_NONE(a->r, "send_file_rlst");
  CHECK_STR(d_ls(a->dir), "f3.bin|f4.bin");
  CHECK_STR(d_ls(b->dir), "f1.bin|same (1).bin|same.bin");
  CHECK_STR(d_ls(c->dir), "f5.bin");
  d_done(all, 4);
}

/* Dozens of small buffers and files at once, both ways between alice and bob: 2N incoming
 * streams each, within the 32 a session may receive at once (PROTOCOL.md). */
static void test_many_small(void) {
  enum { N = 12 };
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  sent_file files[2 * N];
  sent_buf bufs[2 * N];
  for (int i = 0; i < 2 * N; i++) {
    const char *from = i % 2 ? "bob" : "alice", *to = i % 2 ? "alice" : "bob";
    uint64_t size = (uint64_t)(1 + (i * 37 % 11) * 23000 + i);
    files[i] = (sent_file){from, to, "", size, 100 + (uint64_t)i, "", "", 0};
    snprintf(files[i].name, sizeof files[i].name, "small-%02d.bin", i);
    bufs[i] = (sent_buf){from, to, (size_t)(size * 2 + 5), NULL, "", 0};
  }
  for (int i = 0; i < 2 * N; i++) {
    start_file(u, 2, &files[i]);
    start_buf(u, 2, &bufs[i], 200 + (uint64_t)i);
  }
  receive_files(a, N, files, 2 * N);
  receive_files(b, N, files, 2 * N);
  receive_bufs(a, N, bufs, 2 * N);
  receive_bufs(b, N, bufs, 2 * N);
  for (int i = 0; i < 2 * N; i++) {
    user *s = who(u, 2, files[i].from);
    EXPECT_EVENT(s->r, F("send_file_rlst %s %s 0 ", files[i].task, files[i].path));
    CHECK_PROGRESS(s->r, files[i].task, (int64_t)files[i].size);
    EXPECT_EVENT(s->r, F("send_buffer_rlst %s 0 ", bufs[i].task));
    CHECK_PROGRESS(s->r, bufs[i].task, (int64_t)bufs[i].size);
    free(bufs[i].b64);
  }
  d_done(u, 2);
}

int main(int argc, char **argv) {
  if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);
  srv = h_server_start(H_NO_RESUME);
  snprintf(src, sizeof src, "%s", h_temp_dir("src"));
  snprintf(big, sizeof big, "%s/big.bin", src);
  d_sparse_file(big, 1 * GiB);
  RUN(test_mixed_with_failures);
  RUN(test_many_small);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
