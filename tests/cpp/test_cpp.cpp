// The C++ wrapper (include/crvm.hpp) end to end against a real server (address in argv[1]):
// refusals throw crvm::Error with the code, events reach std::function handlers, an exception
// thrown by a handler does not escape into C, moves keep the events attached, manual dispatch.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "crvm.hpp"
#include "inbox.hpp"

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                   \
    }                                                                 \
  } while (0)

template <typename F>
static int refusal(F f) {
  try {
    f();
  } catch (const crvm::Error &e) {
    CHECK(std::string(e.what()) == crvm_err_str(e.code()));
    return e.code();
  }
  return 0;
}

static crvm::Events recording(Inbox &in) {
  crvm::Events ev;
  ev.login_success = [&in](const std::string &user, const std::string &cookie) {
    in.push("login_success " + user + " " + cookie);
  };
  ev.login_fail = [&in](int32_t err, const std::string &) {
    in.push("login_fail " + std::to_string(err));
  };
  ev.get_user_status_success = [&in](const std::string &json, const std::string &cookie) {
    in.push("status " + json + " " + cookie);
    throw std::runtime_error("a handler that throws must not take the client down");
  };
  ev.notify_call_in = [&in](const std::string &id, const std::string &meet, const std::string &from,
                            const std::string &ext) {
    in.push("call_in " + id + " " + meet + " " + from + " " + ext);
  };
  ev.accept_call_success = [&in](const std::string &id, const std::string &) {
    in.push("accepted " + id);
  };
  ev.notify_call_accepted = [&in](const std::string &id, const std::string &ext,
                                  const std::string &) { in.push("call_accepted " + id + " " + ext); };
  ev.hungup_call_success = [&in](const std::string &id, const std::string &) {
    in.push("hungup " + id);
  };
  ev.notify_call_hungup = [&in](const std::string &id, const std::string &) {
    in.push("call_hungup " + id);
  };
  ev.send_cmd_rlst = [&in](const std::string &task, int32_t err, const std::string &) {
    in.push("cmd_rlst " + task + " " + std::to_string(err));
  };
  ev.notify_cmd_data = [&in](const std::string &from, const std::string &data) {
    in.push("cmd " + from + " " + data);
  };
  return ev;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const std::string addr = argv[argc - 1];

  // Refusals carry their code.
  CHECK(refusal([] { crvm::Client bad("no-port", crvm::Events{}); }) == CRVIDEOSDK_MEETPARAM_ERR);
  Inbox a_in, b_in;
  crvm::Client alice(addr, recording(a_in));
  CHECK(refusal([&] { alice.set_option("no_such_key", "1"); }) == CRVIDEOSDK_MEETPARAM_ERR);
  CHECK(refusal([&] { alice.get_meetings(); }) == CRVIDEOSDK_NOT_LOGIN);
  alice.login("demo", "wrong-secret", "", "alice");
  CHECK(a_in.wait("login_fail") == "login_fail 7");
  alice.login("demo", "demo-secret", "Alice", "alice", "", "c1");
  CHECK(a_in.wait("login_success") == "login_success alice c1");
  CHECK(refusal([&] { alice.login("demo", "demo-secret", "", "alice"); }) ==
        CRVIDEOSDK_LOGINSTATE_ERROR);

  // A handler that throws: the exception stays in the wrapper, the client carries on.
  alice.get_user_status("s1");
  CHECK(a_in.wait("status").find("\"userID\":\"alice\"") != std::string::npos);
  alice.get_user_status("s2");
  CHECK(a_in.wait("status").find(" s2") != std::string::npos);

  // A moved-from client is empty; the moved-to one keeps its events.
  crvm::Client bob_first(addr, recording(b_in));
  crvm::Client bob = std::move(bob_first);
  CHECK(bob_first.handle() == nullptr);
  bob.login("demo", "demo-secret", "Bob", "bob", "", "c2");
  CHECK(b_in.wait("login_success") == "login_success bob c2");

  // A call and a cmd.
  std::string id = alice.call("bob", "{\"ID\":1}", "hi");
  CHECK(!id.empty() && id.size() < CRVM_ID_BUF_LEN);
  CHECK(b_in.wait("call_in") == "call_in " + id + " {\"ID\":1} alice hi");
  bob.accept_call(id, "", "yes");
  CHECK(b_in.wait("accepted") == "accepted " + id);
  CHECK(a_in.wait("call_accepted") == "call_accepted " + id + " yes");
  bob.hungup_call(id);
  CHECK(b_in.wait("hungup") == "hungup " + id);
  CHECK(a_in.wait("call_hungup") == "call_hungup " + id);
  std::string task = alice.send_cmd("bob", "aGk=");
  CHECK(b_in.wait("cmd ") == "cmd alice aGk=");
  CHECK(a_in.wait("cmd_rlst") == "cmd_rlst " + task + " 0");
  CHECK(refusal([&] { alice.send_cmd("bob", "not base64"); }) == CRVIDEOSDK_BASE64_COV_ERR);

  // Manual dispatch through the wrapper.
  Inbox m_in;
  crvm::Client manual(addr, recording(m_in));
  manual.set_option("dispatch", "manual");
  manual.login("demo", "demo-secret", "", "manual", "", "m");
  int ran = 0;
  while (ran == 0) ran = manual.poll(1000);
  CHECK(m_in.wait("login_success") == "login_success manual m");
  std::puts("crvm.hpp: all checks passed");
  return 0;
}
