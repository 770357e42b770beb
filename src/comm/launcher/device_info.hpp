// What CUDA devices this host shows: the default number of ranks of a local launch, and the
// device named in benchmark results.
#pragma once

#include <string>

namespace zt::comm {

int local_cuda_device_count();                     // 0 without CUDA or without a device
std::string local_cuda_device_name(int device);    // "NVIDIA H100 80GB HBM3"; "" without one

}  // namespace zt::comm
