// crvm_values.hpp — the value types of the C++ wrapper (crvm.hpp includes it): error codes and
// crvm::Error, bytes, string parameters, and the user statuses and meetings that events carry,
// with the small JSON reader and base64 codec they need. docs/API.md is the reference.
#ifndef CRVM_VALUES_HPP
#define CRVM_VALUES_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "crvm.h"

namespace crvm {

// BEGIN generated error codes from include/crvm.h: do not edit; `cargo build` rewrites it.
// The error codes of crvm.h (CRVIDEOSDK_<NAME>) as Errc::<NAME>; docs/API.md explains each.
enum class Errc : int32_t {
  NOERR = 0,  // No error.
  UNKNOWERR = 1,  // Unknown error.
  OUTOF_MEM = 2,  // Out of memory.
  INNER_ERR = 3,  // Internal error (also: a Rust panic caught at the C boundary).
  MISMATCHCLIENTVER = 4,  // Client version not supported by the server.
  MEETPARAM_ERR = 5,  // Invalid parameter.
  ERR_DATA = 6,  // Invalid data.
  ANCTPSWD_ERR = 7,  // Wrong account or password.
  SERVER_EXCEPTION = 8,  // Server error.
  LOGINSTATE_ERROR = 9,  // Wrong login state (e.g. login while logged in or logging in).
  USER_BEEN_KICKOUT = 10,  // Logged in elsewhere; this session was kicked.
  NOT_INIT = 11,  // Not initialised.
  NOT_LOGIN = 12,  // Not logged in.
  BASE64_COV_ERR = 13,  // Base64 conversion failed.
  CUSTOMAUTH_NOINFO = 14,  // Custom auth required but none given.
  CUSTOMAUTH_NOTSUPPORT = 15,  // Custom auth given but not enabled.
  CUSTOMAUTH_EXCEPTION = 16,  // Custom auth service failed.
  CUSTOMAUTH_FAILED = 17,  // Custom auth rejected.
  TOKEN_TIMEOUT = 18,  // Token expired.
  TOKEN_AUTHINFOERR = 19,  // Token auth info invalid.
  TOKEN_APPIDNOTEXIST = 20,  // App ID does not exist.
  TOKEN_AUTH_FAILED = 21,  // Token authentication failed.
  TOKEN_NOTTOKENTYPE = 22,  // Not a token-auth tenant.
  NETWORK_INITFAILED = 200,  // Network init failed.
  NO_SERVERINFO = 201,  // No server address.
  NOSERVER_RSP = 202,  // Server did not respond.
  CREATE_CONN_FAILED = 203,  // Could not connect.
  SOCKETEXCEPTION = 204,  // Socket error.
  SOCKETTIMEOUT = 205,  // Network timeout.
  FORCEDCLOSECONNECTION = 206,  // Connection closed by the server.
  CONNECTIONLOST = 207,  // Connection lost.
  SSL_ERR = 209,  // TLS error.
  INVALID_CALLID = 600,  // Invalid call ID.
  ERR_CALL_EXIST = 601,  // Already in a call.
  ERR_BUSY = 602,  // Callee busy.
  ERR_OFFLINE = 603,  // Callee offline.
  ERR_NOANSWER = 604,  // No answer.
  ERR_USER_NOT_FOUND = 605,  // User not found.
  ERR_REFUSE = 606,  // Callee refused.
  MEETNOTEXIST = 800,  // Meeting does not exist.
  SENDFAIL = 1000,  // Send failed.
  SENDCMD_LARGE = 1100,  // Cmd data too large.
  SENDBUFFER_LARGE = 1101,  // Buffer too large.
  SENDDATA_TARGETINVALID = 1102,  // Target user offline or unknown.
  SENDFILE_FILEINERROR = 1103,  // File error.
  TRANSID_INVALID = 1104,  // Invalid task ID.
  FILE_NOT_EXIST = 1400,  // File does not exist.
  FILE_READ_ERR = 1401,  // File read failed.
  FILE_WRITE_ERR = 1402,  // File write failed.
  FILE_ALREADY_EXIST = 1403,  // File already exists.
  FILE_OPERATOR_ERR = 1404,  // File operation failed.
};

// The C name of a code ("CRVIDEOSDK_ERR_OFFLINE"); "" for a value that is none of them.
inline const char *name(Errc code) noexcept {
  switch (code) {
    case Errc::NOERR: return "CRVIDEOSDK_NOERR";
    case Errc::UNKNOWERR: return "CRVIDEOSDK_UNKNOWERR";
    case Errc::OUTOF_MEM: return "CRVIDEOSDK_OUTOF_MEM";
    case Errc::INNER_ERR: return "CRVIDEOSDK_INNER_ERR";
    case Errc::MISMATCHCLIENTVER: return "CRVIDEOSDK_MISMATCHCLIENTVER";
    case Errc::MEETPARAM_ERR: return "CRVIDEOSDK_MEETPARAM_ERR";
    case Errc::ERR_DATA: return "CRVIDEOSDK_ERR_DATA";
    case Errc::ANCTPSWD_ERR: return "CRVIDEOSDK_ANCTPSWD_ERR";
    case Errc::SERVER_EXCEPTION: return "CRVIDEOSDK_SERVER_EXCEPTION";
    case Errc::LOGINSTATE_ERROR: return "CRVIDEOSDK_LOGINSTATE_ERROR";
    case Errc::USER_BEEN_KICKOUT: return "CRVIDEOSDK_USER_BEEN_KICKOUT";
    case Errc::NOT_INIT: return "CRVIDEOSDK_NOT_INIT";
    case Errc::NOT_LOGIN: return "CRVIDEOSDK_NOT_LOGIN";
    case Errc::BASE64_COV_ERR: return "CRVIDEOSDK_BASE64_COV_ERR";
    case Errc::CUSTOMAUTH_NOINFO: return "CRVIDEOSDK_CUSTOMAUTH_NOINFO";
    case Errc::CUSTOMAUTH_NOTSUPPORT: return "CRVIDEOSDK_CUSTOMAUTH_NOTSUPPORT";
    case Errc::CUSTOMAUTH_EXCEPTION: return "CRVIDEOSDK_CUSTOMAUTH_EXCEPTION";
    case Errc::CUSTOMAUTH_FAILED: return "CRVIDEOSDK_CUSTOMAUTH_FAILED";
    case Errc::TOKEN_TIMEOUT: return "CRVIDEOSDK_TOKEN_TIMEOUT";
    case Errc::TOKEN_AUTHINFOERR: return "CRVIDEOSDK_TOKEN_AUTHINFOERR";
    case Errc::TOKEN_APPIDNOTEXIST: return "CRVIDEOSDK_TOKEN_APPIDNOTEXIST";
    case Errc::TOKEN_AUTH_FAILED: return "CRVIDEOSDK_TOKEN_AUTH_FAILED";
    case Errc::TOKEN_NOTTOKENTYPE: return "CRVIDEOSDK_TOKEN_NOTTOKENTYPE";
    case Errc::NETWORK_INITFAILED: return "CRVIDEOSDK_NETWORK_INITFAILED";
    case Errc::NO_SERVERINFO: return "CRVIDEOSDK_NO_SERVERINFO";
    case Errc::NOSERVER_RSP: return "CRVIDEOSDK_NOSERVER_RSP";
    case Errc::CREATE_CONN_FAILED: return "CRVIDEOSDK_CREATE_CONN_FAILED";
    case Errc::SOCKETEXCEPTION: return "CRVIDEOSDK_SOCKETEXCEPTION";
    case Errc::SOCKETTIMEOUT: return "CRVIDEOSDK_SOCKETTIMEOUT";
    case Errc::FORCEDCLOSECONNECTION: return "CRVIDEOSDK_FORCEDCLOSECONNECTION";
    case Errc::CONNECTIONLOST: return "CRVIDEOSDK_CONNECTIONLOST";
    case Errc::SSL_ERR: return "CRVIDEOSDK_SSL_ERR";
    case Errc::INVALID_CALLID: return "CRVIDEOSDK_INVALID_CALLID";
    case Errc::ERR_CALL_EXIST: return "CRVIDEOSDK_ERR_CALL_EXIST";
    case Errc::ERR_BUSY: return "CRVIDEOSDK_ERR_BUSY";
    case Errc::ERR_OFFLINE: return "CRVIDEOSDK_ERR_OFFLINE";
    case Errc::ERR_NOANSWER: return "CRVIDEOSDK_ERR_NOANSWER";
    case Errc::ERR_USER_NOT_FOUND: return "CRVIDEOSDK_ERR_USER_NOT_FOUND";
    case Errc::ERR_REFUSE: return "CRVIDEOSDK_ERR_REFUSE";
    case Errc::MEETNOTEXIST: return "CRVIDEOSDK_MEETNOTEXIST";
    case Errc::SENDFAIL: return "CRVIDEOSDK_SENDFAIL";
    case Errc::SENDCMD_LARGE: return "CRVIDEOSDK_SENDCMD_LARGE";
    case Errc::SENDBUFFER_LARGE: return "CRVIDEOSDK_SENDBUFFER_LARGE";
    case Errc::SENDDATA_TARGETINVALID: return "CRVIDEOSDK_SENDDATA_TARGETINVALID";
    case Errc::SENDFILE_FILEINERROR: return "CRVIDEOSDK_SENDFILE_FILEINERROR";
    case Errc::TRANSID_INVALID: return "CRVIDEOSDK_TRANSID_INVALID";
    case Errc::FILE_NOT_EXIST: return "CRVIDEOSDK_FILE_NOT_EXIST";
    case Errc::FILE_READ_ERR: return "CRVIDEOSDK_FILE_READ_ERR";
    case Errc::FILE_WRITE_ERR: return "CRVIDEOSDK_FILE_WRITE_ERR";
    case Errc::FILE_ALREADY_EXIST: return "CRVIDEOSDK_FILE_ALREADY_EXIST";
    case Errc::FILE_OPERATOR_ERR: return "CRVIDEOSDK_FILE_OPERATOR_ERR";
  }
  return "";
}
// END generated error codes

// A request the library refused before sending it: code() says why, what() says which call
// ("call: Callee offline (CRVIDEOSDK_ERR_OFFLINE 603)").
class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string &call, const std::string &detail = "")
      : std::runtime_error(call + ": " + (detail.empty() ? "" : detail + ": ") +
                           crvm_err_str(static_cast<int32_t>(code)) + " (" + name(code) + " " +
                           std::to_string(static_cast<int32_t>(code)) + ")"),
        code_(code),
        call_(call) {}
  Errc code() const noexcept { return code_; }
  int32_t value() const noexcept { return static_cast<int32_t>(code_); }
  // The method that failed, e.g. "call".
  const std::string &call() const noexcept { return call_; }

 private:
  Errc code_;
  std::string call_;
};

