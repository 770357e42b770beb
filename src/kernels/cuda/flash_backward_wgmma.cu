// Flash attention backward for bf16, HD 64, on Hopper's warpgroup products (wgmma, sm_90a; built
// only for that target, docs/CUDA_NOTES.md v7). The same gradients as flash_backward.cu, in one
// key-side pass with 5 products where that file's two kernels need 7:
//   1. prep: statistics (B, NH, Tq, 2) = (lse in the log2 domain, D = rowsum(dO * O)) for each
//      query row, padded to whole 64-row tiles (lse +inf past T: those rows' probabilities are 0);
//   2. per 128 keys of a key/value head (64 a warpgroup; or 64 keys, one warpgroup a block), over
//      the 64-query tiles at or after them of the group's query heads (or a share of them, see
//      below):
//        S^T = K Q^T, dP^T = V dO^T (K, V as K-major A operands; Q, dO K-major B),
//        P^T = exp2(c S^T - lse2), dS^T = P^T (dP^T - D),
//        dV += P^T dO, dK += dS^T Q (P^T and dS^T in registers; dO, Q as MN-major B),
//        dQ (64, 64) = dS K over the block's keys, each warpgroup its share of the columns (dS^T
//        through shared memory as an MN-major A, K as an MN-major B),
//      and dQ added into an f32 accumulator in global memory by one bulk reduction a step. P^T is
//      computed while dP^T's products run and dS^T while dV's do;
//   3. dQ's accumulator, scaled, into dqkv's query heads.
// With a rotary embedding, the prep kernel also tabulates (cos, sin) (T, 32) of each position's
// angles, and dK (at its write) and dQ (at its conversion) are rotated back from f32: element i
// of a head with i + 32, which a thread holds together (8-column blocks j and j + 4).
// dK and dV come out of registers in a fixed order (bitwise repeatable); dQ's additions land in
// the order blocks finish, so its low bits vary run to run.
//
// Grouped heads: as in flash_backward.cu, a block walks the query heads of its group one after
// another unless the longest block would be over a resident block's average load; then `splits`
// blocks share the heads and write f32 partials, added in a fixed order afterwards.
//
// Block order: windows of key/value heads, each handing out its longest blocks first
// (block_windows.hpp, docs/CUDA_NOTES.md v14), so that the dQ accumulators in use at once stay
// in L2.
//
// A block's shared memory: K and V, 3 stages of Q, dO and statistics (copied by the TMA, one
// thread issuing, an mbarrier a stage and one for K and V), 2 of dS^T (a
// step's dQ products still read one while the next step writes the other) and one dQ tile, which
// the bulk reduction has read before the next step writes it. dQ's accumulator tile is laid out as
// the threads hold it, so that the float4 stores to shared memory are conflict-free: (8-column
// block over the warpgroups, thread, 4).
#include "block_windows.hpp"
#include "flash_attention.cuh"
#include "flash_common.cuh"
#include "tensor_map.hpp"
#include "wgmma.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

constexpr int kHd = 64;
constexpr int kQueries = 64;                           // queries a step
constexpr int kStages = 3;                             // staged query tiles
constexpr int kRowBytes = kHd * 2;                     // one 128-byte swizzle row
constexpr int kQueryTileBytes = kQueries * kRowBytes;  // 8 KiB: Q or dO
constexpr int kDqFloats = kQueries * kHd;              // a dQ tile, f32
constexpr int kDqBytes = kDqFloats * 4;                // 16 KiB
constexpr int kStatBytes = kQueries * 8;               // (lse2, D) a query

// A block of G warpgroups over 64 G keys (2 blocks a multiprocessor for one warpgroup, 1 for two:
// the registers); its shared memory, each part 1024-byte aligned where the tensor cores read it.
template <int G>
struct Shape {
  static constexpr int groups = G, threads = 128 * G, keys = 64 * G, blocks_per_sm = 3 - G;
  static constexpr int key_tile_bytes = keys * kRowBytes;  // K, V or dS^T (keys, 64 queries)
  static constexpr int off_k = 0, off_v = off_k + key_tile_bytes, off_q = off_v + key_tile_bytes,
                       off_do = off_q + kStages * kQueryTileBytes, off_ds = off_do + kStages * kQueryTileBytes,
                       off_dq = off_ds + 2 * key_tile_bytes, off_stat = off_dq + kDqBytes,
                       off_bars = off_stat + kStages * kStatBytes,  // kStages + 1 mbarriers: the stages', K and V's
                       shared = off_bars + 8 * (kStages + 1);
};

