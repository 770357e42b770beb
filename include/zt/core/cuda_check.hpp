// ZT_CUDA_CHECK: every CUDA runtime call's status becomes a zt::Error naming the call.
// Only for translation units built with the CUDA toolkit.
#pragma once

#include <cuda_runtime.h>

#include "zt/core/error.hpp"

#define ZT_CUDA_CHECK(call)                                                                       \
  do {                                                                                            \
    const cudaError_t zt_cuda_status_ = (call);                                                   \
    if (zt_cuda_status_ != cudaSuccess)                                                           \
      ::zt::detail::throw_error(__FILE__, __LINE__,                                               \
                                ::zt::str("CUDA call ", #call, " failed: ",                       \
                                          cudaGetErrorString(zt_cuda_status_)));                  \
  } while (0)
