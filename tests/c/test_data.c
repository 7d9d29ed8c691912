/* docs/API.md §3.5 point-to-point data that arrives, or is refused: a cmd of exactly 51,200 bytes
 * delivered byte-identical and one byte more refused (1100); bad base64 (13); buffers of
 * several MiB arriving whole, with monotonic progress ending at the total; the client's and
 * the server's max_buffer_bytes (1101) and max_file_bytes (1103); files of edge sizes arriving
 * byte-identical under the sender's base name in download_dir; names with spaces, non-ASCII
 * letters, control characters and "../" sanitised, and taken names becoming "name (1).ext";
 * missing files (1400), directories (1401); offline, unknown and other-tenant targets (1102),
 * yourself (5); NULL and short arguments (5) and not logged in (12).
 * Cancels, failures and disconnects are in test_data_links.c, simultaneous transfers in
 * test_data_many.c, a 1 GiB file in test_data_big.c. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "data_util.h"

static h_server *srv;

/* ---- refusals: nothing is sent, no event follows ---- */

static void test_refusals(void) {
  user a = d_login(srv, "alice");
  char task[CRVM_ID_BUF_LEN], file[1024], dir[512];
  snprintf(dir, sizeof dir, "%s", h_temp_dir("src"));
  snprintf(file, sizeof file, "%s/x.bin", dir);
  d_write_text(file, "x");

  /* The task ID buffer: NULL or shorter than CRVM_ID_BUF_LEN → 5. */
  CHECK_INT(crvm_send_cmd(a.c, "bob", "eA==", NULL, CRVM_ID_BUF_LEN), 5);
  CHECK_INT(crvm_send_cmd(a.c, "bob", "eA==", task, CRVM_ID_BUF_LEN - 1), 5);
  CHECK_INT(crvm_send_buffer(a.c, "bob", "eA==", NULL, CRVM_ID_BUF_LEN), 5);
  CHECK_INT(crvm_send_buffer(a.c, "bob", "eA==", task, CRVM_ID_BUF_LEN - 1), 5);
  CHECK_INT(crvm_send_file(a.c, "bob", file, NULL, CRVM_ID_BUF_LEN), 5);
  CHECK_INT(crvm_send_file(a.c, "bob", file, task, CRVM_ID_BUF_LEN - 1), 5);
  /* NULL handle or required argument → 5. */
  CHECK_INT(crvm_send_cmd(NULL, "bob", "eA==", task, sizeof task), 5);
  CHECK_INT(crvm_send_cmd(a.c, NULL, "eA==", task, sizeof task), 5);
  CHECK_INT(crvm_send_cmd(a.c, "bob", NULL, task, sizeof task), 5);
  CHECK_INT(crvm_send_buffer(NULL, "bob", "eA==", task, sizeof task), 5);
  CHECK_INT(crvm_send_buffer(a.c, NULL, "eA==", task, sizeof task), 5);
  CHECK_INT(crvm_send_buffer(a.c, "bob", NULL, task, sizeof task), 5);
  CHECK_INT(crvm_send_file(NULL, "bob", file, task, sizeof task), 5);
  CHECK_INT(crvm_send_file(a.c, NULL, file, task, sizeof task), 5);
  CHECK_INT(crvm_send_file(a.c, "bob", NULL, task, sizeof task), 5);
  CHECK_INT(crvm_cancel_send(NULL, "t"), 5);
  CHECK_INT(crvm_cancel_send(a.c, NULL), 5);
  /* Bad base64 → 13. */
  static const char *const bad_b64[] = {"not base64!", "eA=", "@@@@", "e A==", "eA==eA==",
                                        "eA===", "\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++) {
    CHECK_INT(crvm_send_cmd(a.c, "bob", bad_b64[i], task, sizeof task), 13);
    CHECK_INT(crvm_send_buffer(a.c, "bob", bad_b64[i], task, sizeof task), 13);
  }
  /* Not UTF-8 → 5, as for any other string argument (the text is checked as it is decoded). */
  static const char *const bad_utf8[] = {"eA\xff=", "\x80\x80\x80\x80", "eA==\xc3"};
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
    CHECK_INT(crvm_send_cmd(a.c, "bob", bad_utf8[i], task, sizeof task), 5);
    CHECK_INT(crvm_send_buffer(a.c, "bob", bad_utf8[i], task, sizeof task), 5);
  }
  /* Sizes: a cmd of 51,201 bytes → 1100; a buffer over the default max_buffer_bytes (100 MiB)
   * → 1101. */
  char *b64 = d_pattern_b64(51201, 1);
  CHECK_INT(crvm_send_cmd(a.c, "bob", b64, task, sizeof task), 1100);
  free(b64);
  b64 = d_pattern_b64(100 * MiB + 1, 2);
  CHECK_INT(crvm_send_buffer(a.c, "bob", b64, task, sizeof task), 1101);
  free(b64);
  /* Files: missing → 1400, a directory → 1401 (a chmod-000 file would not do: tests may run
   * as root), an empty or over-long path → 5. */
  CHECK_INT(crvm_send_file(a.c, "bob", F("%s/no-such-file", dir), task, sizeof task), 1400);
  CHECK_INT(crvm_send_file(a.c, "bob", F("%s/no-such-dir/x", dir), task, sizeof task), 1400);
  CHECK_INT(crvm_send_file(a.c, "bob", dir, task, sizeof task), 1401);
  CHECK_INT(crvm_send_file(a.c, "bob", "/", task, sizeof task), 1401);
  CHECK_INT(crvm_send_file(a.c, "bob", "", task, sizeof task), 5);
  CHECK_INT(crvm_send_file(a.c, "bob", h_repeat("/", 4097), task, sizeof task), 5);
  /* Not logged in → 12 (a fresh client, and one that logged out). */
  h_rec *r = h_rec_new("fresh");
  crvm_client *fresh = h_client(srv->addr, r);
  crvm_client *clients[2] = {fresh, a.c};
  CHECK_INT(crvm_logout(a.c), 0);
  for (int i = 0; i < 2; i++) {
    CHECK_INT(crvm_send_cmd(clients[i], "bob", "eA==", task, sizeof task), 12);
    CHECK_INT(crvm_send_buffer(clients[i], "bob", "eA==", task, sizeof task), 12);
    CHECK_INT(crvm_send_file(clients[i], "bob", file, task, sizeof task), 12);
    CHECK_INT(crvm_cancel_send(clients[i], "t"), 12);
  }
  /* Nothing above produced an event: the next one is this login's. */
  h_login(a.c, a.r, H_APP, H_SECRET, "alice");
  CHECK_INT(h_rec_pending(r, ""), 0);
  crvm_destroy(fresh);
  d_done(&a, 1);
}

