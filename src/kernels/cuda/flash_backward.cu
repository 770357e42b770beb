// Flash attention backward for bf16 on the tensor cores (v3; docs/CUDA_NOTES.md), from the
// forward's output O and log-sum-exp, in two kernels that accumulate nothing across blocks (so
// results are bitwise repeatable):
//   1. per 64 query rows of a head: D = rowsum(dO * O) in the prologue (written out for kernel
//      2), then one pass over the keys: S = Q K^T, dP = dO V^T, dS = P (dP - D), dQ += dS K;
//   2. per 64 keys of a key/value head: over the query tiles at or after them, of every query
//      head of the group (or of a share of them, see below): S^T = K Q^T, dP^T = V dO^T,
//      dV += P^T dO, dK += dS^T Q.
// 7 products where a single key-side kernel with dQ accumulated by f32 atomics has 5; the notes
// count why this stays two kernels. Operands that stay fixed across a kernel's inner loop (Q and
// dO in kernel 1, K and V in kernel 2) are read from shared memory once into A fragments.
//
// Grouped heads: kernel 2 walks the query heads of its group one after another, so a block of
// the first key tile does group * T / 64 tile steps. Where that is over half the whole problem's
// average per resident block (Llama 1.1B: 8 heads a group, T = 2048), the heads are split among
// `splits` blocks, each writing its f32 partial dK and dV; a last pass adds the partials in a
// fixed order into dqkv.
#include <algorithm>

#include "flash_attention.cuh"
#include "flash_common.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

// dQ (into dqkv's query heads) and D (B, NH, T) = rowsum(dO * O). Grid (query tiles, B*NH), the
// longest tiles of a head first.
template <int HD>
__global__ void __launch_bounds__(kThreads) flash_backward_dq_kernel(bf16* dqkv, float* dsum, const bf16* dout,
                                                                     const bf16* out, const bf16* qkv,
                                                                     const float* lse, FlashDims dm) {
  constexpr int ld = HD + kPad, tile = kTile * ld, NT = kTile / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // (64, HD)
  bf16* sdo = sq + tile;                     // (64, HD)
  bf16* sk = sdo + tile;                     // 2 stages of (64, HD)
  bf16* sv = sk + 2 * tile;                  // 2 stages of (64, HD)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const bf16* keys = base + (dm.nh + kh) * HD;
  const bf16* values = base + (dm.nh + dm.nkv + kh) * HD;
  const int64_t head_offset = int64_t(b) * dm.t * dm.nh * HD + h * HD, out_stride = int64_t(dm.nh) * HD;
  const int tiles = (min(q0 + kTile, dm.t) - 1) / kTile + 1;
  stage<HD, kTile>(sq, base + h * HD, dm.width, q0, dm.t);
  stage<HD, kTile>(sdo, dout + head_offset, out_stride, q0, dm.t);
  cp_async_commit();
  stage<HD, kTile>(sk, keys, dm.width, 0, dm.t);
  stage<HD, kTile>(sv, values, dm.width, 0, dm.t);
  cp_async_commit();

  // D of this warp's 16 rows while the tiles load: lanes 2i and 2i+1 take the two halves of row i.
  const int row0 = q0 + warp * 16;
  float d_lane = 0.0f;
  {
    const int row = row0 + lane / 2;
    if (row < dm.t) {
      const int64_t at = head_offset + int64_t(row) * out_stride + (lane % 2) * (HD / 2);
      const uint4* x = reinterpret_cast<const uint4*>(dout + at);
      const uint4* y = reinterpret_cast<const uint4*>(out + at);
#pragma unroll
      for (int i = 0; i < HD / 16; ++i) d_lane = dot_chunk(x[i], y[i], d_lane);
    }
    d_lane += __shfl_xor_sync(0xffffffffu, d_lane, 1);
    if (lane % 2 == 0 && row < dm.t) dsum[int64_t(bh) * dm.t + row] = d_lane;
  }
  // This thread's accumulator rows g and g + 8.
  const float d[2] = {__shfl_sync(0xffffffffu, d_lane, 2 * g), __shfl_sync(0xffffffffu, d_lane, 2 * g + 16)};
  float lse2[2];  // log2 domain; +inf past T, so that those rows' probabilities are 0
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    lse2[r] = row < dm.t ? lse[int64_t(bh) * dm.t + row] * kLog2e : INFINITY;
  }

  cp_async_wait<1>();  // Q and dO have landed
  __syncthreads();
  uint32_t qf[1][HD / 16][4], dof[1][HD / 16][4];
  load_a<HD, 1>(qf, sq + warp * 16 * ld, ld);
  load_a<HD, 1>(dof, sdo + warp * 16 * ld, ld);
  const float c = dm.scale_log2;
  float dq[1][HD / 8][4] = {};
  for (int it = 0; it < tiles; ++it) {
    const int k0 = it * kTile, cur = it & 1;
    if (it + 1 < tiles) {
      stage<HD, kTile>(sk + (cur ^ 1) * tile, keys, dm.width, k0 + kTile, dm.t);
      stage<HD, kTile>(sv + (cur ^ 1) * tile, values, dm.width, k0 + kTile, dm.t);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    float s[1][NT][4] = {}, dp[1][NT][4] = {};
    mma_a_bt<HD, NT, 1>(s, qf, sk + cur * tile, ld);
    mma_a_bt<HD, NT, 1>(dp, dof, sv + cur * tile, ld);
    if (k0 + kTile - 1 > row0) {  // the diagonal crosses this warp's part of the tile
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (k0 + nt * 8 + 2 * tq + (e & 1) > row0 + g + 8 * (e >> 1)) s[0][nt][e] = -INFINITY;
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2_fast(fmaf(s[0][nt][e], c, -lse2[e >> 1]));
        dp[0][nt][e] = p * (dp[0][nt][e] - d[e >> 1]);
      }
    mma_p_b<kTile, HD / 8, 1>(dq, dp, sk + cur * tile, ld);
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= dm.t) continue;
    bf16* y = dqkv + (int64_t(b) * dm.t + row) * dm.width + h * HD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt)
      *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * tq) =
          pack_bf16(dq[0][nt][2 * r] * dm.scale, dq[0][nt][2 * r + 1] * dm.scale);
  }
}

