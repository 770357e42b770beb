// Flash attention v2 (docs/CUDA_NOTES.md), kept beside v3 (flash_forward.cu, flash_backward.cu)
// so that both can be timed in one run (cuda::AttentionKernels::flash_v2) until v3's figures are
// in; it is not chosen otherwise. A block is 4 warps; each warp owns 16 rows of a 64-row tile and
// multiplies against 64-column tiles staged in shared memory by cp.async, two stages deep. Q (and
// dO, K, V in the backward) are read from shared memory again for every tile, the causal mask is
// tested on every score, and the backward's dQ kernel passes over the keys twice, the first time
// for D = rowsum(P * dP) (it does not use the forward's output): 9 products where v3 has 7.
//
// Scores are kept in the log2 domain: s2 = q.k * log2(e) / sqrt(HD), p = 2^(s2 - m2).
#include "flash_attention.cuh"
#include "flash_common.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

constexpr int kRows = 64;      // rows per block: query rows (forward, dQ) or key rows (dK, dV)
constexpr int kCols = kTile;   // columns per inner tile: keys (forward, dQ) or queries (dK, dV)

// acc (16, NT*8) += A (16, K) B: A row-major in shared memory (stride lda, the warp's 16 rows);
// B given as its transpose bn (NT*8, K), row-major (stride ldb).
template <int K, int NT>
__device__ __forceinline__ void warp_mma_ss(float (&acc)[NT][4], const bf16* a, int lda, const bf16* bn, int ldb) {
  static_assert(NT % 2 == 0, "n-tiles go in pairs");
  const int lane = threadIdx.x & 31;
  const bf16* a_row = a + (lane % 8 + ((lane / 8) % 2) * 8) * lda + (lane / 16) * 8;
  const bf16* b_row = bn + ((lane / 16) * 8 + lane % 8) * ldb + ((lane / 8) % 2) * 8;
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    uint32_t af[4];
    ldmatrix_x4(af, a_row + k0);
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t bf[4];
      ldmatrix_x4(bf, b_row + nt * 8 * ldb + k0);
      mma16816(acc[nt], af, bf[0], bf[1]);
      mma16816(acc[nt + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (16, NT*8) += P (16, KC) B: P in accumulator registers (KC/8 tiles of 16 x 8); B (KC, NT*8)
// row-major in shared memory (stride ldb), read transposed.
template <int KC, int NT>
__device__ __forceinline__ void warp_mma_rs(float (&acc)[NT][4], const float (&p)[KC / 8][4], const bf16* b,
                                            int ldb) {
  static_assert(NT % 2 == 0, "n-tiles go in pairs");
  const int lane = threadIdx.x & 31;
  const bf16* b_row = b + (lane % 8 + ((lane / 8) % 2) * 8) * ldb + (lane / 16) * 8;
#pragma unroll
  for (int kk = 0; kk < KC / 16; ++kk) {
    const uint32_t af[4] = {pack_bf16(p[2 * kk][0], p[2 * kk][1]), pack_bf16(p[2 * kk][2], p[2 * kk][3]),
                            pack_bf16(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                            pack_bf16(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b_row + kk * 16 * ldb + nt * 8);
      mma16816(acc[nt], af, bf[0], bf[1]);
      mma16816(acc[nt + 1], af, bf[2], bf[3]);
    }
  }
}

// Queues rows [row0, row0 + 64) of src (rows `stride` elements apart, HD wide) into dst
// (64, HD+pad); rows at or past t are zero. The caller commits and waits.
template <int HD>
__device__ __forceinline__ void stage_tile(bf16* dst, const bf16* src, int64_t stride, int row0, int t) {
  constexpr int kChunks = HD / 8;
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, d = (c % kChunks) * 8;
    const bool valid = row0 + r < t;
    cp_async16(dst + r * (HD + kPad) + d, src + int64_t(valid ? row0 + r : 0) * stride + d, valid);
  }
}

// out (B, T, NH*HD), lse (B, NH, T). Grid (query tiles, B*NH), the longest tiles first.
template <int HD>
__global__ void __launch_bounds__(kThreads) flash_forward_v2_kernel(bf16* out, float* lse, const bf16* qkv,
                                                                    FlashDims dm) {
  constexpr int ld = HD + kPad, tile = kRows * ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // (64, HD)
  bf16* sk = sq + tile;                      // 2 stages of (64, HD)
  bf16* sv = sk + 2 * tile;                  // 2 stages of (64, HD)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const bf16* keys = base + (dm.nh + kh) * HD;
  const bf16* values = base + (dm.nh + dm.nkv + kh) * HD;
  const int tiles = (min(q0 + kRows - 1, dm.t - 1)) / kCols + 1;
  stage_tile<HD>(sq, base + h * HD, dm.width, q0, dm.t);
  stage_tile<HD>(sk, keys, dm.width, 0, dm.t);
  stage_tile<HD>(sv, values, dm.width, 0, dm.t);
  cp_async_commit();
  float o[HD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  for (int it = 0; it < tiles; ++it) {
    const int k0 = it * kCols, cur = it & 1;
    if (it + 1 < tiles) {
      stage_tile<HD>(sk + (cur ^ 1) * tile, keys, dm.width, k0 + kCols, dm.t);
      stage_tile<HD>(sv + (cur ^ 1) * tile, values, dm.width, k0 + kCols, dm.t);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    float s[kCols / 8][4] = {};
    warp_mma_ss<HD, kCols / 8>(s, sq + warp * 16 * ld, ld, sk + cur * tile, ld);
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < kCols / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = k0 + nt * 8 + 2 * tq + (e & 1);
        const float v = col <= row[e >> 1] && col < dm.t ? s[nt][e] * dm.scale_log2 : -INFINITY;
        s[nt][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    }
    float use[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float m_new = fmaxf(m[r], quad_max(mx[r]));
      use[r] = m_new == -INFINITY ? 0.0f : m_new;
      const float correction = exp2f(m[r] - use[r]);
      m[r] = m_new;
      l[r] *= correction;
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) o[nt][2 * r] *= correction, o[nt][2 * r + 1] *= correction;
    }
#pragma unroll
    for (int nt = 0; nt < kCols / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[nt][e] - use[e >> 1]);
        s[nt][e] = p;
        l[e >> 1] += p;
      }
    }
    warp_mma_rs<kCols, HD / 8>(o, s, sv + cur * tile, ld);
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    if (row[r] >= dm.t) continue;
    const float inv = 1.0f / l[r];
    bf16* y = out + (int64_t(b) * dm.t + row[r]) * dm.nh * HD + h * HD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt)
      *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * tq) = pack_bf16(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
    if (tq == 0) lse[int64_t(bh) * dm.t + row[r]] = (m[r] + log2f(l[r])) / kLog2e;
  }
}

// dQ (into dqkv's query heads) and D = rowsum(P * dP) (B, NH, T): a first pass over the keys for
// D, a second for dQ. Grid (query tiles, B*NH), the longest first.
template <int HD>
__global__ void __launch_bounds__(kThreads) flash_backward_dq_v2_kernel(bf16* dqkv, float* dsum, const bf16* dout,
                                                                     const bf16* qkv, const float* lse, FlashDims dm) {
  constexpr int ld = HD + kPad, tile = kRows * ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // (64, HD)
  bf16* sdo = sq + tile;                     // (64, HD)
  bf16* sk = sdo + tile;                     // 2 stages of (64, HD)
  bf16* sv = sk + 2 * tile;                  // 2 stages of (64, HD)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const bf16* keys = base + (dm.nh + kh) * HD;
  const bf16* values = base + (dm.nh + dm.nkv + kh) * HD;
  const int tiles = (min(q0 + kRows - 1, dm.t - 1)) / kCols + 1;
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float lse2[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) lse2[r] = row[r] < dm.t ? lse[int64_t(bh) * dm.t + row[r]] * kLog2e : 0.0f;
  stage_tile<HD>(sq, base + h * HD, dm.width, q0, dm.t);
  stage_tile<HD>(sdo, dout + int64_t(b) * dm.t * dm.nh * HD + h * HD, int64_t(dm.nh) * HD, q0, dm.t);

  // Two passes over the key tiles, streamed through the two stages: iteration it of the whole
  // sequence (2 * tiles) is tile it % tiles of pass it / tiles.
  stage_tile<HD>(sk, keys, dm.width, 0, dm.t);
  stage_tile<HD>(sv, values, dm.width, 0, dm.t);
  cp_async_commit();
  float d_part[2] = {0.0f, 0.0f}, d[2] = {0.0f, 0.0f};
  float dq[HD / 8][4] = {};
  for (int it = 0; it < 2 * tiles; ++it) {
    const int k0 = (it % tiles) * kCols, cur = it & 1;
    if (it + 1 < 2 * tiles) {
      const int next = ((it + 1) % tiles) * kCols;
      stage_tile<HD>(sk + (cur ^ 1) * tile, keys, dm.width, next, dm.t);
      stage_tile<HD>(sv + (cur ^ 1) * tile, values, dm.width, next, dm.t);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (it == tiles) {  // the first pass is done: D of each row
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        d[r] = quad_sum(d_part[r]);
        if (tq == 0 && row[r] < dm.t) dsum[int64_t(bh) * dm.t + row[r]] = d[r];
      }
    }
    float s[kCols / 8][4] = {}, dp[kCols / 8][4] = {};
    warp_mma_ss<HD, kCols / 8>(s, sq + warp * 16 * ld, ld, sk + cur * tile, ld);
    warp_mma_ss<HD, kCols / 8>(dp, sdo + warp * 16 * ld, ld, sv + cur * tile, ld);
#pragma unroll
    for (int nt = 0; nt < kCols / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = k0 + nt * 8 + 2 * tq + (e & 1);
        const bool valid = col <= row[e >> 1] && col < dm.t;
        s[nt][e] = valid ? exp2f(s[nt][e] * dm.scale_log2 - lse2[e >> 1]) : 0.0f;
      }
    }
    if (it < tiles) {
#pragma unroll
      for (int nt = 0; nt < kCols / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) d_part[e >> 1] += s[nt][e] * dp[nt][e];
    } else {
#pragma unroll
      for (int nt = 0; nt < kCols / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[nt][e] = s[nt][e] * (dp[nt][e] - d[e >> 1]);
      warp_mma_rs<kCols, HD / 8>(dq, dp, sk + cur * tile, ld);
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= dm.t) continue;
    bf16* y = dqkv + (int64_t(b) * dm.t + row[r]) * dm.width + h * HD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt)
      *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * tq) =
          pack_bf16(dq[nt][2 * r] * dm.scale, dq[nt][2 * r + 1] * dm.scale);
  }
}