// Client::wait found neither the result nor a failure in time ("wait: no login_success in
// 10000 ms"). Not a crvm::Error: no request was refused, the app's own deadline passed.
class Timeout : public std::runtime_error {
 public:
  Timeout(const std::string &event, std::chrono::milliseconds waited)
      : std::runtime_error("wait: no " + event + " in " + std::to_string(waited.count()) + " ms"),
        event_(event) {}
  // The event that was awaited.
  const std::string &event() const noexcept { return event_; }

 private:
  std::string event_;
};

// The library's English text for a code, as crvm_err_str gives it.
inline const char *text(Errc code) noexcept { return crvm_err_str(static_cast<int32_t>(code)); }

// Data received: the bytes of a cmd or buffer.
using Bytes = std::vector<std::uint8_t>;

// Data to send, without copying: anything contiguous of 1-byte elements (std::string,
// std::string_view, Bytes, std::vector<char>, std::array, C++20's std::span<const std::byte>),
// or a pointer and a length.
class ByteView {
 public:
  ByteView(const void *data, std::size_t size) noexcept
      : p_(static_cast<const std::uint8_t *>(data)), n_(size) {}
  template <typename C, typename = std::enable_if_t<!std::is_array_v<std::remove_reference_t<C>>>,
            typename E = std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>,
            typename = std::enable_if_t<sizeof(E) == 1 && std::is_trivial_v<E>>>
  ByteView(const C &bytes) noexcept : ByteView(std::data(bytes), std::size(bytes)) {}
  // A string literal, without its terminating NUL.
  ByteView(const char *text) : ByteView(text, text ? std::char_traits<char>::length(text) : 0) {}