// dK and dV of 64 keys of one key/value head, over heads [split * heads, (split + 1) * heads) of
// its group and every query tile at or after the keys. With one split the result goes into
// dqkv's key and value heads; with more, as f32 into partial (splits, B, T, NKV, 2, HD), key
// then value. Grid (key tiles, B*NKV, splits).
template <int HD, bool kKeepKV>
__global__ void __launch_bounds__(kThreads) flash_backward_dkv_kernel(bf16* dqkv, float* partial, const bf16* dout,
                                                                      const bf16* qkv, const float* lse,
                                                                      const float* dsum, FlashDims dm, int heads) {
  constexpr int ld = HD + kPad, tile = kTile * ld, NT = kTile / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);  // (64, HD)
  bf16* sv = sk + tile;                      // (64, HD)
  bf16* sq = sv + tile;                      // 2 stages of (64, HD)
  bf16* sdo = sq + 2 * tile;                 // 2 stages of (64, HD)
  float* slse = reinterpret_cast<float*>(sdo + 2 * tile);  // 2 stages of (64), log2 domain
  float* sd = slse + 2 * kTile;                             // 2 stages of (64)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int k0 = blockIdx.x * kTile, split = blockIdx.z;
  const int bk = blockIdx.y, b = bk / dm.nkv, kh = bk % dm.nkv, group = dm.nh / dm.nkv;
  const int head0 = kh * group + split * heads;
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const int q_tiles = (dm.t - k0 + kTile - 1) / kTile;  // query tiles from k0 on, per head
  const int total = heads * q_tiles;
  // Step `it` is query tile k0 + (it % q_tiles) * 64 of head head0 + it / q_tiles.
  auto prefetch = [&](int it, int stage_index) {
    const int h = head0 + it / q_tiles, q0 = k0 + (it % q_tiles) * kTile, bh = b * dm.nh + h;
    stage<HD, kTile>(sq + stage_index * tile, base + h * HD, dm.width, q0, dm.t);
    stage<HD, kTile>(sdo + stage_index * tile, dout + int64_t(b) * dm.t * dm.nh * HD + h * HD, int64_t(dm.nh) * HD,
                     q0, dm.t);
    if (threadIdx.x < kTile) {  // +inf past T: those queries' probabilities are 0
      const int query = q0 + threadIdx.x;
      slse[stage_index * kTile + threadIdx.x] = query < dm.t ? lse[int64_t(bh) * dm.t + query] * kLog2e : INFINITY;
      sd[stage_index * kTile + threadIdx.x] = query < dm.t ? dsum[int64_t(bh) * dm.t + query] : 0.0f;
    }
  };
  stage<HD, kTile>(sk, base + (dm.nh + kh) * HD, dm.width, k0, dm.t);
  stage<HD, kTile>(sv, base + (dm.nh + dm.nkv + kh) * HD, dm.width, k0, dm.t);
  cp_async_commit();
  prefetch(0, 0);
  cp_async_commit();
  cp_async_wait<1>();  // K and V have landed
  __syncthreads();
  const int key0 = k0 + warp * 16;  // this warp's first key
  // K's and V's A fragments stay in registers (HD 64 by default); for HD 128 they would not fit
  // beside the four accumulator tiles and are read from shared memory for every product.
  static_assert(!kKeepKV || HD == 64, "K and V fragments fit registers for HD 64 only");
  uint32_t kf[1][kKeepKV ? HD / 16 : 1][4], vf[1][kKeepKV ? HD / 16 : 1][4];
  if constexpr (kKeepKV) {
    load_a<HD, 1>(kf, sk + warp * 16 * ld, ld);
    load_a<HD, 1>(vf, sv + warp * 16 * ld, ld);
  }
  const float c = dm.scale_log2;
  float dk[1][HD / 8][4] = {}, dv[1][HD / 8][4] = {};
  for (int it = 0; it < total; ++it) {
    const int cur = it & 1, step = it % q_tiles;
    if (it + 1 < total) prefetch(it + 1, cur ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const float* lse_t = slse + cur * kTile;
    const float* d_t = sd + cur * kTile;
    float st[1][NT][4] = {}, dpt[1][NT][4] = {};
    if constexpr (kKeepKV) {
      mma_a_bt<HD, NT, 1>(st, kf, sq + cur * tile, ld);
      mma_a_bt<HD, NT, 1>(dpt, vf, sdo + cur * tile, ld);
    } else {
      mma_s_bt<HD, NT>(st, sk + warp * 16 * ld, ld, sq + cur * tile, ld);
      mma_s_bt<HD, NT>(dpt, sv + warp * 16 * ld, ld, sdo + cur * tile, ld);
    }
    if (step == 0) {  // queries k0 .. k0 + 63: the diagonal tile; a query before the key sees none of it
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (k0 + nt * 8 + 2 * tq + (e & 1) < key0 + g + 8 * (e >> 1)) st[0][nt][e] = -INFINITY;
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const float2 l2 = *reinterpret_cast<const float2*>(lse_t + nt * 8 + 2 * tq);
      const float2 dd = *reinterpret_cast<const float2*>(d_t + nt * 8 + 2 * tq);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2_fast(fmaf(st[0][nt][e], c, -(e & 1 ? l2.y : l2.x)));
        st[0][nt][e] = p;
        dpt[0][nt][e] = p * (dpt[0][nt][e] - (e & 1 ? dd.y : dd.x));
      }
    }
    mma_p_b<kTile, HD / 8, 1>(dv, st, sdo + cur * tile, ld);
    mma_p_b<kTile, HD / 8, 1>(dk, dpt, sq + cur * tile, ld);
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key0 + g + 8 * r;
    if (key >= dm.t) continue;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      const int col = nt * 8 + 2 * tq;
      const float2 k2 = make_float2(dk[0][nt][2 * r] * dm.scale, dk[0][nt][2 * r + 1] * dm.scale);
      const float2 v2 = make_float2(dv[0][nt][2 * r], dv[0][nt][2 * r + 1]);
      if (partial == nullptr) {
        bf16* y = dqkv + (int64_t(b) * dm.t + key) * dm.width;
        *reinterpret_cast<uint32_t*>(y + (dm.nh + kh) * HD + col) = pack_bf16(k2.x, k2.y);
        *reinterpret_cast<uint32_t*>(y + (dm.nh + dm.nkv + kh) * HD + col) = pack_bf16(v2.x, v2.y);
      } else {
        const int64_t batches = gridDim.y / dm.nkv;
        float* y = partial + (((split * batches + b) * dm.t + key) * dm.nkv + kh) * 2 * HD;
        *reinterpret_cast<float2*>(y + col) = k2;
        *reinterpret_cast<float2*>(y + HD + col) = v2;
      }
    }
  }
}

