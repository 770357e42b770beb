// ZT_* environment parameters. A value that does not parse is a zt::Error naming the variable.
#pragma once

#include <string>

namespace zt {

std::string env_string(const char* name, const std::string& fallback);
long long env_int(const char* name, long long fallback);
double env_double(const char* name, double fallback);
bool env_bool(const char* name, bool fallback);  // 1/0, true/false, yes/no, on/off

}  // namespace zt