using Square = float[kHd / 8][4];           // a warpgroup's (64, 64) accumulators (wgmma.cuh's layout)
using Packed = uint32_t[kQueries / 16][4];  // (64 keys, 64 queries) in bf16 as an A operand, a k-step each
template <int G>
using DqShare = float[kHd / 8 / G][4];  // (64, 64 / G): a warpgroup's columns of a dQ tile

constexpr int kRotaryPairs = kHd / 2;  // (i, i + 32) pairs of a head that the rotation turns

// The rotation's table (T, 32) of (cos, sin) at angle (offset + position) * inv_freq[i], the
// floats rope_apply computes; rows [32 x, 32 x + 32) by block x.
__device__ __forceinline__ void tabulate_rotary(float2* table, const float* inv_freq, int64_t offset, int t) {
  for (int e = threadIdx.x; e < 32 * kRotaryPairs; e += blockDim.x) {
    const int row = blockIdx.x * 32 + e / kRotaryPairs, i = e % kRotaryPairs;
    if (row >= t) break;
    float s, c;
    sincosf(float(offset + row) * inv_freq[i], &s, &c);
    table[int64_t(row) * kRotaryPairs + i] = make_float2(c, s);
  }
}

// (lo, hi) = elements i and i + 32 of a head's gradient, rotated back by the angle of (c, s).
__device__ __forceinline__ void rotate_back(float& lo, float& hi, float2 cs) {
  const float x1 = lo, x2 = hi;
  lo = x1 * cs.x + x2 * cs.y;
  hi = x2 * cs.x - x1 * cs.y;
}

// stats (B, NH, Tq, 2): (lse * log2 e, D) for rows < T, (+inf, 0) for the padding rows up to Tq;
// and dq_acc's tiles (B*NH, Tq / 64) cleared, half a tile a block; with inv_freq, the rotation's
// table by the blocks of (batch, head) 0. 8 threads a row, 16 bytes of dO and O each. Grid
// (Tq / 32, B*NH), 256 threads.
__global__ void flash_backward_wgmma_prep_kernel(float2* stats, float4* dq_acc, const bf16* dout, const bf16* out,
                                                 const float* lse, FlashDims dm, int tq_rows, float2* rotary_table,
                                                 const float* inv_freq, int64_t rotary_offset) {
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh;
  if (inv_freq != nullptr && bh == 0) tabulate_rotary(rotary_table, inv_freq, rotary_offset, dm.t);
  const int row = blockIdx.x * 32 + threadIdx.x / 8, part = threadIdx.x % 8;
  float4* half_tile = dq_acc + (int64_t(bh) * gridDim.x + blockIdx.x) * (kDqFloats / 8);
  half_tile[threadIdx.x] = half_tile[threadIdx.x + 256] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float d = 0.0f;
  if (row < dm.t) {
    const int64_t at = (int64_t(b) * dm.t + row) * dm.nh * kHd + h * kHd + part * 8;
    d = dot_chunk(*reinterpret_cast<const uint4*>(dout + at), *reinterpret_cast<const uint4*>(out + at), 0.0f);
  }
  d += __shfl_xor_sync(0xffffffffu, d, 1);
  d += __shfl_xor_sync(0xffffffffu, d, 2);
  d += __shfl_xor_sync(0xffffffffu, d, 4);
  if (part == 0 && row < tq_rows)
    stats[int64_t(bh) * tq_rows + row] =
        row < dm.t ? make_float2(lse[int64_t(bh) * dm.t + row] * kLog2e, d) : make_float2(INFINITY, 0.0f);
}

