/* The C surface without a server: header constants and layout, crvm_err_str, crvm_version,
 * crvm_create / crvm_set_option validation, bad handles, and "not logged in" (12). */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>

#include "harness.h"

/* Every docs/API.md §6 code: name, value, a word of its English meaning. */
static const struct {
  const char *name;
  int value, header_value;
} k_codes[] = {
#define CODE(name, value) {#name, value, name}
    CODE(CRVIDEOSDK_NOERR, 0),
    CODE(CRVIDEOSDK_UNKNOWERR, 1),
    CODE(CRVIDEOSDK_OUTOF_MEM, 2),
    CODE(CRVIDEOSDK_INNER_ERR, 3),
    CODE(CRVIDEOSDK_MISMATCHCLIENTVER, 4),
    CODE(CRVIDEOSDK_MEETPARAM_ERR, 5),
    CODE(CRVIDEOSDK_ERR_DATA, 6),
    CODE(CRVIDEOSDK_ANCTPSWD_ERR, 7),
    CODE(CRVIDEOSDK_SERVER_EXCEPTION, 8),
    CODE(CRVIDEOSDK_LOGINSTATE_ERROR, 9),
    CODE(CRVIDEOSDK_USER_BEEN_KICKOUT, 10),
    CODE(CRVIDEOSDK_NOT_INIT, 11),
    CODE(CRVIDEOSDK_NOT_LOGIN, 12),
    CODE(CRVIDEOSDK_BASE64_COV_ERR, 13),
    CODE(CRVIDEOSDK_CUSTOMAUTH_NOINFO, 14),
    CODE(CRVIDEOSDK_CUSTOMAUTH_NOTSUPPORT, 15),
    CODE(CRVIDEOSDK_CUSTOMAUTH_EXCEPTION, 16),
    CODE(CRVIDEOSDK_CUSTOMAUTH_FAILED, 17),
    CODE(CRVIDEOSDK_TOKEN_TIMEOUT, 18),
    CODE(CRVIDEOSDK_TOKEN_AUTHINFOERR, 19),
    CODE(CRVIDEOSDK_TOKEN_APPIDNOTEXIST, 20),
    CODE(CRVIDEOSDK_TOKEN_AUTH_FAILED, 21),
    CODE(CRVIDEOSDK_TOKEN_NOTTOKENTYPE, 22),
    CODE(CRVIDEOSDK_NETWORK_INITFAILED, 200),
    CODE(CRVIDEOSDK_NO_SERVERINFO, 201),
    CODE(CRVIDEOSDK_NOSERVER_RSP, 202),
    CODE(CRVIDEOSDK_CREATE_CONN_FAILED, 203),
    CODE(CRVIDEOSDK_SOCKETEXCEPTION, 204),
    CODE(CRVIDEOSDK_SOCKETTIMEOUT, 205),
    CODE(CRVIDEOSDK_FORCEDCLOSECONNECTION, 206),
    CODE(CRVIDEOSDK_CONNECTIONLOST, 207),
    CODE(CRVIDEOSDK_SSL_ERR, 209),
    CODE(CRVIDEOSDK_INVALID_CALLID, 600),
    CODE(CRVIDEOSDK_ERR_CALL_EXIST, 601),
    CODE(CRVIDEOSDK_ERR_BUSY, 602),
    CODE(CRVIDEOSDK_ERR_OFFLINE, 603),
    CODE(CRVIDEOSDK_ERR_NOANSWER, 604),
    CODE(CRVIDEOSDK_ERR_USER_NOT_FOUND, 605),
    CODE(CRVIDEOSDK_ERR_REFUSE, 606),
    CODE(CRVIDEOSDK_MEETNOTEXIST, 800),
    CODE(CRVIDEOSDK_SENDFAIL, 1000),
    CODE(CRVIDEOSDK_SENDCMD_LARGE, 1100),
    CODE(CRVIDEOSDK_SENDBUFFER_LARGE, 1101),
    CODE(CRVIDEOSDK_SENDDATA_TARGETINVALID, 1102),
    CODE(CRVIDEOSDK_SENDFILE_FILEINERROR, 1103),
    CODE(CRVIDEOSDK_TRANSID_INVALID, 1104),
    CODE(CRVIDEOSDK_FILE_NOT_EXIST, 1400),
    CODE(CRVIDEOSDK_FILE_READ_ERR, 1401),
    CODE(CRVIDEOSDK_FILE_WRITE_ERR, 1402),
    CODE(CRVIDEOSDK_FILE_ALREADY_EXIST, 1403),
    CODE(CRVIDEOSDK_FILE_OPERATOR_ERR, 1404),
#undef CODE
};

