/* docs/API.md §3.1 per-user tokens (minted with `crvm-server token`): 14 no token, 18 expired,
 * 21 bad signature, valid tokens, and tenants that accept either a secret or a token. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

static h_server *srv;

/* Logs in with (secret, token) and returns the single result event. */
static const char *try_login(const char *app, const char *secret, const char *user,
                             const char *token, const char *cookie) {
  h_rec *r = h_rec_new(user);
  crvm_client *c = h_client(srv->addr, r);
  CHECK_INT(crvm_login(c, app, secret, "", user, token, cookie), 0);
  const char *ev = WAIT(r, "login_");
  crvm_destroy(c);
  return ev;
}

static void test_token_required(void) {
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", "", "c"), "login_fail 14 c");
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", NULL, "c"), "login_fail 14 c");
  /* The tenant secret alone is not enough for a token-only tenant. */
  CHECK_STR(try_login(H_TOKEN_APP, H_TOKEN_SECRET, "alice", "", "c"), "login_fail 14 c");
}

static void test_valid_token(void) {
  char tok[512];
  h_server_token(srv, H_TOKEN_APP, "alice", "3600", tok, sizeof tok);
  CHECK(strchr(tok, '.') != NULL);
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", tok, "ok"), "login_success alice ok");
}

static void test_bad_signature(void) {
  char tok[512];
  h_server_token(srv, H_TOKEN_APP, "alice", "3600", tok, sizeof tok);
  /* Change the first signature character (the last one may only carry padding bits). */
  char *sig = strchr(tok, '.') + 1;
  *sig = *sig == 'A' ? 'B' : 'A';
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", tok, "sig"), "login_fail 21 sig");
  /* A valid token of another user, or of another tenant. */
  h_server_token(srv, H_TOKEN_APP, "bob", "3600", tok, sizeof tok);
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", tok, "user"), "login_fail 21 user");
  h_server_token(srv, H_EITHER_APP, "alice", "3600", tok, sizeof tok);
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", tok, "app"), "login_fail 21 app");
}

static void test_expired_token(void) {
  /* A negative ttl mints a token whose expiry is already in the past. */
  char tok[512];
  h_server_token(srv, H_TOKEN_APP, "alice", "-60", tok, sizeof tok);
  CHECK(strtoll(tok, NULL, 10) > 0);
  CHECK_STR(try_login(H_TOKEN_APP, "", "alice", tok, "old"), "login_fail 18 old");
}

static void test_either_tenant(void) {
  char tok[512];
  h_server_token(srv, H_EITHER_APP, "erin", "3600", tok, sizeof tok);
  CHECK_STR(try_login(H_EITHER_APP, H_EITHER_SECRET, "erin", "", "s"), "login_success erin s");
  CHECK_STR(try_login(H_EITHER_APP, "", "erin", tok, "t"), "login_success erin t");
  CHECK_STR(try_login(H_EITHER_APP, "wrong", "erin", "", "w"), "login_fail 7 w");
}

int main(void) {
  srv = h_server_start(NULL);
  RUN(test_token_required);
  RUN(test_valid_token);
  RUN(test_bad_signature);
  RUN(test_expired_token);
  RUN(test_either_tenant);
  CHECK_INT(h_server_stop(srv), 0);
  return 0;
}
