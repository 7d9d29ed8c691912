/*
 * demo.c: two users of the demo tenant, alice and bob, walk through presence, meetings and a
 * call, during which alice's network changes (the session is resumed: the call carries on) and
 * she sends bob a message (cmd), a block of data (buffer) and a file.
 * Every callback is printed as a timestamped log line, e.g.
 *
 *   12:00:00.123 [bob]   notify_user_status {"userID":"alice","userStatus":1,"DNDType":1} presence
 *
 * Run against `crvm-server --dev` (or give HOST:PORT; a second HOST:PORT puts bob there, e.g. on
 * another node of a cluster: scripts/cluster-demo.sh). Exits non-zero as soon as an expected
 * event does not arrive. The walkthrough is the `steps` table at the bottom: add steps there.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crvm.h"

#define WAIT_SECONDS 15
#define MAX_EVENTS 256

/* ---- a participant: one client and the events it received ---- */

typedef struct user {
  const char *name;
  crvm_client *client;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *events[MAX_EVENTS]; /* received, in order; NULL once consumed by expect() */
  int count;
} user;

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_line(const char *who, const char *text) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  pthread_mutex_lock(&print_mu);
  printf("%02d:%02d:%02d.%03ld %-7s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
         ts.tv_nsec / 1000000L, who, text);
  fflush(stdout);
  pthread_mutex_unlock(&print_mu);
}

/* Called from the library's thread: log the event and keep it for expect(). */
static void event(void *ud, const char *fmt, ...) {
  user *u = ud;
  char text[4096], who[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  snprintf(who, sizeof who, "[%s]", u->name);
  log_line(who, text);
  pthread_mutex_lock(&u->mu);
  if (u->count < MAX_EVENTS) u->events[u->count++] = strdup(text);
  pthread_cond_broadcast(&u->cv);
  pthread_mutex_unlock(&u->mu);
}

/* Waits for the first not yet expected event that starts with `prefix`; copies it to `out`. */
static int expect(user *u, const char *prefix, char *out, size_t cap) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += WAIT_SECONDS;
  int found = 0, rc = 0;
  pthread_mutex_lock(&u->mu);
  while (!found && rc == 0) {
    for (int i = 0; i < u->count && !found; i++) {
      if (u->events[i] && strncmp(u->events[i], prefix, strlen(prefix)) == 0) {
        if (out) snprintf(out, cap, "%s", u->events[i]);
        free(u->events[i]);
        u->events[i] = NULL;
        found = 1;
      }
    }
    if (!found) rc = pthread_cond_timedwait(&u->cv, &u->mu, &deadline);
  }
  pthread_mutex_unlock(&u->mu);
  if (!found) fprintf(stderr, "[%s] expected \"%s...\" within %d s: it did not arrive\n", u->name,
                      prefix, WAIT_SECONDS);
  return found ? 0 : -1;
}

/* A request must be accepted (0); its result comes later as an event. */
static int sent(user *u, const char *what, int rc) {
  if (rc != 0) fprintf(stderr, "[%s] %s refused: %s (%d)\n", u->name, what, crvm_err_str(rc), rc);
  return rc;
}

/* ---- callbacks: one line each ---- */

