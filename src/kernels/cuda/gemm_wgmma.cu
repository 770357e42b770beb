// The product of gemm_wgmma.hpp. A persistent block a multiprocessor of three warpgroups:
//
// - the producer (warpgroup 0, one thread): walks the block's output tiles (128 x 128, tile t,
//   t + grid, ...) and copies each tile's k-blocks of A (128, 64) and B (128 columns, 64 of K) by
//   the TMA into a ring of stages (128-byte-swizzled tiles, wgmma.cuh). A stage's `full` barrier
//   (one a consumer) says its copies have landed, its `empty` barrier that its consumers are done
//   with it.
// - two consumers (warpgroups 1 and 2), taking the block's tiles in turn: each computes its
//   tile's (128, 128) accumulators (two m64n128k16 products a 16-wide k-step, 128 f32 a thread),
//   then applies the epilogue through its staging area in shared memory and stores whole 16-byte
//   chunks: in two 64-row halves (store_tile, 6 stages) or the whole tile at once, the aux or
//   residual copied into the area by the TMA under the products (store_whole_tile, 5 stages).
//   Their products take turns (the `turn` barriers), so that one's epilogue runs under the
//   other's products.
// - in clusters of two blocks (kCluster = 2), the blocks take the two row halves of a 256 x 128
//   cluster tile, and each copies half of B's tile into both blocks' stages (TMA multicast); a
//   stage is free when the consumers of both blocks have released it.
//
// Rows and columns past M, N and K arrive as zeros from the TMA and are not stored.
//
// Measured on an H200 (docs/CUDA_NOTES.md v18, v19), against cuBLASLt in the same runs: the GELU
// forward product 6-12 % faster than its fused epilogue, the input gradient through GELU 10-15 %
// slower (GELU's derivative is what it waits for: without that math it is 5 % faster), the plain
// products from 2 % faster to 21 % slower. matmul.cu uses it for the first by default
// (ZT_MATMUL_OWN_GEMM).
#include <cuda.h>

#include <algorithm>
#include <string>

#include "common.cuh"
#include "cuda_ops.hpp"
#include "flash_common.cuh"
#include "gemm_wgmma.hpp"
#include "tensor_map.hpp"
#include "wgmma.cuh"
#include "zt/core/env.hpp"

