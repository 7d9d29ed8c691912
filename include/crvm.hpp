// crvm.hpp — a header-only C++17 wrapper over the crvm C API (crvm.h); it builds as C++20 too.
// docs/API.md is the reference: every function, event, code and JSON shape.
//
//   crvm::Client alice("127.0.0.1:5210");           // throws crvm::Error on refusal
//   alice.on_notify_call_in([](crvm::Client &me, const std::string &call_id, const std::string &,
//                              const std::string &from, const std::string &) {
//     me.accept_call(call_id);
//   });
//   alice.login("demo", "demo-secret", "Alice", "alice");
//   alice.wait("login_success", {"login_fail"}, std::chrono::seconds(10));  // or throws
//
// Design (docs/DESIGN.md, "C++ wrapper"):
// - RAII: a Client owns its crvm_client and destroys it (logging out) in its destructor. It is
//   neither copied nor moved (handlers hold a reference to it): keep it in a
//   std::unique_ptr or std::optional to hand it around.
// - Strings go in as std::string, std::string_view or const char * (a null one throws
//   crvm::Error with code 5); data goes in as any contiguous bytes (crvm::ByteView) and comes
//   out as crvm::Bytes; base64 stays inside this file. Codes are crvm::Errc; statuses and
//   meetings arrive parsed (crvm::UserStatus, crvm::Meeting).
// - Events: on_<event>(handler) sets, replaces or removes a handler at any time, from any
//   thread; a handler gets its Client& first. Events without a handler are queued for
//   next_event(names, timeout), which any thread may call (queue_events(false) drops them
//   instead). Handlers run on the client's own thread (or inside poll()/next_event() with
//   dispatch=manual), one at a time, in order, and may call any method of any Client (but not
//   wait for their own client's events: none can run while they do).
// - A handler may destroy its own Client (say, reset the unique_ptr holding it): the running
//   handler and the client's state stay alive until it returns, and no event runs after.
// - A synchronous refusal throws crvm::Error (code(), and what() naming the call). An exception
//   escaping a handler never unwinds into C: it goes to the on_handler_error handler (by
//   default, a line on stderr).
#ifndef CRVM_HPP
#define CRVM_HPP

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crvm.h"
#include "crvm_values.hpp"

