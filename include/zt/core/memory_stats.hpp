// What this process holds, for progress lines and memory reports.
#pragma once

#include <cstddef>

namespace zt {

size_t process_resident_bytes();  // RSS from /proc/self/statm (0 where unavailable)
size_t process_peak_resident_bytes();
// Hands the heap's free pages back to the system (malloc_trim). Freed blocks below the heap's top
// stay resident otherwise: a model built on the host in f32 (4 bytes a parameter) and then moved to
// the GPU would keep its host pages while the optimizer offload allocates its own (docs/ARCHITECTURE.md).
void release_free_host_memory();

}  // namespace zt