/* ---- targets: offline, unknown, another tenant's, yourself ---- */

static void send_all_three(user *from, const char *to, const char *file, char *t_cmd,
                           char *t_buf, char *t_file) {
  CHECK_INT(crvm_send_cmd(from->c, to, "aGk=", t_cmd, CRVM_ID_BUF_LEN), 0);
  CHECK_INT(crvm_send_buffer(from->c, to, "aGk=", t_buf, CRVM_ID_BUF_LEN), 0);
  CHECK_INT(crvm_send_file(from->c, to, file, t_file, CRVM_ID_BUF_LEN), 0);
}

static void test_targets(void) {
  user u[4] = {d_login(srv, "alice"), d_login(srv, "bob"),
               d_login_as(srv, "zoe@acme", H_APP2, H_SECRET2, "zoe", NULL),
               d_login_as(srv, "bob@acme", H_APP2, H_SECRET2, "bob", NULL)};
  user *a = &u[0], *b = &u[1], *zoe = &u[2], *acme_bob = &u[3];
  char file[512], tc[CRVM_ID_BUF_LEN], tb[CRVM_ID_BUF_LEN], tf[CRVM_ID_BUF_LEN];
  snprintf(file, sizeof file, "%s/hi.txt", h_temp_dir("src"));
  d_write_text(file, "hi");

  /* Unknown, offline (never logged in, logged out) and another tenant's user: 1102 each, in
   * the order sent. */
  user gone = d_login(srv, "gone");
  CHECK_INT(crvm_start_user_status_notify(a->c, "st"), 0);
  EXPECT_NEXT(a->r, "start_user_status_notify_rslt 0 st");
  CHECK_INT(crvm_logout(gone.c), 0);
  /* The server has logged "gone" out once alice hears it. */
  EXPECT_NEXT(a->r, "notify_user_status {\"userID\":\"gone\",\"userStatus\":0,\"DNDType\":0} st");
  CHECK_INT(crvm_stop_user_status_notify(a->c, "st"), 0);
  EXPECT_NEXT(a->r, "stop_user_status_notify_rslt 0 st");
  const char *targets[] = {"nobody", "carol", "gone", "zoe"};
  for (size_t i = 0; i < 4; i++) {
    send_all_three(a, targets[i], file, tc, tb, tf);
    EXPECT_EVENT(a->r, F("send_cmd_rlst %s 1102 ", tc));
    EXPECT_EVENT(a->r, F("send_buffer_rlst %s 1102 ", tb));
    EXPECT_EVENT(a->r, F("send_file_rlst %s %s 1102 ", tf, file));
  }
  /* Yourself: 5 from the server. */
  send_all_three(a, "alice", file, tc, tb, tf);
  EXPECT_EVENT(a->r, F("send_cmd_rlst %s 5 ", tc));
  EXPECT_EVENT(a->r, F("send_buffer_rlst %s 5 ", tb));
  EXPECT_EVENT(a->r, F("send_file_rlst %s %s 5 ", tf, file));
  /* Same user ID, two tenants: only alice's tenant's bob gets it. */
  send_all_three(a, "bob", file, tc, tb, tf);
  EXPECT_NEXT(b->r, "notify_cmd_data alice aGk=");
  EXPECT_NEXT(b->r, "notify_buffer_data alice aGk=");
  EXPECT_NEXT(b->r, F("notify_file_data alice %s/hi.txt hi.txt", d_real(b->dir)));
  EXPECT_EVENT(a->r, F("send_cmd_rlst %s 0 ", tc));
  EXPECT_EVENT(a->r, F("send_buffer_rlst %s 0 ", tb));
  EXPECT_EVENT(a->r, F("send_file_rlst %s %s 0 ", tf, file));
  while (h_rec_pending(a->r, "send_progress ")) WAIT(a->r, "send_progress ");
  /* The acme users send to demo users in vain, and heard nothing. */
  send_all_three(zoe, "alice", file, tc, tb, tf);
  EXPECT_EVENT(zoe->r, F("send_cmd_rlst %s 1102 ", tc));
  EXPECT_EVENT(zoe->r, F("send_buffer_rlst %s 1102 ", tb));
  EXPECT_EVENT(zoe->r, F("send_file_rlst %s %s 1102 ", tf, file));
  d_sync(a, b);
  CHECK_STR(d_ls(zoe->dir), "");
  CHECK_STR(d_ls(acme_bob->dir), "");
  CHECK_STR(d_ls(a->dir), "");
  d_done(u, 4);
  crvm_destroy(gone.c);
}

