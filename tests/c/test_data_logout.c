/* docs/API.md §3.1/§3.5: a session that ends by crvm_logout or crvm_destroy ends its transfers
 * in flight, and the peer is informed. The receiver logs out or is destroyed mid-file → the
 * sender's send_file_rlst(1102) and the receiver's part file deleted; the sender logs out or
 * is destroyed mid-file → its own send_file_rlst(12) (logout; DESIGN "Session end"), the
 * receiver's notify_cancel_send and no file. The transfer is caught mid-way by acting in the
 * sender's callback on its first send_progress of a 1 GiB (sparse) file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data_util.h"

static h_server *srv;
static char big[1024]; /* a sparse 1 GiB file: never finishes while a test acts on it */

static void test_receiver_logout(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  trigger *tr = d_trigger(a->r, LOGOUT);
  tr->client = b->c;
  CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
  d_arm(tr, t);
  free(UNTIL(a->r, F("send_file_rlst %s %s 1102 ", t, big), F("send_progress %s ", t),
             "hook fired"));
  h_rec_set_hook(a->r, NULL, NULL);
  /* Once bob's logout is over (his next login follows it), his part file is gone; he was told
   * nothing about the transfer. */
  h_login(b->c, b->r, H_APP, H_SECRET, "bob");
  CHECK_STR(d_ls(b->dir), "");
  d_sync(a, b);
  d_done(u, 2);
}

static void test_receiver_destroyed(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  trigger *tr = d_trigger(a->r, DESTROY);
  tr->client = b->c;
  CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
  d_arm(tr, t);
  /* crvm_destroy returns once bob's threads are gone, before alice's next event. */
  free(UNTIL(a->r, F("send_file_rlst %s %s 1102 ", t, big), F("send_progress %s ", t),
             "hook fired"));
  b->c = NULL;
  h_rec_set_hook(a->r, NULL, NULL);
  CHECK_STR(d_ls(b->dir), "");
  CHECK_INT(h_rec_pending(b->r, ""), 0);
  d_done(u, 2);
}

static void test_sender_logout(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  trigger *tr = d_trigger(a->r, LOGOUT);
  tr->client = a->c;
  CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
  d_arm(tr, t);
  /* The session ended, not the link: the sender's transfer ends with 12 (DESIGN). */
  free(UNTIL(a->r, F("send_file_rlst %s %s 12 ", t, big), F("send_progress %s ", t),
             "hook fired"));
  h_rec_set_hook(a->r, NULL, NULL);
  EXPECT_NEXT(b->r, F("notify_cancel_send %s", t));
  CHECK_STR(d_ls(b->dir), "");
  h_login(a->c, a->r, H_APP, H_SECRET, "alice");
  d_sync(a, b);
  d_done(u, 2);
}

static void test_sender_destroyed(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  /* alice destroys her own client in her callback (it finishes once the callback returns). */
  trigger *tr = d_trigger(a->r, DESTROY);
  tr->client = a->c;
  CHECK_INT(crvm_send_file(a->c, "bob", big, t, sizeof t), 0);
  d_arm(tr, t);
  EXPECT_NEXT(b->r, F("notify_cancel_send %s", t));
  CHECK_STR(d_ls(b->dir), "");
  /* alice got progress, then nothing once destroyed. */
  WAIT(a->r, "hook fired");
  while (h_rec_pending(a->r, F("send_progress %s ", t))) WAIT(a->r, F("send_progress %s ", t));
  a->c = NULL;
  d_done(u, 2);
}

int main(int argc, char **argv) {
  if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);
  srv = h_server_start(NULL);
  snprintf(big, sizeof big, "%s/big.bin", h_temp_dir("src"));
  d_sparse_file(big, 1 * GiB);
  RUN(test_receiver_logout);
  RUN(test_receiver_destroyed);
  RUN(test_sender_logout);
  RUN(test_sender_destroyed);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
