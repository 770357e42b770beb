// zt::Error and the checks that raise it. The library never exits or aborts: every failure
// becomes a zt::Error carrying where it happened (file, line, rank) and what was being done.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace zt {

// Concatenates any streamable values into one string: str("key ", k, " = ", v).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line);
  const std::string& message() const { return message_; }  // without the location prefix
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
};

// The rank that errors and log lines name; -1 until the process group says otherwise.
int error_rank();
void set_error_rank(int rank);

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace zt

#define ZT_THROW(...) ::zt::detail::throw_error(__FILE__, __LINE__, ::zt::str(__VA_ARGS__))

#define ZT_CHECK(cond, ...)                                                               \
  do {                                                                                    \
    if (!(cond)) ::zt::detail::throw_error(__FILE__, __LINE__, ::zt::str(__VA_ARGS__));   \
  } while (0)
