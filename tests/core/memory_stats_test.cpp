// The process's memory figures and release_free_host_memory: blocks freed below the heap's top stay
// resident until they are handed back (what the trainer does after moving a host-built model to
// the GPU).
#include <gtest/gtest.h>

#include <vector>

#include "zt/core/memory_stats.hpp"
#include "zt/core/tensor.hpp"

namespace zt {
namespace {

TEST(MemoryStats, ReleaseHandsFreedHeapPagesBack) {
  constexpr int64_t kBlock = 4 << 20;  // below the mmap threshold: heap memory
  std::vector<Tensor> blocks;
  for (int i = 0; i < 48; ++i) blocks.push_back(Tensor::zeros({kBlock}, DType::u8));
  const Tensor above = Tensor::zeros({64}, DType::u8);  // keeps the heap's top in use
  const size_t held = process_resident_bytes();
  blocks.clear();
  const size_t freed = process_resident_bytes();
  release_free_host_memory();
  const size_t released = process_resident_bytes();
  ASSERT_GT(held, 0u) << "no /proc/self/statm here";
  EXPECT_GT(freed, released + size_t(128 << 20)) << "held " << held << ", after free " << freed << ", after release "
                                                 << released;
}

}  // namespace
}  // namespace zt