namespace crvm {

class Client;

// What an exception escaping a handler is reported to: the client, the event's name and the
// exception (std::rethrow_exception to look at it).
using HandlerErrorFn = std::function<void(Client &, const std::string &event, std::exception_ptr)>;

struct Event;
struct Handlers;

namespace detail {
// Hands an event to its handler (or the queue); defined below.
template <typename F, typename Call>
void deliver(void *ud, Event &&e, std::shared_ptr<const F> Handlers::*slot, Call call);
}  // namespace detail

// BEGIN generated from src/events.rs by build.rs: do not edit; `cargo build` rewrites it.
// One event, as Client::next_event returns it: `name` is the crvm_callbacks member
// (documented in docs/API.md); the other fields are those of every event, and an
// event sets only its own (the rest stay empty or zero).
struct Event {
  std::string name;
  std::string usr_id;
  std::string cookie;
  Errc sdk_err = Errc::NOERR;
  std::vector<UserStatus> statuses;
  UserStatus status;
  Meeting meeting;
  std::vector<Meeting> meetings;
  std::string call_id;
  std::string meet_obj;
  std::string caller_id;
  std::string usr_ext_dat;
  Errc reason = Errc::NOERR;
  std::string task_id;
  std::string file_name;
  int64_t sended_len = 0;
  int64_t total_len = 0;
  std::string source_user_id;
  Bytes data;
  std::string tmp_file;
  std::string org_file_name;
  std::string send_id;
  int64_t offline_ms = 0;
};

// The handler of each event (Client::on_<event> sets it): the client, then the event's
// arguments, converted. Held by shared_ptr, so a running handler outlives its replacement.
struct Handlers {
  using login_success_fn = std::function<void(
      Client &, const std::string &usr_id, const std::string &cookie)>;
  std::shared_ptr<const login_success_fn> login_success;
  using login_fail_fn = std::function<void(Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const login_fail_fn> login_fail;
  using line_off_fn = std::function<void(Client &, Errc sdk_err)>;
  std::shared_ptr<const line_off_fn> line_off;
  using set_dnd_status_success_fn = std::function<void(Client &, const std::string &cookie)>;
  std::shared_ptr<const set_dnd_status_success_fn> set_dnd_status_success;
  using set_dnd_status_fail_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const set_dnd_status_fail_fn> set_dnd_status_fail;
  using get_user_status_success_fn = std::function<void(
      Client &, const std::vector<UserStatus> &statuses, const std::string &cookie)>;
  std::shared_ptr<const get_user_status_success_fn> get_user_status_success;
  using get_user_status_fail_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const get_user_status_fail_fn> get_user_status_fail;
  using notify_user_status_fn = std::function<void(
      Client &, const UserStatus &status, const std::string &cookie)>;
  std::shared_ptr<const notify_user_status_fn> notify_user_status;
  using start_user_status_notify_rslt_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const start_user_status_notify_rslt_fn> start_user_status_notify_rslt;
  using stop_user_status_notify_rslt_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const stop_user_status_notify_rslt_fn> stop_user_status_notify_rslt;
  using create_meeting_success_fn = std::function<void(
      Client &, const Meeting &meeting, const std::string &cookie)>;
  std::shared_ptr<const create_meeting_success_fn> create_meeting_success;
  using create_meeting_fail_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const create_meeting_fail_fn> create_meeting_fail;
  using destroy_meeting_rslt_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const destroy_meeting_rslt_fn> destroy_meeting_rslt;
  using get_meetings_success_fn = std::function<void(
      Client &, const std::vector<Meeting> &meetings, const std::string &cookie)>;
  std::shared_ptr<const get_meetings_success_fn> get_meetings_success;
  using get_meetings_fail_fn = std::function<void(
      Client &, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const get_meetings_fail_fn> get_meetings_fail;
  using call_success_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &cookie)>;
  std::shared_ptr<const call_success_fn> call_success;
  using call_fail_fn = std::function<void(
      Client &, const std::string &call_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const call_fail_fn> call_fail;
  using accept_call_success_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &cookie)>;
  std::shared_ptr<const accept_call_success_fn> accept_call_success;
  using accept_call_fail_fn = std::function<void(
      Client &, const std::string &call_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const accept_call_fail_fn> accept_call_fail;
  using reject_call_success_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &cookie)>;
  std::shared_ptr<const reject_call_success_fn> reject_call_success;
  using reject_call_fail_fn = std::function<void(
      Client &, const std::string &call_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const reject_call_fail_fn> reject_call_fail;
  using hungup_call_success_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &cookie)>;
  std::shared_ptr<const hungup_call_success_fn> hungup_call_success;
  using hungup_call_fail_fn = std::function<void(
      Client &, const std::string &call_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const hungup_call_fail_fn> hungup_call_fail;
  using notify_call_in_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &meet_obj,
      const std::string &caller_id, const std::string &usr_ext_dat)>;
  std::shared_ptr<const notify_call_in_fn> notify_call_in;
  using notify_call_accepted_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &usr_ext_dat,
      const std::string &meet_obj)>;
  std::shared_ptr<const notify_call_accepted_fn> notify_call_accepted;
  using notify_call_rejected_fn = std::function<void(
      Client &, const std::string &call_id, Errc reason, const std::string &usr_ext_dat)>;
  std::shared_ptr<const notify_call_rejected_fn> notify_call_rejected;
  using notify_call_hungup_fn = std::function<void(
      Client &, const std::string &call_id, const std::string &usr_ext_dat)>;
  std::shared_ptr<const notify_call_hungup_fn> notify_call_hungup;
  using send_cmd_rlst_fn = std::function<void(
      Client &, const std::string &task_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const send_cmd_rlst_fn> send_cmd_rlst;
  using send_buffer_rlst_fn = std::function<void(
      Client &, const std::string &task_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const send_buffer_rlst_fn> send_buffer_rlst;
  using send_file_rlst_fn = std::function<void(
      Client &, const std::string &task_id, const std::string &file_name, Errc sdk_err,
      const std::string &cookie)>;
  std::shared_ptr<const send_file_rlst_fn> send_file_rlst;
  using send_progress_fn = std::function<void(
      Client &, const std::string &task_id, int64_t sended_len, int64_t total_len,
      const std::string &cookie)>;
  std::shared_ptr<const send_progress_fn> send_progress;
  using cancel_send_rlst_fn = std::function<void(
      Client &, const std::string &task_id, Errc sdk_err, const std::string &cookie)>;
  std::shared_ptr<const cancel_send_rlst_fn> cancel_send_rlst;
  using notify_cmd_data_fn = std::function<void(
      Client &, const std::string &source_user_id, const Bytes &data)>;
  std::shared_ptr<const notify_cmd_data_fn> notify_cmd_data;
  using notify_buffer_data_fn = std::function<void(
      Client &, const std::string &source_user_id, const Bytes &data)>;
  std::shared_ptr<const notify_buffer_data_fn> notify_buffer_data;
  using notify_file_data_fn = std::function<void(
      Client &, const std::string &source_user_id, const std::string &tmp_file,
      const std::string &org_file_name)>;
  std::shared_ptr<const notify_file_data_fn> notify_file_data;
  using notify_cancel_send_fn = std::function<void(Client &, const std::string &send_id)>;
  std::shared_ptr<const notify_cancel_send_fn> notify_cancel_send;
  using line_reconnecting_fn = std::function<void(Client &, Errc sdk_err)>;
  std::shared_ptr<const line_reconnecting_fn> line_reconnecting;
  using line_resumed_fn = std::function<void(Client &, int64_t offline_ms)>;
  std::shared_ptr<const line_resumed_fn> line_resumed;
};

namespace detail {

// Points every member of `cb` at a function that makes the event and delivers it.
inline void set_trampolines(crvm_callbacks &cb) {
  cb.login_success = [](void *ud, const char *usr_id, const char *cookie) {
    Event e;
    e.name = "login_success";
    e.usr_id = str(usr_id);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.usr_id, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::login_success, call);
  };
  cb.login_fail = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "login_fail";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::login_fail, call);
  };
  cb.line_off = [](void *ud, int32_t sdk_err) {
    Event e;
    e.name = "line_off";
    e.sdk_err = Errc(sdk_err);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err);
    };
    deliver(ud, std::move(e), &Handlers::line_off, call);
  };
  cb.set_dnd_status_success = [](void *ud, const char *cookie) {
    Event e;
    e.name = "set_dnd_status_success";
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::set_dnd_status_success, call);
  };
  cb.set_dnd_status_fail = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "set_dnd_status_fail";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::set_dnd_status_fail, call);
  };
  cb.get_user_status_success = [](void *ud, const char *users_status, const char *cookie) {
    Event e;
    e.name = "get_user_status_success";
    e.statuses = parse_statuses(users_status);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.statuses, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::get_user_status_success, call);
  };
  cb.get_user_status_fail = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "get_user_status_fail";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::get_user_status_fail, call);
  };
  cb.notify_user_status = [](void *ud, const char *user_status, const char *cookie) {
    Event e;
    e.name = "notify_user_status";
    e.status = parse_status(user_status);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.status, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::notify_user_status, call);
  };
  cb.start_user_status_notify_rslt = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "start_user_status_notify_rslt";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::start_user_status_notify_rslt, call);
  };
  cb.stop_user_status_notify_rslt = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "stop_user_status_notify_rslt";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::stop_user_status_notify_rslt, call);
  };
  cb.create_meeting_success = [](void *ud, const char *meet_obj, const char *cookie) {
    Event e;
    e.name = "create_meeting_success";
    e.meeting = parse_meeting(meet_obj);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.meeting, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::create_meeting_success, call);
  };
  cb.create_meeting_fail = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "create_meeting_fail";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::create_meeting_fail, call);
  };
  cb.destroy_meeting_rslt = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "destroy_meeting_rslt";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::destroy_meeting_rslt, call);
  };
  cb.get_meetings_success = [](void *ud, const char *json_meetings, const char *cookie) {
    Event e;
    e.name = "get_meetings_success";
    e.meetings = parse_meetings(json_meetings);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.meetings, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::get_meetings_success, call);
  };
  cb.get_meetings_fail = [](void *ud, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "get_meetings_fail";
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::get_meetings_fail, call);
  };
  cb.call_success = [](void *ud, const char *call_id, const char *cookie) {
    Event e;
    e.name = "call_success";
    e.call_id = str(call_id);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::call_success, call);
  };
  cb.call_fail = [](void *ud, const char *call_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "call_fail";
    e.call_id = str(call_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::call_fail, call);
  };
  cb.accept_call_success = [](void *ud, const char *call_id, const char *cookie) {
    Event e;
    e.name = "accept_call_success";
    e.call_id = str(call_id);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::accept_call_success, call);
  };
  cb.accept_call_fail = [](void *ud, const char *call_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "accept_call_fail";
    e.call_id = str(call_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::accept_call_fail, call);
  };
  cb.reject_call_success = [](void *ud, const char *call_id, const char *cookie) {
    Event e;
    e.name = "reject_call_success";
    e.call_id = str(call_id);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::reject_call_success, call);
  };
  cb.reject_call_fail = [](void *ud, const char *call_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "reject_call_fail";
    e.call_id = str(call_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::reject_call_fail, call);
  };
  cb.hungup_call_success = [](void *ud, const char *call_id, const char *cookie) {
    Event e;
    e.name = "hungup_call_success";
    e.call_id = str(call_id);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::hungup_call_success, call);
  };
  cb.hungup_call_fail = [](void *ud, const char *call_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "hungup_call_fail";
    e.call_id = str(call_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::hungup_call_fail, call);
  };
  cb.notify_call_in = [](
      void *ud, const char *call_id, const char *meet_obj, const char *caller_id,
      const char *usr_ext_dat) {
    Event e;
    e.name = "notify_call_in";
    e.call_id = str(call_id);
    e.meet_obj = str(meet_obj);
    e.caller_id = str(caller_id);
    e.usr_ext_dat = str(usr_ext_dat);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.meet_obj, ev.caller_id, ev.usr_ext_dat);
    };
    deliver(ud, std::move(e), &Handlers::notify_call_in, call);
  };
  cb.notify_call_accepted = [](
      void *ud, const char *call_id, const char *usr_ext_dat, const char *meet_obj) {
    Event e;
    e.name = "notify_call_accepted";
    e.call_id = str(call_id);
    e.usr_ext_dat = str(usr_ext_dat);
    e.meet_obj = str(meet_obj);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.usr_ext_dat, ev.meet_obj);
    };
    deliver(ud, std::move(e), &Handlers::notify_call_accepted, call);
  };
  cb.notify_call_rejected = [](
      void *ud, const char *call_id, int32_t reason, const char *usr_ext_dat) {
    Event e;
    e.name = "notify_call_rejected";
    e.call_id = str(call_id);
    e.reason = Errc(reason);
    e.usr_ext_dat = str(usr_ext_dat);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.reason, ev.usr_ext_dat);
    };
    deliver(ud, std::move(e), &Handlers::notify_call_rejected, call);
  };
  cb.notify_call_hungup = [](void *ud, const char *call_id, const char *usr_ext_dat) {
    Event e;
    e.name = "notify_call_hungup";
    e.call_id = str(call_id);
    e.usr_ext_dat = str(usr_ext_dat);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.call_id, ev.usr_ext_dat);
    };
    deliver(ud, std::move(e), &Handlers::notify_call_hungup, call);
  };
  cb.send_cmd_rlst = [](void *ud, const char *task_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "send_cmd_rlst";
    e.task_id = str(task_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.task_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::send_cmd_rlst, call);
  };
  cb.send_buffer_rlst = [](void *ud, const char *task_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "send_buffer_rlst";
    e.task_id = str(task_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.task_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::send_buffer_rlst, call);
  };
  cb.send_file_rlst = [](
      void *ud, const char *task_id, const char *file_name, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "send_file_rlst";
    e.task_id = str(task_id);
    e.file_name = str(file_name);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.task_id, ev.file_name, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::send_file_rlst, call);
  };
  cb.send_progress = [](
      void *ud, const char *task_id, int64_t sended_len, int64_t total_len, const char *cookie) {
    Event e;
    e.name = "send_progress";
    e.task_id = str(task_id);
    e.sended_len = (sended_len);
    e.total_len = (total_len);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.task_id, ev.sended_len, ev.total_len, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::send_progress, call);
  };
  cb.cancel_send_rlst = [](void *ud, const char *task_id, int32_t sdk_err, const char *cookie) {
    Event e;
    e.name = "cancel_send_rlst";
    e.task_id = str(task_id);
    e.sdk_err = Errc(sdk_err);
    e.cookie = str(cookie);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.task_id, ev.sdk_err, ev.cookie);
    };
    deliver(ud, std::move(e), &Handlers::cancel_send_rlst, call);
  };
  cb.notify_cmd_data = [](void *ud, const char *source_user_id, const char *data_base64) {
    Event e;
    e.name = "notify_cmd_data";
    e.source_user_id = str(source_user_id);
    e.data = from_base64(data_base64);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.source_user_id, ev.data);
    };
    deliver(ud, std::move(e), &Handlers::notify_cmd_data, call);
  };
  cb.notify_buffer_data = [](void *ud, const char *source_user_id, const char *data_base64) {
    Event e;
    e.name = "notify_buffer_data";
    e.source_user_id = str(source_user_id);
    e.data = from_base64(data_base64);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.source_user_id, ev.data);
    };
    deliver(ud, std::move(e), &Handlers::notify_buffer_data, call);
  };
  cb.notify_file_data = [](
      void *ud, const char *source_user_id, const char *tmp_file, const char *org_file_name) {
    Event e;
    e.name = "notify_file_data";
    e.source_user_id = str(source_user_id);
    e.tmp_file = str(tmp_file);
    e.org_file_name = str(org_file_name);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.source_user_id, ev.tmp_file, ev.org_file_name);
    };
    deliver(ud, std::move(e), &Handlers::notify_file_data, call);
  };
  cb.notify_cancel_send = [](void *ud, const char *send_id) {
    Event e;
    e.name = "notify_cancel_send";
    e.send_id = str(send_id);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.send_id);
    };
    deliver(ud, std::move(e), &Handlers::notify_cancel_send, call);
  };
  cb.line_reconnecting = [](void *ud, int32_t sdk_err) {
    Event e;
    e.name = "line_reconnecting";
    e.sdk_err = Errc(sdk_err);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.sdk_err);
    };
    deliver(ud, std::move(e), &Handlers::line_reconnecting, call);
  };
  cb.line_resumed = [](void *ud, int64_t offline_ms) {
    Event e;
    e.name = "line_resumed";
    e.offline_ms = (offline_ms);
    auto call = [](const auto &f, Client &c, const Event &ev) {
      f(c, ev.offline_ms);
    };
    deliver(ud, std::move(e), &Handlers::line_resumed, call);
  };
}

}  // namespace detail
// END generated from src/events.rs

