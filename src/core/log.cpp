#include "zt/core/log.hpp"

#include <cstdio>
#include <mutex>

#include "zt/core/env.hpp"

namespace zt {

namespace {
LogLevel threshold() {
  static const LogLevel level = [] {
    const std::string v = env_string("ZT_LOG_LEVEL", "info");
    if (v == "debug") return LogLevel::debug;
    if (v == "info") return LogLevel::info;
    if (v == "warn") return LogLevel::warn;
    if (v == "error") return LogLevel::error;
    ZT_THROW("ZT_LOG_LEVEL='", v, "' is not one of debug, info, warn, error");
  }();
  return level;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}
}  // namespace

bool log_enabled(LogLevel level) {
  if (level < threshold()) return false;
  static const bool all_ranks = env_bool("ZT_LOG_ALL_RANKS", false);
  return level >= LogLevel::warn || all_ranks || error_rank() <= 0;
}

void log_message(LogLevel level, const std::string& message) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (error_rank() >= 0) std::fprintf(stderr, "[zt %s rank %d] %s\n", level_name(level), error_rank(), message.c_str());
  else std::fprintf(stderr, "[zt %s] %s\n", level_name(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace zt