static void login_success(void *ud, const char *id, const char *cookie) {
  event(ud, "login_success %s %s", id, cookie);
}
static void login_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "login_fail %d (%s) %s", err, crvm_err_str(err), cookie);
}
static void line_off(void *ud, int32_t err) { event(ud, "line_off %d (%s)", err, crvm_err_str(err)); }
static void line_reconnecting(void *ud, int32_t err) {
  event(ud, "line_reconnecting %d (%s)", err, crvm_err_str(err));
}
static void line_resumed(void *ud, int64_t offline_ms) {
  event(ud, "line_resumed after %lld ms", (long long)offline_ms);
}
static void set_dnd_status_success(void *ud, const char *cookie) {
  event(ud, "set_dnd_status_success %s", cookie);
}
static void set_dnd_status_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "set_dnd_status_fail %d %s", err, cookie);
}
static void get_user_status_success(void *ud, const char *json, const char *cookie) {
  event(ud, "get_user_status_success %s %s", json, cookie);
}
static void get_user_status_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "get_user_status_fail %d %s", err, cookie);
}
static void notify_user_status(void *ud, const char *json, const char *cookie) {
  event(ud, "notify_user_status %s %s", json, cookie);
}
static void start_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "start_user_status_notify_rslt %d %s", err, cookie);
}
static void stop_user_status_notify_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "stop_user_status_notify_rslt %d %s", err, cookie);
}
static void create_meeting_success(void *ud, const char *json, const char *cookie) {
  event(ud, "create_meeting_success %s %s", json, cookie);
}
static void create_meeting_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "create_meeting_fail %d %s", err, cookie);
}
static void destroy_meeting_rslt(void *ud, int32_t err, const char *cookie) {
  event(ud, "destroy_meeting_rslt %d %s", err, cookie);
}
static void get_meetings_success(void *ud, const char *json, const char *cookie) {
  event(ud, "get_meetings_success %s %s", json, cookie);
}
static void get_meetings_fail(void *ud, int32_t err, const char *cookie) {
  event(ud, "get_meetings_fail %d %s", err, cookie);
}
static void call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "call_success %s %s", call_id, cookie);
}
static void call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "call_fail %s %d (%s) %s", call_id, err, crvm_err_str(err), cookie);
}
static void accept_call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "accept_call_success %s %s", call_id, cookie);
}
static void accept_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "accept_call_fail %s %d %s", call_id, err, cookie);
}
static void hungup_call_success(void *ud, const char *call_id, const char *cookie) {
  event(ud, "hungup_call_success %s %s", call_id, cookie);
}
static void hungup_call_fail(void *ud, const char *call_id, int32_t err, const char *cookie) {
  event(ud, "hungup_call_fail %s %d %s", call_id, err, cookie);
}
static void notify_call_in(void *ud, const char *call_id, const char *meet_obj,
                           const char *caller_id, const char *usr_ext_dat) {
  event(ud, "notify_call_in %s from %s \"%s\" meeting %s", call_id, caller_id, usr_ext_dat,
        meet_obj);
}
static void notify_call_accepted(void *ud, const char *call_id, const char *usr_ext_dat,
                                 const char *meet_obj) {
  event(ud, "notify_call_accepted %s \"%s\" meeting %s", call_id, usr_ext_dat, meet_obj);
}
static void notify_call_rejected(void *ud, const char *call_id, int32_t reason,
                                 const char *usr_ext_dat) {
  event(ud, "notify_call_rejected %s %d (%s) \"%s\"", call_id, reason, crvm_err_str(reason),
        usr_ext_dat);
}
static void notify_call_hungup(void *ud, const char *call_id, const char *usr_ext_dat) {
  event(ud, "notify_call_hungup %s \"%s\"", call_id, usr_ext_dat);
}