// dK and dV (into dqkv's key and value heads) of 64 keys of one key/value head, over every query
// head of its group and every query tile at or after the keys. Grid (key tiles, B*NKV).
template <int HD>
__global__ void __launch_bounds__(kThreads) flash_backward_dkv_v2_kernel(bf16* dqkv, const bf16* dout, const bf16* qkv,
                                                                      const float* lse, const float* dsum,
                                                                      FlashDims dm) {
  constexpr int ld = HD + kPad, tile = kRows * ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sk = reinterpret_cast<bf16*>(smem);  // (64, HD)
  bf16* sv = sk + tile;                      // (64, HD)
  bf16* sq = sv + tile;                      // 2 stages of (64, HD)
  bf16* sdo = sq + 2 * tile;                 // 2 stages of (64, HD)
  float* slse = reinterpret_cast<float*>(sdo + 2 * tile);  // 2 stages of (64), log2 domain
  float* sd = slse + 2 * kCols;                             // 2 stages of (64)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int k0 = blockIdx.x * kRows;
  const int bk = blockIdx.y, b = bk / dm.nkv, kh = bk % dm.nkv, group = dm.nh / dm.nkv;
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const int q_tiles = (dm.t - k0 + kCols - 1) / kCols;  // query tiles from k0 on, per head
  const int total = group * q_tiles;
  // Iteration it is query tile k0 + (it % q_tiles) * 64 of the group's head it / q_tiles.
  auto prefetch = [&](int it, int stage_index) {
    const int h = kh * group + it / q_tiles, q0 = k0 + (it % q_tiles) * kCols, bh = b * dm.nh + h;
    stage_tile<HD>(sq + stage_index * tile, base + h * HD, dm.width, q0, dm.t);
    stage_tile<HD>(sdo + stage_index * tile, dout + int64_t(b) * dm.t * dm.nh * HD + h * HD, int64_t(dm.nh) * HD,
                     q0, dm.t);
    if (threadIdx.x < kCols) {
      const int query = q0 + threadIdx.x;
      slse[stage_index * kCols + threadIdx.x] = query < dm.t ? lse[int64_t(bh) * dm.t + query] * kLog2e : 0.0f;
      sd[stage_index * kCols + threadIdx.x] = query < dm.t ? dsum[int64_t(bh) * dm.t + query] : 0.0f;
    }
  };
  stage_tile<HD>(sk, base + (dm.nh + kh) * HD, dm.width, k0, dm.t);
  stage_tile<HD>(sv, base + (dm.nh + dm.nkv + kh) * HD, dm.width, k0, dm.t);
  prefetch(0, 0);
  cp_async_commit();
  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  float dk[HD / 8][4] = {}, dv[HD / 8][4] = {};
  for (int it = 0; it < total; ++it) {
    const int cur = it & 1, q0 = k0 + (it % q_tiles) * kCols;
    if (it + 1 < total) prefetch(it + 1, cur ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const float* lse_t = slse + cur * kCols;
    const float* d_t = sd + cur * kCols;
    float st[kCols / 8][4] = {}, dpt[kCols / 8][4] = {};
    warp_mma_ss<HD, kCols / 8>(st, sk + warp * 16 * ld, ld, sq + cur * tile, ld);
    warp_mma_ss<HD, kCols / 8>(dpt, sv + warp * 16 * ld, ld, sdo + cur * tile, ld);
#pragma unroll
    for (int nt = 0; nt < kCols / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qi = nt * 8 + 2 * tq + (e & 1), query = q0 + qi;
        const bool valid = key[e >> 1] <= query && query < dm.t;
        const float p = valid ? exp2f(st[nt][e] * dm.scale_log2 - lse_t[qi]) : 0.0f;
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - d_t[qi]);
      }
    }
    warp_mma_rs<kCols, HD / 8>(dv, st, sdo + cur * tile, ld);
    warp_mma_rs<kCols, HD / 8>(dk, dpt, sq + cur * tile, ld);
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= dm.t) continue;
    bf16* y = dqkv + (int64_t(b) * dm.t + key[r]) * dm.width;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      const int col = nt * 8 + 2 * tq;
      *reinterpret_cast<uint32_t*>(y + (dm.nh + kh) * HD + col) =
          pack_bf16(dk[nt][2 * r] * dm.scale, dk[nt][2 * r + 1] * dm.scale);
      *reinterpret_cast<uint32_t*>(y + (dm.nh + dm.nkv + kh) * HD + col) = pack_bf16(dv[nt][2 * r], dv[nt][2 * r + 1]);
    }
  }
}

