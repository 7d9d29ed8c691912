// crvm.hpp — a header-only C++17 wrapper over the crvm C API (crvm.h).
//
//   crvm::Events ev;
//   ev.login_success = [](const std::string &user, const std::string &cookie) { ... };
//   crvm::Client c("127.0.0.1:5210", std::move(ev));   // throws crvm::Error on refusal
//   c.login("demo", "demo-secret", "Alice", "alice");
//
// Design (see docs/DESIGN.md, "C++ wrapper"):
// - RAII: a Client owns its crvm_client and destroys it (logging out) in its destructor; it can
//   be moved, not copied.
// - Strings in and out are std::string; a NULL string from the library arrives as "".
// - Events are std::function members of crvm::Events, set before the Client is made; an unset
//   member ignores that event. They run on the client's own thread (or inside poll()),
//   exactly as the C callbacks do, and may call any method of any Client.
// - A synchronous refusal (a non-zero return of the C function) throws crvm::Error, which
//   carries the SPEC §6 code (code()) and its English text (what()). An exception thrown by an
//   event handler is caught and discarded at the C boundary: it must never unwind into C.
#ifndef CRVM_HPP
#define CRVM_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "crvm.h"

namespace crvm {

// A request the library refused before sending it (SPEC §2.2).
class Error : public std::runtime_error {
 public:
  explicit Error(int32_t code) : std::runtime_error(crvm_err_str(code)), code_(code) {}
  int32_t code() const noexcept { return code_; }

