// The C++ wrapper (include/crvm.hpp) end to end against a real server (address in argv[1]):
// refusals throw crvm::Error with an Errc and a what() naming the call, null strings included;
// handlers get their Client&, can be replaced at any time, and an exception escaping one
// reaches on_handler_error; events without a handler wait in next_event's queue; bytes go in
// and come out unchanged (binary too); statuses and meetings arrive parsed; manual dispatch.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <stdexcept>
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

using namespace std::chrono_literals;

// Bounds a wait that should succeed; a failure, not the pace, decides when it expires.
constexpr auto kWait = 20s;

template <typename F>
static crvm::Error refusal(F f) {
  try {
    f();
  } catch (const crvm::Error &e) {
    return e;
  }
  std::fprintf(stderr, "expected a crvm::Error\n");
  std::exit(1);
}

static bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

// The next event named `name`, which must come.
static crvm::Event expect(crvm::Client &c, const char *name) {
  auto e = c.next_event(name, kWait);
  if (!e) {
    std::fprintf(stderr, "no %s in time\n", name);
    std::exit(1);
  }
  return *e;
}

static void refusals(const std::string &addr) {
  crvm::Error bad = refusal([] { crvm::Client c("no-port"); });
  CHECK(bad.code() == crvm::Errc::MEETPARAM_ERR && bad.value() == 5 && bad.call() == "Client");
  CHECK(contains(bad.what(), "Client: ") && contains(bad.what(), "CRVIDEOSDK_MEETPARAM_ERR 5"));
  CHECK(std::string(crvm::name(crvm::Errc::ERR_OFFLINE)) == "CRVIDEOSDK_ERR_OFFLINE");
  CHECK(std::string(crvm::text(crvm::Errc::ERR_OFFLINE)) == crvm_err_str(603));

  crvm::Client c(addr);
  crvm::Error e = refusal([&] { c.set_option("no_such_key", "1"); });
  CHECK(e.code() == crvm::Errc::MEETPARAM_ERR && contains(e.what(), "set_option"));
  CHECK(refusal([&] { c.get_meetings(); }).code() == crvm::Errc::NOT_LOGIN);
  // A null string (getenv of an unset variable) is a crvm::Error 5 naming the parameter.
  const char *unset = std::getenv("CRVM_TEST_SURELY_UNSET_VARIABLE");
  e = refusal([&] { c.login("demo", "demo-secret", "", unset); });
  CHECK(e.code() == crvm::Errc::MEETPARAM_ERR && e.call() == "login");
  CHECK(contains(e.what(), "priv_acnt is null"));
  CHECK(refusal([&] { c.set_option(nullptr, "1"); }).code() == crvm::Errc::MEETPARAM_ERR);
  CHECK(refusal([&] { crvm::Client n(nullptr); }).code() == crvm::Errc::MEETPARAM_ERR);
  // A NUL inside a std::string would cut it short in C: refused too.
  e = refusal([&] { c.call(std::string("bob\0x", 5)); });
  CHECK(e.code() == crvm::Errc::MEETPARAM_ERR && contains(e.what(), "called_user_id has a NUL"));
  // The refused login sent nothing: no event is queued.
  CHECK(!c.next_event({}, 0ms));
  // Integer options.
  c.set_option("request_timeout_ms", 5000);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const std::string addr = argv[argc - 1];
  refusals(addr);

  crvm::Client alice(addr), bob(addr);

  // A failed login, through the queue: the code is an Errc.
  alice.login("demo", "wrong-secret", "", "alice");
  crvm::Event e = expect(alice, "login_fail");
  CHECK(e.sdk_err == crvm::Errc::ANCTPSWD_ERR);

  // A handler gets its Client& (no pointer kept by the app) and may be set at any time.
  std::promise<crvm::Client *> seen;
  alice.on_login_success([&](crvm::Client &c, const std::string &user, const std::string &cookie) {
    CHECK(user == "alice" && cookie == "c1");
    seen.set_value(&c);
  });
  alice.login("demo", "demo-secret", "Alice", "alice", "", "c1");
  auto handled = seen.get_future();
  CHECK(handled.wait_for(kWait) == std::future_status::ready && handled.get() == &alice);
  alice.on_login_success({});  // removed: alice's next login_success would be queued
  bob.login("demo", "demo-secret", "Bob", "bob", "", "c2");
  e = expect(bob, "login_success");
  CHECK(e.usr_id == "bob" && e.cookie == "c2");
  alice.get_user_status("s1");
  e = expect(alice, "get_user_status_success");

  // Statuses arrive parsed.
  CHECK(e.cookie == "s1" && e.statuses.size() >= 2);
  bool found = false;
  for (const crvm::UserStatus &s : e.statuses) {
    if (s.user_id == "bob") {
      found = true;
      CHECK(s.presence == crvm::Presence::online && s.dnd == 0);
    }
  }
  CHECK(found);
  alice.start_user_status_notify("sub");
  CHECK(expect(alice, "start_user_status_notify_rslt").sdk_err == crvm::Errc::NOERR);
  bob.set_dnd_status(3);
  for (;;) {
    e = expect(alice, "notify_user_status");
    if (e.status.user_id == "bob") break;
  }
  CHECK(e.status.dnd == 3 && e.status.presence == crvm::Presence::online && e.cookie == "sub");
  expect(bob, "set_dnd_status_success");
  // DND on: the call fails with 602, as an Errc.
  alice.call("bob");
  CHECK(expect(alice, "call_fail").sdk_err == crvm::Errc::ERR_BUSY);
  bob.set_dnd_status(0);
  expect(bob, "set_dnd_status_success");
  alice.stop_user_status_notify();
  expect(alice, "stop_user_status_notify_rslt");

  // An exception escaping a handler goes to on_handler_error, with the event's name; the
  // client carries on.
  std::promise<std::string> reported;
  alice.on_handler_error([&](crvm::Client &c, const std::string &event, std::exception_ptr ex) {
    CHECK(&c == &alice);
    try {
      std::rethrow_exception(ex);
    } catch (const std::runtime_error &err) {
      reported.set_value(event + ": " + err.what());
    }
  });
  alice.on_get_meetings_success([](crvm::Client &, const std::vector<crvm::Meeting> &,
                                   const std::string &) { throw std::runtime_error("boom"); });
  alice.get_meetings();
  auto report = reported.get_future();
  CHECK(report.wait_for(kWait) == std::future_status::ready);
  CHECK(report.get() == "get_meetings_success: boom");
  alice.on_get_meetings_success({});
  alice.on_handler_error({});
  alice.get_meetings("after");
  CHECK(expect(alice, "get_meetings_success").cookie == "after");

  // Meetings arrive parsed.
  alice.create_meeting("weekly \"sync\" \xc3\xa9t\xc3\xa9", 1, "m");
  e = expect(alice, "create_meeting_success");
  const crvm::Meeting m = e.meeting;
  CHECK(m.id > 0 && m.subject == "weekly \"sync\" \xc3\xa9t\xc3\xa9" && m.creator == "alice");
  CHECK(m.password.size() == 6 && m.start_time > 1700000000);
  alice.get_meetings();
  e = expect(alice, "get_meetings_success");
  found = false;
  for (const crvm::Meeting &x : e.meetings) found = found || (x.id == m.id && x.subject == m.subject);
  CHECK(found);
  alice.destroy_meeting(m.id);
  CHECK(expect(alice, "destroy_meeting_rslt").sdk_err == crvm::Errc::NOERR);

  // A call answered from a handler, through the Client& it is given.
  bob.on_notify_call_in([](crvm::Client &me, const std::string &id, const std::string &meet,
                           const std::string &from, const std::string &ext) {
    CHECK(from == "alice" && ext == "hi" && meet == "{\"ID\":1}");
    me.accept_call(id, "", "yes");
  });
  std::string id = alice.call("bob", "{\"ID\":1}", "hi");
  CHECK(!id.empty() && id.size() < CRVM_ID_BUF_LEN);
  CHECK(expect(alice, "call_success").call_id == id);
  e = expect(alice, "notify_call_accepted");
  CHECK(e.call_id == id && e.usr_ext_dat == "yes");
  CHECK(expect(bob, "accept_call_success").call_id == id);
  bob.hungup_call(id);
  CHECK(expect(bob, "hungup_call_success").call_id == id);
  CHECK(expect(alice, "notify_call_hungup").call_id == id);

  // Bytes in and out, unchanged: binary cmds and buffers from several container types.
  const std::vector<std::uint8_t> binary = {0, 1, 2, 0xfe, 0xff, '=', '\n'};
  std::string task = alice.send_cmd("bob", binary);
  e = expect(bob, "notify_cmd_data");
  CHECK(e.source_user_id == "alice" && e.data == binary);
  CHECK(expect(alice, "send_cmd_rlst").task_id == task);
  alice.send_cmd("bob", "See you there");
  e = expect(bob, "notify_cmd_data");
  CHECK(std::string(e.data.begin(), e.data.end()) == "See you there");
  for (std::size_t n : {0, 1, 2, 3, 4, 5, 1000}) {
    std::vector<char> buf(n);
    for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(i * 7 + n);
    task = alice.send_buffer("bob", buf);
    e = expect(bob, "notify_buffer_data");
    CHECK(e.data.size() == n && std::equal(buf.begin(), buf.end(), e.data.begin(),
                                           [](char a, std::uint8_t b) { return std::uint8_t(a) == b; }));
    e = expect(alice, "send_buffer_rlst");
    CHECK(e.task_id == task && e.sdk_err == crvm::Errc::NOERR);
  }
  std::array<std::uint8_t, 3> arr = {9, 8, 7};
  alice.send_buffer("bob", crvm::ByteView(arr.data(), arr.size()));
  CHECK(expect(bob, "notify_buffer_data").data == crvm::Bytes(arr.begin(), arr.end()));
  CHECK(refusal([&] { alice.send_cmd("bob", std::string(60000, 'x')); }).code() ==
        crvm::Errc::SENDCMD_LARGE);

  // Events of other names stay queued, in order; several names at once.
  alice.get_user_status("q1");
  alice.get_meetings("q2");
  e = expect(alice, "get_meetings_success");
  CHECK(e.cookie == "q2");
  auto any = alice.next_event({"get_user_status_success", "get_user_status_fail"}, kWait);
  CHECK(any && any->cookie == "q1");
  // queue_events(false): nothing is kept.
  alice.queue_events(false);
  alice.get_meetings("dropped");
  std::promise<void> passed;  // the dropped result came before this one
  alice.on_get_user_status_success(
      [&](crvm::Client &, const std::vector<crvm::UserStatus> &, const std::string &) {
        passed.set_value();
      });
  alice.get_user_status();
  CHECK(passed.get_future().wait_for(kWait) == std::future_status::ready);
  alice.on_get_user_status_success({});
  alice.queue_events(true);
  alice.get_meetings("kept");
  CHECK(expect(alice, "get_meetings_success").cookie == "kept");
  // {}: any event.
  alice.get_meetings("any");
  auto next = alice.next_event({}, kWait);
  CHECK(next && next->name == "get_meetings_success" && next->cookie == "any");

  // Manual dispatch: next_event runs the events itself.
  crvm::Client manual(addr);
  manual.set_option("dispatch", "manual");
  manual.login("demo", "demo-secret", "", "manual", "", "m");
  CHECK(expect(manual, "login_success").cookie == "m");
  manual.get_user_status();
  CHECK(!expect(manual, "get_user_status_success").statuses.empty());
  // poll() runs events too (the handler here, the queue for the rest).
  std::atomic<bool> polled{false};
  manual.on_get_meetings_success([&](crvm::Client &, const std::vector<crvm::Meeting> &,
                                     const std::string &) { polled = true; });
  manual.get_meetings();
  for (int i = 0; i < 100 && !polled; ++i) manual.poll(200);
  CHECK(polled);
  std::puts("crvm.hpp: all checks passed");
  return 0;
}