namespace zt::cuda {

namespace {

constexpr int kTileM = 128, kTileN = 128, kTileK = 64;
constexpr int kABytes = kTileM * kTileK * 2;  // 16 KiB: (128, 64), 128 rows of 128 bytes
constexpr int kBBytes = kTileN * kTileK * 2;  // 16 KiB: (128, 64) K-major, or two (64, 64) MN-major tiles
constexpr int kStageBytes = kABytes + kBBytes;
// A consumer's staging area for the epilogue, in halves: 64 rows of a tile, each of 256 bytes and
// 16 of padding.
constexpr int kStagedRows = 64, kStagedPitch = kTileN * 2 + 16, kHalfStagedBytes = kStagedRows * kStagedPitch;
// Or the whole tile: two (128, 64) 128-byte-swizzled tiles (the TMA's boxes), 32 KiB.
constexpr int kWholeStagedBytes = kTileM * kTileN * 2;

// Shared memory: the ring, the consumers' two staging areas, then the barriers (2 * kStages full,
// kStages empty, 2 turn, 2 row-wise). Halves: 6 stages, 231,600 bytes; the whole tile: 5 stages,
// 229,528 bytes; of the 232,448 a block may have.
template <bool kWhole>
struct Layout {
  static constexpr int stages = kWhole ? 5 : 6;
  static constexpr int ring_bytes = stages * kStageBytes;
  static constexpr int staged_bytes = kWhole ? kWholeStagedBytes : kHalfStagedBytes;
  static constexpr size_t shared = size_t(ring_bytes) + 2 * staged_bytes + 8 * (3 * stages + 4);
  static_assert(shared <= 232448, "gemm_wgmma: the shared memory exceeds what a Hopper block may have");
};
constexpr int kThreads = 384;
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;  // 128 * 40 + 256 * 232 <= 65536

struct Dims {
  int m, n, k;
  int tiles_n, tiles, k_blocks;
};

__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

using flash::pack_bf16;
using flash::shared_address;
using flash::allow_shared;

using Accumulators = float[2][kTileN / 8][4];  // rows 0-63 and 64-127 of a consumer's tile, wgmma.cuh's layout

__device__ __forceinline__ uint32_t load_word(const bf16* p) { return __ldg(reinterpret_cast<const unsigned int*>(p)); }
__device__ __forceinline__ float2 unpack(uint32_t w) {
  __nv_bfloat162 v;
  *reinterpret_cast<uint32_t*>(&v) = w;
  return __bfloat1622float2(v);
}

// The consumer's tile (m0, n0) from its accumulators, 64 rows at a time through its staging area
// (64 rows of kStagedPitch bytes):
//
// 1. each thread writes its accumulators of the half as bf16 (bias added, for plain and gelu): rows
//    16 w + g (+ 8), columns 8 j + 2 tq (+ 1), wgmma.cuh's layout; a warp's 4-byte writes fall in 32
//    banks, the rows being 68 words apart;
// 2. each thread then takes 8 of the half's 1024 chunks of 16 bytes (a warp two rows of 256 bytes),
//    reads the aux or residual 16 bytes at a time, applies the epilogue and stores whole chunks.
//
// The named barrier (1 + consumer, the consumer's 128 threads) parts the two: the writes of a half
// wait for the reads of the one before. Values are rounded to bf16 once before the epilogue's
// second step, as the CPU reference rounds the pre-activation; plain's residual is added to the
// rounded product.
__device__ __forceinline__ void consumer_sync(int consumer) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(1 + consumer) : "memory");
}

__device__ __forceinline__ void unpack8(const uint4& w, float (&v)[8]) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = unpack(words[i]);
    v[2 * i] = f.x, v[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ uint4 pack8(const float (&v)[8]) {
  return make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]), pack_bf16(v[6], v[7]));
}

// What the epilogue reads row by row beside the product: dgelu's aux, plain's residual (or null).
template <WgmmaEpilogue E>
__host__ __device__ __forceinline__ const bf16* rowwise_input(const WgmmaGemm& p) {
  return E == WgmmaEpilogue::dgelu ? p.aux : E == WgmmaEpilogue::plain ? p.residual : nullptr;
}

// The bias pairs of this thread's columns col, col + 8, ... of the tile (zeros without a bias,
// for dgelu, and past N).
template <WgmmaEpilogue E>
__device__ __forceinline__ void load_bias(const WgmmaGemm& p, const Dims& d, int col, uint32_t (&bias)[kTileN / 8]) {
  const bool has_bias = E != WgmmaEpilogue::dgelu && p.bias;
#pragma unroll
  for (int j = 0; j < kTileN / 8; ++j) bias[j] = has_bias && col + 8 * j < d.n ? load_word(p.bias + col + 8 * j) : 0u;
}

// A thread's chunks of one half: c = tid + 128 q, row c / 16 and chunk c % 16 of the half.
constexpr int kChunksPerRow = kTileN / 8, kHalfChunksPerThread = kStagedRows * kChunksPerRow / 128;
using HalfChunks = uint4[kHalfChunksPerThread];

// The thread's q-th chunk of half `half` of tile (m0, n0): c, and its row and first column in the output.
struct HalfChunk {
  int c, row, col;
};
__device__ __forceinline__ HalfChunk half_chunk(int tid, int q, int m0, int n0, int half) {
  const int c = tid + 128 * q;
  return {c, m0 + 64 * half + c / kChunksPerRow, n0 + 8 * (c % kChunksPerRow)};
}