 private:
  int32_t code_;
};

using Str = const std::string &;

// The event handlers, one per crvm_callbacks member (generated below from the events table).
struct Events;

namespace detail {

inline std::string str(const char *s) { return s ? std::string(s) : std::string(); }
template <typename T>
T conv(T v) {
  return v;
}
inline std::string conv(const char *s) { return str(s); }

// The C callback for member `M` of Events: converts the arguments and calls the function, if
// set. Nothing escapes into C. (`set_trampolines`, below, registers one per member.)
template <auto M, typename... A>
void trampoline(void *ud, A... args) {
  auto &f = static_cast<Events *>(ud)->*M;
  if (!f) return;
  try {
    f(conv(args)...);
  } catch (...) {
  }
}

inline const char *c(Str s) { return s.c_str(); }

inline void check(int32_t rc) {
  if (rc != 0) throw Error(rc);
}

}  // namespace detail

// BEGIN generated from src/events.rs by build.rs: do not edit; `cargo build` rewrites it.
// One std::function per crvm_callbacks member (documented there, in crvm.h), same names,
// same argument order.
struct Events {
  std::function<void(Str usr_id, Str cookie)> login_success;
  std::function<void(int32_t sdk_err, Str cookie)> login_fail;
  std::function<void(int32_t sdk_err)> line_off;
  std::function<void(Str cookie)> set_dnd_status_success;
  std::function<void(int32_t sdk_err, Str cookie)> set_dnd_status_fail;
  std::function<void(Str users_status, Str cookie)> get_user_status_success;
  std::function<void(int32_t sdk_err, Str cookie)> get_user_status_fail;
  std::function<void(Str user_status, Str cookie)> notify_user_status;
  std::function<void(int32_t sdk_err, Str cookie)> start_user_status_notify_rslt;
  std::function<void(int32_t sdk_err, Str cookie)> stop_user_status_notify_rslt;
  std::function<void(Str meet_obj, Str cookie)> create_meeting_success;
  std::function<void(int32_t sdk_err, Str cookie)> create_meeting_fail;
  std::function<void(int32_t sdk_err, Str cookie)> destroy_meeting_rslt;
  std::function<void(Str json_meetings, Str cookie)> get_meetings_success;
  std::function<void(int32_t sdk_err, Str cookie)> get_meetings_fail;
  std::function<void(Str call_id, Str cookie)> call_success;
  std::function<void(Str call_id, int32_t sdk_err, Str cookie)> call_fail;
  std::function<void(Str call_id, Str cookie)> accept_call_success;
  std::function<void(Str call_id, int32_t sdk_err, Str cookie)> accept_call_fail;
  std::function<void(Str call_id, Str cookie)> reject_call_success;
  std::function<void(Str call_id, int32_t sdk_err, Str cookie)> reject_call_fail;
  std::function<void(Str call_id, Str cookie)> hungup_call_success;
  std::function<void(Str call_id, int32_t sdk_err, Str cookie)> hungup_call_fail;
  std::function<void(Str call_id, Str meet_obj, Str caller_id, Str usr_ext_dat)> notify_call_in;
  std::function<void(Str call_id, Str usr_ext_dat, Str meet_obj)> notify_call_accepted;
  std::function<void(Str call_id, int32_t reason, Str usr_ext_dat)> notify_call_rejected;
  std::function<void(Str call_id, Str usr_ext_dat)> notify_call_hungup;
  std::function<void(Str task_id, int32_t sdk_err, Str cookie)> send_cmd_rlst;
  std::function<void(Str task_id, int32_t sdk_err, Str cookie)> send_buffer_rlst;
  std::function<void(Str task_id, Str file_name, int32_t sdk_err, Str cookie)> send_file_rlst;
  std::function<void(Str task_id, int64_t sended_len, int64_t total_len, Str cookie)>
      send_progress;
  std::function<void(Str task_id, int32_t sdk_err, Str cookie)> cancel_send_rlst;
  std::function<void(Str source_user_id, Str data_base64)> notify_cmd_data;
  std::function<void(Str source_user_id, Str data_base64)> notify_buffer_data;
  std::function<void(Str source_user_id, Str tmp_file, Str org_file_name)> notify_file_data;
  std::function<void(Str send_id)> notify_cancel_send;
  std::function<void(int32_t sdk_err)> line_reconnecting;
  std::function<void(int64_t offline_ms)> line_resumed;
};

namespace detail {

// Points every member of `cb` at the trampoline of the Events member of that name.
inline void set_trampolines(crvm_callbacks &cb) {
  cb.login_success = &trampoline<&Events::login_success, const char *, const char *>;
  cb.login_fail = &trampoline<&Events::login_fail, int32_t, const char *>;
  cb.line_off = &trampoline<&Events::line_off, int32_t>;
  cb.set_dnd_status_success = &trampoline<&Events::set_dnd_status_success, const char *>;
  cb.set_dnd_status_fail = &trampoline<&Events::set_dnd_status_fail, int32_t, const char *>;
  cb.get_user_status_success =
      &trampoline<&Events::get_user_status_success, const char *, const char *>;
  cb.get_user_status_fail = &trampoline<&Events::get_user_status_fail, int32_t, const char *>;
  cb.notify_user_status = &trampoline<&Events::notify_user_status, const char *, const char *>;
  cb.start_user_status_notify_rslt =
      &trampoline<&Events::start_user_status_notify_rslt, int32_t, const char *>;
  cb.stop_user_status_notify_rslt =
      &trampoline<&Events::stop_user_status_notify_rslt, int32_t, const char *>;
  cb.create_meeting_success =
      &trampoline<&Events::create_meeting_success, const char *, const char *>;
  cb.create_meeting_fail = &trampoline<&Events::create_meeting_fail, int32_t, const char *>;
  cb.destroy_meeting_rslt = &trampoline<&Events::destroy_meeting_rslt, int32_t, const char *>;
  cb.get_meetings_success = &trampoline<&Events::get_meetings_success, const char *, const char *>;
  cb.get_meetings_fail = &trampoline<&Events::get_meetings_fail, int32_t, const char *>;
  cb.call_success = &trampoline<&Events::call_success, const char *, const char *>;
  cb.call_fail = &trampoline<&Events::call_fail, const char *, int32_t, const char *>;
  cb.accept_call_success = &trampoline<&Events::accept_call_success, const char *, const char *>;
  cb.accept_call_fail =
      &trampoline<&Events::accept_call_fail, const char *, int32_t, const char *>;
  cb.reject_call_success = &trampoline<&Events::reject_call_success, const char *, const char *>;
  cb.reject_call_fail =
      &trampoline<&Events::reject_call_fail, const char *, int32_t, const char *>;
  cb.hungup_call_success = &trampoline<&Events::hungup_call_success, const char *, const char *>;
  cb.hungup_call_fail =
      &trampoline<&Events::hungup_call_fail, const char *, int32_t, const char *>;
  cb.notify_call_in =
      &trampoline<&Events::notify_call_in, const char *, const char *, const char *, const char *>;
  cb.notify_call_accepted =
      &trampoline<&Events::notify_call_accepted, const char *, const char *, const char *>;
  cb.notify_call_rejected =
      &trampoline<&Events::notify_call_rejected, const char *, int32_t, const char *>;
  cb.notify_call_hungup = &trampoline<&Events::notify_call_hungup, const char *, const char *>;
  cb.send_cmd_rlst = &trampoline<&Events::send_cmd_rlst, const char *, int32_t, const char *>;
  cb.send_buffer_rlst =
      &trampoline<&Events::send_buffer_rlst, const char *, int32_t, const char *>;
  cb.send_file_rlst =
      &trampoline<&Events::send_file_rlst, const char *, const char *, int32_t, const char *>;
  cb.send_progress =
      &trampoline<&Events::send_progress, const char *, int64_t, int64_t, const char *>;
  cb.cancel_send_rlst =
      &trampoline<&Events::cancel_send_rlst, const char *, int32_t, const char *>;
  cb.notify_cmd_data = &trampoline<&Events::notify_cmd_data, const char *, const char *>;
  cb.notify_buffer_data = &trampoline<&Events::notify_buffer_data, const char *, const char *>;
  cb.notify_file_data =
      &trampoline<&Events::notify_file_data, const char *, const char *, const char *>;
  cb.notify_cancel_send = &trampoline<&Events::notify_cancel_send, const char *>;
  cb.line_reconnecting = &trampoline<&Events::line_reconnecting, int32_t>;
  cb.line_resumed = &trampoline<&Events::line_resumed, int64_t>;
}

}  // namespace detail
// END generated from src/events.rs

class Client {
 public:
  // Creates a client for `server_addr` ("host:port"). Throws crvm::Error if refused.
  Client(Str server_addr, Events events) : events_(new Events(std::move(events))) {
    crvm_callbacks cb{};
    detail::set_trampolines(cb);
    detail::check(crvm_create(detail::c(server_addr), &cb, sizeof cb, events_.get(), &c_));
  }