static void test_error_constants(void) {
  for (size_t i = 0; i < sizeof k_codes / sizeof k_codes[0]; i++)
    if (k_codes[i].value != k_codes[i].header_value)
      h_fail(__FILE__, __LINE__, "%s = %d, expected %d", k_codes[i].name,
             k_codes[i].header_value, k_codes[i].value);
  CHECK_INT(CRVM_ID_BUF_LEN, 64);
}

/* The 36 documented members and the 2 extensions exist, in the pinned order, and nothing else
 * is in the struct. */
static void test_callbacks_layout(void) {
  typedef void (*fn)(void);
  CHECK_INT(sizeof(crvm_callbacks), 38 * sizeof(fn));
  size_t i = 0;
#define AT(member) CHECK_INT(offsetof(crvm_callbacks, member), (i++) * sizeof(fn))
  AT(login_success);
  AT(login_fail);
  AT(line_off);
  AT(set_dnd_status_success);
  AT(set_dnd_status_fail);
  AT(get_user_status_success);
  AT(get_user_status_fail);
  AT(notify_user_status);
  AT(start_user_status_notify_rslt);
  AT(stop_user_status_notify_rslt);
  AT(create_meeting_success);
  AT(create_meeting_fail);
  AT(destroy_meeting_rslt);
  AT(get_meetings_success);
  AT(get_meetings_fail);
  AT(call_success);
  AT(call_fail);
  AT(accept_call_success);
  AT(accept_call_fail);
  AT(reject_call_success);
  AT(reject_call_fail);
  AT(hungup_call_success);
  AT(hungup_call_fail);
  AT(notify_call_in);
  AT(notify_call_accepted);
  AT(notify_call_rejected);
  AT(notify_call_hungup);
  AT(send_cmd_rlst);
  AT(send_buffer_rlst);
  AT(send_file_rlst);
  AT(send_progress);
  AT(cancel_send_rlst);
  AT(notify_cmd_data);
  AT(notify_buffer_data);
  AT(notify_file_data);
  AT(notify_cancel_send);
  AT(line_reconnecting);
  AT(line_resumed);
#undef AT
  CHECK_INT(i, 38);
}

static int contains_ci(const char *hay, const char *needle) {
  for (; *hay; hay++) {
    size_t k = 0;
    while (needle[k] && tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k])) k++;
    if (!needle[k]) return 1;
  }
  return 0;
}

static void test_err_str(void) {
  for (size_t i = 0; i < sizeof k_codes / sizeof k_codes[0]; i++) {
    const char *s = crvm_err_str(k_codes[i].value);
    if (!s || !*s) h_fail(__FILE__, __LINE__, "crvm_err_str(%d) is empty", k_codes[i].value);
  }
  /* The English meanings of docs/API.md §6. */
  static const struct {
    int code;
    const char *text;
  } k_texts[] = {
      {0, "no error"},
      {5, "invalid parameter"},
      {7, "wrong account or password"},
      {10, "kicked"},
      {12, "not logged in"},
      {203, "could not connect"},
      {207, "connection lost"},
      {800, "meeting does not exist"},
  };
  for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
    const char *s = crvm_err_str(k_texts[i].code);
    if (!contains_ci(s, k_texts[i].text))
      h_fail(__FILE__, __LINE__, "crvm_err_str(%d) = \"%s\", expected it to say \"%s\"",
             k_texts[i].code, s, k_texts[i].text);
  }
  CHECK(crvm_err_str(-1) != NULL);
  CHECK(crvm_err_str(123456) != NULL);
  CHECK(crvm_err_str(9999) != NULL);
}

static void test_version(void) {
  const char *v = crvm_version();
  CHECK(v != NULL);
#ifdef CRVM_EXPECTED_VERSION
  CHECK_STR(v, CRVM_EXPECTED_VERSION);
#endif
  CHECK(crvm_version() == v); /* static */
}

static void test_create_validation(void) {
  h_rec *r = h_rec_new("create");
  const crvm_callbacks *cb = h_callbacks();
  crvm_client *c = (crvm_client *)1;
  CHECK_INT(crvm_create(NULL, cb, sizeof *cb, r, &c), 5);
  CHECK_INT(crvm_create("127.0.0.1:5210", cb, sizeof *cb, r, NULL), 5);
  static const char *bad[] = {"", "127.0.0.1", "127.0.0.1:", ":5210", "127.0.0.1:port",
                              "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:5210x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int32_t rc = crvm_create(bad[i], cb, sizeof *cb, r, &c);
    if (rc != 5) h_fail(__FILE__, __LINE__, "crvm_create(\"%s\") = %d, expected 5", bad[i], rc);
  }
  /* Valid: a host name, NULL callbacks, a zero-sized callbacks struct. */
  c = NULL;
  CHECK_INT(crvm_create("localhost:5210", cb, sizeof *cb, r, &c), 0);
  CHECK(c != NULL);
  crvm_destroy(c);
  c = NULL;
  CHECK_INT(crvm_create("127.0.0.1:5210", NULL, 0, NULL, &c), 0);
  CHECK(c != NULL);
  crvm_destroy(c);
  c = NULL;
  CHECK_INT(crvm_create("127.0.0.1:5210", cb, 0, r, &c), 0);
  crvm_destroy(c);
  crvm_destroy(NULL); /* no-op */
  CHECK_INT(h_rec_count(r), 0);
}

