/* docs/API.md §3.5 transfers whose party or server goes away mid-way. The receiver's process is
 * killed → the sender's file and buffer end with 1102. The sender's process dies (it stopped
 * itself at its first progress, so the receiver holds a part file) → the receiver gets
 * notify_cancel_send and the part file is gone. The server dies → every transfer, cmd and
 * cancel of both parties gets its 207 before line_off(207), part files are deleted; it shuts
 * down → the same with 206. (Logout and crvm_destroy are in test_data_logout.c.) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data_util.h"

static h_server *srv;
static char big[1024]; /* a sparse 1 GiB file: never finishes while a test acts on it */

static void test_receiver_killed(void) {
  user u[1] = {d_login(srv, "alice")};
  user *a = &u[0];
  d_peer bob = PEER(srv, "bob (peer)", "bob", h_temp_dir("bob"), "-");
  char tf[CRVM_ID_BUF_LEN], tb[CRVM_ID_BUF_LEN];
  char *b64 = d_pattern_b64((size_t)(32 * MiB), 8);
  trigger *tr = d_trigger(a->r, KILL_PEER);
  tr->pid = bob.pid;
  CHECK_INT(crvm_send_file(a->c, "bob", big, tf, sizeof tf), 0);
  CHECK_INT(crvm_send_buffer(a->c, "bob", b64, tb, sizeof tb), 0);
  free(b64);
  d_arm(tr, tf);
  WAIT(a->r, "hook fired");
  EXPECT_EVENT(a->r, F("send_file_rlst %s %s 1102 ", tf, big));
  EXPECT_EVENT(a->r, F("send_buffer_rlst %s 1102 ", tb));
  while (h_rec_pending(a->r, "send_progress ")) WAIT(a->r, "send_progress ");
  d_peer_kill(&bob);
  h_rec_set_hook(a->r, NULL, NULL);
  /* bob is offline now. */
  CHECK_INT(crvm_send_cmd(a->c, "bob", "eA==", tf, sizeof tf), 0);
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 1102 ", tf));
  d_done(u, 1);
}

static void test_sender_killed(void) {
  user u[1] = {d_login(srv, "bob")};
  user *b = &u[0];
  /* alice's process sends, and stops itself at its first progress: the transfer is frozen
   * mid-way, bob holds a part file. Then the process dies. */
  d_peer alice = PEER(srv, "alice (peer)", "alice", h_temp_dir("alice"), F("send_file=bob:%s", big),
                      "stop_at_progress");
  char t[CRVM_ID_BUF_LEN];
  snprintf(t, sizeof t, "%s", WAIT(alice.r, "task ") + 5);
  d_peer_stopped(&alice);
  const char *ls = d_ls(b->dir);
  if (strncmp(ls, ".crvm-", 6) != 0 || strchr(ls, '|') ||
      strcmp(ls + strlen(ls) - 5, ".part") != 0)
    h_fail(__FILE__, __LINE__, "bob's download_dir holds \"%s\", expected one part file", ls);
  d_peer_kill(&alice);
  EXPECT_NEXT(b->r, F("notify_cancel_send %s", t));
  CHECK_STR(d_ls(b->dir), "");
  d_done(u, 1);
}

