// The wrapper's value types without a server: the JSON reader on the status and meeting shapes
// (escapes, \u sequences and surrogate pairs, unknown keys, malformed or truncated text), the
// base64 codec against every length and byte, string parameters (null, NUL inside) and the
// codes' names and texts.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crvm.hpp"

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

using crvm::detail::from_base64;
using crvm::detail::parse_meetings;
using crvm::detail::parse_status;
using crvm::detail::parse_statuses;
using crvm::detail::to_base64;

static void json() {
  crvm::UserStatus s = parse_status(R"({"userID":"al\"ice","userStatus":2,"DNDType":-7})");
  CHECK(s.user_id == "al\"ice" && s.presence == crvm::Presence::in_call && s.dnd == -7);
  // Escapes: \u of the BMP, a surrogate pair (U+1F600), and the short ones.
  s = parse_status(R"({"userID":"\u00e9\ud83d\ude00\n\t\\\/","userStatus":1,"DNDType":0})");
  CHECK(s.user_id == "\xc3\xa9\xf0\x9f\x98\x80\n\t\\/");
  // Unknown keys of any type are skipped; key order does not matter.
  s = parse_status(
      R"({"extra":{"a":[1,2,{"b":null}],"c":true},"DNDType":3,"new":false,"userStatus":1,)"
      R"("userID":"bob"})");
  CHECK(s.user_id == "bob" && s.presence == crvm::Presence::online && s.dnd == 3);
  CHECK(!s.reconnecting);
  // The reconnecting mark: optional, true only when it says true.
  s = parse_status(R"({"userID":"al","userStatus":2,"DNDType":0,"reconnecting":true})");
  CHECK(s.reconnecting && s.presence == crvm::Presence::in_call);
  s = parse_status(R"({"userID":"al","userStatus":1,"DNDType":0,"reconnecting":false})");
  CHECK(!s.reconnecting && s.presence == crvm::Presence::online);
  s = parse_status(R"({"userID":"al","userStatus":1,"DNDType":0,"reconnecting":1})");
  CHECK(!s.reconnecting);
  std::vector<crvm::UserStatus> list = parse_statuses(
      R"([{"userID":"a","userStatus":1,"DNDType":0}, {"userID":"b","userStatus":0,"DNDType":1}])");
  CHECK(list.size() == 2 && list[1].user_id == "b" && list[1].presence == crvm::Presence::offline);
  CHECK(parse_statuses("[]").empty());
  std::vector<crvm::Meeting> ms = parse_meetings(
      R"([{"ID":12345678,"pswd":"004211","subject":"weekly","pubMeetUrl":"https://m/12345678",)"
      R"("creator":"alice","memberCount":0,"startTime":1764000000}])");
  CHECK(ms.size() == 1 && ms[0].id == 12345678 && ms[0].password == "004211");
  CHECK(ms[0].subject == "weekly" && ms[0].url == "https://m/12345678");
  CHECK(ms[0].creator == "alice" && ms[0].start_time == 1764000000);
  // Malformed or truncated text never reads past its end or loops: it yields what it could.
  for (const char *bad : {"", "{", "[", "[{", "{\"userID\":", "{\"userID\":\"abc", "[1,", "tru",
                          "nul", "{\"a\" 1}", "[}", "{\"userID\":\"x\\u12", "-", "[[[[", "\"\\"}) {
    parse_status(bad);
    parse_statuses(bad);
    parse_meetings(bad);
  }
  CHECK(parse_status(nullptr).user_id.empty());
  // Numbers beyond any integer read as 0 (converting them would be undefined behaviour).
  CHECK(parse_meetings(R"([{"ID":1e300,"startTime":-1e300}])")[0].id == 0);
  std::string deep(10000, '[');
  CHECK(parse_statuses(deep.c_str()).size() <= 1);  // depth is bounded, no stack overflow
}

static void base64() {
  std::vector<std::uint8_t> all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
  for (std::size_t n = 0; n <= all.size(); ++n) {
    crvm::Bytes in(all.begin(), all.begin() + long(n));
    std::string b64 = to_base64(in);
    CHECK(b64.size() == (n + 2) / 3 * 4);
    CHECK(from_base64(b64.c_str()) == in);
  }
  CHECK(to_base64(std::string("See you there")) == "U2VlIHlvdSB0aGVyZQ==");
  CHECK(to_base64("hi") == "aGk=");  // a string literal, without its NUL
  CHECK(from_base64(nullptr).empty());
}

static void text_and_codes() {
  const char *null = nullptr;
  try {
    crvm::Text t(null);
    t.c("login", "priv_acnt");
    CHECK(false);
  } catch (const crvm::Error &e) {
    CHECK(e.code() == crvm::Errc::MEETPARAM_ERR && e.call() == "login");
    CHECK(std::string(e.what()).find("login: priv_acnt is null: ") == 0);
  }
  CHECK(std::string(crvm::Text(std::string_view("abc", 2)).c("f", "p")) == "ab");
  CHECK(std::string(crvm::Text(std::string("xyz")).c("f", "p")) == "xyz");
  CHECK(crvm::name(static_cast<crvm::Errc>(999)) == std::string());
  CHECK(crvm::name(crvm::Errc::SSL_ERR) == std::string("CRVIDEOSDK_SSL_ERR"));
  CHECK(static_cast<int>(crvm::Errc::FILE_OPERATOR_ERR) == CRVIDEOSDK_FILE_OPERATOR_ERR);
  crvm::Error e(crvm::Errc::ERR_OFFLINE, "notify_call_rejected");
  CHECK(std::string(e.what()) ==
        std::string("notify_call_rejected: ") + crvm_err_str(603) + " (CRVIDEOSDK_ERR_OFFLINE 603)");
  crvm::Timeout t("login_success", std::chrono::milliseconds(1500));
  CHECK(std::string(t.what()) == "wait: no login_success in 1500 ms" && t.event() == "login_success");
}

int main() {
  json();
  base64();
  text_and_codes();
  std::puts("crvm.hpp values: all checks passed");
  return 0;
}