namespace detail {

// What the C library's user_data points at: the handlers, the queue and the way back to the
// Client. Shared: a trampoline keeps it alive while it runs, so a handler may destroy the
// Client.
struct State : std::enable_shared_from_this<State> {
  std::mutex m;
  std::condition_variable arrived;
  Client *self = nullptr;  // null once the Client is destroyed
  Handlers handlers;
  std::shared_ptr<const HandlerErrorFn> on_error;
  std::deque<Event> queue;
  bool queue_events = true;
  bool manual = false;  // dispatch=manual: next_event runs the events itself

  void report(const std::string &event, std::exception_ptr error) {
    std::shared_ptr<const HandlerErrorFn> handler;
    Client *client;
    {
      std::lock_guard<std::mutex> g(m);
      handler = on_error;
      client = self;
    }
    if (handler && *handler && client) {
      try {
        (*handler)(*client, event, error);
        return;
      } catch (...) {
        error = std::current_exception();
      }
    }
    std::string what = "an exception that is not a std::exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception &ex) {
      what = ex.what();
    } catch (...) {
    }
    std::fprintf(stderr, "crvm: the handler of %s threw: %s\n", event.c_str(), what.c_str());
  }
};

template <typename F, typename Call>
void deliver(void *ud, Event &&e, std::shared_ptr<const F> Handlers::*slot, Call call) {
  // Alive until this returns, whatever the handler does to its Client.
  std::shared_ptr<State> state = static_cast<State *>(ud)->shared_from_this();
  std::shared_ptr<const F> handler;
  Client *client;
  {
    std::lock_guard<std::mutex> g(state->m);
    handler = state->handlers.*slot;
    client = state->self;
    if (!handler || !*handler) {
      if (state->queue_events && client) {
        state->queue.push_back(std::move(e));
        state->arrived.notify_all();
      }
      return;
    }
  }
  if (!client) return;
  try {
    call(*handler, *client, e);
  } catch (...) {
    state->report(e.name, std::current_exception());
  }
}

}  // namespace detail

