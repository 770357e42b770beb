#include "zt/core/error.hpp"

#include <atomic>
#include <cstdlib>

namespace zt {

namespace {
int rank_from_environment() {
  for (const char* name : {"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"}) {
    if (const char* v = std::getenv(name)) return std::atoi(v);
  }
  return -1;
}
std::atomic<int> g_error_rank{rank_from_environment()};

std::string with_location(const std::string& message, const char* file, int line) {
  std::string prefix;
  if (g_error_rank.load() >= 0) prefix = str("[rank ", g_error_rank.load(), "] ");
  return str(prefix, message, " (", file, ":", line, ")");
}
}  // namespace

Error::Error(const std::string& message, const char* file, int line)
    : std::runtime_error(with_location(message, file, line)), message_(message), file_(file), line_(line) {}

int error_rank() { return g_error_rank.load(); }
void set_error_rank(int rank) { g_error_rank.store(rank); }

namespace detail {
void throw_error(const char* file, int line, const std::string& message) { throw Error(message, file, line); }
}  // namespace detail

}  // namespace zt
