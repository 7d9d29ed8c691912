// A tiny thread-safe event log for the C++ test and example: handlers push lines, the main
// thread waits for one that starts with a prefix (the timeout only bounds a failure).
#ifndef CRVM_TEST_INBOX_HPP
#define CRVM_TEST_INBOX_HPP

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>

class Inbox {
 public:
  void push(std::string line) {
    std::lock_guard<std::mutex> g(m_);
    lines_.push_back(std::move(line));
    cv_.notify_all();
  }

  // Removes and returns the first line starting with `prefix`; exits the program on timeout.
  std::string wait(const std::string &prefix) {
    std::unique_lock<std::mutex> g(m_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    for (;;) {
      for (auto it = lines_.begin(); it != lines_.end(); ++it) {
        if (it->compare(0, prefix.size(), prefix) == 0) {
          std::string line = *it;
          lines_.erase(it);
          return line;
        }
      }
      if (cv_.wait_until(g, deadline) == std::cv_status::timeout) {
        std::fprintf(stderr, "no event \"%s\" in time; have:\n", prefix.c_str());
        for (auto &l : lines_) std::fprintf(stderr, "  %s\n", l.c_str());
        std::exit(1);
      }
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
};

#endif