class Client {
 public:
  // A client for the server at `server_addr` ("host:port"); nothing is sent until login().
  explicit Client(Text server_addr) : state_(std::make_shared<detail::State>()) {
    crvm_callbacks cb{};
    detail::set_trampolines(cb);
    state_->self = this;
    detail::check(crvm_create(server_addr.c("Client", "server_addr"), &cb, sizeof cb,
                              state_.get(), &c_),
                  "Client");
  }

  // Logs out if needed and stops the client's threads: no handler runs after it returns. From
  // inside one of its own handlers it returns at once, and that handler finishes safely.
  ~Client() {
    crvm_destroy(c_);
    std::lock_guard<std::mutex> g(state_->m);
    state_->self = nullptr;
    state_->queue.clear();
  }

  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;

  // The underlying handle, for the C functions this wrapper does not cover.
  crvm_client *handle() const noexcept { return c_; }

  // Options (docs/API.md, "Options"), only while logged out.
  void set_option(Text key, Text value) {
    option(key.c("set_option", "key"), value.c("set_option", "value"));
  }
  void set_option(Text key, long long value) {
    option(key.c("set_option", "key"), std::to_string(value).c_str());
  }

  // With dispatch=manual: runs pending events here, waiting up to `timeout` for the first;
  // returns how many ran.
  int poll(std::chrono::milliseconds timeout) { return poll(clamp(timeout)); }
  int poll(int32_t timeout_ms) {
    int32_t n = crvm_poll(c_, timeout_ms);
    if (n < 0) throw Error(static_cast<Errc>(-n), "poll");
    return n;
  }