// This thread's chunks of the row-wise input in half `half` of tile (m0, n0): zeros past M and N,
// or where there is no such input. Loaded a step ahead of their use (store_tile), so that their
// latency runs under other work.
__device__ __forceinline__ void load_rowwise_half(const bf16* rowwise, const Dims& d, int m0, int n0, int half,
                                                  HalfChunks& extra) {
  const int tid = threadIdx.x & 127;
#pragma unroll
  for (int q = 0; q < kHalfChunksPerThread; ++q) {
    const auto [c, row, col] = half_chunk(tid, q, m0, n0, half);
    extra[q] = rowwise && row < d.m && col < d.n ? __ldg(reinterpret_cast<const uint4*>(rowwise + int64_t(row) * d.n + col))
                                                 : make_uint4(0, 0, 0, 0);
  }
}

// dgelu's aux is loaded a half ahead: the first half's chunks before the tile's products (first_half,
// by the caller), the second's once the first half's accumulators are staged. Plain's residual
// (whose bias leaves no registers for more) loads each half's chunks once its accumulators are staged.
template <WgmmaEpilogue E>
constexpr bool kRowwiseBeforeProducts = E == WgmmaEpilogue::dgelu;

template <WgmmaEpilogue E>
__device__ __forceinline__ void store_tile(const Accumulators& acc, const WgmmaGemm& p, const Dims& d, int m0,
                                           int n0, unsigned char* staged, int consumer, HalfChunks& first_half) {
  constexpr int kPairs = kTileN / 8;
  const int tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31;
  const int col0 = 2 * (lane & 3);
  uint32_t bias[kPairs];
  load_bias<E>(p, d, n0 + col0, bias);
  HalfChunks second_half;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    consumer_sync(consumer);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      unsigned char* row = staged + (16 * warp + (lane >> 2) + 8 * r) * kStagedPitch + 2 * col0;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        const float2 b = unpack(bias[j]);
        *reinterpret_cast<uint32_t*>(row + 16 * j) = pack_bf16(acc[half][j][2 * r] + b.x, acc[half][j][2 * r + 1] + b.y);
      }
    }
    if constexpr (kRowwiseBeforeProducts<E>) {
      if (half == 0) load_rowwise_half(rowwise_input<E>(p), d, m0, n0, 1, second_half);
    } else {
      load_rowwise_half(rowwise_input<E>(p), d, m0, n0, half, half == 0 ? first_half : second_half);
    }
    consumer_sync(consumer);
    const uint4* extra = half == 0 ? first_half : second_half;  // half is a constant here: registers
#pragma unroll
    for (int q = 0; q < kHalfChunksPerThread; ++q) {
      const auto [c, row, col] = half_chunk(tid, q, m0, n0, half);
      const uint4 value = *reinterpret_cast<const uint4*>(staged + (c / kChunksPerRow) * kStagedPitch + 16 * (c % kChunksPerRow));
      if (row >= d.m || col >= d.n) continue;  // N is a multiple of 8: the chunk is whole
      const int64_t i = int64_t(row) * d.n + col;
      float v[8], x[8];
      unpack8(value, v);
      unpack8(extra[q], x);
      if constexpr (E == WgmmaEpilogue::gelu) {
        *reinterpret_cast<uint4*>(p.pre_act + i) = value;
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] = gelu_value<true>(v[e]);
      } else if constexpr (E == WgmmaEpilogue::dgelu) {
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] *= gelu_derivative<true>(x[e]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] += x[e];
      }
      *reinterpret_cast<uint4*>(p.out + i) = pack8(v);
    }
  }
}

// The consumer's tile (m0, n0) through the whole-tile staging area: two (128, 64) 128-byte-
// swizzled tiles, where the TMA has put the tile's aux (dgelu) or residual (plain) during the
// products.
//
// 1. each thread takes the 4-byte pairs of its accumulators' positions (rows 16 w + g (+ 8) of
//    each half, columns 8 j + 2 tq (+ 1)): reads the row-wise input's pair there, applies the
//    epilogue (bias, residual, GELU's derivative) and writes the bf16 result in its place. A
//    warp's pairs fall in 32 banks (chunk j ^ g of row g's 128 bytes);
// 2. after the named barrier, each thread takes 16 of the tile's 2048 chunks of 16 bytes (a warp
//    two rows of 256 bytes), stores them (gelu: the pre-activation, then GELU of it).
//
// A last barrier, after each thread's proxy fence, frees the area for the next tile's TMA.
__device__ __forceinline__ uint32_t whole_tile_offset(int row, int chunk) {  // chunk 0-15 of row 0-127
  return uint32_t(chunk >> 3) * (kWholeStagedBytes / 2) + wgmma::swizzled_offset(row, chunk & 7);
}