// dqkv's key and value heads = the sum over splits of partial (splits, B, T, NKV, 2, HD), in
// split order. A thread per 4 elements.
template <int HD>
__global__ void flash_backward_dkv_sum_kernel(bf16* dqkv, const float* partial, int splits, int64_t rows, int nkv,
                                              int nh) {
  const int64_t quads = rows * nkv * 2 * HD / 4;  // rows = B*T
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= quads) return;
  float4 acc = reinterpret_cast<const float4*>(partial)[i];
  for (int s = 1; s < splits; ++s) {
    const float4 v = reinterpret_cast<const float4*>(partial)[s * quads + i];
    acc.x += v.x, acc.y += v.y, acc.z += v.z, acc.w += v.w;
  }
  const int64_t e = i * 4, row = e / (nkv * 2 * HD);
  const int within = int(e % (nkv * 2 * HD)), kh = within / (2 * HD), which = within / HD % 2, d = within % HD;
  bf16* y = dqkv + row * (nh + 2 * nkv) * HD + (nh + which * nkv + kh) * HD + d;
  *reinterpret_cast<uint2*>(y) = make_uint2(pack_bf16(acc.x, acc.y), pack_bf16(acc.z, acc.w));
}

template <int HD>
constexpr size_t dq_shared() {
  return size_t(6 * kTile) * (HD + kPad) * sizeof(bf16);  // Q, dO, 2 stages of K and of V
}
template <int HD>
constexpr size_t dkv_shared() {
  return size_t(6 * kTile) * (HD + kPad) * sizeof(bf16) + 4 * kTile * sizeof(float);
}