  // Takes the oldest queued event named one of `names` (any event if `names` is empty),
  // waiting up to `timeout` for one; std::nullopt if none came. Thread-safe. With
  // dispatch=manual it runs the client's events itself meanwhile. Events of other names stay
  // queued, in order.
  std::optional<Event> next_event(std::initializer_list<std::string_view> names,
                                  std::chrono::milliseconds timeout) {
    return take(names.begin(), names.size(), timeout);
  }
  std::optional<Event> next_event(std::string_view name, std::chrono::milliseconds timeout) {
    return take(&name, 1, timeout);
  }

  // Waits for the result `ok` of a request, or one of the events that mean it failed: returns
  // the `ok` event if its code (sdk_err) is 0; throws crvm::Error for a failure (its sdk_err,
  // else its reason; call() is the event's name), crvm::Timeout if neither came in time. Events
  // are matched by name only: with several requests of a kind in flight, use next_event and
  // compare IDs.
  Event wait(std::string_view ok, std::initializer_list<std::string_view> failures,
             std::chrono::milliseconds timeout) {
    std::vector<std::string_view> names(failures);
    names.push_back(ok);
    std::optional<Event> e = take(names.data(), names.size(), timeout);
    if (!e) throw Timeout(std::string(ok), timeout);
    Errc code = e->sdk_err != Errc::NOERR ? e->sdk_err : e->reason;
    if (e->name != ok || code != Errc::NOERR) throw Error(code, e->name);
    return std::move(*e);
  }