static void test_set_option(void) {
  h_rec *r = h_rec_new("options");
  crvm_client *c = h_client("127.0.0.1:5210", r);
  static const char *good[][2] = {
      {"download_dir", "/tmp"},       {"dispatch", "manual"},       {"dispatch", "thread"},
      {"connect_timeout_ms", "2500"}, {"request_timeout_ms", "1"},  {"tls", "off"},
      {"request_timeout_ms", "30000"},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    int32_t rc = crvm_set_option(c, good[i][0], good[i][1]);
    if (rc != 0)
      h_fail(__FILE__, __LINE__, "set_option(%s, %s) = %d, expected 0", good[i][0], good[i][1],
             rc);
  }
  static const char *bad[][2] = {
      {"no_such_option", "1"},       {"Dispatch", "manual"},          {"dispatch", "bogus"},
      {"dispatch", ""},              {"connect_timeout_ms", "abc"},   {"connect_timeout_ms", ""},
      {"request_timeout_ms", "-5"},  {"request_timeout_ms", "10ms"},  {"tls", "maybe"},
      {"", "x"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int32_t rc = crvm_set_option(c, bad[i][0], bad[i][1]);
    if (rc != 5)
      h_fail(__FILE__, __LINE__, "set_option(\"%s\", \"%s\") = %d, expected 5", bad[i][0],
             bad[i][1], rc);
  }
  CHECK_INT(crvm_set_option(c, NULL, "1"), 5);
  CHECK_INT(crvm_set_option(c, "dispatch", NULL), 5);
  CHECK_INT(crvm_set_option(c, "download_dir", "\xff\xfe"), 5);
  CHECK_INT(crvm_set_option(NULL, "dispatch", "manual"), 5);
  crvm_destroy(c);
}

/* NULL handle → 5 for every method of docs/API.md §3.1–3.3; crvm_poll → -5. */
static void test_null_handle(void) {
  CHECK_INT(crvm_login(NULL, H_APP, H_SECRET, "", "alice", "", ""), 5);
  CHECK_INT(crvm_logout(NULL), 5);
  CHECK_INT(crvm_set_dnd_status(NULL, 1, ""), 5);
  CHECK_INT(crvm_get_user_status(NULL, ""), 5);
  CHECK_INT(crvm_start_user_status_notify(NULL, ""), 5);
  CHECK_INT(crvm_stop_user_status_notify(NULL, ""), 5);
  CHECK_INT(crvm_create_meeting(NULL, "s", 0, ""), 5);
  CHECK_INT(crvm_destroy_meeting(NULL, 1, ""), 5);
  CHECK_INT(crvm_get_meetings(NULL, ""), 5);
  CHECK_INT(crvm_poll(NULL, 0), -5);
}

/* Before login, every §3.1–3.3 method but login is refused with 12, synchronously. */
static void test_not_logged_in(void) {
  h_rec *r = h_rec_new("idle");
  crvm_client *c = h_client("127.0.0.1:5210", r);
  CHECK_INT(crvm_logout(c), 12);
  CHECK_INT(crvm_set_dnd_status(c, 1, "c"), 12);
  CHECK_INT(crvm_get_user_status(c, "c"), 12);
  CHECK_INT(crvm_start_user_status_notify(c, "c"), 12);
  CHECK_INT(crvm_stop_user_status_notify(c, "c"), 12);
  CHECK_INT(crvm_create_meeting(c, "weekly", 0, "c"), 12);
  CHECK_INT(crvm_destroy_meeting(c, 12345678, "c"), 12);
  CHECK_INT(crvm_get_meetings(c, "c"), 12);
  /* thread dispatch: crvm_poll is not for this client */
  CHECK_INT(crvm_poll(c, 0), -5);
  crvm_destroy(c);
  CHECK_INT(h_rec_count(r), 0);
}

int main(void) {
  RUN(test_error_constants);
  RUN(test_callbacks_layout);
  RUN(test_err_str);
  RUN(test_version);
  RUN(test_create_validation);
  RUN(test_set_option);
  RUN(test_null_handle);
  RUN(test_not_logged_in);
  return 0;
}
