// Flash attention forward for bf16, HD 64, on Hopper's warpgroup products (wgmma, sm_90a; built
// only for that target, see CMakeLists.txt; docs/CUDA_NOTES.md v6). Same inputs, outputs and
// arithmetic as flash_forward.cu's kernel, which serves every other case.
//
// A block is G warpgroups over 64 G query rows of one head, 64 rows a warpgroup. Q and 128-key
// tiles of K and V are copied by the TMA (one thread issues them; an mbarrier a stage says when
// they have landed) into 128-byte-swizzled tiles (wgmma.cuh), which the tensor cores read
// directly: S = Q K^T is 4 m64n128k16 products with both operands in shared
// memory, and O += P V 8 m64n64k16 products with P in registers, packed to bf16 straight from S's
// accumulators, and V read as an MN-major operand. The online softmax is flash_forward.cu's, on
// each warp's 16 rows of the warpgroup's accumulators.
//
// A warpgroup computes a tile's S, its softmax, then P V; two blocks of 2 warpgroups share a
// multiprocessor, so that one's products overlap another's softmax. (Queuing the next tile's S
// before this tile's softmax, so that a warpgroup overlaps its own products, needs a second set of
// score registers: one block a multiprocessor, and it measured 20 % slower; docs/CUDA_NOTES.md v6.)
#include "flash_attention.cuh"
#include "flash_common.cuh"
#include "tensor_map.hpp"
#include "wgmma.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

constexpr int kHd = 64;
constexpr int kGroupRows = 64;                 // query rows a warpgroup
constexpr int kKeys = 128;                     // keys a staged tile
constexpr int kRowBytes = kHd * 2;             // one 128-byte swizzle row
constexpr int kTileBytes = kKeys * kRowBytes;  // 16 KiB, K or V

// G warpgroups a block (G * 64 query rows: each staged K/V tile serves them all), S stages of K
// and V, B blocks a multiprocessor (the register budget: 65536 / (128 G B) a thread).
template <int G, int S, int B>
struct Shape {
  static constexpr int threads = 128 * G, rows = kGroupRows * G, stages = S, blocks_per_sm = B;
  static constexpr int q_bytes = rows * kRowBytes;
  static constexpr size_t barriers = size_t(q_bytes) + 2 * S * kTileBytes;  // S + 1 mbarriers: the stages', Q's
  static constexpr size_t shared = barriers + 8 * (S + 1);
};

using Scores = float[kKeys / 8][4];  // a warpgroup's (64, 128) accumulators, as wgmma.cuh lays them out
using Output = float[kHd / 8][4];    // (64, 64)
using Probabilities = uint32_t[kKeys / 16][4];  // P as the A operand of P V, a k-step of 16 keys each

// What a thread of a block knows about its place: the head, its warpgroup's and warp's rows, the
// shared tiles. Dynamic shared memory starts 1024-byte aligned (the kernels declare no static
// shared memory), as the swizzled tiles need; were it not, results would be wrong, so a kernel
// stops instead.
template <class Sh>
struct Block {
  unsigned char *sq, *sk, *sv;  // Q (rows, 64); stages of K and of V (128, 64)
  uint32_t bars;                // S + 1 mbarriers: stage s's at bars + 8 s, then Q's
  int b, h, bh, q0, tiles, group_row0, row0, g, tq;
  int key_col, value_col;  // tensor-map columns of K and V
  uint64_t q_desc;