static void test_server_killed(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  user u[2] = {d_login(s, "alice"), d_login(s, "bob")};
  user *a = &u[0], *b = &u[1];
  char tf[CRVM_ID_BUF_LEN], tb[CRVM_ID_BUF_LEN], tg[CRVM_ID_BUF_LEN], tc[CRVM_ID_BUF_LEN],
      tb2[CRVM_ID_BUF_LEN];
  char *b64 = d_pattern_b64((size_t)(32 * MiB), 9);
  /* Both ways: alice sends a file and a buffer, bob a file. At alice's first progress of her
   * file the server freezes; then a cmd, a cancel and another buffer are sent into the void,
   * and the server dies. */
  trigger *tr = d_trigger(a->r, PAUSE_SERVER);
  tr->server = s;
  CHECK_INT(crvm_send_file(b->c, "alice", big, tg, sizeof tg), 0);
  CHECK_INT(crvm_send_file(a->c, "bob", big, tf, sizeof tf), 0);
  CHECK_INT(crvm_send_buffer(a->c, "bob", b64, tb, sizeof tb), 0);
  d_arm(tr, tf);
  WAIT(a->r, "hook fired");
  CHECK_INT(crvm_send_cmd(a->c, "bob", "eA==", tc, sizeof tc), 0);
  CHECK_INT(crvm_cancel_send(a->c, tb), 0);
  CHECK_INT(crvm_send_buffer(a->c, "bob", "eA==", tb2, sizeof tb2), 0);
  h_server_kill(s);
  /* Every request gets its 207, all before line_off(207); incoming part files are deleted. */
  char *before = UNTIL(a->r, "line_off 207", "send_progress ", "send_file_rlst ",
                       "send_buffer_rlst ", "send_cmd_rlst ", "cancel_send_rlst ");
  const char *want_a[] = {F("send_file_rlst %s %s 207 ", tf, big),
                          F("send_buffer_rlst %s 207 ", tb), F("cancel_send_rlst %s 207 ", tb),
                          F("send_cmd_rlst %s 207 ", tc), F("send_buffer_rlst %s 207 ", tb2)};
  for (int i = 0; i < 5; i++)
    if (!strstr(before, want_a[i]))
      h_fail(__FILE__, __LINE__, "alice: no \"%s\" before line_off", want_a[i]);
  free(before);
  before = UNTIL(b->r, "line_off 207", "send_progress ", "send_file_rlst ");
  CHECK(strstr(before, F("send_file_rlst %s %s 207 ", tg, big)) != NULL);
  free(before);
  CHECK_STR(d_ls(a->dir), "");
  CHECK_STR(d_ls(b->dir), "");
  CHECK_INT(crvm_send_cmd(a->c, "bob", "eA==", tc, sizeof tc), 12);
  CHECK_INT(crvm_cancel_send(a->c, tf), 12);
  h_rec_set_hook(a->r, NULL, NULL);
  free(b64);
  d_done(u, 2);
}

static void test_server_shutdown(void) {
  h_server *s = h_server_start(H_NO_RESUME);
  user u[2] = {d_login(s, "alice"), d_login(s, "bob")};
  user *a = &u[0], *b = &u[1];
  char tf[CRVM_ID_BUF_LEN], tg[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_send_file(a->c, "bob", big, tf, sizeof tf), 0);
  CHECK_INT(crvm_send_file(b->c, "alice", big, tg, sizeof tg), 0);
  WAIT(a->r, F("send_progress %s ", tf));
  WAIT(b->r, F("send_progress %s ", tg));
  CHECK_INT(h_server_stop(s), 0);
  char *before = UNTIL(a->r, "line_off 206", "send_progress ", "send_file_rlst ");
  if (!strstr(before, F("send_file_rlst %s %s 206 ", tf, big)))
    h_fail(__FILE__, __LINE__, "alice: no \"send_file_rlst ... 206\" before line_off:\n%s",
           before);
  free(before);
  before = UNTIL(b->r, "line_off 206", "send_progress ", "send_file_rlst ");
  if (!strstr(before, F("send_file_rlst %s %s 206 ", tg, big)))
    h_fail(__FILE__, __LINE__, "bob: no \"send_file_rlst ... 206\" before line_off:\n%s",
           before);
  free(before);
  CHECK_STR(d_ls(a->dir), "");
  CHECK_STR(d_ls(b->dir), "");
  d_done(u, 2);
}

int main(int argc, char **argv) {
  if (d_is_peer(argc, argv)) return d_peer_main(argc, argv);
  srv = h_server_start(H_NO_RESUME);
  snprintf(big, sizeof big, "%s/big.bin", h_temp_dir("src"));
  d_sparse_file(big, 1 * GiB);
  RUN(test_receiver_killed);
  RUN(test_sender_killed);
  RUN(test_server_killed);
  RUN(test_server_shutdown);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
