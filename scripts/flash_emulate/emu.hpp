// A CPU emulation of what the flash attention kernels use of the GPU, so that their indexing can
// be checked on a machine without one (scripts/flash-emulate). A block runs as one std::thread
// per CUDA thread; warp-level instructions (ldmatrix, mma.sync m16n8k16, shuffles) meet at a
// per-warp barrier and are computed from every lane's operands by the layouts of the PTX ISA;
// __syncthreads is a block barrier. cp.async poisons its destination (NaN) when issued and lands
// the data only at the wait that covers its group, so a read before the wait, or a prefetch into
// a stage that another warp still reads, shows as NaN in the results. Blocks run one at a time.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

using std::max;
using std::min;

namespace emu {

struct Block {
  std::unique_ptr<std::barrier<>> block_bar;
  std::unique_ptr<std::barrier<>> warp_bar[32];
  alignas(16) unsigned char smem[232 * 1024];
  // warp exchange areas
  const void* addr[32][32];
  uint32_t a[32][32][4], b[32][32][2];
  float c[32][32][4];
  float f[32][32];
};

struct Copy {
  void* dst;
  const void* src;
  bool valid;
};

struct ThreadState {
  uint3 thread, block;
  dim3 grid, dims;
  Block* blk;
  std::vector<std::vector<Copy>> groups;  // committed groups, oldest first
  std::vector<Copy> open;
};
inline thread_local ThreadState tl;

inline void warp_sync() { tl.blk->warp_bar[tl.thread.x / 32]->arrive_and_wait(); }
inline void block_sync() { tl.blk->block_bar->arrive_and_wait(); }

inline float shfl(float v, int src) {
  const int w = tl.thread.x / 32, lane = tl.thread.x % 32;
  tl.blk->f[w][lane] = v;
  warp_sync();
  const float r = tl.blk->f[w][src & 31];
  warp_sync();
  return r;
}

inline uint16_t bits(const __nv_bfloat16* p) {
  uint16_t x;
  std::memcpy(&x, p, 2);
  return x;
}
inline uint32_t pack2(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }
inline float bf(uint16_t x) {
  uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline void ldmatrix(uint32_t (&r)[4], const __nv_bfloat16* row, bool trans) {
  const int w = tl.thread.x / 32, t = tl.thread.x % 32;
  tl.blk->addr[w][t] = row;
  warp_sync();
  for (int m = 0; m < 4; ++m) {
    auto rowp = [&](int i) { return static_cast<const __nv_bfloat16*>(tl.blk->addr[w][m * 8 + i]); };
    if (!trans) {
      const __nv_bfloat16* p = rowp(t / 4);
      r[m] = pack2(bits(p + 2 * (t % 4)), bits(p + 2 * (t % 4) + 1));
    } else {
      r[m] = pack2(bits(rowp(2 * (t % 4)) + t / 4), bits(rowp(2 * (t % 4) + 1) + t / 4));
    }
  }
  warp_sync();
}

inline void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const int w = tl.thread.x / 32, t = tl.thread.x % 32;
  for (int i = 0; i < 4; ++i) tl.blk->a[w][t][i] = a[i], tl.blk->c[w][t][i] = c[i];
  tl.blk->b[w][t][0] = b0, tl.blk->b[w][t][1] = b1;
  warp_sync();
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, tq = l % 4;
    const uint32_t* al = tl.blk->a[w][l];
    auto lo = [](uint32_t x) { return bf(uint16_t(x & 0xffff)); };
    auto hi = [](uint32_t x) { return bf(uint16_t(x >> 16)); };
    A[g][2 * tq] = lo(al[0]), A[g][2 * tq + 1] = hi(al[0]);
    A[g + 8][2 * tq] = lo(al[1]), A[g + 8][2 * tq + 1] = hi(al[1]);
    A[g][2 * tq + 8] = lo(al[2]), A[g][2 * tq + 9] = hi(al[2]);
    A[g + 8][2 * tq + 8] = lo(al[3]), A[g + 8][2 * tq + 9] = hi(al[3]);
    const uint32_t* bl = tl.blk->b[w][l];
    B[2 * tq][g] = lo(bl[0]), B[2 * tq + 1][g] = hi(bl[0]);
    B[2 * tq + 8][g] = lo(bl[1]), B[2 * tq + 9][g] = hi(bl[1]);
  }
  const int g = t / 4, tq = t % 4;
  const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * tq, 2 * tq + 1, 2 * tq, 2 * tq + 1};
  float out[4];
  for (int e = 0; e < 4; ++e) {
    float s = c[e];
    for (int k = 0; k < 16; ++k) s += A[rows[e]][k] * B[k][cols[e]];
    out[e] = s;
  }
  warp_sync();
  for (int e = 0; e < 4; ++e) c[e] = out[e];
}

inline void cp_async(void* dst, const void* src, bool valid) {
  std::memset(dst, 0xff, 16);  // NaN until waited for
  tl.open.push_back({dst, src, valid});
}
inline void commit() {
  tl.groups.push_back(std::move(tl.open));
  tl.open.clear();
}
inline void wait(int n) {
  while (int(tl.groups.size()) > n) {
    for (const Copy& c : tl.groups.front()) {
      if (c.valid) std::memcpy(c.dst, c.src, 16);
      else std::memset(c.dst, 0, 16);
    }
    tl.groups.erase(tl.groups.begin());
  }
}

template <class Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  template <class... Args>
  void operator()(Args... args) const {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          auto blk = std::make_unique<Block>();
          const int n = int(block.x);
          blk->block_bar = std::make_unique<std::barrier<>>(n);
          for (int w = 0; w < n / 32; ++w) blk->warp_bar[w] = std::make_unique<std::barrier<>>(32);
          std::memset(blk->smem, 0xff, sizeof(blk->smem));
          std::vector<std::thread> threads;
          for (int i = 0; i < n; ++i)
            threads.emplace_back([&, i] {
              tl = ThreadState{};
              tl.thread = {unsigned(i), 0, 0};
              tl.block = {x, y, z};
              tl.grid = grid;
              tl.dims = block;
              tl.blk = blk.get();
              kernel(args...);
            });
          for (auto& t : threads) t.join();
        }
  }
};
template <class Kernel, class G, class B>
Launch<Kernel> launch(Kernel k, G grid, B block, size_t, cudaStream_t) {
  return {k, dim3(grid), dim3(block)};
}

}  // namespace emu

#define threadIdx (emu::tl.thread)
#define blockIdx (emu::tl.block)
#define gridDim (emu::tl.grid)
#define blockDim (emu::tl.dims)
#define __syncthreads() emu::block_sync()
#define __shfl_xor_sync(mask, v, m) emu::shfl((v), int(emu::tl.thread.x % 32) ^ (m))
#define __shfl_sync(mask, v, s) emu::shfl((v), (s))
#undef __launch_bounds__
#define __launch_bounds__(...)
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaGetLastError() cudaSuccess
#define cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, ...) (*(n) = 2, cudaSuccess)