  // Whether events without a handler are queued for next_event (the default) or dropped;
  // turning it off empties the queue.
  void queue_events(bool on) {
    std::lock_guard<std::mutex> g(state_->m);
    state_->queue_events = on;
    if (!on) state_->queue.clear();
  }

  // Where an exception escaping a handler goes; {} restores the default (a line on stderr).
  void on_handler_error(HandlerErrorFn f) {
    auto p = f ? std::make_shared<const HandlerErrorFn>(std::move(f)) : nullptr;
    std::lock_guard<std::mutex> g(state_->m);
    state_->on_error = std::move(p);
  }

  // `auth_acnt` is the app ID, `auth_pswd` its secret, `priv_acnt` the user ID ("" lets the
  // server choose), `priv_auth_code` a per-user token. Result: login_success or login_fail.
  void login(Text auth_acnt, Text auth_pswd, Text nick_name, Text priv_acnt,
             Text priv_auth_code = "", Text cookie = "") {
    const char *f = "login";
    detail::check(crvm_login(c_, auth_acnt.c(f, "auth_acnt"), auth_pswd.c(f, "auth_pswd"),
                             nick_name.c(f, "nick_name"), priv_acnt.c(f, "priv_acnt"),
                             priv_auth_code.c(f, "priv_auth_code"), cookie.c(f, "cookie")),
                  f);
  }
  void logout() { detail::check(crvm_logout(c_), "logout"); }
  // The network changed: drop the link and resume the session at once.
  void network_changed() { detail::check(crvm_network_changed(c_), "network_changed"); }

  // Calls a user; returns the new call's ID. Result: call_success or call_fail; then
  // notify_call_accepted, notify_call_rejected or notify_call_hungup.
  std::string call(Text called_user_id, Text meet_obj = "", Text usr_ext_dat = "",
                   Text cookie = "") {
    const char *f = "call";
    char id[CRVM_ID_BUF_LEN];
    detail::check(crvm_call(c_, called_user_id.c(f, "called_user_id"), meet_obj.c(f, "meet_obj"),
                            usr_ext_dat.c(f, "usr_ext_dat"), cookie.c(f, "cookie"), id, sizeof id),
                  f);
    return id;
  }
  void accept_call(Text call_id, Text meet_obj = "", Text usr_ext_dat = "", Text cookie = "") {
    const char *f = "accept_call";
    detail::check(crvm_accept_call(c_, call_id.c(f, "call_id"), meet_obj.c(f, "meet_obj"),
                                   usr_ext_dat.c(f, "usr_ext_dat"), cookie.c(f, "cookie")),
                  f);
  }
  void reject_call(Text call_id, Text usr_ext_dat = "", Text cookie = "") {
    const char *f = "reject_call";
    detail::check(crvm_reject_call(c_, call_id.c(f, "call_id"), usr_ext_dat.c(f, "usr_ext_dat"),
                                   cookie.c(f, "cookie")),
                  f);
  }
  void hungup_call(Text call_id, Text usr_ext_dat = "", Text cookie = "") {
    const char *f = "hungup_call";
    detail::check(crvm_hungup_call(c_, call_id.c(f, "call_id"), usr_ext_dat.c(f, "usr_ext_dat"),
                                   cookie.c(f, "cookie")),
                  f);
  }

  // Sends a small message (at most 51,200 bytes); returns its task ID. Result: send_cmd_rlst.
  std::string send_cmd(Text target_user_id, ByteView data) {
    char id[CRVM_ID_BUF_LEN];
    std::string b64 = detail::to_base64(data);
    detail::check(crvm_send_cmd(c_, target_user_id.c("send_cmd", "target_user_id"), b64.c_str(),
                                id, sizeof id),
                  "send_cmd");
    return id;
  }
  // Sends a block of data; returns its task ID. Progress: send_progress; result:
  // send_buffer_rlst. Cancellable.
  std::string send_buffer(Text target_user_id, ByteView data) {
    char id[CRVM_ID_BUF_LEN];
    std::string b64 = detail::to_base64(data);
    detail::check(crvm_send_buffer(c_, target_user_id.c("send_buffer", "target_user_id"),
                                   b64.c_str(), id, sizeof id),
                  "send_buffer");
    return id;
  }