// dqkv's query heads = scale * dq_acc, from the accumulator's (B*NH, Tq / 64) tiles laid out as
// the main kernel's threads hold them: float4 jj * 128 + t of a tile is thread t's 8-column block
// jj (rows 16 (t / 32) + (t % 32) / 4 and 8 below, columns 8 jj + 2 (t % 4), + 1). A thread per
// (warp w, block pair jh, row g): the 4 float4 of threads 32 w + 4 g .. + 3 in blocks jh and
// jh + 4 (columns i and i + 32, which a rotation pairs), 16 bytes into each half of its two rows,
// for `heads` query heads one after another (the rotation's angles read once for all of them).
// Grid (Tq / 64, B*NH / heads), 128 threads.
__global__ void flash_backward_wgmma_dq_kernel(bf16* dqkv, const float4* dq_acc, FlashDims dm, int heads,
                                               const float2* rotary_table) {
  const int qt = blockIdx.x, w = threadIdx.x / 32, jh = (threadIdx.x / 8) % 4, g = threadIdx.x % 8;
  const int row0 = qt * kQueries + 16 * w + g;  // this thread's rows: row0 and row0 + 8
  float4 angles[2][4];  // (cos, sin) of columns 8 jh + 2k and + 1, each row
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int k = 0; k < 4; ++k)
      angles[r][k] = rotary_table != nullptr && row0 + 8 * r < dm.t
                         ? reinterpret_cast<const float4*>(rotary_table + int64_t(row0 + 8 * r) * kRotaryPairs +
                                                           8 * jh)[k]
                         : make_float4(1.0f, 0.0f, 1.0f, 0.0f);
  for (int bh = blockIdx.y * heads; bh < (blockIdx.y + 1) * heads; ++bh) {
    const int b = bh / dm.nh, h = bh % dm.nh;
    const float4* f = dq_acc + (int64_t(bh) * gridDim.x + qt) * (kDqFloats / 4) + jh * 128 + 32 * w + 4 * g;
    float lo[2][8], hi[2][8];  // [row][column]: columns 8 jh + c and 8 (jh + 4) + c
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 a = f[k], z = f[k + 512];
      lo[0][2 * k] = a.x * dm.scale, lo[0][2 * k + 1] = a.y * dm.scale;
      lo[1][2 * k] = a.z * dm.scale, lo[1][2 * k + 1] = a.w * dm.scale;
      hi[0][2 * k] = z.x * dm.scale, hi[0][2 * k + 1] = z.y * dm.scale;
      hi[1][2 * k] = z.z * dm.scale, hi[1][2 * k + 1] = z.w * dm.scale;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + 8 * r;
      if (row >= dm.t) continue;
      if (rotary_table != nullptr) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          rotate_back(lo[r][2 * k], hi[r][2 * k], make_float2(angles[r][k].x, angles[r][k].y));
          rotate_back(lo[r][2 * k + 1], hi[r][2 * k + 1], make_float2(angles[r][k].z, angles[r][k].w));
        }
      }
      bf16* y = dqkv + (int64_t(b) * dm.t + row) * dm.width + h * kHd + 8 * jh;
      *reinterpret_cast<uint4*>(y) = make_uint4(pack_bf16(lo[r][0], lo[r][1]), pack_bf16(lo[r][2], lo[r][3]),
                                                pack_bf16(lo[r][4], lo[r][5]), pack_bf16(lo[r][6], lo[r][7]));
      *reinterpret_cast<uint4*>(y + 32) = make_uint4(pack_bf16(hi[r][0], hi[r][1]), pack_bf16(hi[r][2], hi[r][3]),
                                                     pack_bf16(hi[r][4], hi[r][5]), pack_bf16(hi[r][6], hi[r][7]));
    }
  }
}

// Query heads a block of the dQ kernel converts: up to 8 with a rotation (its angles read once for
// them), one without.
int dq_heads_per_block(int64_t b, int64_t nh, bool rotated) {
  if (!rotated) return 1;
  for (int heads = 8; heads > 1; heads /= 2)
    if ((b * nh) % heads == 0) return heads;
  return 1;
}

