/*
 * quickstart.c: the smallest complete crvm app. Copy it and change what you need.
 *
 *   crvm-server --dev &          # tenant "demo", secret "demo-secret", on 127.0.0.1:5210
 *   ./quickstart [HOST:PORT]
 *
 * Every crvm_* call returns at once; 0 means "sent, one result callback will follow".
 * Callbacks run on the library's own thread, so this example waits for each result with a
 * tiny mailbox: the callback stores the outcome and signals a condition variable.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crvm.h"

/* ---- a one-slot mailbox filled by callbacks ---- */

typedef struct mailbox {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;        /* a result arrived */
  int err;         /* its error code, 0 = success */
  char text[8192]; /* its payload: a user ID or some JSON */
} mailbox;

static void post(void *ud, int err, const char *text) {
  mailbox *m = ud;
  pthread_mutex_lock(&m->mu);
  m->done = 1;
  m->err = err;
  snprintf(m->text, sizeof m->text, "%s", text ? text : "");
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

/* Call before each request: forget the previous result. */
static void arm(mailbox *m) {
  pthread_mutex_lock(&m->mu);
  m->done = 0;
  pthread_mutex_unlock(&m->mu);
}

/* Returns the request's outcome: its synchronous refusal, its result, or a timeout (-1). */
static int finish(mailbox *m, int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "%s refused: %s (%d)\n", what, crvm_err_str(rc), rc);
    return rc;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 15;
  pthread_mutex_lock(&m->mu);
  while (!m->done && rc == 0) rc = pthread_cond_timedwait(&m->cv, &m->mu, &deadline);
  int err = m->done ? m->err : -1;
  pthread_mutex_unlock(&m->mu);
  if (err != 0)
    fprintf(stderr, "%s failed: %s (%d)\n", what, err < 0 ? "no answer" : crvm_err_str(err), err);
  return err;
}

/* ---- callbacks: each one just posts its outcome ---- */

static void on_login_success(void *ud, const char *user_id, const char *cookie) {
  (void)cookie;
  post(ud, 0, user_id);
}
static void on_login_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  post(ud, err, NULL);
}
static void on_line_off(void *ud, int32_t err) {
  (void)ud;
  fprintf(stderr, "disconnected: %s (%d)\n", crvm_err_str(err), err);
}
static void on_json(void *ud, const char *json, const char *cookie) {
  (void)cookie;
  post(ud, 0, json);
}
static void on_fail(void *ud, int32_t err, const char *cookie) {
  (void)cookie;
  post(ud, err, NULL);
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:5210";
  mailbox box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};

  /* Unused members stay NULL. Pass sizeof so newer libraries know what you compiled with. */
  crvm_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.login_success = on_login_success;
  cb.login_fail = on_login_fail;
  cb.line_off = on_line_off;
  cb.get_user_status_success = on_json;
  cb.get_user_status_fail = on_fail;
  cb.create_meeting_success = on_json;
  cb.create_meeting_fail = on_fail;
  cb.get_meetings_success = on_json;
  cb.get_meetings_fail = on_fail;
  cb.destroy_meeting_rslt = on_fail; /* err 0 = destroyed */

  crvm_client *client = NULL;
  int rc = crvm_create(addr, &cb, sizeof cb, &box, &client);
  if (rc != 0) {
    fprintf(stderr, "crvm_create(%s): %s\n", addr, crvm_err_str(rc));
    return 1;
  }
  printf("libcrvm %s, server %s\n", crvm_version(), addr);
  int failed = 1;

  /* 1. Log in: app ID and secret of the tenant, then our user ID. */
  arm(&box);
  rc = crvm_login(client, "demo", "demo-secret", "Alice", "alice", NULL, NULL);
  if (finish(&box, rc, "login")) goto out;
  printf("logged in as %s\n", box.text);

  /* 2. Who is online? */
  arm(&box);
  rc = crvm_get_user_status(client, NULL);
  if (finish(&box, rc, "get_user_status")) goto out;
  printf("online: %s\n", box.text);

  /* 3. Create a meeting with a generated password, then list the tenant's meetings. */
  arm(&box);
  rc = crvm_create_meeting(client, "quickstart", 1, NULL);
  if (finish(&box, rc, "create_meeting")) goto out;
  printf("created: %s\n", box.text);
  int meet_id = 0;
  const char *id = strstr(box.text, "\"ID\":");
  if (id) sscanf(id + 5, "%d", &meet_id);

  arm(&box);
  rc = crvm_get_meetings(client, NULL);
  if (finish(&box, rc, "get_meetings")) goto out;
  printf("meetings: %s\n", box.text);

  /* 4. Tidy up: destroy our meeting (only its creator may). */
  arm(&box);
  rc = crvm_destroy_meeting(client, meet_id, NULL);
  if (finish(&box, rc, "destroy_meeting")) goto out;
  printf("destroyed meeting %d\n", meet_id);
  failed = 0;

out:
  crvm_logout(client);  /* no callback follows a logout */
  crvm_destroy(client); /* waits for the library's threads; no callback runs after it */
  printf("%s\n", failed ? "quickstart FAILED" : "quickstart done");
  return failed;
}