template <WgmmaEpilogue E>
__device__ __forceinline__ void store_whole_tile(const Accumulators& acc, const WgmmaGemm& p, const Dims& d, int m0,
                                                 int n0, unsigned char* staged, int consumer, bool has_rowwise,
                                                 uint32_t rowwise_bar, uint32_t rowwise_parity) {
  constexpr int kPairs = kTileN / 8;
  constexpr int kChunksPerThread = kTileM * kChunksPerRow / 128, kChunksInFlight = 4;
  const int tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31;
  const int col0 = 2 * (lane & 3);
  uint32_t bias[kPairs];
  load_bias<E>(p, d, n0 + col0, bias);
  if (has_rowwise) wgmma::mbarrier_wait(rowwise_bar, rowwise_parity);
#pragma unroll
  for (int half = 0; half < 2; ++half)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = 64 * half + 16 * warp + (lane >> 2) + 8 * r;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        uint32_t* cell = reinterpret_cast<uint32_t*>(staged + whole_tile_offset(row, j) + 2 * col0);
        float v0 = acc[half][j][2 * r], v1 = acc[half][j][2 * r + 1];
        if constexpr (E == WgmmaEpilogue::dgelu) {
          const float2 x = unpack(*cell);
          v0 = round_bf16(v0) * gelu_derivative<true>(x.x), v1 = round_bf16(v1) * gelu_derivative<true>(x.y);
        } else {
          const float2 b = unpack(bias[j]);
          v0 += b.x, v1 += b.y;
          if (E == WgmmaEpilogue::plain && has_rowwise) {
            const float2 x = unpack(*cell);
            v0 += x.x, v1 += x.y;
          }
        }
        *cell = pack_bf16(v0, v1);
      }
    }
  consumer_sync(consumer);
#pragma unroll
  for (int q0 = 0; q0 < kChunksPerThread; q0 += kChunksInFlight) {
    uint4 value[kChunksInFlight];
#pragma unroll
    for (int q = 0; q < kChunksInFlight; ++q) {
      const int c = tid + 128 * (q0 + q);
      value[q] = *reinterpret_cast<const uint4*>(staged + whole_tile_offset(c / kChunksPerRow, c % kChunksPerRow));
    }
#pragma unroll
    for (int q = 0; q < kChunksInFlight; ++q) {
      const int c = tid + 128 * (q0 + q), row = m0 + c / kChunksPerRow, col = n0 + 8 * (c % kChunksPerRow);
      if (row >= d.m || col >= d.n) continue;  // N is a multiple of 8: the chunk is whole
      const int64_t i = int64_t(row) * d.n + col;
      if constexpr (E == WgmmaEpilogue::gelu) {
        *reinterpret_cast<uint4*>(p.pre_act + i) = value[q];
        float v[8];
        unpack8(value[q], v);
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] = gelu_value<true>(v[e]);
        *reinterpret_cast<uint4*>(p.out + i) = pack8(v);
      } else {
        *reinterpret_cast<uint4*>(p.out + i) = value[q];
      }
    }
  }
  wgmma::fence_shared_for_async();  // this thread's accesses, before the TMA's next write
  consumer_sync(consumer);
}