// P^T of one step from the warpgroup's S^T (rows: its 64 keys, from key_row0 for this thread's
// row g; columns: the tile's queries from q0), in place in s and packed to bf16 into p as an A
// operand; queries before a key masked where the tile crosses the diagonal. c = log2(e) / sqrt(HD).
__device__ __forceinline__ void probabilities(Square& s, Packed& p, const float4* stat, bool diagonal, int q0,
                                              int key_row0, int tq, float c) {
#pragma unroll
  for (int j = 0; j < kQueries / 8; ++j) {
    const float4 st = stat[4 * j + tq];  // (lse2, D) of queries 8j + 2tq and 8j + 2tq + 1
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[j][e];
      if (diagonal && q0 + 8 * j + 2 * tq + (e & 1) < key_row0 + 8 * (e >> 1)) x = -INFINITY;
      s[j][e] = exp2_fast(fmaf(x, c, -((e & 1) ? st.z : st.x)));
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) p[j / 2][(j & 1) * 2 + r] = pack_bf16(s[j][2 * r], s[j][2 * r + 1]);
  }
}

// dS^T = P^T (dP^T - D), packed to bf16 into ds as an A operand.
__device__ __forceinline__ void score_gradients(const Square& p, const Square& dp, Packed& ds, const float4* stat,
                                                int tq) {
#pragma unroll
  for (int j = 0; j < kQueries / 8; ++j) {
    const float4 st = stat[4 * j + tq];
#pragma unroll
    for (int r = 0; r < 2; ++r)
      ds[j / 2][(j & 1) * 2 + r] =
          pack_bf16(p[j][2 * r] * (dp[j][2 * r] - st.y), p[j][2 * r + 1] * (dp[j][2 * r + 1] - st.w));
  }
}

// Queues dQ's products (one commit group): dq (64 queries, the warpgroup's 64 / G columns) = dS
// (64, keys) K (keys, its columns), dS^T from the tile at ds_at (MN-major A), K from k_at (MN-major
// B, the descriptor starting at the warpgroup's columns).
template <int G>
__device__ __forceinline__ void queue_dq(DqShare<G>& dq, uint32_t ds_at, uint32_t k_at, int group) {
  wgmma::fence();
#pragma unroll
  for (int ks = 0; ks < 4 * G; ++ks) {
    const uint64_t a = wgmma::sw128_descriptor(ds_at + ks * 16 * kRowBytes);
    const uint64_t b = wgmma::sw128_descriptor(k_at + ks * 16 * kRowBytes + group * 128 / G);
    if constexpr (G == 2) wgmma::m64n32k16_ss_mn(dq, a, b, ks > 0);
    else wgmma::m64n64k16_ss<1>(dq, a, b, ks > 0);
  }
  wgmma::commit();
}

// Where this block works: (column, row) of the grid in windows of `window` columns
// (block_windows.hpp).
__device__ __forceinline__ GridPlace block_place(int window) {
  return windowed_place(int(blockIdx.x + blockIdx.y * gridDim.x), int(gridDim.x), int(gridDim.y), window);
}