  // Logs out if needed and stops the client's threads; no event runs after it returns.
  ~Client() { crvm_destroy(c_); }

  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;
  Client(Client &&o) noexcept : c_(std::exchange(o.c_, nullptr)), events_(std::move(o.events_)) {}
  Client &operator=(Client &&o) noexcept {
    if (this != &o) {
      crvm_destroy(c_);
      c_ = std::exchange(o.c_, nullptr);
      events_ = std::move(o.events_);
    }
    return *this;
  }

  // The underlying handle, for the C functions this wrapper does not cover.
  crvm_client *handle() const noexcept { return c_; }

  void set_option(Str key, Str value) {
    detail::check(crvm_set_option(c_, detail::c(key), detail::c(value)));
  }
  // With dispatch=manual: runs pending events here; returns how many ran.
  int poll(int32_t timeout_ms) {
    int32_t n = crvm_poll(c_, timeout_ms);
    if (n < 0) throw Error(-n);
    return n;
  }

  void login(Str auth_acnt, Str auth_pswd, Str nick_name, Str priv_acnt, Str priv_auth_code = "",
             Str cookie = "") {
    using detail::c;
    detail::check(crvm_login(c_, c(auth_acnt), c(auth_pswd), c(nick_name), c(priv_acnt),
                             c(priv_auth_code), c(cookie)));
  }
  void logout() { detail::check(crvm_logout(c_)); }
  // The network changed: drop the link and resume the session at once (SPEC §3.6).
  void network_changed() { detail::check(crvm_network_changed(c_)); }

