// LayerNorm and RMSNorm backwards over rows of whole 16-byte chunks (norm_rows.hpp).
//
// A row is held by a group of W warps, one chunk a lane: lane l of the group's warp j holds chunk
// 32 j + l, so W = ceil(chunks / 32) and a lane's registers hold its chunk of x, dy and the weight
// and its chunk's parameter-gradient sums, nothing more. (A warp per row, as the forwards run,
// keeps several chunks a lane and reads the row twice; it ran the backward at ~40 % of bandwidth.)
// A block has G groups; group g of block b takes rows b G + g, then every gridDim.x G rows, and
// loads the next row (and its statistics) while it reduces the current one. The group's row sums
// go through shared memory under a barrier of the group's own (bar.sync with an id of its own),
// two slots by row parity so that one barrier a row suffices. At the end the block adds its
// groups' parameter sums in group order and writes them as its row of partial (blocks, A, C);
// sum_partials (partial_sums.cuh) adds the blocks' rows column by column in a fixed order, so the result is
// the same from run to run. Up to 384 chunks a row (3072 bf16 elements): a block of at most 384
// threads at 2 blocks an SM leaves 85 registers a thread, which these need.
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "norm_chunks.cuh"
#include "norm_rows.hpp"
#include "partial_sums.cuh"

namespace zt::cuda {

namespace {

using namespace norm_chunks;

constexpr int kMaxGroupWarps = 12;    // a row of at most 384 chunks, a block of at most 384 threads
constexpr int kBlockThreadsGoal = 384;
constexpr int kMaxGroups = 15;        // bar.sync ids 1..15; 0 is __syncthreads's

__device__ __forceinline__ void group_barrier(int group, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(group + 1), "r"(threads) : "memory");
}

template <class T>
__device__ __forceinline__ Chunk16<T> chunk_or_zero(const T* row, int k, bool present) {
  Chunk16<T> c;
  c.raw = present ? reinterpret_cast<const uint4*>(row)[k] : make_uint4(0, 0, 0, 0);
  return c;
}

// kLayer: LayerNorm (partial arrays dweight, dbias; mean used) or RMSNorm (dweight only).
// Shared memory: (2 parities, G, W, 2) row sums, then (A, C) parameter sums.
template <class T, bool kLayer>
__global__ void __launch_bounds__(32 * kMaxGroupWarps, 2)
    norm_backward_groups_kernel(T* dinp, float* partial, const T* dout, const T* inp, const T* weight,
                                const float* mean, const float* rstd, int64_t n, int chunks, int group_warps,
                                const T* dinp_add) {
  constexpr int V = Chunk16<T>::n, A = kLayer ? 2 : 1;
  extern __shared__ float shared[];
  const int W = group_warps, G = int(blockDim.x) / (32 * W);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = warp / W, member = warp % W;
  const int k = member * 32 + lane;  // this lane's chunk of every row
  const bool active = k < chunks;
  const int64_t c = int64_t(chunks) * V;
  float* row_sums = shared;
  float* param_sums = shared + 4 * G * W;
  for (int64_t j = threadIdx.x; j < A * c; j += blockDim.x) param_sums[j] = 0.0f;

  float acc[A][V] = {};
  const Chunk16<T> w = chunk_or_zero(weight, k, active);  // kept in storage type: fewer registers
  const int64_t stride = int64_t(gridDim.x) * G;
  int64_t row = int64_t(blockIdx.x) * G + group;
  // This row's chunks and statistics, loaded during the previous row (the first before the loop).
  Chunk16<T> xc = chunk_or_zero(inp + row * c, k, active && row < n);
  Chunk16<T> gc = chunk_or_zero(dout + row * c, k, active && row < n);
  float m = kLayer && row < n ? mean[row] : 0.0f, r = row < n ? rstd[row] : 0.0f;
  for (int parity = 0; row < n; row += stride, parity ^= 1) {
    const int64_t next = row + stride;
    const Chunk16<T> xn = chunk_or_zero(inp + next * c, k, active && next < n);
    const Chunk16<T> gn = chunk_or_zero(dout + next * c, k, active && next < n);
    const float mn = kLayer && next < n ? mean[next] : 0.0f, rn = next < n ? rstd[next] : 0.0f;
    const Chunk16<T> addend = chunk_or_zero(dinp_add ? dinp_add + row * c : dinp_add, k, active && dinp && dinp_add);
    // LayerNorm: s0 = sum dxhat, s1 = sum dxhat xhat. RMSNorm: s0 = sum dy w x.
    float s0 = 0, s1 = 0;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float x = to_float(xc.v[e]), g = to_float(gc.v[e]), dxhat = g * to_float(w.v[e]);
      if constexpr (kLayer) {
        const float xhat = (x - m) * r;
        s0 += dxhat;
        s1 += dxhat * xhat;
        acc[0][e] += g * xhat;
        acc[A - 1][e] += g;
      } else {
        s0 += dxhat * x;
        acc[0][e] += g * x * r;
      }
    }
    if (dinp) {
      s0 = warp_sum(s0);
      if constexpr (kLayer) s1 = warp_sum(s1);
      float* slot = row_sums + (parity * G + group) * W * 2;
      if (lane == 0) slot[2 * member] = s0, slot[2 * member + 1] = s1;
      group_barrier(group, 32 * W);
      float t0 = 0, t1 = 0;
      for (int j = 0; j < W; ++j) t0 += slot[2 * j], t1 += slot[2 * j + 1];
      if (active) {
        const float mean0 = t0 / float(c), mean1 = t1 / float(c);
        Chunk16<T> out;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float x = to_float(xc.v[e]), dxhat = to_float(gc.v[e]) * to_float(w.v[e]);
          float d;
          if constexpr (kLayer)
            d = r * (dxhat - mean0 - (x - m) * r * mean1);
          else
            d = r * (dxhat - x * r * r * mean0);
          out.v[e] = from_float<T>(dinp_add ? d + to_float(addend.v[e]) : d);
        }
        reinterpret_cast<uint4*>(dinp + row * c)[k] = out.raw;
      }
    }
    xc = xn, gc = gn, m = mn, r = rn;
  }
  __syncthreads();  // param_sums zeroed by every thread
  for (int g = 0; g < G; ++g) {
    if (group == g && active)
#pragma unroll
      for (int a = 0; a < A; ++a)
#pragma unroll
        for (int e = 0; e < V; ++e) param_sums[a * c + int64_t(k) * V + e] += acc[a][e];
    __syncthreads();
  }
  float* block_row = partial + int64_t(blockIdx.x) * A * c;
  for (int64_t j = threadIdx.x; j < A * c; j += blockDim.x) block_row[j] = param_sums[j];
}