// dK and dV of the block's keys over query heads [head0, head0 + heads) of its group: into
// dqkv's key and value heads (dK rotated back by rotary_table's angles where it is given), or
// with splits as f32 into partial (splits, B, T, NKV, 2, HD). dQ's products added into dq_acc
// (B*NH, Tq / 64 tiles). Grid (B*NKV*splits, key blocks), placed by block_place in windows of
// `window` columns. Tensor maps (B, T, columns): kv_map over qkv with boxes of the block's keys,
// q_map over qkv and do_map over dout with boxes of 64 queries.
template <class Sh>
__global__ void __launch_bounds__(Sh::threads, Sh::blocks_per_sm)
    flash_backward_wgmma_kernel(bf16* dqkv, float* partial, float* dq_acc, const __grid_constant__ CUtensorMap kv_map,
                                const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap do_map,
                                const float2* stats, FlashDims dm, int batches, int tq_rows, int heads,
                                int window, const float2* rotary_table) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char shared[];
  if (shared_address(shared) % 1024 != 0) __trap();  // the swizzled tiles need it (see the forward)
  const int group = threadIdx.x >> 7, thread = threadIdx.x & 127, warp = thread >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const GridPlace place = block_place(window);  // (key/value head and split, key block)
  const int splits = gridDim.x / (dm.nkv * batches), split = place.column % splits, k0 = place.row * Sh::keys;
  const int bk = place.column / splits, b = bk / dm.nkv, kh = bk % dm.nkv;
  const int head0 = kh * (dm.nh / dm.nkv) + split * heads;
  const int q_tiles_all = tq_rows / kQueries, q_first = k0 / kQueries, q_tiles = q_tiles_all - q_first;
  const int steps = heads * q_tiles;  // step i: query tile q_first + i % q_tiles of head head0 + i / q_tiles
  const uint32_t at = shared_address(shared), bars = at + Sh::off_bars, kv_bar = bars + 8 * kStages;

  // The copies, issued by thread 0 (rows past the sequence arrive as zeros). Stage st's barrier
  // completes a phase for each step it takes.
  auto stage_step = [&](int i) {
    if (threadIdx.x != 0) return;
    const int h = head0 + i / q_tiles, q0 = (q_first + i % q_tiles) * kQueries, st = i % kStages;
    const uint32_t bar = bars + 8 * st;
    wgmma::mbarrier_arrive_expect_bytes(bar, 2 * kQueryTileBytes + kStatBytes);
    wgmma::tma_load_3d(at + Sh::off_q + st * kQueryTileBytes, &q_map, h * kHd, q0, b, bar);
    wgmma::tma_load_3d(at + Sh::off_do + st * kQueryTileBytes, &do_map, h * kHd, q0, b, bar);
    wgmma::bulk_load(at + Sh::off_stat + st * kStatBytes, stats + (int64_t(b) * dm.nh + h) * tq_rows + q0, kStatBytes,
                     bar);
  };
  if (threadIdx.x == 0) {
    for (int i = 0; i <= kStages; ++i) wgmma::mbarrier_init(bars + 8 * i, 1);
    wgmma::fence_mbarrier_init();
    wgmma::mbarrier_arrive_expect_bytes(kv_bar, 2 * Sh::key_tile_bytes);
    wgmma::tma_load_3d(at + Sh::off_k, &kv_map, (dm.nh + kh) * kHd, k0, b, kv_bar);
    wgmma::tma_load_3d(at + Sh::off_v, &kv_map, (dm.nh + dm.nkv + kh) * kHd, k0, b, kv_bar);
  }
  stage_step(0);
  __syncthreads();  // the barriers are initialized before anyone waits on them
  wgmma::mbarrier_wait(kv_bar, 0);

  // This warpgroup's 64 keys as A operands of S^T and dP^T.
  const uint64_t k_desc = wgmma::sw128_descriptor(at + Sh::off_k + group * 64 * kRowBytes);
  const uint64_t v_desc = wgmma::sw128_descriptor(at + Sh::off_v + group * 64 * kRowBytes);
  const int key_row0 = k0 + group * 64 + warp * 16 + g;  // this thread's accumulator rows: key_row0, + 8
  const int ds_row = group * 64 + warp * 16 + (lane & 15);  // the dS^T row whose address this lane gives
  const float c = dm.scale_log2;
  Square dk, dv;  // set by the first step's products (an ordinary definition here would serialize them)
  DqShare<Sh::groups> dq;
  int64_t dq_tile = -1;  // the accumulator tile of the previous step's dQ, still in registers
  auto stage_dq = [&] {  // dq into the staging tile, as the threads hold it
    float4* to = reinterpret_cast<float4*>(shared + Sh::off_dq) + group * 1024 / Sh::groups + thread;
#pragma unroll
    for (int j = 0; j < kHd / 8 / Sh::groups; ++j) to[j * 128] = make_float4(dq[j][0], dq[j][1], dq[j][2], dq[j][3]);
  };
  for (int it = 0; it < steps; ++it) {
    const int st = it % kStages, h = head0 + it / q_tiles, qt = q_first + it % q_tiles, q0 = qt * kQueries;
    if (it + 1 < steps) stage_step(it + 1);  // into the stage of step it - 2, whose products are done
    // The previous step's products retire here, not under this step's: ptxas serializes every
    // product where the loop carries one in flight across its end (warning C7515), or where dQ's
    // accumulators are read with later products queued (C7514).
    wgmma::wait<0>();
    wgmma::fence_operands(dq);
    if (dq_tile >= 0) stage_dq();  // the previous step's
    wgmma::mbarrier_wait(bars + 8 * st, uint32_t(it / kStages) & 1);  // step it's tiles have landed
    wgmma::fence_shared_for_async();  // the dQ tile's stores, which the bulk reduction reads
    __syncthreads();
    if (threadIdx.x == 0 && dq_tile >= 0) {
      wgmma::bulk_reduce_add(dq_acc + dq_tile * kDqFloats, at + Sh::off_dq, kDqBytes);
      wgmma::bulk_commit();
    }

    const uint32_t q_at = at + Sh::off_q + st * kQueryTileBytes, do_at = at + Sh::off_do + st * kQueryTileBytes;
    // S^T and dP^T queued as two groups: P^T is computed while dP^T's products run, dS^T while
    // dV's do.
    Square s, dp;
    wgmma::fence();
#pragma unroll
    for (int ks = 0; ks < kHd / 16; ++ks)
      wgmma::m64n64k16_ss(s, k_desc + 2 * ks, wgmma::sw128_descriptor(q_at) + 2 * ks, ks > 0);
    wgmma::commit();
#pragma unroll
    for (int ks = 0; ks < kHd / 16; ++ks)
      wgmma::m64n64k16_ss(dp, v_desc + 2 * ks, wgmma::sw128_descriptor(do_at) + 2 * ks, ks > 0);
    wgmma::commit();
    wgmma::wait<1>();  // S^T
    wgmma::fence_operands(s);

    const float4* stat = reinterpret_cast<const float4*>(shared + Sh::off_stat + st * kStatBytes);
    Packed p;
    probabilities(s, p, stat, q0 < k0 + 64 * (group + 1), q0, key_row0, tq, c);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < kQueries / 16; ++kk)
      wgmma::m64n64k16_rs(dv, p[kk], wgmma::sw128_descriptor(do_at + kk * 16 * kRowBytes), it > 0 || kk > 0);
    wgmma::commit();
    wgmma::wait<1>();  // dP^T
    wgmma::fence_operands(dp);

    Packed ds;
    score_gradients(s, dp, ds, stat, tq);
    // dS^T (keys, 64 queries) for the dQ products: a k-step's A operand is the warp's rows of two
    // 8-query chunks, 4 8x8 matrices (rows 0-7, 8-15 of chunk 2kk, then of chunk 2kk + 1).
    const uint32_t ds_at = at + Sh::off_ds + (it & 1) * Sh::key_tile_bytes;
