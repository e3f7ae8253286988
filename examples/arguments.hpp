// examples/arguments.hpp — strict command-line parsing for the example programs.
//
//   examples::argument_reader args(argc, argv);
//   while (args.next()) {
//     if (args.is("--threads")) threads = args.count();   // "--threads -3" is an error
//     else if (args.is("--data")) data = args.value();
//     else args.unknown();
//   }
//
// A bad argument (an unknown option, an option without its value, a value that is not a
// number, a count that is zero or negative) throws usage_error; run_example prints its
// one line and then the usage to stderr and returns exit status 2. Any other exception
// prints its message and returns 1; --help prints the usage to stdout and returns 0.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

namespace examples {

/// A bad command line; the message is one line naming the argument and what is wrong.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Thrown by argument_reader on --help / -h: print the usage, exit 0.
struct help_requested {};

class argument_reader {
 public:
  argument_reader(int argc, char** argv) : argc_(argc), argv_(argv) {}

  /// Moves to the next argument; false when none is left.
  bool next() {
    if (++i_ >= argc_) return false;
    current_ = argv_[i_];
    if (current_ == "--help" || current_ == "-h") throw help_requested{};
    return true;
  }
  const std::string& arg() const { return current_; }
  bool is(const char* option) const { return current_ == option; }
  /// Whether the current argument is an option (starts with '-') rather than a positional.
  bool is_option() const { return !current_.empty() && current_[0] == '-'; }

  /// The value that follows the current option.
  std::string value() {
    if (i_ + 1 >= argc_) throw usage_error(current_ + " needs a value");
    return argv_[++i_];
  }
  /// The value of the current option as a count: an integer from 1 to `max`.
  int count(long long max = 1 << 20) {
    const std::string text = value();
    long long n = 0;
    if (!whole_number(text, n) || n < 1 || n > max)
      throw usage_error(current_ + " " + text + ": expected a whole number from 1 to " + std::to_string(max));
    return int(n);
  }
  /// The value of the current option as a non-negative 64-bit integer (a seed).
  std::uint64_t unsigned_number() {
    const std::string text = value();
    std::uint64_t n = 0;
    if (!whole_number(text, n))
      throw usage_error(current_ + " " + text + ": expected a whole number from 0 to 18446744073709551615");
    return n;
  }
  [[noreturn]] void unknown() const {
    throw usage_error(is_option() ? "unknown option '" + current_ + "'" : "unexpected argument '" + current_ + "'");
  }

 private:
  template <class N>
  static bool whole_number(const std::string& text, N& n) {
    const char* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, n);
    return !text.empty() && ec == std::errc() && p == end;
  }

  int argc_;
  char** argv_;
  int i_ = 0;
  std::string current_;
};

/// Runs a program's body and turns its exceptions into exit statuses: 2 and the usage
/// for usage_error, 0 and the usage on stdout for --help, 1 and the message otherwise.
template <class Body>
int run_example(const char* program, const char* usage, Body&& body) {
  try {
    return body();
  } catch (const help_requested&) {
    std::printf("%s", usage);
    return 0;
  } catch (const usage_error& e) {
    std::fprintf(stderr, "%s: %s\n%s", program, e.what(), usage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace examples
