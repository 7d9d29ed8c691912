// A handler that destroys its own crvm::Client, or replaces itself, keeps running safely (run
// under ASan by scripts/sanitize.sh, where the bug it guards against was a heap-use-after-free
// in the trampoline: the running std::function freed with the Client, its captures read after).
// Against a real server (address in argv[1]).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>

#include "crvm.hpp"

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

using namespace std::chrono_literals;
constexpr auto kWait = 20s;

using Strs = const std::string &;

// The user's report: a unique_ptr reset inside one of the client's handlers, then a capture
// (held on the heap by the std::function) read after the reset.
static void reset_inside_its_own_handler(const std::string &addr) {
  auto client = std::make_unique<crvm::Client>(addr);
  std::promise<std::string> done;
  const std::string capture(4096, 'x');  // large: stored in the std::function's heap block
  client->on_login_success([&client, &done, capture](crvm::Client &self, Strs user, Strs) {
    CHECK(&self == client.get() && user == "alice");
    client.reset();              // destroys the Client, logging out, from inside its handler
    done.set_value(capture);     // the handler and its captures are still alive
  });
  client->login("demo", "demo-secret", "", "alice");
  auto f = done.get_future();
  CHECK(f.wait_for(kWait) == std::future_status::ready);
  CHECK(f.get() == std::string(4096, 'x'));
  CHECK(client == nullptr);
}

// A handler that replaces itself, then uses its captures.
static void replaced_while_running(const std::string &addr) {
  crvm::Client c(addr);
  std::promise<std::string> done;
  const std::string capture(4096, 'y');
  c.on_login_success([&done, capture](crvm::Client &self, Strs, Strs) {
    self.on_login_success({});  // the running handler outlives its removal
    done.set_value(capture);
  });
  c.login("demo", "demo-secret", "", "bob");
  auto f = done.get_future();
  CHECK(f.wait_for(kWait) == std::future_status::ready && f.get() == std::string(4096, 'y'));
}

// Destroyed inside a handler that then throws: there is no Client left to report to, so the
// exception is written to stderr; nothing crashes.
static void destroyed_then_throws(const std::string &addr) {
  auto client = std::make_unique<crvm::Client>(addr);
  std::promise<void> reached;
  client->on_login_success([&](crvm::Client &, Strs, Strs) {
    client.reset();
    reached.set_value();
    throw std::runtime_error("thrown after the client was destroyed (expected in this test)");
  });
  client->login("demo", "demo-secret", "", "carol");
  CHECK(reached.get_future().wait_for(kWait) == std::future_status::ready);
}

// With dispatch=manual the handler runs inside next_event, which must not touch the destroyed
// Client afterwards: it returns std::nullopt.
static void destroyed_inside_next_event(const std::string &addr) {
  auto client = std::make_unique<crvm::Client>(addr);
  client->set_option("dispatch", "manual");
  bool ran = false;
  client->on_login_success([&](crvm::Client &, Strs, Strs) {
    client.reset();
    ran = true;
  });
  client->login("demo", "demo-secret", "", "dave");
  crvm::Client *raw = client.get();
  CHECK(!raw->next_event("never", kWait));
  CHECK(ran && client == nullptr);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const std::string addr = argv[argc - 1];
  reset_inside_its_own_handler(addr);
  replaced_while_running(addr);
  destroyed_then_throws(addr);
  destroyed_inside_next_event(addr);
  std::puts("crvm.hpp: destroying or replacing from inside a handler is safe");
  return 0;
}