#pragma unroll
    for (int kk = 0; kk < kQueries / 16; ++kk)
      stmatrix_x4(ds_at + wgmma::swizzled_offset(ds_row, 2 * kk + (lane >> 4)), ds[kk]);
    wgmma::fence_shared_for_async();
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < kQueries / 16; ++kk)
      wgmma::m64n64k16_rs(dk, ds[kk], wgmma::sw128_descriptor(q_at + kk * 16 * kRowBytes), it > 0 || kk > 0);
    wgmma::commit();
    if (threadIdx.x == 0) wgmma::bulk_wait_read<0>();  // the dQ tile, which the next step rewrites, is read
    __syncthreads();  // both warpgroups' dS^T are in shared memory

    queue_dq<Sh::groups>(dq, ds_at, at + Sh::off_k, group);
    dq_tile = int64_t(b * dm.nh + h) * q_tiles_all + qt;
  }
  wgmma::wait<0>();
  wgmma::fence_operands(dq);
  wgmma::fence_operands(dk);
  wgmma::fence_operands(dv);
  {  // the last step's dQ
    stage_dq();
    wgmma::fence_shared_for_async();
    __syncthreads();
    if (threadIdx.x == 0) {
      wgmma::bulk_reduce_add(dq_acc + dq_tile * kDqFloats, at + Sh::off_dq, kDqBytes);
      wgmma::bulk_commit();
      wgmma::bulk_wait<0>();
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key_row0 + 8 * r;
    if (key >= dm.t) continue;
    float dk_row[kHd / 8][2];  // this row's scaled dK, columns 8 j + 2 tq and + 1
#pragma unroll
    for (int j = 0; j < kHd / 8; ++j) dk_row[j][0] = dk[j][2 * r] * dm.scale, dk_row[j][1] = dk[j][2 * r + 1] * dm.scale;
    if (rotary_table != nullptr) {
      const float2* cs = rotary_table + int64_t(key) * kRotaryPairs + 2 * tq;
#pragma unroll
      for (int j = 0; j < kHd / 16; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) rotate_back(dk_row[j][e], dk_row[j + kHd / 16][e], cs[8 * j + e]);
    }
#pragma unroll
    for (int j = 0; j < kHd / 8; ++j) {
      const int col = j * 8 + 2 * tq;
      const float2 k2 = make_float2(dk_row[j][0], dk_row[j][1]);
      const float2 v2 = make_float2(dv[j][2 * r], dv[j][2 * r + 1]);
      if (partial == nullptr) {
        bf16* y = dqkv + (int64_t(b) * dm.t + key) * dm.width;
        *reinterpret_cast<uint32_t*>(y + (dm.nh + kh) * kHd + col) = pack_bf16(k2.x, k2.y);
        *reinterpret_cast<uint32_t*>(y + (dm.nh + dm.nkv + kh) * kHd + col) = pack_bf16(v2.x, v2.y);
      } else {
        float* y = partial + (((split * batches + b) * dm.t + key) * dm.nkv + kh) * 2 * kHd;
        *reinterpret_cast<float2*>(y + col) = k2;
        *reinterpret_cast<float2*>(y + kHd + col) = v2;
      }
    }
  }
#else
  __trap();  // launched only where ZT_HAS_WGMMA says this target was built
#endif
}