template <int HD>
constexpr size_t forward_shared() {
  return size_t(5 * kRows) * (HD + kPad) * sizeof(bf16);
}
template <int HD>
constexpr size_t dq_shared() {
  return size_t(6 * kRows) * (HD + kPad) * sizeof(bf16);
}
template <int HD>
constexpr size_t dkv_shared() {
  return size_t(6 * kRows) * (HD + kPad) * sizeof(bf16) + 4 * kCols * sizeof(float);
}

template <int HD>
void forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv) {
  allow_shared(flash_forward_v2_kernel<HD>, forward_shared<HD>());
  const dim3 grid(unsigned((t + kRows - 1) / kRows), unsigned(b * nh));
  flash_forward_v2_kernel<HD><<<grid, kThreads, forward_shared<HD>(), compute_stream()>>>(out, lse, qkv,
                                                                                      flash_dims(t, nh, nkv, HD));
  ZT_CUDA_CHECK_LAUNCH("flash_forward_v2_kernel");
}

template <int HD>
void backward(bf16* dqkv, float* dsum, const bf16* dout, const bf16* qkv, const float* lse, int64_t b, int64_t t,
              int64_t nh, int64_t nkv) {
  const FlashDims dm = flash_dims(t, nh, nkv, HD);
  const unsigned tiles = unsigned((t + kRows - 1) / kRows);
  allow_shared(flash_backward_dq_v2_kernel<HD>, dq_shared<HD>());
  flash_backward_dq_v2_kernel<HD><<<dim3(tiles, unsigned(b * nh)), kThreads, dq_shared<HD>(), compute_stream()>>>(
      dqkv, dsum, dout, qkv, lse, dm);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_dq_v2_kernel");
  allow_shared(flash_backward_dkv_v2_kernel<HD>, dkv_shared<HD>());
  flash_backward_dkv_v2_kernel<HD><<<dim3(tiles, unsigned(b * nkv)), kThreads, dkv_shared<HD>(), compute_stream()>>>(
      dqkv, dout, qkv, lse, dsum, dm);
  ZT_CUDA_CHECK_LAUNCH("flash_backward_dkv_v2_kernel");
}

}  // namespace

void flash_attention_forward_v2(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv,
                                int64_t hd) {
  if (hd == 64) forward<64>(out, lse, qkv, b, t, nh, nkv);
  else forward<128>(out, lse, qkv, b, t, nh, nkv);
}

void flash_attention_backward_v2(bf16* dqkv, float* dsum, const bf16* dout, const bf16* qkv, const float* lse,
                                 int64_t b, int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  if (hd == 64) backward<64>(dqkv, dsum, dout, qkv, lse, b, t, nh, nkv);
  else backward<128>(dqkv, dsum, dout, qkv, lse, b, t, nh, nkv);
}

}  // namespace zt::cuda
