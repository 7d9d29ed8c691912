#include <cstdio>
#include <string>

#include "crvm.hpp"

int main(int argc, char **argv) {
  bool done = false, ok = false;
  crvm::Events ev;
  ev.login_success = [&](const std::string &user, const std::string &) {
    std::printf("logged in as %s\n", user.c_str());
    done = ok = true;
  };
  ev.login_fail = [&](int32_t code, const std::string &) {
    std::printf("login failed: %d %s\n", code, crvm_err_str(code));
    done = true;
  };
  try {
    crvm::Client c(argc > 1 ? argv[1] : "127.0.0.1:5210", std::move(ev));
    c.set_option("dispatch", "manual");  // events run inside c.poll()
    c.login("demo", "demo-secret", "Alice", "alice");  // throws crvm::Error if refused
    while (!done) c.poll(1000);
  } catch (const crvm::Error &e) {
    std::printf("refused: %s\n", e.what());
  }
  return ok ? 0 : 1;
}
