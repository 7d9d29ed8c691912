/* docs/API.md §3.5 transfers that are cancelled or cannot be stored. Cancel: in flight (sender
 * cancel_send_rlst 0, receiver notify_cancel_send with its part file already gone, no
 * send_*_rlst ever), before the stream exists, twice, and of finished, unknown and cmd tasks
 * (1104). More streams than a receiver takes at once wait their turn, never refused (docs/API.md
 * §3.5, "Volume is never a failure"). The receiver cannot
 * write: download_dir removed, or a "full disk" (RLIMIT_FSIZE in a receiver process) → 1402
 * and no partial file; the receiver carries on afterwards.
 * Parties or the server going away are in test_data_gone.c and test_data_logout.c.
 *
 * Nothing sleeps: a transfer is caught mid-way either by stopping the receiver's process
 * (SIGSTOP: it cannot finish) or by acting in the sender's callback on its first
 * send_progress while a 1 GiB (sparse) file is far from done. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data_util.h"

static h_server *srv;
static char src[512]; /* source files */
static char big[1024];   /* a sparse 1 GiB file: never finishes while a test acts on it */

/* ---- cancel ---- */

static void test_cancel_while_moving(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  /* Cancelled (twice) at its first progress: the second cancel finds nothing left to cancel
   * (1104), the first succeeds; only progress comes before. */
  trigger *tr = d_trigger(a->r, CANCEL_TWICE);
  tr->client = a->c;
  CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
  d_arm(tr, t);
  char *before = UNTIL(a->r, F("cancel_send_rlst %s 0 ", t), F("send_progress %s ", t),
                       "hook fired", F("cancel_send_rlst %s 1104 ", t));
  CHECK(strstr(before, F("cancel_send_rlst %s 1104 ", t)) != NULL);
  CHECK(strstr(before, "hook fired") != NULL);
  free(before);
  /* The receiver is told, and its part file is already gone when it is. */
  EXPECT_NEXT(b->r, F("notify_cancel_send %s", t));
  CHECK_STR(d_ls(b->dir), "");
  /* No send_file_rlst follows; cancelling again: 1104. */
  d_sync(a, b);
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_NEXT(a->r, F("cancel_send_rlst %s 1104 ", t));
  d_sync(b, a);
  h_rec_set_hook(a->r, NULL, NULL);
  d_done(u, 2);
}

static void test_cancel_stalled_receiver(void) {
  /* The receiver's process is stopped, so nothing can finish: a file and a buffer are
   * cancelled in flight, deterministically. */
  user u[1] = {d_login(srv, "alice")};
  user *a = &u[0];
  d_peer bob = PEER(srv, "bob (peer)", "bob", h_temp_dir("bob"), "-");
  d_peer_stop(&bob);
  char tf[CRVM_ID_BUF_LEN], tb[CRVM_ID_BUF_LEN], path[1024];
  snprintf(path, sizeof path, "%s/eight.bin", src);
  d_write_pattern_file(path, 8 * MiB, 1);
  char *b64 = d_pattern_b64((size_t)(4 * MiB), 2);
  CHECK_INT(crvm_send_file(a->c, "bob", path, tf, sizeof tf), 0);
  CHECK_INT(crvm_send_buffer(a->c, "bob", b64, tb, sizeof tb), 0);
  free(b64);
  CHECK_INT(crvm_cancel_send(a->c, tf), 0);
  CHECK_INT(crvm_cancel_send(a->c, tb), 0);
  d_peer_cont(&bob);
  /* Exactly the two cancel results (no progress once cancelling, no send_*_rlst). */
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 0 ", tf));
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 0 ", tb));
  CHECK_INT(h_rec_pending(a->r, ""), 0);
  EXPECT_EVENT(bob.r, F("notify_cancel_send %s", tf));
  EXPECT_EVENT(bob.r, F("notify_cancel_send %s", tb));
  CHECK_STR(d_ls(bob.dir), "");
  CHECK_INT(crvm_cancel_send(a->c, tf), 0);
  EXPECT_NEXT(a->r, F("cancel_send_rlst %s 1104 ", tf));
  /* The peer still receives normally afterwards. */
  char t[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  EXPECT_EVENT(bob.r, F("notify_file_data alice %s/eight.bin eight.bin", d_real(bob.dir)));
  PROGRESS_THEN(a->r, t, 8 * MiB, F("send_file_rlst %s %s 0 ", t, path));
  d_check_same_files(path, d_path(bob.dir, "eight.bin"));
  d_peer_kill(&bob);
  d_done(u, 1);
}

static void test_cancel_before_stream(void) {
  /* Cancelled before the server has assigned the stream (it is frozen while we send and
   * cancel): the cancel is remembered and applied as soon as the stream exists, before any
   * data moves; the receiver, which got the offer, is told. */
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN], t2[CRVM_ID_BUF_LEN];
  char *b64 = d_pattern_b64((size_t)(2 * MiB), 3);
  for (int i = 0; i < 3; i++) {
    h_server_pause(srv);
    CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
    CHECK_INT(crvm_cancel_send(a->c, t), 0);
    CHECK_INT(crvm_send_buffer(a->c, "bob", b64, t2, sizeof t2), 0);
    CHECK_INT(crvm_cancel_send(a->c, t2), 0);
    h_server_resume(srv);
    EXPECT_EVENT(a->r, F("cancel_send_rlst %s 0 ", t));
    EXPECT_EVENT(a->r, F("cancel_send_rlst %s 0 ", t2));
    EXPECT_EVENT(b->r, F("notify_cancel_send %s", t));
    EXPECT_EVENT(b->r, F("notify_cancel_send %s", t2));
    CHECK_INT(h_rec_pending(a->r, ""), 0); /* no progress: no data moved */
    CHECK_INT(h_rec_pending(b->r, ""), 0);
    CHECK_STR(d_ls(b->dir), "");
  }
  free(b64);
  d_sync(a, b);
  d_done(u, 2);
}

