// The product of gemm_wgmma.hpp. A persistent block a multiprocessor of three warpgroups:
//
// - the producer (warpgroup 0, one thread): walks the block's output tiles (128 x 128, tile t,
//   t + grid, ...) and copies each tile's k-blocks of A (128, 64) and B (128 columns, 64 of K) by
//   the TMA into a ring of kStages stages (128-byte-swizzled tiles, wgmma.cuh). A stage's `full`
//   barrier (one a consumer) says its copies have landed, its `empty` barrier that its consumer is
//   done with it.
// - two consumers (warpgroups 1 and 2), taking the block's tiles in turn: each computes its
//   tile's (128, 128) accumulators (two m64n128k16 products a 16-wide k-step, 128 f32 a thread),
//   then applies the epilogue and stores the tile straight from its registers. Their products
//   take turns (the `turn` barriers), so that one's epilogue runs under the other's products.
//
// Rows and columns past M, N and K arrive as zeros from the TMA and are not stored.
//
// Measured on an H200 (docs/CUDA_NOTES.md v17): plain products at 80-97 % of cuBLASLt's rate
// with K of 2048 and more, 77 % with K = 768; the GELU products at 69-84 % of cuBLASLt's fused
// epilogues. matmul.cu uses it only when ZT_MATMUL_OWN_GEMM=1.
#include <cuda.h>

#include <algorithm>

#include "common.cuh"
#include "cuda_ops.hpp"
#include "flash_common.cuh"
#include "gemm_wgmma.hpp"
#include "tensor_map.hpp"
#include "wgmma.cuh"