/* ---- data: the API carries cmds and buffers as base64 ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; the caller frees. */
static char *b64_encode(const unsigned char *in, size_t n) {
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    unsigned long v = (unsigned long)in[i] << 16;
    if (i + 1 < n) v |= (unsigned long)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    *o++ = B64[v >> 18];
    *o++ = B64[(v >> 12) & 63];
    *o++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
    *o++ = i + 2 < n ? B64[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

/* Decodes `in` (as delivered by the library: valid, padded) into malloc'd *out; returns the
 * length, or -1. */
static long b64_decode(const char *in, unsigned char **out) {
  size_t len = strlen(in);
  unsigned char *buf = malloc(len / 4 * 3 + 1);
  long n = 0;
  if (!buf) return -1;
  for (size_t i = 0; i + 4 <= len; i += 4) {
    unsigned long v = 0;
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      const char *p = in[i + k] == '=' ? NULL : strchr(B64, in[i + k]);
      if (in[i + k] == '=') pad++;
      else if (!p || !in[i + k]) { free(buf); return -1; }
      v = v << 6 | (unsigned long)(p ? p - B64 : 0);
    }
    buf[n++] = (unsigned char)(v >> 16);
    if (pad < 2) buf[n++] = (unsigned char)(v >> 8);
    if (pad < 1) buf[n++] = (unsigned char)v;
  }
  buf[n] = 0;
  *out = buf;
  return n;
}

static void send_cmd_rlst(void *ud, const char *task, int32_t err, const char *cookie) {
  (void)cookie;
  event(ud, "send_cmd_rlst %s %d (%s)", task, err, crvm_err_str(err));
}
static void send_buffer_rlst(void *ud, const char *task, int32_t err, const char *cookie) {
  (void)cookie;
  event(ud, "send_buffer_rlst %s %d (%s)", task, err, crvm_err_str(err));
}
static void send_file_rlst(void *ud, const char *task, const char *file, int32_t err,
                           const char *cookie) {
  (void)cookie;
  event(ud, "send_file_rlst %s %s %d (%s)", task, file, err, crvm_err_str(err));
}
static void send_progress(void *ud, const char *task, int64_t sent, int64_t total,
                          const char *cookie) {
  (void)cookie;
  event(ud, "send_progress %s %lld/%lld bytes (%d%%)", task, (long long)sent, (long long)total,
        total ? (int)(sent * 100 / total) : 100);
}
static void cancel_send_rlst(void *ud, const char *task, int32_t err, const char *cookie) {
  (void)cookie;
  event(ud, "cancel_send_rlst %s %d (%s)", task, err, crvm_err_str(err));
}
/* What arrived is logged decoded: the cmd's text, the buffer's size. */
static void notify_cmd_data(void *ud, const char *source, const char *data_base64) {
  unsigned char *text;
  long n = b64_decode(data_base64, &text);
  if (n < 0) {
    event(ud, "notify_cmd_data from %s: (undecodable)", source);
    return;
  }
  event(ud, "notify_cmd_data from %s: \"%.*s\"", source, (int)(n > 1000 ? 1000 : n), text);
  free(text);
}
static void notify_buffer_data(void *ud, const char *source, const char *data_base64) {
  unsigned char *data;
  long n = b64_decode(data_base64, &data);
  if (n < 0) {
    event(ud, "notify_buffer_data from %s: (undecodable)", source);
    return;
  }
  long bad = 0; /* the demo's buffer holds i % 251 at offset i */
  for (long i = 0; i < n; i++) bad += data[i] != (unsigned char)(i % 251);
  event(ud, "notify_buffer_data from %s: %ld bytes, %s", source, n, bad ? "CORRUPT" : "intact");
  free(data);
}
static void notify_file_data(void *ud, const char *source, const char *tmp_file,
                             const char *org_file_name) {
  event(ud, "notify_file_data from %s: %s (sent as \"%s\")", source, tmp_file, org_file_name);
}
static void notify_cancel_send(void *ud, const char *task) {
  event(ud, "notify_cancel_send %s", task);
}

/* ---- the walkthrough ---- */

typedef struct demo {
  const char *addr;
  user alice, bob;
  int meeting_id;
  char meeting[4096];             /* alice's meeting object, as created */
  char call_id[CRVM_ID_BUF_LEN];  /* alice's call to bob */
  char tmp[4096];                 /* temp dir: alice's file to send, bob's download_dir */
  char received[4096];            /* the file bob received */
} demo;

static int step_login(demo *d) {
  user *both[] = {&d->alice, &d->bob};
  for (int i = 0; i < 2; i++)
    if (sent(both[i], "login", crvm_login(both[i]->client, "demo", "demo-secret", both[i]->name,
                                          both[i]->name, NULL, "hello")))
      return -1;
  return expect(&d->alice, "login_success alice", NULL, 0) ||
         expect(&d->bob, "login_success bob", NULL, 0);
}

static int step_subscribe(demo *d) {
  if (sent(&d->bob, "start_user_status_notify",
           crvm_start_user_status_notify(d->bob.client, "presence")))
    return -1;
  return expect(&d->bob, "start_user_status_notify_rslt 0", NULL, 0);
}

static int step_dnd(demo *d) {
  if (sent(&d->alice, "set_dnd_status", crvm_set_dnd_status(d->alice.client, 1, "dnd-on")))
    return -1;
  return expect(&d->alice, "set_dnd_status_success", NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":1,\"DNDType\":1}",
                NULL, 0);
}

static int step_status(demo *d) {
  if (sent(&d->bob, "get_user_status", crvm_get_user_status(d->bob.client, "who")))
    return -1;
  return expect(&d->bob, "get_user_status_success", NULL, 0);
}

static int step_create_meeting(demo *d) {
  char ev[4096];
  if (sent(&d->alice, "create_meeting",
           crvm_create_meeting(d->alice.client, "crvm demo", 1, "new-meeting")))
    return -1;
  if (expect(&d->alice, "create_meeting_success", ev, sizeof ev)) return -1;
  /* "create_meeting_success {...} new-meeting": keep the object for the call below. */
  const char *obj = ev + strlen("create_meeting_success ");
  size_t len = strlen(obj) - strlen(" new-meeting");
  snprintf(d->meeting, sizeof d->meeting, "%.*s", (int)len, obj);
  const char *id = strstr(ev, "\"ID\":");
  return id && sscanf(id + 5, "%d", &d->meeting_id) == 1 ? 0 : -1;
}

static int step_list_meetings(demo *d) {
  char ev[8192], id[32];
  if (sent(&d->bob, "get_meetings", crvm_get_meetings(d->bob.client, "list")))
    return -1;
  if (expect(&d->bob, "get_meetings_success", ev, sizeof ev)) return -1;
  snprintf(id, sizeof id, "\"ID\":%d,", d->meeting_id);
  if (!strstr(ev, id)) fprintf(stderr, "[bob] alice's meeting is not in the list\n");
  return strstr(ev, id) ? 0 : -1;
}

static int step_call(demo *d) {
  /* The call ID comes back at once; call_success follows once bob's phone rings. Both now
   * show userStatus 2 ("in a call") to presence subscribers such as bob. */
  char want[128];
  if (sent(&d->alice, "call",
           crvm_call(d->alice.client, "bob", d->meeting, "Join my meeting?", "ring",
                     d->call_id, sizeof d->call_id)))
    return -1;
  snprintf(want, sizeof want, "notify_call_in %s from alice", d->call_id);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "call_success %s", d->call_id);
  return expect(&d->alice, want, NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":2", NULL, 0);
}