// Blocks sharing a group's query heads: 1 unless the longest block (key block 0: q_tiles steps
// a head) is over the average load of a resident block, then the smallest divisor of the group
// that brings it under that. The longest blocks are handed out first, so one as long as the
// average still ends with the others (Llama 1.1B's shape: one block a group measured 0.610 ms
// against 0.628 with 2 splits). `forced` > 0 rounds down to a divisor.
template <class Sh>
int splits_for(int64_t b, int64_t t, int64_t nh, int64_t nkv, int forced) {
  const int64_t group = nh / nkv, q_tiles = (t + kQueries - 1) / kQueries, blocks = (t + Sh::keys - 1) / Sh::keys;
  return group_splits(group, forced, q_tiles * group, [&] {
    int64_t steps = 0;  // a head's steps over all key blocks
    for (int64_t x = 0; x < blocks; ++x) steps += q_tiles - x * Sh::keys / kQueries;
    return double(b * nh) * double(steps) / double(Sh::blocks_per_sm * multiprocessor_count());
  });
}

// The window of block_place: the tuning's, or by default columns for 2 waves of resident blocks
// (window_columns). On an H200 at GPT-2 124M's shape (192 columns of 8 key blocks) windows of 4
// / 8 / 16 / 32 columns took 0.303 / 0.300 / 0.294 / 0.292 ms against 0.306 for the grid's own
// order; at Llama 1.1B's (16 columns of 16 long blocks, 2 waves in all) 8 took 0.555 against
// 0.543 (docs/CUDA_NOTES.md v14).
template <class Sh>
int window_for(int columns, int rows, int tuned) {
  return window_columns(columns, rows, Sh::blocks_per_sm * multiprocessor_count(), tuned);
}

