// Logging: one line per call to stderr, prefixed with the level and (once known) the rank.
// ZT_LOG_LEVEL (debug, info, warn, error) sets the threshold; ranks other than 0 log only
// warnings and errors unless ZT_LOG_ALL_RANKS=1.
#pragma once

#include <string>

#include "zt/core/error.hpp"

namespace zt {

enum class LogLevel { debug, info, warn, error };

void log_message(LogLevel level, const std::string& message);
bool log_enabled(LogLevel level);

template <class... Args> void log_debug(const Args&... a) { if (log_enabled(LogLevel::debug)) log_message(LogLevel::debug, str(a...)); }
template <class... Args> void log_info(const Args&... a) { if (log_enabled(LogLevel::info)) log_message(LogLevel::info, str(a...)); }
template <class... Args> void log_warn(const Args&... a) { if (log_enabled(LogLevel::warn)) log_message(LogLevel::warn, str(a...)); }
template <class... Args> void log_error(const Args&... a) { if (log_enabled(LogLevel::error)) log_message(LogLevel::error, str(a...)); }

}  // namespace zt
