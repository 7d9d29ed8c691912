// The wrapper from C++20 code (this file is built as C++20; the rest of the suite as C++17):
// std::span<const std::byte> and char8_t text go in as bytes and come out unchanged. Against a
// real server (address in argv[1]).
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "crvm.hpp"

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

using namespace std::chrono_literals;

int main(int argc, char **argv) {
  static_assert(__cplusplus >= 202002L, "built as C++20");
  if (argc < 2) return 2;
  const std::string_view addr = argv[argc - 1];
  try {
    crvm::Client alice(addr), bob(addr);
    alice.login("demo", "demo-secret", "", "alice20");
    alice.wait("login_success", {"login_fail"}, 20s);
    bob.login("demo", "demo-secret", "", "bob20");
    bob.wait("login_success", {"login_fail"}, 20s);

    const std::array<std::byte, 4> raw = {std::byte{0}, std::byte{0xff}, std::byte{1},
                                          std::byte{'='}};
    alice.send_buffer("bob20", std::span<const std::byte>(raw));
    CHECK((bob.wait("notify_buffer_data", {}, 20s).data == crvm::Bytes{0, 0xff, 1, '='}));
    alice.wait("send_buffer_rlst", {}, 20s);

    alice.send_cmd("bob20", std::u8string_view(u8"\u00e9t\u00e9"));
    crvm::Event e = bob.wait("notify_cmd_data", {}, 20s);
    CHECK((e.data == crvm::Bytes{0xc3, 0xa9, 't', 0xc3, 0xa9}));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "failed: %s\n", e.what());
    return 1;
  }
  std::puts("crvm.hpp from C++20: all checks passed");
  return 0;
}