template <WgmmaEpilogue E, int kBMnMajor, int kCluster, bool kWhole>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
                      const __grid_constant__ CUtensorMap rowwise_map, const WgmmaGemm p, const Dims d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = Layout<kWhole>;
  constexpr int kStages = L::stages;
  extern __shared__ __align__(1024) unsigned char shared[];
  if (shared_address(shared) % 1024 != 0) __trap();  // the swizzled tiles need it
  const uint32_t ring = shared_address(shared);
  // Each consumer has its own `full` barrier a stage (full + 8 (consumer kStages + s)): a barrier
  // tells phases apart by parity only, and with one barrier for both, a consumer waiting for its
  // next tile could take a phase completed for the other's tile as its own.
  // turn + 8 c: consumer c may run its products (the consumers' products take turns, so that one's
  // epilogue runs under the other's products, as CUTLASS's ping-pong kernels order them).
  // rowwise + 8 c: consumer c's tile of dgelu's aux or plain's residual has landed (kWhole).
  const uint32_t full = ring + L::ring_bytes + 2 * L::staged_bytes, empty = full + 2 * 8 * kStages;
  const uint32_t turn = empty + 8 * kStages, rowwise = turn + 16;
  // A cluster's blocks take tiles (m0 + 128 rank, n0) of one 128 kCluster x 128 cluster tile and
  // share its B: block r copies B's r-th (128 / kCluster) columns into every block's stage. A
  // stage is free again when the consumer warps of every block have done with it.
  const int rank = kCluster > 1 ? int(wgmma::cluster_rank()) : 0;
  const int cluster = kCluster > 1 ? int(wgmma::cluster_index()) : int(blockIdx.x);
  const int clusters = kCluster > 1 ? int(wgmma::cluster_count()) : int(gridDim.x);
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      wgmma::mbarrier_init(full + 8 * s, 1);
      wgmma::mbarrier_init(full + 8 * (kStages + s), 1);
      wgmma::mbarrier_init(empty + 8 * s, 4 * kCluster);  // one arrival a consumer warp of each block
    }
    wgmma::mbarrier_init(turn, 4), wgmma::mbarrier_init(turn + 8, 4);
    wgmma::mbarrier_init(rowwise, 1), wgmma::mbarrier_init(rowwise + 8, 1);
    wgmma::fence_mbarrier_init();
  }
  if constexpr (kCluster > 1) wgmma::cluster_sync();  // the other blocks' barriers are set up too
  else __syncthreads();
  const int group = threadIdx.x >> 7;
  auto tile_origin = [&](int t, int& m0, int& n0) {
    m0 = (t / d.tiles_n) * (kTileM * kCluster) + kTileM * rank, n0 = (t % d.tiles_n) * kTileN;
  };

  if (group == 0) {  // the producer
    wgmma::release_registers<kProducerRegisters>();
    if (threadIdx.x == 0) {
      constexpr int kBShare = kBBytes / kCluster;  // the bytes of B this block copies, (128 / kCluster) columns
      int slot = 0;  // the ring position: stage slot % kStages, its (slot / kStages)-th use
      for (int t = cluster, j = 0; t < d.tiles; t += clusters, ++j) {
        int m0, n0;
        tile_origin(t, m0, n0);
        for (int kb = 0; kb < d.k_blocks; ++kb, ++slot) {
          const int s = slot % kStages;
          if (slot >= kStages) wgmma::mbarrier_wait(empty + 8 * s, uint32_t(slot / kStages - 1) & 1);
          const uint32_t bar = full + 8 * ((j & 1) * kStages + s), a_tile = ring + s * kStageBytes;
          const uint32_t b_part = a_tile + kABytes + rank * kBShare;
          wgmma::mbarrier_arrive_expect_bytes(bar, kStageBytes);
          wgmma::tma_load_3d(a_tile, &a_map, kb * kTileK, m0, 0, bar);
          // MN-major: the block's 64-column boxes of B; K-major: its rows of B.
          const int bx = kBMnMajor ? n0 + rank * (kTileN / kCluster) : kb * kTileK;
          const int by = kBMnMajor ? kb * kTileK : n0 + rank * (kTileN / kCluster);
          if constexpr (kCluster > 1) {
            wgmma::tma_load_3d_multicast(b_part, &b_map, bx, by, 0, bar, uint16_t((1u << kCluster) - 1));
          } else if (kBMnMajor) {
            wgmma::tma_load_3d(b_part, &b_map, bx, by, 0, bar);
            wgmma::tma_load_3d(b_part + kBBytes / 2, &b_map, bx + 64, by, 0, bar);
          } else {
            wgmma::tma_load_3d(b_part, &b_map, bx, by, 0, bar);
          }
        }
      }
    }
  } else {
    wgmma::claim_registers<kConsumerRegisters>();
    const int consumer = group - 1;
    const bool signals = (threadIdx.x & 31) == 0;
    auto release = [&](int s) {  // this warp is done with stage s, in every block of the cluster
      if (!signals) return;
      wgmma::mbarrier_arrive(empty + 8 * s);
      if constexpr (kCluster > 1)
        for (int r = 0; r < kCluster; ++r)
          if (r != rank) wgmma::mbarrier_arrive_in_block(empty + 8 * s, uint32_t(r));
    };
    const uint32_t my_full = full + 8 * kStages * consumer;
    const bool has_rowwise = E == WgmmaEpilogue::dgelu || rowwise_input<E>(p) != nullptr;  // dgelu: aux is required
    uint32_t phases = 0;  // bit s: the parity of this consumer's next phase of stage s's barrier
    const uint32_t my_turn = turn + 8 * consumer, other_turn = turn + 8 * (1 - consumer);
    // Consumer 0's i-th tile (i > 0) follows consumer 1's (i - 1)-th; consumer 1's i-th follows
    // consumer 0's i-th (each exists whenever the waiting tile does).
    int turns = 0;
    // The block's j-th tile is t = cluster + j * clusters; this consumer takes j = consumer, consumer + 2, ...
    for (int t = cluster + consumer * clusters, j = consumer; t < d.tiles; t += 2 * clusters, j += 2) {
      int m0, n0;
      tile_origin(t, m0, n0);
      Accumulators acc;
      HalfChunks first_half;  // dgelu's: the aux's first half, in flight under the products
      if constexpr (!kWhole && kRowwiseBeforeProducts<E>) load_rowwise_half(rowwise_input<E>(p), d, m0, n0, 0, first_half);
      int slot = j * d.k_blocks;
      if (consumer == 1 || turns > 0) {
        wgmma::mbarrier_wait(my_turn, uint32_t(consumer == 1 ? turns : turns - 1) & 1);
      }
      ++turns;
      unsigned char* staged = shared + L::ring_bytes + consumer * L::staged_bytes;
      if constexpr (kWhole) {
        // The tile's aux or residual into the staging area (free: this consumer's last epilogue
        // ended with a barrier after its reads), under the products.
        if (has_rowwise && (threadIdx.x & 127) == 0) {
          const uint32_t bar = rowwise + 8 * consumer, dst = shared_address(staged);
          wgmma::mbarrier_arrive_expect_bytes(bar, kWholeStagedBytes);
          wgmma::tma_load_3d(dst, &rowwise_map, n0, m0, 0, bar);
          wgmma::tma_load_3d(dst + kWholeStagedBytes / 2, &rowwise_map, n0 + 64, m0, 0, bar);
        }
      }
      for (int kb = 0; kb < d.k_blocks; ++kb, ++slot) {
        const int s = slot % kStages;
        wgmma::mbarrier_wait(my_full + 8 * s, (phases >> s) & 1);
        phases ^= 1u << s;
        const uint32_t a_tile = ring + s * kStageBytes, b_tile = a_tile + kABytes;
        const uint64_t a0 = wgmma::sw128_descriptor(a_tile), a1 = wgmma::sw128_descriptor(a_tile + kABytes / 2);
        const uint64_t b = wgmma::sw128_descriptor(b_tile, kBMnMajor ? kBBytes / 2 : 1024);
        wgmma::fence();
#pragma unroll
        for (int ks = 0; ks < kTileK / 16; ++ks) {
          // The next 16 of K: 32 bytes along a K-major row, 16 rows (2048 bytes) of an MN-major tile.
          const uint64_t b_step = kBMnMajor ? uint64_t(ks) * (2048 >> 4) : uint64_t(ks) * 2;
          const int accumulate = kb > 0 || ks > 0;
          wgmma::m64n128k16_ss<kBMnMajor>(acc[0], a0 + 2 * ks, b + b_step, accumulate);
          wgmma::m64n128k16_ss<kBMnMajor>(acc[1], a1 + 2 * ks, b + b_step, accumulate);
        }
        wgmma::commit();
        wgmma::wait<1>();  // the previous k-block's products are done with its stage
        if (kb > 0) release((slot - 1) % kStages);
      }
      if (signals) wgmma::mbarrier_arrive(other_turn);  // the last products are queued: the other's turn
      wgmma::wait<0>();
      wgmma::fence_operands(acc[0]);
      wgmma::fence_operands(acc[1]);
      release((slot - 1) % kStages);
      if constexpr (kWhole) {
        store_whole_tile<E>(acc, p, d, m0, n0, staged, consumer, has_rowwise, rowwise + 8 * consumer,
                            uint32_t(turns - 1) & 1);
      } else {
        store_tile<E>(acc, p, d, m0, n0, staged, consumer, first_half);
      }
    }
  }
  // No block leaves while another of its cluster may still signal its barriers.
  if constexpr (kCluster > 1) wgmma::cluster_sync();
