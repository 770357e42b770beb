// Pieces the parameter stores share (src/zero/param_store*.cpp).
#pragma once

#include <memory>

#include "zt/zero/param_store.hpp"

namespace zt::zero {

// Host buffers of offload_param are page-locked when the compute device is a GPU and
// pin_memory is set (copies from them to the device then run asynchronously).
bool pinned_for(const ZeroOptions& options);
Tensor host_tensor(int64_t n, DType dtype, bool pinned);  // (n)
// Elements written at a time when the values come from the device: buffer_size, at most the partition.
int64_t write_chunk_elements(const ZeroOptions& options, int64_t size);
// dst (host, storage dtype) = values (f32, host or device) rounded, through a device buffer of
// `chunk` elements when the values are on the device.
void round_into_host(const Tensor& dst, const Tensor& values, int64_t chunk);

std::shared_ptr<ParamStore> make_nvme_param_store(const ZeroOptions& options, int64_t size, int rank);

}  // namespace zt::zero
