// Flash attention forward for bf16 on the tensor cores (v3; docs/CUDA_NOTES.md). A block is 4
// warps over 64 MT query rows of one head, 16 MT rows a warp: MT = 2 for HD 64 (each K or V
// fragment read from shared memory feeds two m-tiles, and a key tile staged once serves 128
// rows), MT = 1 for HD 128 (two m-tiles of 128-wide accumulators would not fit in registers)
// and for HD 64 where FlashAttentionTuning::forward_rows asks for 64, to time both.
// Q's A fragments are read from shared memory once and kept in registers across the key tiles;
// K and V tiles of 64 keys are staged by cp.async two stages deep. The causal mask is applied
// only on the tiles that the diagonal crosses, and a warp skips a tile that lies wholly after
// its rows. Probabilities go from the score accumulators straight into the A fragments of P V.
// For HD 64 on a Hopper GPU the wgmma kernel (flash_forward_wgmma.cu) runs instead, where built.
#include "flash_attention.cuh"
#include "flash_common.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

// Scores s (rows row0 + 16 mt + g (+8), columns k0 + 8 nt + 2 tq (+1)) whose key comes after
// the query become -inf.
template <int MT, int NT>
__device__ __forceinline__ void mask_keys_after_query(float (&s)[MT][NT][4], int k0, int row0) {
  const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = row0 + mt * 16 + g + 8 * (e >> 1), col = k0 + nt * 8 + 2 * tq + (e & 1);
        if (col > row) s[mt][nt][e] = -INFINITY;
      }
}

// out (B, T, NH*HD), lse (B, NH, T). Grid (query blocks, B*NH), the longest blocks of a head first.
template <int HD, int MT>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(bf16* out, float* lse, const bf16* qkv, FlashDims dm) {
  constexpr int kWarpRows = 16 * MT, kRows = 4 * kWarpRows;  // query rows a warp, a block
  constexpr int ld = HD + kPad, kv_tile = kTile * ld, NT = kTile / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sq = reinterpret_cast<bf16*>(smem);  // (kRows, HD)
  bf16* sk = sq + kRows * ld;                // 2 stages of (64, HD)
  bf16* sv = sk + 2 * kv_tile;               // 2 stages of (64, HD)
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const bf16* keys = base + (dm.nh + kh) * HD;
  const bf16* values = base + (dm.nh + dm.nkv + kh) * HD;
  const int tiles = (min(q0 + kRows, dm.t) - 1) / kTile + 1;  // key tiles up to the block's last row
  stage<HD, kRows>(sq, base + h * HD, dm.width, q0, dm.t);
  cp_async_commit();
  stage<HD, kTile>(sk, keys, dm.width, 0, dm.t);
  stage<HD, kTile>(sv, values, dm.width, 0, dm.t);
  cp_async_commit();
  cp_async_wait<1>();  // Q has landed; the first key tile may still be on its way
  __syncthreads();
  const int row0 = q0 + warp * kWarpRows;  // this warp's first query row
  uint32_t qf[MT][HD / 16][4];
  load_a<HD, MT>(qf, sq + warp * kWarpRows * ld, ld);
  const float c = dm.scale_log2;
  float o[MT][HD / 8][4] = {};
  float m[MT][2], l[MT][2];  // running maximum of raw scores, partial row sums (this thread's columns)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  for (int it = 0; it < tiles; ++it) {
    const int k0 = it * kTile, cur = it & 1;
    if (it + 1 < tiles) {
      stage<HD, kTile>(sk + (cur ^ 1) * kv_tile, keys, dm.width, k0 + kTile, dm.t);
      stage<HD, kTile>(sv + (cur ^ 1) * kv_tile, values, dm.width, k0 + kTile, dm.t);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    // A tile wholly after this warp's rows adds nothing. Both tests are warp-uniform; k0 and row0
    // are multiples of 16 MT, so every row of a tile that is computed sees at least key k0, and
    // each row's maximum is finite from its first tile on (keys past T are zero rows, masked).
    if (k0 < row0 + kWarpRows) {
      float s[MT][NT][4] = {};
      mma_a_bt<HD, NT, MT>(s, qf, sk + cur * kv_tile, ld);
      if (k0 + kTile - 1 > row0) mask_keys_after_query<MT, NT>(s, k0, row0);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = m[mt][r];
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
          mx = quad_max(mx);
          const float ms = mx * c;
          const float correction = exp2_fast(fmaf(m[mt][r], c, -ms));  // 0 on the first tile
          m[mt][r] = mx;
          float sum = l[mt][r] * correction;
#pragma unroll
          for (int nt = 0; nt < HD / 8; ++nt) o[mt][nt][2 * r] *= correction, o[mt][nt][2 * r + 1] *= correction;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 2 * r; e < 2 * r + 2; ++e) {
              const float p = exp2_fast(fmaf(s[mt][nt][e], c, -ms));
              s[mt][nt][e] = p;
              sum += p;
            }
          l[mt][r] = sum;
        }
      mma_p_b<kTile, HD / 8, MT>(o, s, sv + cur * kv_tile, ld);
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  float total[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) total[mt][0] = quad_sum(l[mt][0]), total[mt][1] = quad_sum(l[mt][1]);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + mt * 16 + g + 8 * r;
      if (row >= dm.t) continue;
      const float inv = 1.0f / total[mt][r];
      bf16* y = out + (int64_t(b) * dm.t + row) * dm.nh * HD + h * HD;
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt)
        *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * tq) =
            pack_bf16(o[mt][nt][2 * r] * inv, o[mt][nt][2 * r + 1] * inv);
      if (tq == 0) lse[int64_t(bh) * dm.t + row] = (m[mt][r] * c + log2f(total[mt][r])) / kLog2e;
    }
}

template <int HD, int MT>
constexpr size_t forward_shared() {
  return size_t(64 * MT + 4 * kTile) * (HD + kPad) * sizeof(bf16);  // Q, then 2 stages of K and of V
}

template <int HD, int MT>
void forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv) {
  constexpr int rows = 64 * MT;
  constexpr size_t shared = forward_shared<HD, MT>();
  allow_shared(flash_forward_kernel<HD, MT>, shared);
  const dim3 grid(unsigned((t + rows - 1) / rows), unsigned(b * nh));
  flash_forward_kernel<HD, MT><<<grid, kThreads, shared, compute_stream()>>>(out, lse, qkv, flash_dims(t, nh, nkv, HD));
  ZT_CUDA_CHECK_LAUNCH("flash_forward_kernel");
}

}  // namespace

bool flash_supports_head_size(int64_t hd) { return hd == 64 || hd == 128; }

bool flash_wgmma_runs() {
#if ZT_HAS_WGMMA
  static const bool hopper = [] {
    int device = 0, major = 0, minor = 0;
    ZT_CUDA_CHECK(cudaGetDevice(&device));
    ZT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    ZT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return major == 9 && minor == 0;
  }();
  return hopper;
#else
  return false;
#endif
}

void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh, int64_t nkv,
                             int64_t hd) {
  if (hd == 128) return forward<128, 1>(out, lse, qkv, b, t, nh, nkv);
  const FlashAttentionTuning tuning = flash_attention_tuning();
  if (tuning.forward_rows == 64) return forward<64, 1>(out, lse, qkv, b, t, nh, nkv);
  if (!tuning.forward_mma_sync && flash_wgmma_runs())
    return flash_attention_forward_wgmma(out, lse, qkv, b, t, nh, nkv);
  forward<64, 2>(out, lse, qkv, b, t, nh, nkv);
}

}  // namespace zt::cuda
