// The C++ version of call.c: alice calls bob, bob accepts, alice sends him a note, hangs up.
// Usage: call_cpp [HOST:PORT]   (default 127.0.0.1:5210, a `crvm-server --dev`)
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "crvm.hpp"

// Blocks until `fire()` was called (once per step is all this example needs).
class Signal {
 public:
  void fire() {
    std::lock_guard<std::mutex> g(m_);
    fired_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [this] { return fired_; });
    fired_ = false;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool fired_ = false;
};

int main(int argc, char **argv) {
  const std::string addr = argc > 1 ? argv[argc - 1] : "127.0.0.1:5210";
  Signal step;
  try {
    crvm::Events a, b;
    a.login_success = [&](const std::string &user, const std::string &) {
      std::printf("%s logged in\n", user.c_str());
      step.fire();
    };
    b.login_success = a.login_success;
    a.notify_call_accepted = [&](const std::string &, const std::string &ext, const std::string &) {
      std::printf("alice: bob accepted (\"%s\")\n", ext.c_str());
      step.fire();
    };
    a.send_cmd_rlst = [&](const std::string &, int32_t err, const std::string &) {
      std::printf("alice: note delivered (%d)\n", err);
      step.fire();
    };
    a.hungup_call_success = [&](const std::string &, const std::string &) { step.fire(); };

    crvm::Client alice(addr, a), *bob_ptr = nullptr;
    b.notify_call_in = [&](const std::string &id, const std::string &, const std::string &from,
                           const std::string &) {
      std::printf("bob: %s is calling\n", from.c_str());
      bob_ptr->accept_call(id, "", "hello!");  // calling back into the library is allowed
    };
    b.notify_cmd_data = [](const std::string &from, const std::string &data) {
      std::printf("bob: note from %s (base64 %s)\n", from.c_str(), data.c_str());
    };
    b.notify_call_hungup = [](const std::string &, const std::string &) {
      std::printf("bob: call ended\n");
    };
    crvm::Client bob(addr, b);
    bob_ptr = &bob;

    alice.login("demo", "demo-secret", "Alice", "alice");
    step.wait();
    bob.login("demo", "demo-secret", "Bob", "bob");
    step.wait();
    std::string call = alice.call("bob");
    step.wait();  // accepted
    alice.send_cmd("bob", "U2VlIHlvdSB0aGVyZQ==");  // "See you there"
    step.wait();
    alice.hungup_call(call);
    step.wait();
  } catch (const crvm::Error &e) {
    std::fprintf(stderr, "refused: %s (%d)\n", e.what(), e.code());
    return 1;
  }
  return 0;
}