  const std::uint8_t *data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }

 private:
  const std::uint8_t *p_;
  std::size_t n_;
};

// A string parameter: a std::string, a std::string_view or a const char *. A null pointer (say
// from getenv) or a string with a NUL inside is refused with crvm::Error(MEETPARAM_ERR, 5), as
// the C API refuses it; nothing is sent.
class Text {
 public:
  Text(const char *s) noexcept : p_(s), ok_(s != nullptr) {}
  Text(std::nullptr_t) noexcept {}
  Text(const std::string &s) noexcept : p_(s.c_str()), ok_(s.find('\0') == std::string::npos) {}
  Text(std::string_view s) : own_(s), p_(own_.c_str()), ok_(s.find('\0') == s.npos) {}
  Text(const Text &) = delete;
  Text &operator=(const Text &) = delete;

  // The C string, or crvm::Error(5) naming `call` and `param`.
  const char *c(const char *call, const char *param) const {
    if (!ok_) {
      throw Error(Errc::MEETPARAM_ERR, call,
                  std::string(param) + (p_ ? " has a NUL inside" : " is null"));
    }
    return p_;
  }

 private:
  std::string own_;
  const char *p_ = nullptr;
  bool ok_ = false;
};

// Presence of a user (the status objects' "userStatus").
enum class Presence : int32_t {
  offline = 0,     // not logged in
  online = 1,      // logged in, not in a call
  in_call = 2,     // in a call, ringing or connected
  in_meeting = 3,  // reserved: never sent today
};