  __device__ __forceinline__ Block(unsigned char* shared, const FlashDims& dm) {
    if (shared_address(shared) % 1024 != 0) __trap();
    sq = shared, sk = sq + Sh::q_bytes, sv = sk + Sh::stages * kTileBytes;
    bars = shared_address(shared + Sh::barriers);
    const int group = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    g = lane >> 2, tq = lane & 3;
    q0 = (gridDim.x - 1 - blockIdx.x) * Sh::rows;  // the longest blocks of a head first
    bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh;
    const int kh = h / (dm.nh / dm.nkv);
    key_col = (dm.nh + kh) * kHd, value_col = (dm.nh + dm.nkv + kh) * kHd;
    tiles = (min(q0 + Sh::rows, dm.t) - 1) / kKeys + 1;  // key tiles up to the block's last row
    group_row0 = q0 + group * kGroupRows, row0 = group_row0 + warp * 16;
    q_desc = wgmma::sw128_descriptor(shared_address(sq + group * kGroupRows * kRowBytes));
  }
  // Whether key tile i holds a key at or before one of the warpgroup's rows (else it adds
  // nothing; uniform over the warpgroup, as wgmma needs). Such tiles are a prefix of the tiles.
  __device__ __forceinline__ bool needed(int i) const { return i * kKeys < group_row0 + kGroupRows; }
  // The copies, issued by thread 0 (rows past the sequence arrive as zeros).
  __device__ __forceinline__ void init_barriers() const {
    if (threadIdx.x == 0) {
      for (int i = 0; i <= Sh::stages; ++i) wgmma::mbarrier_init(bars + 8 * i, 1);
      wgmma::fence_mbarrier_init();
    }
    __syncthreads();
  }
  __device__ __forceinline__ void stage_q(const CUtensorMap& q_map) const {
    if (threadIdx.x != 0) return;
    const uint32_t bar = bars + 8 * Sh::stages;
    wgmma::mbarrier_arrive_expect_bytes(bar, Sh::q_bytes);
    wgmma::tma_load_3d(shared_address(sq), &q_map, h * kHd, q0, b, bar);
  }
  __device__ __forceinline__ void stage_tile(int i, const CUtensorMap& kv_map) const {
    if (threadIdx.x != 0) return;
    const int stage = i % Sh::stages;
    const uint32_t bar = bars + 8 * stage;
    wgmma::mbarrier_arrive_expect_bytes(bar, 2 * kTileBytes);
    wgmma::tma_load_3d(shared_address(sk + stage * kTileBytes), &kv_map, key_col, i * kKeys, b, bar);
    wgmma::tma_load_3d(shared_address(sv + stage * kTileBytes), &kv_map, value_col, i * kKeys, b, bar);
  }
  __device__ __forceinline__ void wait_q() const { wgmma::mbarrier_wait(bars + 8 * Sh::stages, 0); }
  // Until tile i has landed: its stage's barrier completes a phase for each tile it takes.
  __device__ __forceinline__ void wait_tile(int i) const {
    wgmma::mbarrier_wait(bars + 8 * (i % Sh::stages), uint32_t(i / Sh::stages) & 1);
  }
  // Queues s = Q K_i^T (one commit group); the caller waits.
  __device__ __forceinline__ void queue_scores(Scores& s, int i) const {
    const uint64_t k_desc = wgmma::sw128_descriptor(shared_address(sk + (i % Sh::stages) * kTileBytes));
    wgmma::fence();
#pragma unroll
    for (int ks = 0; ks < kHd / 16; ++ks) wgmma::m64n128k16_ss(s, q_desc + 2 * ks, k_desc + 2 * ks, ks > 0);
    wgmma::commit();
  }
  // Queues o += P V_i (one commit group); the caller waits.
  __device__ __forceinline__ void queue_pv(Output& o, const Probabilities& p, int i) const {
    const uint32_t v_address = shared_address(sv + (i % Sh::stages) * kTileBytes);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
      wgmma::m64n64k16_rs(o, p[kk], wgmma::sw128_descriptor(v_address + kk * 16 * kRowBytes));
    wgmma::commit();
  }
};

// The online softmax of tile i's scores s: keys after a row's query masked, the running maxima m
// and partial sums l updated, the probabilities (unnormalized) packed to bf16 into p as P V's A
// operand (a pair of 8-column blocks a k-step), and correction[r] the factor the output rows
// (g, g + 8) must be scaled by before P V adds to them. c = log2(e) / sqrt(HD).
__device__ __forceinline__ void softmax_tile(Scores& s, Probabilities& p, float (&m)[2], float (&l)[2],
                                             float (&correction)[2], int k0, int row0, int g, int tq, float c) {
  if (k0 + kKeys - 1 > row0) {  // the diagonal crosses this warp's part of the tile
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (k0 + nt * 8 + 2 * tq + (e & 1) > row0 + g + 8 * (e >> 1)) s[nt][e] = -INFINITY;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = m[r];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
    mx = quad_max(mx);
    const float ms = mx * c;
    correction[r] = exp2_fast(fmaf(m[r], c, -ms));  // 0 on the first tile
    m[r] = mx;
    float sum = l[r] * correction[r];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
      const float p0 = exp2_fast(fmaf(s[nt][2 * r], c, -ms)), p1 = exp2_fast(fmaf(s[nt][2 * r + 1], c, -ms));
      sum += p0 + p1;
      p[nt / 2][(nt & 1) * 2 + r] = pack_bf16(p0, p1);
    }
    l[r] = sum;
  }
}