// How many blocks share a group's query heads in the dK/dV kernel: 1 unless the longest block
// (key tile 0: heads * q_tiles steps) is over half the average load of a resident block (the
// whole problem's steps over the blocks resident at once), then the smallest divisor of the
// group that brings it under that. Blocks are handed out in order, not longest first, so a
// block as long as the average would set the kernel's end; at half of it the tail is short.
template <class Kernel>
int dkv_splits(Kernel kernel, size_t shared, int64_t b, int64_t t, int64_t nh, int64_t nkv, int forced) {
  const int64_t group = nh / nkv, tiles = (t + kTile - 1) / kTile;
  return group_splits(group, forced, tiles * group, [&] {
    int per_sm = 0;
    ZT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, shared));
    const double resident = double(std::max(per_sm, 1)) * multiprocessor_count();
    return double(b * nkv * group) * double(tiles * (tiles + 1) / 2) / resident / 2;  // half the average
  });
}

template <int HD>
void backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv, const float* lse,
              int64_t b, int64_t t, int64_t nh, int64_t nkv) {
  const FlashDims dm = flash_dims(t, nh, nkv, HD);
  const unsigned tiles = unsigned((t + kTile - 1) / kTile);
  allow_shared(flash_backward_dq_kernel<HD>, dq_shared<HD>());
  flash_backward_dq_kernel<HD><<<dim3(tiles, unsigned(b * nh)), kThreads, dq_shared<HD>(), compute_stream()>>>(
      dqkv, dsum, dout, out, qkv, lse, dm);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_dq_kernel");

  const FlashAttentionTuning tuning = flash_attention_tuning();
  auto dkv = flash_backward_dkv_kernel<HD, false>;
  if constexpr (HD == 64) {
    if (tuning.dkv_kv_in_registers) dkv = flash_backward_dkv_kernel<HD, true>;
  }
  allow_shared(dkv, dkv_shared<HD>());
  const int splits = dkv_splits(dkv, dkv_shared<HD>(), b, t, nh, nkv, tuning.dkv_splits);
  const int heads = int(nh / nkv) / splits;
  const dim3 grid(tiles, unsigned(b * nkv), unsigned(splits));
  if (splits == 1) {
    dkv<<<grid, kThreads, dkv_shared<HD>(), compute_stream()>>>(dqkv, nullptr, dout, qkv, lse, dsum, dm, heads);
    ZT_CUDA_CHECK_LAUNCH("flash_backward_dkv_kernel");
    return;
  }
  Scratch partial(size_t(splits) * size_t(b * t * nkv * 2 * HD) * sizeof(float));
  dkv<<<grid, kThreads, dkv_shared<HD>(), compute_stream()>>>(dqkv, partial.as<float>(), dout, qkv, lse, dsum, dm,
                                                              heads);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_dkv_kernel");
  flash_add_dkv_partials(dqkv, partial.as<float>(), splits, b, t, nh, nkv, HD);
}

}  // namespace

void flash_add_dkv_partials(bf16* dqkv, const float* partial, int splits, int64_t b, int64_t t, int64_t nh,
                            int64_t nkv, int64_t hd) {
  const int64_t quads = b * t * nkv * 2 * hd / 4;
  const unsigned blocks = unsigned((quads + 255) / 256);
  if (hd == 64)
    flash_backward_dkv_sum_kernel<64><<<blocks, 256, 0, compute_stream()>>>(dqkv, partial, splits, b * t, int(nkv),
                                                                           int(nh));
  else
    flash_backward_dkv_sum_kernel<128><<<blocks, 256, 0, compute_stream()>>>(dqkv, partial, splits, b * t,
                                                                            int(nkv), int(nh));
  ZT_CUDA_CHECK_LAUNCH("flash_backward_dkv_sum_kernel");
}

void flash_attention_backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* out, const bf16* qkv,
                              const float* lse, int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  if (hd == 64) backward<64>(dqkv, dsum, dout, out, qkv, lse, b, t, nh, nkv);
  else backward<128>(dqkv, dsum, dout, out, qkv, lse, b, t, nh, nkv);
}

}  // namespace zt::cuda