/* ---- cmd ---- */

static void test_cmd(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char t[CRVM_ID_BUF_LEN];
  /* Exactly 51,200 bytes: delivered byte-identical; the result follows once bob's library has
   * it. */
  char *b64 = d_pattern_b64(51200, 7);
  CHECK_INT(crvm_send_cmd(a->c, "bob", b64, t, sizeof t), 0);
  CHECK(strlen(t) > 0 && strlen(t) < CRVM_ID_BUF_LEN);
  NEXT_DATA(b->r, "notify_cmd_data alice ", b64);
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 0 ", t));
  free(b64);
  /* Every byte value, and the empty cmd. */
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  b64 = d_base64(all, sizeof all);
  CHECK_INT(crvm_send_cmd(a->c, "bob", b64, t, sizeof t), 0);
  NEXT_DATA(b->r, "notify_cmd_data alice ", b64);
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 0 ", t));
  free(b64);
  CHECK_INT(crvm_send_cmd(a->c, "bob", "", t, sizeof t), 0);
  EXPECT_NEXT(b->r, "notify_cmd_data alice ");
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 0 ", t));
  /* Task IDs are unique; cmds arrive in the order sent, both ways. */
  char t2[CRVM_ID_BUF_LEN], t3[CRVM_ID_BUF_LEN];
  CHECK_INT(crvm_send_cmd(a->c, "bob", "MQ==", t, sizeof t), 0);
  CHECK_INT(crvm_send_cmd(a->c, "bob", "Mg==", t2, sizeof t2), 0);
  CHECK_INT(crvm_send_cmd(b->c, "alice", "Mw==", t3, sizeof t3), 0);
  CHECK(strcmp(t, t2) != 0);
  EXPECT_NEXT(b->r, "notify_cmd_data alice MQ==");
  EXPECT_NEXT(b->r, "notify_cmd_data alice Mg==");
  /* bob's cmd and alice's results cross on the wire: either may reach alice first. */
  EXPECT_EVENT(a->r, "notify_cmd_data bob Mw==");
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 0 ", t));
  EXPECT_NEXT(a->r, F("send_cmd_rlst %s 0 ", t2));
  EXPECT_EVENT(b->r, F("send_cmd_rlst %s 0 ", t3));
  /* One byte over the limit: refused at once, nothing sent. */
  b64 = d_pattern_b64(51201, 7);
  CHECK_INT(crvm_send_cmd(a->c, "bob", b64, t, sizeof t), 1100);
  free(b64);
  d_sync(a, b);
  CHECK_STR(d_ls(b->dir), "");
  d_done(u, 2);
}