static int step_accept(demo *d) {
  /* An empty meet_obj: alice gets her own meeting back in notify_call_accepted. */
  char want[128];
  if (sent(&d->bob, "accept_call",
           crvm_accept_call(d->bob.client, d->call_id, "", "On my way", "answer")))
    return -1;
  snprintf(want, sizeof want, "accept_call_success %s", d->call_id);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "notify_call_accepted %s", d->call_id);
  return expect(&d->alice, want, NULL, 0);
}

static int step_network_change(demo *d) {
  /* Wi-Fi to mobile: the app tells the library, which drops the link and resumes the session
   * on a new one at once. Nothing is lost: the call is still connected, for both. */
  if (sent(&d->alice, "network_changed", crvm_network_changed(d->alice.client))) return -1;
  if (expect(&d->alice, "line_reconnecting 207", NULL, 0)) return -1;
  return expect(&d->alice, "line_resumed after ", NULL, 0);
}

static int step_send_cmd(demo *d) {
  /* A small message (at most 50 KiB), base64 on the API. The result comes once bob's library
   * has it. */
  const char *text = "Shall we go through the slides?";
  char task[CRVM_ID_BUF_LEN], want[256];
  char *b64 = b64_encode((const unsigned char *)text, strlen(text));
  int rc = crvm_send_cmd(d->alice.client, "bob", b64, task, sizeof task);
  free(b64);
  if (sent(&d->alice, "send_cmd", rc)) return -1;
  snprintf(want, sizeof want, "notify_cmd_data from alice: \"%s\"", text);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "send_cmd_rlst %s 0", task);
  return expect(&d->alice, want, NULL, 0);
}

