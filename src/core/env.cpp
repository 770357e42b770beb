#include "zt/core/env.hpp"

#include <cstdlib>

#include "zt/core/error.hpp"

namespace zt {

std::string env_string(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

long long env_int(const char* name, long long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long parsed = std::strtoll(v, &end, 10);
  ZT_CHECK(end && *end == '\0', "environment variable ", name, "='", v, "' is not an integer");
  return parsed;
}

double env_double(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const double parsed = std::strtod(v, &end);
  ZT_CHECK(end && *end == '\0', "environment variable ", name, "='", v, "' is not a number");
  return parsed;
}

bool env_bool(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  const std::string s(v);
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off") return false;
  ZT_THROW("environment variable ", name, "='", v, "' is not a boolean (use 1/0, true/false, yes/no, on/off)");
}

}  // namespace zt