/* ---- buffers ---- */

static void send_buffer_ok(user *from, user *to, size_t n, uint64_t seed) {
  char t[CRVM_ID_BUF_LEN];
  char *b64 = d_pattern_b64(n, seed);
  CHECK_INT(crvm_send_buffer(from->c, to->id, b64, t, sizeof t), 0);
  NEXT_DATA(to->r, F("notify_buffer_data %s ", from->id), b64);
  PROGRESS_THEN(from->r, t, (int64_t)n, F("send_buffer_rlst %s 0 ", t));
  free(b64);
}

static void test_buffer(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  /* Several MiB arrive as one notify_buffer_data, identical, with progress at least every
   * MiB; then the other way. */
  send_buffer_ok(a, b, (size_t)(5 * MiB + 3), 11);
  send_buffer_ok(b, a, (size_t)(3 * MiB), 12);
  /* Edge sizes around the 64 KiB chunk and the 256 KiB window, and empty. */
  const size_t sizes[] = {1, 2, 3, 65535, 65536, 65537, 262144, 262145, 1048576, 1048577};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) send_buffer_ok(a, b, sizes[i], i);
  d_sync(a, b);
  CHECK_STR(d_ls(b->dir), "");
  d_done(u, 2);
}

static void test_buffer_limits(void) {
  char t[CRVM_ID_BUF_LEN];
  /* The client option: bad values refused, a smaller limit applies to sending… */
  user b = d_login(srv, "bob");
  h_rec *r = h_rec_new("alice");
  crvm_client *c = h_client(srv->addr, r);
  static const char *const bad[] = {"0", "-1", "", "1e3", "ten", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(crvm_set_option(c, "max_buffer_bytes", bad[i]), 5);
  CHECK_INT(crvm_set_option(c, "max_buffer_bytes", "1000"), 0);
  h_login(c, r, H_APP, H_SECRET, "alice");
  user a = {"alice", r, c, NULL};
  char *b64 = d_pattern_b64(1001, 1);
  CHECK_INT(crvm_send_buffer(c, "bob", b64, t, sizeof t), 1101);
  free(b64);
  send_buffer_ok(&a, &b, 1000, 2);
  /* Only while logged out (else 9). */
  CHECK_INT(crvm_set_option(c, "max_buffer_bytes", "5000"), 9);
  /* …and to receiving: a buffer larger than the receiver's limit ends with 1101 and the
   * receiver hears nothing. */
  b64 = d_pattern_b64(1001, 3);
  CHECK_INT(crvm_send_buffer(b.c, "alice", b64, t, sizeof t), 0);
  EXPECT_EVENT(b.r, F("send_buffer_rlst %s 1101 ", t));
  free(b64);
  d_sync(&b, &a);
  user both[2] = {a, b};
  d_done(both, 2);

  /* The server's limits (learnt at login) apply whatever the client's option says. */
  h_server *s = h_server_start("max_buffer_bytes = 2000\nmax_file_bytes = 3000\n");
  user u[2] = {d_login(s, "alice"), d_login(s, "bob")};
  b64 = d_pattern_b64(2001, 4);
  CHECK_INT(crvm_send_buffer(u[0].c, "bob", b64, t, sizeof t), 1101);
  free(b64);
  send_buffer_ok(&u[0], &u[1], 2000, 5);
  char src[512];
  snprintf(src, sizeof src, "%s", h_temp_dir("src"));
  d_write_pattern_file(d_path(src, "big"), 3001, 6);
  d_write_pattern_file(d_path(src, "fits"), 3000, 7);
  CHECK_INT(crvm_send_file(u[0].c, "bob", d_path(src, "big"), t, sizeof t), 1103);
  CHECK_INT(crvm_send_file(u[0].c, "bob", d_path(src, "fits"), t, sizeof t), 0);
  EXPECT_NEXT(u[1].r, F("notify_file_data alice %s/fits fits", d_real(u[1].dir)));
  PROGRESS_THEN(u[0].r, t, 3000, F("send_file_rlst %s %s/fits 0 ", t, src));
  d_check_pattern_file(d_path(u[1].dir, "fits"), 3000, 7);
  d_done(u, 2);
  CHECK_INT(h_server_stop(s), 0);
}

/* ---- files ---- */

/* Sends `path` (`size` bytes of pattern `seed`) from `from` to `to`, expecting it stored as
 * `stored` in to's download_dir with org_file_name `org`; checks progress and content. */
static void send_named_ok(user *from, user *to, const char *path, const char *org,
                          const char *stored, uint64_t size, uint64_t seed) {
  char t[CRVM_ID_BUF_LEN], got[4096];
  CHECK_INT(crvm_send_file(from->c, to->id, path, t, sizeof t), 0);
  snprintf(got, sizeof got, "%s/%s", d_real(to->dir), stored);
  EXPECT_NEXT(to->r, F("notify_file_data %s %s %s", from->id, got, org));
  PROGRESS_THEN(from->r, t, (int64_t)size, F("send_file_rlst %s %s 0 ", t, path));
  d_check_pattern_file(got, size, seed);
}

static void send_file_ok(user *from, user *to, const char *path, const char *name,
                         uint64_t size, uint64_t seed) {
  send_named_ok(from, to, path, name, name, size, seed);
}

static void test_file(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char src[512];
  snprintf(src, sizeof src, "%s", h_temp_dir("src"));
  /* Several MiB, streamed, byte-identical, under its base name; nothing else is left in
   * download_dir (no part files). */
  d_write_pattern_file(d_path(src, "data.bin"), 5 * MiB + 3, 21);
  send_file_ok(a, b, d_path(src, "data.bin"), "data.bin", 5 * MiB + 3, 21);
  CHECK_STR(d_ls(b->dir), "data.bin");
  d_check_same_files(d_path(src, "data.bin"), d_path(b->dir, "data.bin"));
  /* The other way. */
  d_write_pattern_file(d_path(src, "back.bin"), 2 * MiB + 1, 22);
  send_file_ok(b, a, d_path(src, "back.bin"), "back.bin", 2 * MiB + 1, 22);
  CHECK_STR(d_ls(a->dir), "back.bin");
  /* Edge sizes, the empty file included. */
  const uint64_t sizes[] = {1, 65535, 65536, 65537, 262144, 262145, 1048576};
  char names[256] = "data.bin";
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "size-%07llu.bin", (unsigned long long)sizes[i]);
    d_write_pattern_file(d_path(src, name), sizes[i], 30 + i);
    send_file_ok(a, b, d_path(src, name), name, sizes[i], 30 + i);
    snprintf(names + strlen(names), sizeof names - strlen(names), "|%s", name);
  }
  CHECK_STR(d_ls(b->dir), names);
  /* A relative path: reported back as given, stored under its base name. */
  char cwd[4096], t[CRVM_ID_BUF_LEN];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  d_mkdir(d_path(src, "rel"));
  d_write_text(d_path(src, "rel/note.txt"), "relative");
  CHECK_INT(chdir(src), 0);
  CHECK_INT(crvm_send_file(a->c, "bob", "rel/note.txt", t, sizeof t), 0);
  CHECK_INT(chdir(cwd), 0);
  EXPECT_NEXT(b->r, F("notify_file_data alice %s/note.txt note.txt", d_real(b->dir)));
  PROGRESS_THEN(a->r, t, 8, F("send_file_rlst %s rel/note.txt 0 ", t));
  d_check_same_files(d_path(src, "rel/note.txt"), d_path(b->dir, "note.txt"));
  d_done(u, 2);
}