namespace zt::cuda {

namespace {

constexpr int kTileM = 128, kTileN = 128, kTileK = 64;
constexpr int kStages = 6;
constexpr int kABytes = kTileM * kTileK * 2;  // 16 KiB: (128, 64), 128 rows of 128 bytes
constexpr int kBBytes = kTileN * kTileK * 2;  // 16 KiB: (128, 64) K-major, or two (64, 64) MN-major tiles
constexpr int kStageBytes = kABytes + kBBytes;
constexpr size_t kShared = size_t(kStages) * kStageBytes + 3 * 8 * kStages + 2 * 8;  // the ring, then the barriers
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

// The consumer's tile (m0, n0) from its accumulators: this thread's rows 16 w + g (+ 8) of each
// 64-row half, columns 8 j + 2 tq (+ 1). What the epilogue reads (bias, residual, aux) is loaded
// a row's 16 pairs at a time before that row's stores: a load after a store to memory that may
// alias it would wait for it, one latency a pair.
template <WgmmaEpilogue E>
__device__ __forceinline__ void store_tile(const Accumulators& acc, const WgmmaGemm& p, const Dims& d, int m0,
                                           int n0) {
  constexpr int kPairs = kTileN / 8;
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int col0 = n0 + 2 * (lane & 3);
  const bool has_bias = E != WgmmaEpilogue::dgelu && p.bias;
  uint32_t bias[kPairs];
#pragma unroll
  for (int j = 0; j < kPairs; ++j) bias[j] = has_bias && col0 + 8 * j < d.n ? load_word(p.bias + col0 + 8 * j) : 0u;
  const bf16* rowwise = E == WgmmaEpilogue::dgelu ? p.aux : E == WgmmaEpilogue::plain ? p.residual : nullptr;
#pragma unroll
  for (int half = 0; half < 2; ++half)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = m0 + 64 * half + 16 * warp + (lane >> 2) + 8 * r;
      if (row >= d.m) continue;
      const int64_t row_offset = int64_t(row) * d.n;
      uint32_t extra[kPairs];
#pragma unroll
      for (int j = 0; j < kPairs; ++j)
        extra[j] = rowwise && col0 + 8 * j < d.n ? load_word(rowwise + row_offset + col0 + 8 * j) : 0u;
#pragma unroll
      for (int j = 0; j < kPairs; ++j) {
        const int col = col0 + 8 * j;
        if (col >= d.n) continue;  // N is even: col + 1 < N too
        float v0 = acc[half][j][2 * r], v1 = acc[half][j][2 * r + 1];
        const float2 b = unpack(bias[j]), x = unpack(extra[j]);
        const int64_t i = row_offset + col;
        if constexpr (E == WgmmaEpilogue::plain) {
          v0 += b.x + x.x, v1 += b.y + x.y;
        } else if constexpr (E == WgmmaEpilogue::gelu) {
          v0 += b.x, v1 += b.y;
          *reinterpret_cast<uint32_t*>(p.pre_act + i) = pack_bf16(v0, v1);
          v0 = gelu_value<true>(round_bf16(v0)), v1 = gelu_value<true>(round_bf16(v1));  // as the CPU: gelu of the stored value
        } else {
          v0 = round_bf16(v0) * gelu_derivative<true>(x.x), v1 = round_bf16(v1) * gelu_derivative<true>(x.y);
        }
        *reinterpret_cast<uint32_t*>(p.out + i) = pack_bf16(v0, v1);
      }
    }
}

template <WgmmaEpilogue E, int kBMnMajor>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_wgmma_kernel(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map,
                      const WgmmaGemm p, const Dims d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  if (shared_address(shared) % 1024 != 0) __trap();  // the swizzled tiles need it
  const uint32_t ring = shared_address(shared);
  // Each consumer has its own `full` barrier a stage (full + 8 (consumer kStages + s)): a barrier
  // tells phases apart by parity only, and with one barrier for both, a consumer waiting for its
  // next tile could take a phase completed for the other's tile as its own.
  // turn + 8 c: consumer c may run its products (the consumers' products take turns, so that one's
  // epilogue runs under the other's products, as CUTLASS's ping-pong kernels order them).
  const uint32_t full = ring + kStages * kStageBytes, empty = full + 2 * 8 * kStages, turn = empty + 8 * kStages;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      wgmma::mbarrier_init(full + 8 * s, 1);
      wgmma::mbarrier_init(full + 8 * (kStages + s), 1);
      wgmma::mbarrier_init(empty + 8 * s, 4);  // one arrival a consumer warp
    }
    wgmma::mbarrier_init(turn, 4), wgmma::mbarrier_init(turn + 8, 4);
    wgmma::fence_mbarrier_init();
  }
  __syncthreads();
  const int group = threadIdx.x >> 7;

  if (group == 0) {  // the producer
    wgmma::release_registers<kProducerRegisters>();
    if (threadIdx.x != 0) return;
    int slot = 0;  // the ring position: stage slot % kStages, its (slot / kStages)-th use
    for (int t = blockIdx.x, j = 0; t < d.tiles; t += gridDim.x, ++j) {
      const int m0 = (t / d.tiles_n) * kTileM, n0 = (t % d.tiles_n) * kTileN;
      for (int kb = 0; kb < d.k_blocks; ++kb, ++slot) {
        const int s = slot % kStages;
        if (slot >= kStages) wgmma::mbarrier_wait(empty + 8 * s, uint32_t(slot / kStages - 1) & 1);
        const uint32_t bar = full + 8 * ((j & 1) * kStages + s), a_tile = ring + s * kStageBytes, b_tile = a_tile + kABytes;
        wgmma::mbarrier_arrive_expect_bytes(bar, kStageBytes);
        wgmma::tma_load_3d(a_tile, &a_map, kb * kTileK, m0, 0, bar);
        if (kBMnMajor) {
          wgmma::tma_load_3d(b_tile, &b_map, n0, kb * kTileK, 0, bar);
          wgmma::tma_load_3d(b_tile + kBBytes / 2, &b_map, n0 + 64, kb * kTileK, 0, bar);
        } else {
          wgmma::tma_load_3d(b_tile, &b_map, kb * kTileK, n0, 0, bar);
        }
      }
    }
    return;
  }

  wgmma::claim_registers<kConsumerRegisters>();
  const int consumer = group - 1;
  const bool signals = (threadIdx.x & 31) == 0;
  const uint32_t my_full = full + 8 * kStages * consumer;
  uint32_t phases = 0;  // bit s: the parity of this consumer's next phase of stage s's barrier
  const uint32_t my_turn = turn + 8 * consumer, other_turn = turn + 8 * (1 - consumer);
  // Consumer 0's i-th tile (i > 0) follows consumer 1's (i - 1)-th; consumer 1's i-th follows
  // consumer 0's i-th (each exists whenever the waiting tile does).
  int turns = 0;
  // The block's j-th tile is t = blockIdx.x + j * grid; this consumer takes j = consumer, consumer + 2, ...
  for (int t = blockIdx.x + consumer * gridDim.x, j = consumer; t < d.tiles; t += 2 * gridDim.x, j += 2) {
    const int m0 = (t / d.tiles_n) * kTileM, n0 = (t % d.tiles_n) * kTileN;
    Accumulators acc;
    int slot = j * d.k_blocks;
    if (consumer == 1 || turns > 0) {
      wgmma::mbarrier_wait(my_turn, uint32_t(consumer == 1 ? turns : turns - 1) & 1);
    }
    ++turns;
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
      if (kb > 0 && signals) wgmma::mbarrier_arrive(empty + 8 * ((slot - 1) % kStages));
    }
    if (signals) wgmma::mbarrier_arrive(other_turn);  // the last products are queued: the other's turn
    wgmma::wait<0>();
    wgmma::fence_operands(acc[0]);
    wgmma::fence_operands(acc[1]);
    if (signals) wgmma::mbarrier_arrive(empty + 8 * ((slot - 1) % kStages));
    store_tile<E>(acc, p, d, m0, n0);
  }