  // BEGIN generated from include/crvm.h by build.rs: do not edit; `cargo build` rewrites it.
  // The plain requests, crvm_<name> without the handle: a trailing cookie defaults to "",
  // an ID buffer becomes the return value. A refusal throws crvm::Error.
  void set_dnd_status(int32_t dnd_status, Text cookie = "") {
    detail::check(crvm_set_dnd_status(
        c_, dnd_status, cookie.c("set_dnd_status", "cookie")), "set_dnd_status");
  }
  void get_user_status(Text cookie = "") {
    detail::check(crvm_get_user_status(
        c_, cookie.c("get_user_status", "cookie")), "get_user_status");
  }
  void start_user_status_notify(Text cookie = "") {
    detail::check(crvm_start_user_status_notify(
        c_, cookie.c("start_user_status_notify", "cookie")), "start_user_status_notify");
  }
  void stop_user_status_notify(Text cookie = "") {
    detail::check(crvm_stop_user_status_notify(
        c_, cookie.c("stop_user_status_notify", "cookie")), "stop_user_status_notify");
  }
  void create_meeting(Text meet_subject, int32_t create_pswd, Text cookie = "") {
    detail::check(crvm_create_meeting(
        c_, meet_subject.c("create_meeting", "meet_subject"), create_pswd,
        cookie.c("create_meeting", "cookie")), "create_meeting");
  }
  void destroy_meeting(int32_t meet_id, Text cookie = "") {
    detail::check(crvm_destroy_meeting(
        c_, meet_id, cookie.c("destroy_meeting", "cookie")), "destroy_meeting");
  }
  void get_meetings(Text cookie = "") {
    detail::check(crvm_get_meetings(c_, cookie.c("get_meetings", "cookie")), "get_meetings");
  }
  std::string send_file(Text target_user_id, Text file_name) {
    char id[CRVM_ID_BUF_LEN];
    detail::check(crvm_send_file(
        c_, target_user_id.c("send_file", "target_user_id"), file_name.c("send_file", "file_name"),
        id, sizeof id), "send_file");
    return id;
  }
  void cancel_send(Text task_id) {
    detail::check(crvm_cancel_send(c_, task_id.c("cancel_send", "task_id")), "cancel_send");
  }
  // END generated from include/crvm.h

  // BEGIN generated handler setters from src/events.rs: do not edit; `cargo build` rewrites it.
  // on_<event>(handler): sets, replaces or (with {}) removes the handler of an event, at any
  // time and from any thread; an event without a handler goes to next_event's queue.
  void on_login_success(Handlers::login_success_fn f) {
    set(&Handlers::login_success, std::move(f)); }
  void on_login_fail(Handlers::login_fail_fn f) { set(&Handlers::login_fail, std::move(f)); }
  void on_line_off(Handlers::line_off_fn f) { set(&Handlers::line_off, std::move(f)); }
  void on_set_dnd_status_success(Handlers::set_dnd_status_success_fn f) {
    set(&Handlers::set_dnd_status_success, std::move(f)); }
  void on_set_dnd_status_fail(Handlers::set_dnd_status_fail_fn f) {
    set(&Handlers::set_dnd_status_fail, std::move(f)); }
  void on_get_user_status_success(Handlers::get_user_status_success_fn f) {
    set(&Handlers::get_user_status_success, std::move(f)); }
  void on_get_user_status_fail(Handlers::get_user_status_fail_fn f) {
    set(&Handlers::get_user_status_fail, std::move(f)); }
  void on_notify_user_status(Handlers::notify_user_status_fn f) {
    set(&Handlers::notify_user_status, std::move(f)); }
  void on_start_user_status_notify_rslt(Handlers::start_user_status_notify_rslt_fn f) {
    set(&Handlers::start_user_status_notify_rslt, std::move(f)); }
  void on_stop_user_status_notify_rslt(Handlers::stop_user_status_notify_rslt_fn f) {
    set(&Handlers::stop_user_status_notify_rslt, std::move(f)); }
  void on_create_meeting_success(Handlers::create_meeting_success_fn f) {
    set(&Handlers::create_meeting_success, std::move(f)); }
  void on_create_meeting_fail(Handlers::create_meeting_fail_fn f) {
    set(&Handlers::create_meeting_fail, std::move(f)); }
  void on_destroy_meeting_rslt(Handlers::destroy_meeting_rslt_fn f) {
    set(&Handlers::destroy_meeting_rslt, std::move(f)); }
  void on_get_meetings_success(Handlers::get_meetings_success_fn f) {
    set(&Handlers::get_meetings_success, std::move(f)); }
  void on_get_meetings_fail(Handlers::get_meetings_fail_fn f) {
    set(&Handlers::get_meetings_fail, std::move(f)); }
  void on_call_success(Handlers::call_success_fn f) { set(&Handlers::call_success, std::move(f)); }
  void on_call_fail(Handlers::call_fail_fn f) { set(&Handlers::call_fail, std::move(f)); }
  void on_accept_call_success(Handlers::accept_call_success_fn f) {
    set(&Handlers::accept_call_success, std::move(f)); }
  void on_accept_call_fail(Handlers::accept_call_fail_fn f) {
    set(&Handlers::accept_call_fail, std::move(f)); }
  void on_reject_call_success(Handlers::reject_call_success_fn f) {
    set(&Handlers::reject_call_success, std::move(f)); }
  void on_reject_call_fail(Handlers::reject_call_fail_fn f) {
    set(&Handlers::reject_call_fail, std::move(f)); }
  void on_hungup_call_success(Handlers::hungup_call_success_fn f) {
    set(&Handlers::hungup_call_success, std::move(f)); }
  void on_hungup_call_fail(Handlers::hungup_call_fail_fn f) {
    set(&Handlers::hungup_call_fail, std::move(f)); }
  void on_notify_call_in(Handlers::notify_call_in_fn f) {
    set(&Handlers::notify_call_in, std::move(f)); }
  void on_notify_call_accepted(Handlers::notify_call_accepted_fn f) {
    set(&Handlers::notify_call_accepted, std::move(f)); }
  void on_notify_call_rejected(Handlers::notify_call_rejected_fn f) {
    set(&Handlers::notify_call_rejected, std::move(f)); }
  void on_notify_call_hungup(Handlers::notify_call_hungup_fn f) {
    set(&Handlers::notify_call_hungup, std::move(f)); }
  void on_send_cmd_rlst(Handlers::send_cmd_rlst_fn f) {
    set(&Handlers::send_cmd_rlst, std::move(f)); }
  void on_send_buffer_rlst(Handlers::send_buffer_rlst_fn f) {
    set(&Handlers::send_buffer_rlst, std::move(f)); }
  void on_send_file_rlst(Handlers::send_file_rlst_fn f) {
    set(&Handlers::send_file_rlst, std::move(f)); }
  void on_send_progress(Handlers::send_progress_fn f) {
    set(&Handlers::send_progress, std::move(f)); }
  void on_cancel_send_rlst(Handlers::cancel_send_rlst_fn f) {
    set(&Handlers::cancel_send_rlst, std::move(f)); }
  void on_notify_cmd_data(Handlers::notify_cmd_data_fn f) {
    set(&Handlers::notify_cmd_data, std::move(f)); }
  void on_notify_buffer_data(Handlers::notify_buffer_data_fn f) {
    set(&Handlers::notify_buffer_data, std::move(f)); }
  void on_notify_file_data(Handlers::notify_file_data_fn f) {
    set(&Handlers::notify_file_data, std::move(f)); }
  void on_notify_cancel_send(Handlers::notify_cancel_send_fn f) {
    set(&Handlers::notify_cancel_send, std::move(f)); }
  void on_line_reconnecting(Handlers::line_reconnecting_fn f) {
    set(&Handlers::line_reconnecting, std::move(f)); }
  void on_line_resumed(Handlers::line_resumed_fn f) { set(&Handlers::line_resumed, std::move(f)); }
  // END generated handler setters