static void test_cancel_finished_unknown_cmd(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN], path[1024];
  snprintf(path, sizeof path, "%s/small.txt", src);
  d_write_text(path, "small");
  /* Finished file and buffer. */
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  EXPECT_NEXT(b->r, F("notify_file_data alice %s/small.txt small.txt", d_real(b->dir)));
  PROGRESS_THEN(a->r, t, 5, F("send_file_rlst %s %s 0 ", t, path));
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_NEXT(a->r, F("cancel_send_rlst %s 1104 ", t));
  CHECK_INT(crvm_send_buffer(a->c, "bob", "YnVm", t, sizeof t), 0);
  EXPECT_NEXT(b->r, "notify_buffer_data alice YnVm");
  PROGRESS_THEN(a->r, t, 3, F("send_buffer_rlst %s 0 ", t));
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_NEXT(a->r, F("cancel_send_rlst %s 1104 ", t));
  /* Unknown tasks, including one of bob's. */
  CHECK_INT(crvm_cancel_send(a->c, "no-such-task"), 0);
  EXPECT_NEXT(a->r, "cancel_send_rlst no-such-task 1104 ");
  CHECK_INT(crvm_cancel_send(a->c, ""), 5); /* an empty ID is no task ID */
  CHECK_INT(crvm_send_file(b->c, "alice", path, t, sizeof t), 0);
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 1104 ", t));
  EXPECT_EVENT(a->r, F("notify_file_data bob %s/small.txt small.txt", d_real(a->dir)));
  EXPECT_EVENT(b->r, F("send_file_rlst %s %s 0 ", t, path));
  while (h_rec_pending(b->r, "send_progress ")) WAIT(b->r, "send_progress ");
  /* A cmd, in flight or done: not cancellable, and it still arrives. */
  CHECK_INT(crvm_send_cmd(a->c, "bob", "Y21k", t, sizeof t), 0);
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_NEXT(b->r, "notify_cmd_data alice Y21k");
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 1104 ", t));
  EXPECT_EVENT(a->r, F("send_cmd_rlst %s 0 ", t));
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_NEXT(a->r, F("cancel_send_rlst %s 1104 ", t));
  /* A cmd to an offline user. */
  CHECK_INT(crvm_send_cmd(a->c, "nobody", "Y21k", t, sizeof t), 0);
  CHECK_INT(crvm_cancel_send(a->c, t), 0);
  EXPECT_EVENT(a->r, F("cancel_send_rlst %s 1104 ", t));
  EXPECT_EVENT(a->r, F("send_cmd_rlst %s 1102 ", t));
  d_sync(a, b);
  d_done(u, 2);
}

/* ---- more streams than a receiver takes at once: queued, never refused ---- */

static void test_streams_beyond_the_limits_wait(void) {
  /* Five senders offer ten buffers each to a receiver whose process is stopped: more than a
   * sender's library runs at once (8) and more than the server lets one receiver take at once
   * (32). None is refused; a cmd sent after them is not held up behind them; once the receiver
   * runs again every buffer arrives once, intact, and every sender hears 0 for each. */
  enum { SENDERS = 5, EACH = 10 };
  user u[SENDERS];
  const char *names[SENDERS] = {"alice", "s1", "s2", "s3", "s4"};
  for (int k = 0; k < SENDERS; k++) u[k] = d_login(srv, names[k]);
  d_peer bob = PEER(srv, "bob (peer)", "bob", h_temp_dir("bob"), "-");
  d_peer_stop(&bob);
  char t[SENDERS][EACH][CRVM_ID_BUF_LEN], cmd[CRVM_ID_BUF_LEN];
  char *b64[SENDERS][EACH];
  for (int i = 0; i < EACH; i++) {
    for (int k = 0; k < SENDERS; k++) {
      b64[k][i] = d_pattern_b64(1000, 300 + (uint64_t)(k * EACH + i));
      CHECK_INT(crvm_send_buffer(u[k].c, "bob", b64[k][i], t[k][i], sizeof t[k][i]), 0);
    }
  }
  CHECK_INT(crvm_send_cmd(u[0].c, "bob", "eA==", cmd, sizeof cmd), 0);
  d_peer_cont(&bob);
  EXPECT_EVENT(bob.r, "notify_cmd_data alice eA==");
  EXPECT_EVENT(u[0].r, F("send_cmd_rlst %s 0 ", cmd));
  for (int k = 0; k < SENDERS; k++) {
    for (int i = 0; i < EACH; i++) {
      EXPECT_EVENT(bob.r, F("notify_buffer_data %s %s", names[k], b64[k][i]));
      EXPECT_EVENT(u[k].r, F("send_buffer_rlst %s 0 ", t[k][i]));
      CHECK_PROGRESS(u[k].r, t[k][i], 1000);
      free(b64[k][i]);
    }
  }
  CHECK_INT(h_rec_pending(bob.r, "notify_"), 0);
  d_peer_kill(&bob);
  d_done(u, SENDERS);
}