#else
  __trap();  // launched only where wgmma_gemm_fits says this target was built
#endif
}

// p's cluster size, else ZT_GEMM_CLUSTER's (1, the default, or 2; docs/CUDA_NOTES.md v18).
int cluster_size(const WgmmaGemm& p) {
  static const int from_env = [] {
    const long long size = env_int("ZT_GEMM_CLUSTER", 1);
    ZT_CHECK(size == 1 || size == 2, "ZT_GEMM_CLUSTER=", size, " is not a cluster size of the own GEMM (use 1 or 2)");
    return int(size);
  }();
  return p.cluster != 0 ? p.cluster : from_env;
}

template <WgmmaEpilogue E, int kBMnMajor, int kCluster, bool kWhole>
void launch(const WgmmaGemm& p) {
  auto kernel = gemm_wgmma_kernel<E, kBMnMajor, kCluster, kWhole>;
  constexpr size_t kShared = Layout<kWhole>::shared;
  allow_shared(kernel, kShared);  // per device: set at each launch, as the flash kernels do
  Dims d;
  d.m = int(p.m), d.n = int(p.n), d.k = int(p.k);
  d.tiles_n = (d.n + kTileN - 1) / kTileN;
  d.tiles = ((d.m + kTileM * kCluster - 1) / (kTileM * kCluster)) * d.tiles_n;  // cluster tiles
  d.k_blocks = (d.k + kTileK - 1) / kTileK;
  const CUtensorMap a_map = bf16_rows_tensor_map(p.a, 1, p.m, p.k, p.k, kTileM);
  const CUtensorMap b_map = kBMnMajor ? bf16_rows_tensor_map(p.b, 1, p.k, p.n, p.n, kTileK)
                                      : bf16_rows_tensor_map(p.b, 1, p.n, p.k, p.k, kTileN / kCluster);
  // The row-wise input's (128, 64) boxes (the whole-tile staging's), else A's map unused.
  const bf16* rowwise = rowwise_input<E>(p);
  const CUtensorMap rowwise_map = kWhole && rowwise ? bf16_rows_tensor_map(rowwise, 1, p.m, p.n, p.n, kTileM) : a_map;
  cudaLaunchConfig_t config = {};
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeClusterDimension;
  attribute[0].val.clusterDim.x = kCluster, attribute[0].val.clusterDim.y = 1, attribute[0].val.clusterDim.z = 1;
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = kShared;
  config.stream = compute_stream();
  config.attrs = attribute;
  config.numAttrs = 1;
  // As many clusters as fit at once (a multiprocessor each block), or as there are cluster tiles.
  static thread_local int resident_clusters = 0;
  if (resident_clusters == 0) {
    config.gridDim = dim3(multiprocessor_count() / kCluster * kCluster);
    ZT_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&resident_clusters, kernel, &config));
    ZT_CHECK(resident_clusters > 0, "gemm_wgmma: no cluster of ", kCluster, " blocks fits on this GPU");
  }
  config.gridDim = dim3(std::min(resident_clusters, d.tiles) * kCluster);
  ZT_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, a_map, b_map, rowwise_map, p, d));
}

