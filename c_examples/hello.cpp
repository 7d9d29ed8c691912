// hello_cpp: the smallest C++ app: log in, then quit. Events run inside next_event
// (dispatch=manual), so this program has one thread. Usage: hello_cpp [HOST:PORT]
#include <chrono>
#include <cstdio>

#include "crvm.hpp"

int main(int argc, char **argv) {
  try {
    crvm::Client c(argc > 1 ? argv[argc - 1] : "127.0.0.1:5210");
    c.set_option("dispatch", "manual");
    c.login("demo", "demo-secret", "Alice", "alice");
    crvm::Event e = c.wait("login_success", {"login_fail"}, std::chrono::seconds(15));
    std::printf("logged in as %s\n", e.usr_id.c_str());
  } catch (const std::exception &e) {  // crvm::Error or crvm::Timeout
    std::fprintf(stderr, "failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