  // Returns the new call's ID.
  std::string call(Str called_user_id, Str meet_obj = "", Str usr_ext_dat = "", Str cookie = "") {
    using detail::c;
    char id[CRVM_ID_BUF_LEN];
    detail::check(
        crvm_call(c_, c(called_user_id), c(meet_obj), c(usr_ext_dat), c(cookie), id, sizeof id));
    return id;
  }
  void accept_call(Str call_id, Str meet_obj = "", Str usr_ext_dat = "", Str cookie = "") {
    using detail::c;
    detail::check(crvm_accept_call(c_, c(call_id), c(meet_obj), c(usr_ext_dat), c(cookie)));
  }
  void reject_call(Str call_id, Str usr_ext_dat = "", Str cookie = "") {
    using detail::c;
    detail::check(crvm_reject_call(c_, c(call_id), c(usr_ext_dat), c(cookie)));
  }
  void hungup_call(Str call_id, Str usr_ext_dat = "", Str cookie = "") {
    using detail::c;
    detail::check(crvm_hungup_call(c_, c(call_id), c(usr_ext_dat), c(cookie)));
  }

  // BEGIN generated from include/crvm.h by build.rs: do not edit; `cargo build` rewrites it.
  // The plain requests, crvm_<name> without the handle: a trailing cookie defaults to "",
  // an ID buffer becomes the return value; data stays base64, as in the C API.
  void set_dnd_status(int32_t dnd_status, Str cookie = "") {
    detail::check(crvm_set_dnd_status(c_, dnd_status, detail::c(cookie)));
  }
  void get_user_status(Str cookie = "") {
    detail::check(crvm_get_user_status(c_, detail::c(cookie)));
  }
  void start_user_status_notify(Str cookie = "") {
    detail::check(crvm_start_user_status_notify(c_, detail::c(cookie)));
  }
  void stop_user_status_notify(Str cookie = "") {
    detail::check(crvm_stop_user_status_notify(c_, detail::c(cookie)));
  }
  void create_meeting(Str meet_subject, int32_t create_pswd, Str cookie = "") {
    detail::check(
        crvm_create_meeting(c_, detail::c(meet_subject), create_pswd, detail::c(cookie)));
  }
  void destroy_meeting(int32_t meet_id, Str cookie = "") {
    detail::check(crvm_destroy_meeting(c_, meet_id, detail::c(cookie)));
  }
  void get_meetings(Str cookie = "") {
    detail::check(crvm_get_meetings(c_, detail::c(cookie)));
  }
  std::string send_cmd(Str target_user_id, Str data_base64) {
    char id[CRVM_ID_BUF_LEN];
    detail::check(
        crvm_send_cmd(c_, detail::c(target_user_id), detail::c(data_base64), id, sizeof id));
    return id;
  }
  std::string send_buffer(Str target_user_id, Str data_base64) {
    char id[CRVM_ID_BUF_LEN];
    detail::check(
        crvm_send_buffer(c_, detail::c(target_user_id), detail::c(data_base64), id, sizeof id));
    return id;
  }
  std::string send_file(Str target_user_id, Str file_name) {
    char id[CRVM_ID_BUF_LEN];
    detail::check(
        crvm_send_file(c_, detail::c(target_user_id), detail::c(file_name), id, sizeof id));
    return id;
  }
  void cancel_send(Str task_id) {
    detail::check(crvm_cancel_send(c_, detail::c(task_id)));
  }
  // END generated from include/crvm.h

 private:
  crvm_client *c_ = nullptr;
  // Heap-allocated so its address (the C user_data) survives moves of the Client.
  std::unique_ptr<Events> events_;
};

inline std::string version() { return crvm_version(); }

}  // namespace crvm

#endif  // CRVM_HPP