// p's staging, else ZT_GEMM_STAGING's (halves, the default, or whole; docs/CUDA_NOTES.md v18).
bool whole_tile_staging(const WgmmaGemm& p) {
  static const bool from_env = [] {
    const std::string staging = env_string("ZT_GEMM_STAGING", "halves");
    ZT_CHECK(staging == "halves" || staging == "whole", "ZT_GEMM_STAGING='", staging,
             "' is not a staging of the own GEMM (use halves or whole)");
    return staging == "whole";
  }();
  return p.staging == WgmmaStaging::from_env ? from_env : p.staging == WgmmaStaging::whole;
}

template <WgmmaEpilogue E, int kBMnMajor>
void launch_clustered(const WgmmaGemm& p) {
  const bool whole = whole_tile_staging(p);
  if (cluster_size(p) == 2) whole ? launch<E, kBMnMajor, 2, true>(p) : launch<E, kBMnMajor, 2, false>(p);
  else whole ? launch<E, kBMnMajor, 1, true>(p) : launch<E, kBMnMajor, 1, false>(p);
}

}  // namespace

bool wgmma_gemm_fits(const WgmmaGemm& p) {
  constexpr int64_t kLimit = int64_t(1) << 31;
  if (!flash_wgmma_runs()) return false;
  if (p.m <= 0 || p.n <= 0 || p.k <= 0 || p.m >= kLimit || p.n >= kLimit || p.k >= kLimit) return false;
  if (p.n % 8 != 0 || p.k % 8 != 0) return false;
  // The ring's positions (tile index * k-blocks) are ints.
  const int64_t tiles = ((p.m + kTileM - 1) / kTileM) * ((p.n + kTileN - 1) / kTileN);
  if (tiles * ((p.k + kTileK - 1) / kTileK) >= kLimit) return false;
  if (!aligned16({p.out, p.pre_act, p.aux, p.bias, p.residual, p.a, p.b})) return false;
  if (!p.out || !p.a || !p.b) return false;
  if (p.epilogue == WgmmaEpilogue::gelu && !p.pre_act) return false;
  if (p.epilogue == WgmmaEpilogue::dgelu && !p.aux) return false;
  if (p.cluster != 0 && p.cluster != 1 && p.cluster != 2) return false;
  return true;
}

void wgmma_gemm(const WgmmaGemm& p) {
  ZT_CHECK(wgmma_gemm_fits(p), "wgmma_gemm: the product (", p.m, ", ", p.n, ", K ", p.k, ", cluster ", p.cluster,
           ") does not fit the kernel (a Hopper GPU, N and K multiples of 8, 16-byte aligned pointers, clusters of 1 or 2)");
  switch (p.epilogue) {
    case WgmmaEpilogue::plain:
      return p.b_mn_major ? launch_clustered<WgmmaEpilogue::plain, 1>(p) : launch_clustered<WgmmaEpilogue::plain, 0>(p);
    case WgmmaEpilogue::gelu:
      return p.b_mn_major ? launch_clustered<WgmmaEpilogue::gelu, 1>(p) : launch_clustered<WgmmaEpilogue::gelu, 0>(p);
    case WgmmaEpilogue::dgelu:
      return p.b_mn_major ? launch_clustered<WgmmaEpilogue::dgelu, 1>(p) : launch_clustered<WgmmaEpilogue::dgelu, 0>(p);
  }
}

}  // namespace zt::cuda
