// What this process holds, for progress lines and memory reports.
#pragma once

#include <cstddef>

namespace zt {

size_t process_resident_bytes();  // RSS from /proc/self/statm (0 where unavailable)
size_t process_peak_resident_bytes();

}  // namespace zt
