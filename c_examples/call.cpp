// call_cpp: alice calls bob, bob accepts from his handler, alice sends him a note and a file,
// then hangs up. Every wait has a deadline and every failure is reported: without a server it
// exits 1 with "failed: login_fail: could not connect (...)". Usage: call_cpp [HOST:PORT]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "crvm.hpp"

using namespace std::chrono_literals;
using Str = const std::string &;
namespace fs = std::filesystem;

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[argc - 1] : "127.0.0.1:5210";
  const fs::path dir = fs::absolute("call_cpp_files"), note = dir / "agenda.txt";
  fs::create_directories(dir / "inbox");
  std::ofstream(note) << "Agenda: crvm release\n";
  int status = 0;
  try {
    crvm::Client alice(addr), bob(addr);
    bob.set_option("download_dir", (dir / "inbox").string());  // default: the user's Downloads
    // Bob answers from his handler: it gets its own Client.
    bob.on_notify_call_in([](crvm::Client &me, Str call_id, Str, Str from, Str) {
      std::printf("bob: %s is calling\n", from.c_str());
      me.accept_call(call_id, "", "hello!");
    });
    bob.on_notify_cmd_data([](crvm::Client &, Str from, const crvm::Bytes &data) {
      std::string text(data.begin(), data.end());
      std::printf("bob: note from %s: %s\n", from.c_str(), text.c_str());
    });
    bob.on_notify_file_data([](crvm::Client &, Str from, Str saved_as, Str) {
      std::printf("bob: file from %s saved as %s\n", from.c_str(), saved_as.c_str());
    });

    alice.login("demo", "demo-secret", "Alice", "alice");
    alice.wait("login_success", {"login_fail"}, 15s);
    bob.login("demo", "demo-secret", "Bob", "bob");
    bob.wait("login_success", {"login_fail"}, 15s);

    std::string call = alice.call("bob");
    alice.wait("call_success", {"call_fail"}, 10s);
    auto accepted =
        alice.wait("notify_call_accepted", {"notify_call_rejected", "notify_call_hungup"}, 30s);
    std::printf("alice: bob accepted (\"%s\")\n", accepted.usr_ext_dat.c_str());

    alice.send_cmd("bob", "See you there");
    alice.wait("send_cmd_rlst", {}, 10s);
    alice.send_file("bob", note.string());
    alice.wait("send_file_rlst", {}, 60s);  // throws if the file did not arrive whole
    alice.hungup_call(call);
    alice.wait("hungup_call_success", {"hungup_call_fail"}, 10s);
    std::puts("alice: done");
  } catch (const std::exception &e) {  // crvm::Error (refused or failed) or crvm::Timeout
    std::fprintf(stderr, "failed: %s\n", e.what());
    status = 1;
  }
  fs::remove_all(dir);
  return status;
}
