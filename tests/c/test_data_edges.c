/* Edge cases of docs/API.md §3.5 and §2.2. Empty data: a buffer or file of 0 bytes is a valid
 * request (crvm_send_* returned 0), so exactly one result follows and the target gets it:
 * notify_buffer_data with "" / notify_file_data with an empty file; the final progress has
 * sent == total == 0. A FIFO is "not a regular file": crvm_send_file refuses it at once (1401)
 * instead of blocking the caller until someone opens the FIFO for writing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "data_util.h"

static h_server *srv;

static void test_empty_buffer(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_send_buffer(a->c, "bob", "", t, sizeof t), 0);
  EXPECT_NEXT(b->r, "notify_buffer_data alice ");
  PROGRESS_THEN(a->r, t, 0, F("send_buffer_rlst %s 0 ", t));
  d_done(u, 2);
}

static void test_empty_file(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN], path[1024];
  snprintf(path, sizeof path, "%s/empty.txt", h_temp_dir("src"));
  d_write_text(path, "");
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  EXPECT_NEXT(b->r, F("notify_file_data alice %s/empty.txt empty.txt", d_real(b->dir)));
  PROGRESS_THEN(a->r, t, 0, F("send_file_rlst %s %s 0 ", t, path));
  CHECK_STR(d_ls(b->dir), "empty.txt");
  d_check_same_files(path, d_path(b->dir, "empty.txt"));
  d_done(u, 2);
}

typedef struct fifo_send {
  user *u;
  char path[1024];
} fifo_send;

static void *send_fifo(void *arg) {
  fifo_send *f = arg;
  char t[CRVM_ID_BUF_LEN], note[64];
  int rc = crvm_send_file(f->u->c, "bob", f->path, t, sizeof t);
  snprintf(note, sizeof note, "crvm_send_file returned %d", rc);
  h_note(f->u->r, note);
  return NULL;
}

static void test_fifo(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  static fifo_send f;
  f.u = &u[0];
  snprintf(f.path, sizeof f.path, "%s/fifo", h_temp_dir("src"));
  CHECK_INT(mkfifo(f.path, 0600), 0);
  /* On a thread of its own, so that a call that blocks fails the WAIT instead of hanging. */
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, send_fifo, &f), 0);
  EXPECT_NEXT(u[0].r, "crvm_send_file returned 1401");
  pthread_join(th, NULL);
  d_sync(&u[0], &u[1]);
  CHECK_STR(d_ls(u[1].dir), "");
  d_done(u, 2);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_empty_buffer);
  RUN(test_empty_file);
  RUN(test_fifo);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