// Whether it rotated dQ and dK back (flash_attention_backward_wgmma).
template <class Sh>
bool backward(bf16* dqkv, const bf16* dout, const bf16* out, const bf16* qkv, const float* lse, int64_t b, int64_t t,
              int64_t nh, int64_t nkv, RotaryGradient rotary) {
  const FlashDims dm = flash_dims(t, nh, nkv, kHd);
  const int q_tiles = int((t + kQueries - 1) / kQueries), tq_rows = q_tiles * kQueries;
  const int splits = splits_for<Sh>(b, t, nh, nkv, flash_attention_tuning().dkv_splits);
  const int heads = int(nh / nkv) / splits;
  // The rotation inside the kernels where dK comes out of registers; with splits, dK comes from
  // the partials' sum, and the caller rotates dQ and dK after it.
  const bool rotate_inside = rotary.inv_freq != nullptr && splits == 1;
  Scratch stats(size_t(b * nh * tq_rows) * sizeof(float2));
  Scratch dq_acc(size_t(b * nh * q_tiles) * kDqBytes);
  Scratch rotary_table(rotate_inside ? size_t(t * kRotaryPairs) * sizeof(float2) : 0);
  float2* table = rotate_inside ? rotary_table.as<float2>() : nullptr;
  flash_backward_wgmma_prep_kernel<<<dim3(unsigned(tq_rows / 32), unsigned(b * nh)), 256, 0, compute_stream()>>>(
      stats.as<float2>(), dq_acc.as<float4>(), dout, out, lse, dm, tq_rows, table,
      rotate_inside ? rotary.inv_freq : nullptr, rotary.position_offset);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_wgmma_prep_kernel");

  allow_shared(flash_backward_wgmma_kernel<Sh>, Sh::shared);
  const dim3 grid(unsigned(b * nkv * splits), unsigned((t + Sh::keys - 1) / Sh::keys));
  Scratch partial(splits > 1 ? size_t(splits) * size_t(b * t * nkv * 2 * kHd) * sizeof(float) : 0);
  const CUtensorMap kv_map = bf16_rows_tensor_map(qkv, b, t, dm.width, dm.width, Sh::keys);
  const CUtensorMap q_map = bf16_rows_tensor_map(qkv, b, t, dm.width, dm.width, kQueries);
  const CUtensorMap do_map = bf16_rows_tensor_map(dout, b, t, nh * kHd, nh * kHd, kQueries);
  const int window = window_for<Sh>(int(grid.x), int(grid.y), flash_attention_tuning().wgmma_backward_window);
  flash_backward_wgmma_kernel<Sh><<<grid, Sh::threads, Sh::shared, compute_stream()>>>(
      dqkv, splits > 1 ? partial.as<float>() : nullptr, dq_acc.as<float>(), kv_map, q_map, do_map, stats.as<float2>(),
      dm, int(b), tq_rows, heads, window, table);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_wgmma_kernel");

  const int dq_heads = dq_heads_per_block(b, nh, rotate_inside);
  flash_backward_wgmma_dq_kernel<<<dim3(unsigned(q_tiles), unsigned(b * nh / dq_heads)), 128, 0, compute_stream()>>>(
      dqkv, dq_acc.as<float4>(), dm, dq_heads, table);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_wgmma_dq_kernel");
  if (splits > 1) flash_add_dkv_partials(dqkv, partial.as<float>(), splits, b, t, nh, nkv, kHd);
  return rotate_inside;
}

}  // namespace

bool flash_attention_backward_wgmma(bf16* dqkv, const bf16* dout, const bf16* out, const bf16* qkv, const float* lse,
                                    int64_t b, int64_t t, int64_t nh, int64_t nkv, RotaryGradient rotary) {
  // On an H200 (docs/CUDA_NOTES.md v7, v14), in windows of heads: one warpgroup 0.274 ms at GPT-2
  // 124M's shape against 0.297 with two; at Llama 1.1B's two 0.544 against 0.550 with one. In the
  // grid's own order one warpgroup's doubled dQ reductions miss L2 (0.370 against 0.306).
  const int groups = flash_attention_tuning().wgmma_backward_groups;
  if (groups == 1 || (groups == 0 && nkv == nh))
    return backward<Shape<1>>(dqkv, dout, out, qkv, lse, b, t, nh, nkv, rotary);
  return backward<Shape<2>>(dqkv, dout, out, qkv, lse, b, t, nh, nkv, rotary);
}

}  // namespace zt::cuda
