// slimnn/train/progress.hpp — a progress display for long loops, on stderr.
//
// On a terminal it redraws one bar in place ("epoch 2/8 [=====>    ] 412/938 loss 0.31");
// otherwise (a pipe, a CI log) it stays silent until finish(), which prints one plain
// line. Thread safety: one display per thread.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace slimnn {

class progress_bar {
 public:
  progress_bar(std::string label, long total, std::FILE* out = stderr)
      : label_(std::move(label)), total_(total > 0 ? total : 1), out_(out),
        terminal_(::isatty(::fileno(out)) != 0), start_(std::chrono::steady_clock::now()) {}

  static bool is_terminal(std::FILE* out = stderr) { return ::isatty(::fileno(out)) != 0; }

  /// Redraws the bar (terminals only, at most ~10 times a second).
  void update(long done, const std::string& detail = {}) {
    if (!terminal_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int width = 30;
    const int filled = int(double(width) * double(done) / double(total_));
    std::string bar(std::size_t(filled), '=');
    if (filled < width) bar += '>' + std::string(std::size_t(width - filled - 1), ' ');
    std::fprintf(out_, "\r%s [%s] %ld/%ld %s (%.0fs)\x1b[K", label_.c_str(), bar.c_str(), done, total_,
                 detail.c_str(), seconds());
    std::fflush(out_);
  }

  /// Ends the display with one line: "<label> <summary> (12.3s)".
  void finish(const std::string& summary) {
    std::fprintf(out_, "%s%s %s (%.1fs)\n", terminal_ ? "\r\x1b[K" : "", label_.c_str(), summary.c_str(),
                 seconds());
    std::fflush(out_);
  }

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::string label_;
  long total_;
  std::FILE* out_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_draw_{};
};

}  // namespace slimnn