/* ---- names ---- */

typedef struct named {
  const char *path;   /* sent, relative to the source dir; written just before */
  const char *org;    /* expected org_file_name: the sanitised base name */
  const char *stored; /* expected name in download_dir */
} named;

static void test_names(void) {
  user u[2] = {d_login(srv, "alice"), d_login(srv, "bob")};
  user *a = &u[0], *b = &u[1];
  char src[512];
  snprintf(src, sizeof src, "%s", h_temp_dir("src"));
  static const char *const dirs[] = {"sub", "a", "b", "c"};
  for (size_t i = 0; i < 4; i++) d_mkdir(d_path(src, dirs[i]));
  /* A file of bob's own is never replaced. */
  d_write_text(d_path(b->dir, "keep.txt"), "bob's own");
  static const named files[] = {
      {"my file.txt", "my file.txt", "my file.txt"},
      {"Résumé ünïcödé 文件.txt", "Résumé ünïcödé 文件.txt",
       "Résumé ünïcödé 文件.txt"},
      {"sub/../évil name.bin", "évil name.bin", "évil name.bin"},
      {"a/../sub/../évil name.bin", "évil name.bin", "évil name (1).bin"},
      {"tab\there\nnewline\x01.txt", "tabherenewline.txt", "tabherenewline.txt"},
      {"\x01\x02", "file", "file"},
      {"back\\slash.txt", "slash.txt", "slash.txt"},
      {"a/my file.txt", "my file.txt", "my file (1).txt"},
      {"b/my file.txt", "my file.txt", "my file (2).txt"},
      {"README", "README", "README"},
      {"a/README", "README", "README (1)"},
      {".hidden", ".hidden", ".hidden"},
      {"a/.hidden", ".hidden", ".hidden (1)"},
      {"keep.txt", "keep.txt", "keep (1).txt"},
      {"c/..x..", "..x..", "..x.."},
  };
  const size_t n = sizeof files / sizeof files[0];
  /* One at a time, each with its own content (the same source file may be rewritten). */
  for (size_t i = 0; i < n; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src, files[i].path);
    d_write_pattern_file(path, 1000 + i, 100 + i);
    send_named_ok(a, b, path, files[i].org, files[i].stored, 1000 + i, 100 + i);
  }
  /* download_dir holds exactly the sanitised names, and bob's own file is untouched. */
  const char *want[32];
  for (size_t i = 0; i < n; i++) want[i] = files[i].stored;
  want[n] = "keep.txt";
  for (size_t i = 0; i <= n; i++) /* sorted like d_ls */
    for (size_t j = i + 1; j <= n; j++)
      if (strcmp(want[j], want[i]) < 0) {
        const char *x = want[i];
        want[i] = want[j];
        want[j] = x;
      }
  char expect[4096] = "";
  for (size_t i = 0; i <= n; i++)
    snprintf(expect + strlen(expect), sizeof expect - strlen(expect), "%s%s", i ? "|" : "",
             want[i]);
  CHECK_STR(d_ls(b->dir), expect);
  d_check_same_files(d_path(src, "my file.txt"), d_path(b->dir, "my file.txt"));
  d_check_same_files(d_path(src, "b/my file.txt"), d_path(b->dir, "my file (2).txt"));
  FILE *f = fopen(d_path(b->dir, "keep.txt"), "r");
  char line[64] = "";
  CHECK(f && fgets(line, sizeof line, f));
  fclose(f);
  CHECK_STR(line, "bob's own");
  d_done(u, 2);
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_refusals);
  RUN(test_targets);
  RUN(test_cmd);
  RUN(test_buffer);
  RUN(test_buffer_limits);
  RUN(test_file);
  RUN(test_names);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