/* ---- the receiver cannot write: 1402, no partial file ---- */

static void test_download_dir_removed(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN], path[1024];
  snprintf(path, sizeof path, "%s/two.bin", src);
  d_write_pattern_file(path, 2 * MiB, 4);
  CHECK_INT(rmdir(b->dir), 0);
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  free(UNTIL(a->r, F("send_file_rlst %s %s 1402 ", t, path), F("send_progress %s ", t)));
  /* Bob heard nothing; buffers need no disk and still arrive. */
  d_sync(a, b);
  CHECK_INT(crvm_send_buffer(a->c, "bob", "YnVm", t, sizeof t), 0);
  EXPECT_NEXT(b->r, "notify_buffer_data alice YnVm");
  PROGRESS_THEN(a->r, t, 3, F("send_buffer_rlst %s 0 ", t));
  /* Once the directory is back, files arrive again. */
  d_mkdir(b->dir);
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  EXPECT_NEXT(b->r, F("notify_file_data alice %s/two.bin two.bin", d_real(b->dir)));
  PROGRESS_THEN(a->r, t, 2 * MiB, F("send_file_rlst %s %s 0 ", t, path));
  CHECK_STR(d_ls(b->dir), "two.bin");
  d_check_same_files(path, d_path(b->dir, "two.bin"));
  d_done(u, 2);
}

static void test_disk_full(void) {
  /* The receiver is a process whose files may not exceed 1 MiB: writing past that fails
   * (EFBIG), as on a full disk. */
  user u[1] = {d_login(srv, "alice")};
  user *a = &u[0];
  d_peer bob = PEER(srv, "bob (peer)", "bob", h_temp_dir("bob"), "fsize=1048576");
  char t[CRVM_ID_BUF_LEN], path[1024], fits[1024], over[1024];
  snprintf(path, sizeof path, "%s/four.bin", src);
  snprintf(fits, sizeof fits, "%s/fits.bin", src);
  snprintf(over, sizeof over, "%s/over.bin", src);
  d_write_pattern_file(path, 4 * MiB, 5);
  d_write_pattern_file(fits, 1 * MiB, 6);
  d_write_pattern_file(over, 1 * MiB + 1, 7);
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  free(UNTIL(a->r, F("send_file_rlst %s %s 1402 ", t, path), F("send_progress %s ", t)));
  CHECK_STR(d_ls(bob.dir), "");
  CHECK_INT(crvm_send_file(a->c, "bob", over, t, sizeof t), 0);
  free(UNTIL(a->r, F("send_file_rlst %s %s 1402 ", t, over), F("send_progress %s ", t)));
  CHECK_STR(d_ls(bob.dir), "");
  /* Exactly the limit still fits. */
  CHECK_INT(crvm_send_file(a->c, "bob", fits, t, sizeof t), 0);
  EXPECT_EVENT(bob.r, F("notify_file_data alice %s/fits.bin fits.bin", d_real(bob.dir)));
  PROGRESS_THEN(a->r, t, 1 * MiB, F("send_file_rlst %s %s 0 ", t, fits));
  CHECK_STR(d_ls(bob.dir), "fits.bin");
  d_check_same_files(fits, d_path(bob.dir, "fits.bin"));
  /* The peer heard of none of the failures. */
  CHECK_INT(h_rec_pending(bob.r, "notify_"), 0);
  d_peer_kill(&bob);
  d_done(u, 1);
}

int main(int argc, char **argv) {
  if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);
  srv = h_server_start(NULL);
  snprintf(src, sizeof src, "%s", h_temp_dir("src"));
  snprintf(big, sizeof big, "%s/big.bin", src);
  d_sparse_file(big, 1 * GiB);
  RUN(test_cancel_while_moving);
  RUN(test_cancel_stalled_receiver);
  RUN(test_cancel_before_stream);
  RUN(test_cancel_finished_unknown_cmd);
  RUN(test_streams_beyond_the_limits_wait);
  RUN(test_download_dir_removed);
  RUN(test_disk_full);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