 private:
  template <typename F>
  void set(std::shared_ptr<const F> Handlers::*slot, F f) {
    auto p = f ? std::make_shared<const F>(std::move(f)) : nullptr;
    std::lock_guard<std::mutex> g(state_->m);
    state_->handlers.*slot = std::move(p);
  }
  // next_event's work: the oldest queued event named one of names[0..count).
  std::optional<Event> take(const std::string_view *names, std::size_t count,
                            std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // A handler run by the poll below may destroy this Client: after it, only `state` is used.
    std::shared_ptr<detail::State> state = state_;
    crvm_client *c = c_;
    std::unique_lock<std::mutex> g(state->m);
    for (;;) {
      auto &q = state->queue;
      for (auto it = q.begin(); it != q.end(); ++it) {
        bool wanted = count == 0;
        for (std::size_t i = 0; i < count; ++i) wanted = wanted || it->name == names[i];
        if (wanted) {
          Event e = std::move(*it);
          q.erase(it);
          return e;
        }
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline || !state->self) return std::nullopt;
      if (state->manual) {
        g.unlock();
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        int32_t n = crvm_poll(c, clamp(left + std::chrono::milliseconds(1)));
        if (n < 0) throw Error(static_cast<Errc>(-n), "next_event");
        g.lock();
      } else {
        state->arrived.wait_until(g, deadline);
      }
    }
  }
  void option(const char *key, const char *value) {
    detail::check(crvm_set_option(c_, key, value), "set_option");
    if (std::string_view(key) == "dispatch") {
      std::lock_guard<std::mutex> g(state_->m);
      state_->manual = std::string_view(value) == "manual";
    }
  }
  static int32_t clamp(std::chrono::milliseconds t) {
    return static_cast<int32_t>(std::min<long long>(t.count(), INT32_MAX));
  }

  std::shared_ptr<detail::State> state_;
  crvm_client *c_ = nullptr;
};

inline std::string version() { return crvm_version(); }

}  // namespace crvm

#endif  // CRVM_HPP