static int step_send_buffer(demo *d) {
  /* A block of data (up to max_buffer_bytes, 100 MiB by default), sent in chunks: alice sees
   * progress as bob stores it, bob gets it whole. */
  enum { SIZE = 3 * 1024 * 1024 / 2 };
  unsigned char *data = malloc(SIZE);
  if (!data) return -1;
  for (long i = 0; i < SIZE; i++) data[i] = (unsigned char)(i % 251);
  char *b64 = b64_encode(data, SIZE);
  free(data);
  char task[CRVM_ID_BUF_LEN], want[256];
  int rc = b64 ? crvm_send_buffer(d->alice.client, "bob", b64, task, sizeof task) : 2;
  free(b64);
  if (sent(&d->alice, "send_buffer", rc)) return -1;
  snprintf(want, sizeof want, "notify_buffer_data from alice: %d bytes, intact", SIZE);
  if (expect(&d->bob, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "send_progress %s %d/%d", task, SIZE, SIZE);
  if (expect(&d->alice, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "send_buffer_rlst %s 0", task);
  return expect(&d->alice, want, NULL, 0);
}

static int step_send_file(demo *d) {
  /* A file, streamed from disk; bob's library stores it in his download_dir under alice's
   * base name and tells him once it is complete and its checksum matched. */
  char path[4200], task[CRVM_ID_BUF_LEN], want[4400], ev[4096];
  snprintf(path, sizeof path, "%s/slides.txt", d->tmp);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "1. Welcome\n2. Roadmap\n3. Questions\n");
  fclose(f);
  if (sent(&d->alice, "send_file",
           crvm_send_file(d->alice.client, "bob", path, task, sizeof task)))
    return -1;
  if (expect(&d->bob, "notify_file_data from alice: ", ev, sizeof ev)) return -1;
  snprintf(want, sizeof want, "send_file_rlst %s %s 0", task, path);
  if (expect(&d->alice, want, NULL, 0)) return -1;
  /* "notify_file_data from alice: PATH (sent as "NAME")": bob now owns PATH. */
  const char *p = ev + strlen("notify_file_data from alice: ");
  const char *end = strstr(p, " (sent as \"");
  if (!end) return -1;
  snprintf(d->received, sizeof d->received, "%.*s", (int)(end - p), p);
  char line[256] = "";
  f = fopen(d->received, "r");
  if (!f || !fgets(line, sizeof line, f)) {
    fprintf(stderr, "[bob] cannot read %s\n", d->received);
    if (f) fclose(f);
    return -1;
  }
  fclose(f);
  line[strcspn(line, "\n")] = '\0';
  snprintf(want, sizeof want, "bob opens %s: \"%s...\"", d->received, line);
  log_line("[bob]", want);
  return strcmp(line, "1. Welcome") == 0 ? 0 : -1;
}

static int step_hangup(demo *d) {
  char want[128];
  if (sent(&d->alice, "hungup_call",
           crvm_hungup_call(d->alice.client, d->call_id, "Thanks, bye", "hang-up")))
    return -1;
  snprintf(want, sizeof want, "hungup_call_success %s", d->call_id);
  if (expect(&d->alice, want, NULL, 0)) return -1;
  snprintf(want, sizeof want, "notify_call_hungup %s", d->call_id);
  return expect(&d->bob, want, NULL, 0) ||
         expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":1", NULL, 0);
}

static int step_destroy_meeting(demo *d) {
  if (sent(&d->alice, "destroy_meeting",
           crvm_destroy_meeting(d->alice.client, d->meeting_id, "bye-meeting")))
    return -1;
  return expect(&d->alice, "destroy_meeting_rslt 0", NULL, 0);
}

static int step_logout(demo *d) {
  /* Bob sees alice go offline, then leaves too. */
  if (sent(&d->alice, "logout", crvm_logout(d->alice.client))) return -1;
  if (expect(&d->bob, "notify_user_status {\"userID\":\"alice\",\"userStatus\":0", NULL, 0))
    return -1;
  if (sent(&d->bob, "stop_user_status_notify",
           crvm_stop_user_status_notify(d->bob.client, "presence")) ||
      expect(&d->bob, "stop_user_status_notify_rslt 0", NULL, 0))
    return -1;
  return sent(&d->bob, "logout", crvm_logout(d->bob.client));
}

static const struct step {
  const char *title;
  int (*run)(demo *d);
} steps[] = {
    {"alice and bob log in", step_login},
    {"bob subscribes to presence", step_subscribe},
    {"alice turns do-not-disturb on", step_dnd},
    {"bob asks who is online", step_status},
    {"alice creates a meeting with a password", step_create_meeting},
    {"bob lists the meetings", step_list_meetings},
    {"alice calls bob with her meeting", step_call},
    {"bob accepts the call", step_accept},
    {"alice's network changes; the call carries on", step_network_change},
    {"alice sends bob a message", step_send_cmd},
    {"alice sends bob a block of data", step_send_buffer},
    {"alice sends bob a file", step_send_file},
    {"alice hangs up", step_hangup},
    {"alice destroys her meeting", step_destroy_meeting},
    {"alice and bob log out", step_logout},
};