// The launch shape for rows of c elements: warps a group, groups a block (0 when c is not a whole
// number of chunks or the row is longer than one group can hold).
struct GroupShape {
  int chunks = 0, group_warps = 0, groups = 0;
};

template <class T>
GroupShape group_shape(int64_t c) {
  constexpr int V = Chunk16<T>::n;
  GroupShape s;
  if (c % V != 0 || c / V > 32 * kMaxGroupWarps) return s;
  s.chunks = int(c / V);
  s.group_warps = (s.chunks + 31) / 32;
  s.groups = std::clamp(kBlockThreadsGoal / (32 * s.group_warps), 1, kMaxGroups);
  return s;
}

// Blocks of `kernel` the device holds at once, at most `per_sm_cap` an SM; found once per kernel,
// device and launch shape (the query is host work every backward would repeat). The shapes here
// take at most 2 x 3072 floats of parameter sums plus the row sums: under the default 48 KiB.
template <class Kernel>
int resident_blocks(Kernel kernel, int threads, size_t shared, int per_sm_cap) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, int, size_t>, int> known;
  int device = 0;
  ZT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  int& blocks = known[{reinterpret_cast<const void*>(kernel), device, threads, shared}];
  if (blocks == 0) {
    int resident = 0;
    ZT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, shared));
    blocks = multiprocessor_count() * std::clamp(resident, 1, per_sm_cap);
  }
  return blocks;
}

template <class T, bool kLayer>
bool norm_backward_groups(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                          const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add) {
  constexpr int A = kLayer ? 2 : 1;
  const GroupShape shape = group_shape<T>(c);
  if (shape.groups == 0 || !aligned16(dinp) || !aligned16(dout) || !aligned16(inp) || !aligned16(weight) ||
      !aligned16(dinp_add))
    return false;
  const int threads = 32 * shape.group_warps * shape.groups;
  const size_t shared = (4 * size_t(shape.groups) * shape.group_warps + A * size_t(c)) * sizeof(float);
  auto kernel = norm_backward_groups_kernel<T, kLayer>;
  // Up to three blocks an SM keep its loads in flight; more would only lengthen the final sum.
  const int64_t wanted = (n + shape.groups - 1) / shape.groups;
  const int blocks = int(std::max<int64_t>(1, std::min<int64_t>(wanted, resident_blocks(kernel, threads, shared, 3))));
  Scratch partial(size_t(blocks) * A * size_t(c) * sizeof(float));
  kernel<<<blocks, threads, shared, compute_stream()>>>(dinp, partial.as<float>(), dout, inp, weight, mean, rstd, n,
                                                        shape.chunks, shape.group_warps, dinp_add);
  ZT_CUDA_CHECK_LAUNCH(kLayer ? "layernorm norm_backward_groups_kernel" : "rmsnorm norm_backward_groups_kernel");
  if (dweight || dbias) sum_partials(dweight, dbias, partial.as<float>(), blocks, A, c);
  return true;
}

}  // namespace

template <class T>
bool layernorm_backward_rows(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                             const float* mean, const float* rstd, int64_t n, int64_t c, const T* dinp_add) {
  return norm_backward_groups<T, true>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, n, c, dinp_add);
}

template <class T>
bool rmsnorm_backward_rows(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                           int64_t n, int64_t c, const T* dinp_add) {
  return norm_backward_groups<T, false>(dinp, dweight, static_cast<T*>(nullptr), dout, inp, weight, nullptr, rstd, n,
                                        c, dinp_add);
}

#define ZT_INSTANTIATE(T)                                                                                        \
  template bool layernorm_backward_rows<T>(T*, T*, T*, const T*, const T*, const T*, const float*, const float*, \
                                           int64_t, int64_t, const T*);                                          \
  template bool rmsnorm_backward_rows<T>(T*, T*, const T*, const T*, const T*, const float*, int64_t, int64_t,   \
                                         const T*);
ZT_INSTANTIATE(float)
ZT_INSTANTIATE(bf16)
#undef ZT_INSTANTIATE

}  // namespace zt::cuda