// One user's status (get_user_status_success, notify_user_status).
struct UserStatus {
  std::string user_id;                    // "userID"
  Presence presence = Presence::offline;  // "userStatus"
  int32_t dnd = 0;                        // "DNDType": 0 off, any other value on (the app's own)
  bool reconnecting = false;              // "reconnecting" (absent: false): the user's link
                                          // dropped and the server holds the session for its
                                          // resume; `presence` is what it was before
};

// A meeting (create_meeting_success, get_meetings_success).
struct Meeting {
  int32_t id = 0;          // "ID": positive, unique on the server
  std::string password;    // "pswd": 6 digits, or "" for none
  std::string subject;     // "subject"
  std::string url;         // "pubMeetUrl"
  std::string creator;     // "creator": the creator's user ID
  int32_t member_count = 0;  // "memberCount"
  int64_t start_time = 0;    // "startTime": Unix seconds
};

namespace detail {

inline std::string str(const char *s) { return s ? std::string(s) : std::string(); }

inline void check(int32_t rc, const char *call) {
  if (rc != 0) throw Error(static_cast<Errc>(rc), call);
}

// Base64 (RFC 4648, padded), the C API's form of binary data.
inline std::string to_base64(ByteView in) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  const std::uint8_t *p = in.data();
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = uint32_t(p[i]) << 16 | uint32_t(p[i + 1]) << 8 | p[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += abc[(v >> s) & 63];
  }
  if (std::size_t rest = in.size() - i) {
    uint32_t v = uint32_t(p[i]) << 16 | (rest == 2 ? uint32_t(p[i + 1]) << 8 : 0);
    out += abc[v >> 18];
    out += abc[(v >> 12) & 63];
    out += rest == 2 ? abc[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// The library's base64 is always well formed; anything else in it is skipped.
inline Bytes from_base64(const char *in) {
  Bytes out;
  if (!in) return out;
  uint32_t v = 0;
  int bits = 0;
  for (; *in && *in != '='; ++in) {
    char c = *in;
    int d = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (d < 0) continue;
    v = v << 6 | uint32_t(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(std::uint8_t(v >> bits));
    }
  }
  return out;
}

// A minimal JSON reader for the library's status and meeting objects (see docs/DESIGN.md, "C++
// wrapper"): objects, arrays, strings, numbers, true/false/null. Malformed input yields what
// was read before the fault; the library never sends any.
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Json> items;                           // array
  std::vector<std::pair<std::string, Json>> fields;  // object

  const Json *get(std::string_view key) const {
    for (const auto &f : fields) {
      if (f.first == key) return &f.second;
    }
    return nullptr;
  }
  std::string str(std::string_view key) const {
    const Json *v = get(key);
    return v && v->kind == string ? v->s : std::string();
  }
  int64_t num(std::string_view key) const {
    const Json *v = get(key);
    // Out of int64_t's range (or NaN) reads as 0: converting it would be undefined.
    bool fits = v && v->kind == number && v->n > -9.2e18 && v->n < 9.2e18;
    return fits ? static_cast<int64_t>(v->n) : 0;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const char *text) : p_(text ? text : "") {}

  Json value(int depth = 0) {
    Json v;
    space();
    if (depth > 64) return v;
    switch (*p_) {
      case '{':
        v.kind = Json::object;
        ++p_;
        while (space(), *p_ == '"') {
          std::string key = string();
          space();
          if (*p_ != ':') return v;
          ++p_;
          v.fields.emplace_back(std::move(key), value(depth + 1));
          if (space(), *p_ == ',') ++p_;
        }
        if (*p_ == '}') ++p_;
        return v;
      case '[':
        v.kind = Json::array;
        ++p_;
        while (space(), *p_ && *p_ != ']') {
          const char *before = p_;
          v.items.push_back(value(depth + 1));
          if (space(), *p_ == ',') ++p_;
          if (p_ == before) return v;
        }
        if (*p_ == ']') ++p_;
        return v;
      case '"':
        v.kind = Json::string;
        v.s = string();
        return v;
      case 't':
      case 'f':
      case 'n':
        if (word("true")) {
          v.kind = Json::boolean;
          v.b = true;
        } else if (word("false")) {
          v.kind = Json::boolean;
        } else if (!word("null")) {
          ++p_;
        }
        return v;
      default: {
        char *end = nullptr;
        v.n = std::strtod(p_, &end);
        if (end != p_) v.kind = Json::number;
        p_ = end != p_ ? end : p_ + (*p_ ? 1 : 0);
        return v;
      }
    }
  }

 private:
  // Skips `w` if it is next (never past the end of the text).
  bool word(const char *w) {
    std::size_t n = std::strlen(w);
    if (std::strncmp(p_, w, n) != 0) return false;
    p_ += n;
    return true;
  }
  void space() {
    while (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t') ++p_;
  }
  static void utf8(std::string &out, uint32_t c) {
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | c >> 6);
      out += char(0x80 | (c & 63));
    } else if (c < 0x10000) {
      out += char(0xE0 | c >> 12);
      out += char(0x80 | (c >> 6 & 63));
      out += char(0x80 | (c & 63));
    } else {
      out += char(0xF0 | c >> 18);
      out += char(0x80 | (c >> 12 & 63));
      out += char(0x80 | (c >> 6 & 63));
      out += char(0x80 | (c & 63));
    }
  }
  uint32_t hex4() {
    uint32_t c = 0;
    for (int i = 0; i < 4 && *p_; ++i, ++p_) {
      char h = *p_;
      c = c << 4 | uint32_t(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
    }
    return c;
  }
  // At a '"': the string, unescaped, as UTF-8.
  std::string string() {
    std::string out;
    ++p_;
    while (*p_ && *p_ != '"') {
      if (*p_ != '\\') {
        out += *p_++;
        continue;
      }
      char e = *++p_;
      if (!e) break;
      ++p_;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t c = hex4();
          if (c >= 0xD800 && c < 0xDC00 && p_[0] == '\\' && p_[1] == 'u') {
            p_ += 2;
            c = 0x10000 + ((c - 0xD800) << 10) + (hex4() - 0xDC00);
          }
          utf8(out, c);
          break;
        }
        default: out += e;  // \" \\ \/
      }
    }
    if (*p_ == '"') ++p_;
    return out;
  }