static int open_user(user *u, const char *name, const char *addr) {
  static const crvm_callbacks cb = {
      .login_success = login_success,
      .login_fail = login_fail,
      .line_off = line_off,
      .line_reconnecting = line_reconnecting,
      .line_resumed = line_resumed,
      .set_dnd_status_success = set_dnd_status_success,
      .set_dnd_status_fail = set_dnd_status_fail,
      .get_user_status_success = get_user_status_success,
      .get_user_status_fail = get_user_status_fail,
      .notify_user_status = notify_user_status,
      .start_user_status_notify_rslt = start_user_status_notify_rslt,
      .stop_user_status_notify_rslt = stop_user_status_notify_rslt,
      .create_meeting_success = create_meeting_success,
      .create_meeting_fail = create_meeting_fail,
      .destroy_meeting_rslt = destroy_meeting_rslt,
      .get_meetings_success = get_meetings_success,
      .get_meetings_fail = get_meetings_fail,
      .call_success = call_success,
      .call_fail = call_fail,
      .accept_call_success = accept_call_success,
      .accept_call_fail = accept_call_fail,
      .hungup_call_success = hungup_call_success,
      .hungup_call_fail = hungup_call_fail,
      .notify_call_in = notify_call_in,
      .notify_call_accepted = notify_call_accepted,
      .notify_call_rejected = notify_call_rejected,
      .notify_call_hungup = notify_call_hungup,
      .send_cmd_rlst = send_cmd_rlst,
      .send_buffer_rlst = send_buffer_rlst,
      .send_file_rlst = send_file_rlst,
      .send_progress = send_progress,
      .cancel_send_rlst = cancel_send_rlst,
      .notify_cmd_data = notify_cmd_data,
      .notify_buffer_data = notify_buffer_data,
      .notify_file_data = notify_file_data,
      .notify_cancel_send = notify_cancel_send,
  };
  u->name = name;
  pthread_mutex_init(&u->mu, NULL);
  pthread_cond_init(&u->cv, NULL);
  int rc = crvm_create(addr, &cb, sizeof cb, u, &u->client);
  if (rc) fprintf(stderr, "crvm_create(%s): %s\n", addr, crvm_err_str(rc));
  return rc;
}

/* A temp dir for the file step: alice's file, and bob's downloads in "bob". */
static int make_tmp(demo *d) {
  const char *base = getenv("TMPDIR");
  char bob[4200];
  snprintf(d->tmp, sizeof d->tmp, "%s/crvm-demo-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(d->tmp)) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(bob, sizeof bob, "%s/bob", d->tmp);
  if (mkdir(bob, 0700) != 0) {
    perror(bob);
    return -1;
  }
  /* Options are set before login. */
  return sent(&d->bob, "set_option download_dir",
              crvm_set_option(d->bob.client, "download_dir", bob));
}

/* Removes the temp dir and what the demo put in it. */
static void remove_tmp(demo *d) {
  char path[4400];
  snprintf(path, sizeof path, "%s/bob", d->tmp);
  DIR *dir = opendir(path);
  struct dirent *e;
  while (dir && (e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/bob/%s", d->tmp, e->d_name);
    remove(path);
  }
  if (dir) closedir(dir);
  snprintf(path, sizeof path, "%s/bob", d->tmp);
  rmdir(path);
  snprintf(path, sizeof path, "%s/slides.txt", d->tmp);
  remove(path);
  rmdir(d->tmp);
}

int main(int argc, char **argv) {
  static demo d; /* zeroed */
  /* A second address puts bob on another node of a cluster (scripts/cluster-demo.sh). */
  d.addr = argc > 1 ? argv[1] : "127.0.0.1:5210";
  const char *bob_addr = argc > 2 ? argv[2] : d.addr;
  if (open_user(&d.alice, "alice", d.addr) || open_user(&d.bob, "bob", bob_addr)) return 1;
  if (make_tmp(&d)) return 1;
  char line[256];
  if (bob_addr == d.addr)
    snprintf(line, sizeof line, "libcrvm %s, server %s", crvm_version(), d.addr);
  else
    snprintf(line, sizeof line, "libcrvm %s, alice on %s, bob on %s", crvm_version(), d.addr,
             bob_addr);
  log_line("[demo]", line);

  int failed = 0;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0] && !failed; i++) {
    snprintf(line, sizeof line, "--- step %zu: %s", i + 1, steps[i].title);
    log_line("[demo]", line);
    failed = steps[i].run(&d) != 0;
  }
  crvm_destroy(d.alice.client);
  crvm_destroy(d.bob.client);
  remove_tmp(&d);
  log_line("[demo]", failed ? "FAILED" : "all steps done");
  return failed ? 1 : 0;
}