#else
  __trap();  // launched only where wgmma_gemm_fits says this target was built
#endif
}

template <WgmmaEpilogue E, int kBMnMajor>
void launch(const WgmmaGemm& p) {
  auto kernel = gemm_wgmma_kernel<E, kBMnMajor>;
  allow_shared(kernel, kShared);  // per device: set at each launch, as the flash kernels do
  Dims d;
  d.m = int(p.m), d.n = int(p.n), d.k = int(p.k);
  d.tiles_n = (d.n + kTileN - 1) / kTileN;
  d.tiles = ((d.m + kTileM - 1) / kTileM) * d.tiles_n;
  d.k_blocks = (d.k + kTileK - 1) / kTileK;
  const CUtensorMap a_map = bf16_rows_tensor_map(p.a, 1, p.m, p.k, p.k, kTileM);
  const CUtensorMap b_map = kBMnMajor ? bf16_rows_tensor_map(p.b, 1, p.k, p.n, p.n, kTileK)
                                      : bf16_rows_tensor_map(p.b, 1, p.n, p.k, p.k, kTileN);
  const int grid = std::min(multiprocessor_count(), d.tiles);
  kernel<<<grid, kThreads, kShared, compute_stream()>>>(a_map, b_map, p, d);
  ZT_CUDA_CHECK_LAUNCH("gemm_wgmma_kernel");
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
  return true;
}

void wgmma_gemm(const WgmmaGemm& p) {
  ZT_CHECK(wgmma_gemm_fits(p), "wgmma_gemm: the product (", p.m, ", ", p.n, ", K ", p.k,
           ") does not fit the kernel (a Hopper GPU, N and K multiples of 8, 16-byte aligned pointers)");
  switch (p.epilogue) {
    case WgmmaEpilogue::plain: return p.b_mn_major ? launch<WgmmaEpilogue::plain, 1>(p) : launch<WgmmaEpilogue::plain, 0>(p);
    case WgmmaEpilogue::gelu: return p.b_mn_major ? launch<WgmmaEpilogue::gelu, 1>(p) : launch<WgmmaEpilogue::gelu, 0>(p);
    case WgmmaEpilogue::dgelu: return p.b_mn_major ? launch<WgmmaEpilogue::dgelu, 1>(p) : launch<WgmmaEpilogue::dgelu, 0>(p);
  }
}

}  // namespace zt::cuda