__device__ __forceinline__ void rescale(Output& o, const float (&correction)[2]) {
#pragma unroll
  for (int nt = 0; nt < kHd / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[nt][e] *= correction[e >> 1];
}

// out (B, T, NH*64) and lse (B, NH, T) for this thread's rows.
template <class Sh>
__device__ __forceinline__ void write_rows(bf16* out, float* lse, const Block<Sh>& k, const Output& o,
                                           const float (&m)[2], const float (&l)[2], const FlashDims& dm) {
  const float c = dm.scale_log2;
  const float total[2] = {quad_sum(l[0]), quad_sum(l[1])};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = k.row0 + k.g + 8 * r;
    if (row >= dm.t) continue;
    const float inv = 1.0f / total[r];
    bf16* y = out + (int64_t(k.b) * dm.t + row) * dm.nh * kHd + k.h * kHd;
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt)
      *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * k.tq) = pack_bf16(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
    if (k.tq == 0) lse[int64_t(k.bh) * dm.t + row] = (m[r] * c + log2f(total[r])) / kLog2e;
  }
}

// out (B, T, NH*64), lse (B, NH, T). Grid (query blocks, B*NH).
// q_map and kv_map: qkv as (B, T, width), boxes of Sh::rows and of 128 rows.
template <class Sh>
__global__ void __launch_bounds__(Sh::threads, Sh::blocks_per_sm)
    flash_forward_wgmma_kernel(bf16* out, float* lse, const __grid_constant__ CUtensorMap q_map,
                               const __grid_constant__ CUtensorMap kv_map, FlashDims dm) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int S = Sh::stages;
  extern __shared__ __align__(1024) unsigned char shared[];
  Block<Sh> k(shared, dm);
  k.init_barriers();
  // Q and the first S - 1 key tiles.
  k.stage_q(q_map);
#pragma unroll
  for (int i = 0; i < S - 1; ++i)
    if (i < k.tiles) k.stage_tile(i, kv_map);
  Output o = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // running raw maxima, partial sums (this thread's columns)
  k.wait_q();
  for (int it = 0; it < k.tiles; ++it) {
    if (it + S - 1 < k.tiles) k.stage_tile(it + S - 1, kv_map);  // into tile it - 1's stage, freed below
    k.wait_tile(it);  // every thread, so that the phase is complete before the stage is refilled
    if (k.needed(it)) {
      Scores s;
      k.queue_scores(s, it);
      wgmma::wait<0>();
      wgmma::fence_operands(s);
      Probabilities p;
      float correction[2];
      softmax_tile(s, p, m, l, correction, it * kKeys, k.row0, k.g, k.tq, dm.scale_log2);
      rescale(o, correction);
      k.queue_pv(o, p, it);
      wgmma::wait<0>();
      wgmma::fence_operands(o);
    }
    __syncthreads();  // this stage is refilled by the next iteration
  }
  write_rows(out, lse, k, o, m, l, dm);
#else
  __trap();  // launched only where ZT_HAS_WGMMA says this target was built
#endif
}

template <class Sh>
void launch(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv) {
  allow_shared(flash_forward_wgmma_kernel<Sh>, Sh::shared);
  const FlashDims dm = flash_dims(t, nh, nkv, kHd);
  const CUtensorMap q_map = bf16_rows_tensor_map(qkv, b, t, dm.width, dm.width, Sh::rows);
  const CUtensorMap kv_map = bf16_rows_tensor_map(qkv, b, t, dm.width, dm.width, kKeys);
  const dim3 grid(unsigned((t + Sh::rows - 1) / Sh::rows), unsigned(b * nh));
  flash_forward_wgmma_kernel<Sh><<<grid, Sh::threads, Sh::shared, compute_stream()>>>(out, lse, q_map, kv_map, dm);
  ZT_CUDA_CHECK_LAUNCH("flash_forward_wgmma_kernel");
}

}  // namespace

void flash_attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh,
                                   int64_t nkv) {
  // 2 warpgroups and 2 stages measured fastest on an H200 (docs/CUDA_NOTES.md v6): 0.116 /
  // 0.249 ms at GPT-2's / Llama's shape against 0.118 / 0.255 with 3 stages and 0.130 / 0.274 with
  // 4 warpgroups (a block's warpgroups then wait for each other at every tile's barrier).
  switch (flash_attention_tuning().wgmma_forward_shape) {
    case 23: return launch<Shape<2, 3, 2>>(out, lse, qkv, b, t, nh, nkv);
    case 42: return launch<Shape<4, 2, 1>>(out, lse, qkv, b, t, nh, nkv);
    default: return launch<Shape<2, 2, 2>>(out, lse, qkv, b, t, nh, nkv);
  }
}

}  // namespace zt::cuda
