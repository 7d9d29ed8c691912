#include <stdio.h>

#include "crvm.h"

static int done, failed;

static void on_login(void *ud, const char *user, const char *cookie) {
  (void)ud;
  (void)cookie;
  printf("logged in as %s (libcrvm %s)\n", user, crvm_version());
  done = 1;
}

static void on_login_fail(void *ud, int32_t code, const char *cookie) {
  (void)ud;
  (void)cookie;
  printf("login failed: %d %s\n", code, crvm_err_str(code));
  done = failed = 1;
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:5210";
  crvm_callbacks cb = {0};
  cb.login_success = on_login;
  cb.login_fail = on_login_fail;
  crvm_client *c = NULL;
  if (crvm_create(addr, &cb, sizeof cb, NULL, &c) != 0) return 1;
  crvm_set_option(c, "dispatch", "manual"); /* callbacks run inside crvm_poll */
  if (crvm_login(c, "demo", "demo-secret", "Alice", "alice", "", "") != 0) failed = 1;
  while (!failed && !done) crvm_poll(c, 1000);
  crvm_destroy(c);
  return failed;
}
