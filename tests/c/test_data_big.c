/* docs/API.md §3.5 "any size": a 1 GiB file (a counter pattern, so a lost, repeated or misordered
 * chunk shows) arrives byte-identical — compared by reading both files in chunks — with
 * progress at least every MiB ending at the total. Memory stays bounded meanwhile: neither
 * the server nor this process (both libraries) comes anywhere near holding the file (peak
 * RSS well under 1 GiB). Prints how long generation, transfer and comparison took.
 *
 * Both copies live in h_temp_dir()s, which are removed when the test exits, even if it
 * fails; every wait is bounded below the ctest TIMEOUT so a failure still cleans up. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "data_util.h"

#define SIZE (1 * GiB)
#define TRANSFER_TIMEOUT_MS (480 * 1000)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_one_gib_file(void) {
  h_server *s = h_server_start(NULL);
  user u[2] = {d_login(s, "alice"), d_login(s, "bob")};
  user *a = &u[0], *b = &u[1];
  char path[1024], got[4096], t[CRVM_ID_BUF_LEN];
  snprintf(path, sizeof path, "%s/one-gib.bin", h_temp_dir("big"));

  double t0 = now_s();
  d_write_pattern_file(path, SIZE, 0x5eed);
  double t1 = now_s();
  CHECK_INT(crvm_send_file(a->c, "bob", path, t, sizeof t), 0);
  snprintf(got, sizeof got, "%s/one-gib.bin", d_real(b->dir));
  const char *ev = h_wait(__FILE__, __LINE__, b->r, "notify_file_data ", TRANSFER_TIMEOUT_MS);
  CHECK_STR(ev, F("notify_file_data alice %s one-gib.bin", got));
  double t2 = now_s();
  int n = PROGRESS_THEN(a->r, t, SIZE, F("send_file_rlst %s %s 0 ", t, path));
  CHECK(n >= SIZE / MiB);
  CHECK_STR(d_ls(b->dir), "one-gib.bin");
  d_check_same_files(path, got);
  double t3 = now_s();
  d_check_pattern_file(got, SIZE, 0x5eed);

  long long server_kib = d_proc_kib(s->pid, "VmHWM"), self_kib = d_proc_kib(0, "VmHWM");
  fprintf(stderr,
          "  1 GiB: generated in %.1f s, transferred in %.1f s (%.0f MiB/s, %d progress events), "
          "compared in %.1f s; peak RSS: server %lld MiB, this process %lld MiB\n",
          t1 - t0, t2 - t1, 1024.0 / (t2 - t1), n, t3 - t2, server_kib / 1024, self_kib / 1024);
#ifdef __SANITIZE_ADDRESS__
  self_kib = 0; /* ASan's quarantine and shadow memory inflate this process's RSS */
#endif
  if (server_kib > 256 * 1024 || self_kib > 256 * 1024)
    h_fail(__FILE__, __LINE__, "memory not bounded: peak RSS server %lld KiB, test %lld KiB",
           server_kib, self_kib);
  /* The received file is the app's: removing it is up to us (the temp dir goes anyway). */
  CHECK_INT(remove(got), 0);
  CHECK_INT(remove(path), 0);
  d_done(u, 2);
  CHECK_INT(h_server_stop(s), 0);
}

int main(void) {
  RUN(test_one_gib_file);
  return 0;
}