  const char *p_;
};

inline UserStatus to_status(const Json &o) {
  UserStatus s;
  s.user_id = o.str("userID");
  s.presence = static_cast<Presence>(o.num("userStatus"));
  s.dnd = static_cast<int32_t>(o.num("DNDType"));
  const Json *rc = o.get("reconnecting");
  s.reconnecting = rc && rc->kind == Json::boolean && rc->b;
  return s;
}

inline Meeting to_meeting(const Json &o) {
  Meeting m;
  m.id = static_cast<int32_t>(o.num("ID"));
  m.password = o.str("pswd");
  m.subject = o.str("subject");
  m.url = o.str("pubMeetUrl");
  m.creator = o.str("creator");
  m.member_count = static_cast<int32_t>(o.num("memberCount"));
  m.start_time = o.num("startTime");
  return m;
}

inline UserStatus parse_status(const char *json) { return to_status(JsonReader(json).value()); }
inline Meeting parse_meeting(const char *json) { return to_meeting(JsonReader(json).value()); }
inline std::vector<UserStatus> parse_statuses(const char *json) {
  std::vector<UserStatus> out;
  for (const Json &o : JsonReader(json).value().items) out.push_back(to_status(o));
  return out;
}
inline std::vector<Meeting> parse_meetings(const char *json) {
  std::vector<Meeting> out;
  for (const Json &o : JsonReader(json).value().items) out.push_back(to_meeting(o));
  return out;
}

}  // namespace detail
}  // namespace crvm

#endif  // CRVM_VALUES_HPP
