// file_cpp: alice sends bob a 20 MiB file with a progress line, then starts a second one and
// cancels it a quarter of the way through. Every wait has a deadline. Usage: file_cpp [HOST:PORT]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crvm.hpp"

using namespace std::chrono_literals;
using Str = const std::string &;
namespace fs = std::filesystem;

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[argc - 1] : "127.0.0.1:5210";
  const fs::path dir = fs::absolute("file_cpp_files"), big = dir / "big.bin";
  fs::create_directories(dir / "inbox");
  {
    std::vector<char> chunk(1 << 20);
    for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = char(i * 131 % 251);
    std::ofstream out(big, std::ios::binary);
    for (int mib = 0; mib < 20; ++mib) out.write(chunk.data(), std::streamsize(chunk.size()));
  }
  int status = 0;
  try {
    crvm::Client alice(addr), bob(addr);
    bob.set_option("download_dir", (dir / "inbox").string());
    alice.login("demo", "demo-secret", "Alice", "alice");
    alice.wait("login_success", {"login_fail"}, 15s);
    bob.login("demo", "demo-secret", "Bob", "bob");
    bob.wait("login_success", {"login_fail"}, 15s);

    // 1. A whole file, with progress (at least every 1 MiB or 250 ms, and a last one at 100%).
    alice.on_send_progress([](crvm::Client &, Str, int64_t sent, int64_t total, Str) {
      std::printf("\ralice: %3d%% of %lld bytes", int(sent * 100 / total), (long long)total);
      if (sent == total) std::printf("\n");
      std::fflush(stdout);
    });
    std::string task = alice.send_file("bob", big.string());
    alice.wait("send_file_rlst", {}, 120s);  // 0: bob has it all, checksum matched
    crvm::Event got = bob.wait("notify_file_data", {}, 10s);
    std::printf("bob: %s from %s, %ju bytes\n", got.org_file_name.c_str(),
                got.source_user_id.c_str(), std::uintmax_t(fs::file_size(got.tmp_file)));

    // 2. The same file again, cancelled from the progress handler once a quarter is through.
    alice.on_send_progress([](crvm::Client &me, Str task_id, int64_t sent, int64_t total, Str) {
      if (sent * 4 >= total) {
        me.on_send_progress({});  // once is enough
        me.cancel_send(task_id);
      }
    });
    task = alice.send_file("bob", big.string());
    auto cancelled = alice.next_event("cancel_send_rlst", 120s);
    if (!cancelled) throw crvm::Timeout("cancel_send_rlst", 120s);
    if (cancelled->sdk_err == crvm::Errc::NOERR) {
      bob.wait("notify_cancel_send", {}, 10s);  // bob discarded what had arrived
      std::puts("alice: second transfer cancelled; bob was told");
    } else {  // 1104: it had finished before the cancel reached it
      alice.wait("send_file_rlst", {}, 10s);
      std::puts("alice: second transfer finished before the cancel");
    }
  } catch (const std::exception &e) {  // crvm::Error (refused or failed) or crvm::Timeout
    std::fprintf(stderr, "failed: %s\n", e.what());
    status = 1;
  }
  fs::remove_all(dir);
  return status;
}
