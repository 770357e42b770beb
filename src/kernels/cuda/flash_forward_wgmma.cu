// Flash attention forward for bf16, HD 64, on Hopper's warpgroup products (wgmma, sm_90a; built
// only for that target, see CMakeLists.txt; docs/CUDA_NOTES.md v6). Same inputs, outputs and
// arithmetic as flash_forward.cu's kernel, which serves every other case.
//
// A block is 2 warpgroups over 128 query rows of one head, 64 rows a warpgroup. Q and 128-key
// tiles of K and V are staged by cp.async (two stages of K and V) into 128-byte-swizzled tiles
// (wgmma.cuh), which the tensor cores read directly: S = Q K^T is 4 m64n128k16 products with both
// operands in shared memory, and O += P V 8 m64n64k16 products with P in registers, packed to bf16
// straight from S's accumulators, and V read as an MN-major operand. The online softmax is
// flash_forward.cu's, on each warp's 16 rows of the warpgroup's accumulators.
#include "flash_attention.cuh"
#include "flash_common.cuh"
#include "wgmma.cuh"

namespace zt::cuda {

namespace {

using namespace flash;

constexpr int kHd = 64;
constexpr int kGroupRows = 64;                            // query rows a warpgroup
constexpr int kGroups = 2;                                // warpgroups a block
constexpr int kBlockRows = kGroups * kGroupRows;          // query rows a block
constexpr int kKeys = 128;                                // keys a staged tile
constexpr int kBlockThreads = 128 * kGroups;
constexpr int kRowBytes = kHd * 2;                        // one 128-byte swizzle row
constexpr int kQBytes = kBlockRows * kRowBytes;           // 16 KiB
constexpr int kTileBytes = kKeys * kRowBytes;             // 16 KiB, K or V
constexpr int kStages = 2;
constexpr size_t kShared = kQBytes + 2 * kStages * kTileBytes + 1024;  // + room to align to 1024

// Queues rows [row0, row0 + ROWS) of src (rows `stride` elements apart, 64 wide) into the
// swizzled tile at dst; rows at or past t are zero.
template <int ROWS>
__device__ __forceinline__ void stage_swizzled(unsigned char* dst, const bf16* src, int64_t stride, int row0, int t) {
#pragma unroll 1
  for (int i = threadIdx.x; i < ROWS * 8; i += kBlockThreads) {
    const int r = i >> 3, chunk = i & 7;
    const bool valid = row0 + r < t;
    cp_async16(dst + wgmma::swizzled_offset(r, chunk), src + int64_t(valid ? row0 + r : 0) * stride + chunk * 8,
               valid);
  }
}

// out (B, T, NH*64), lse (B, NH, T). Grid (query blocks, B*NH), the longest blocks of a head first.
__global__ void __launch_bounds__(kBlockThreads, 2) flash_forward_wgmma_kernel(bf16* out, float* lse, const bf16* qkv,
                                                                                FlashDims dm) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char shared_raw[];
  unsigned char* sq = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(shared_raw) + 1023) & ~uintptr_t(1023));
  unsigned char* sk = sq + kQBytes;                // kStages tiles
  unsigned char* sv = sk + kStages * kTileBytes;   // kStages tiles
  const int group = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kBlockRows;
  const int bh = blockIdx.y, b = bh / dm.nh, h = bh % dm.nh, kh = h / (dm.nh / dm.nkv);
  const bf16* base = qkv + int64_t(b) * dm.t * dm.width;
  const bf16* keys = base + (dm.nh + kh) * kHd;
  const bf16* values = base + (dm.nh + dm.nkv + kh) * kHd;
  const int tiles = (min(q0 + kBlockRows, dm.t) - 1) / kKeys + 1;  // key tiles up to the block's last row
  stage_swizzled<kBlockRows>(sq, base + h * kHd, dm.width, q0, dm.t);
  stage_swizzled<kKeys>(sk, keys, dm.width, 0, dm.t);
  stage_swizzled<kKeys>(sv, values, dm.width, 0, dm.t);
  cp_async_commit();
  const int group_row0 = q0 + group * kGroupRows, row0 = group_row0 + warp * 16;  // first rows: warpgroup, warp
  const uint64_t q_desc = wgmma::sw128_descriptor(shared_address(sq + group * kGroupRows * kRowBytes));
  const float c = dm.scale_log2;
  float o[kHd / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // running raw maximum, partial sums (this thread's columns)
  for (int it = 0; it < tiles; ++it) {
    const int k0 = it * kKeys, cur = it & 1;
    if (it + 1 < tiles) {
      stage_swizzled<kKeys>(sk + (cur ^ 1) * kTileBytes, keys, dm.width, k0 + kKeys, dm.t);
      stage_swizzled<kKeys>(sv + (cur ^ 1) * kTileBytes, values, dm.width, k0 + kKeys, dm.t);
    }
    cp_async_commit();
    cp_async_wait<1>();
    wgmma::fence_shared_for_async();
    __syncthreads();
    // A tile wholly after the warpgroup's rows adds nothing (uniform over the warpgroup, as wgmma
    // needs). Every computed row sees key k0 = 0 first, so each row's maximum is finite from then on.
    if (k0 < group_row0 + kGroupRows) {
      float s[kKeys / 8][4];
      const uint64_t k_desc = wgmma::sw128_descriptor(shared_address(sk + cur * kTileBytes));
      wgmma::fence();
#pragma unroll
      for (int ks = 0; ks < kHd / 16; ++ks) wgmma::m64n128k16_ss(s, q_desc + 2 * ks, k_desc + 2 * ks, ks > 0);
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(s);
      if (k0 + kKeys - 1 > row0) {  // the diagonal crosses this warp's part of the tile
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (k0 + nt * 8 + 2 * tq + (e & 1) > row0 + g + 8 * (e >> 1)) s[nt][e] = -INFINITY;
      }
      uint32_t p[kKeys / 16][4];  // P as the A operand of P V, one k-step of 16 keys each
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = quad_max(mx);
        const float ms = mx * c;
        const float correction = exp2_fast(fmaf(m[r], c, -ms));  // 0 on the first tile
        m[r] = mx;
        float sum = l[r] * correction;
#pragma unroll
        for (int nt = 0; nt < kHd / 8; ++nt) o[nt][2 * r] *= correction, o[nt][2 * r + 1] *= correction;
#pragma unroll
        for (int nt = 0; nt < kKeys / 8; ++nt) {
          const float p0 = exp2_fast(fmaf(s[nt][2 * r], c, -ms)), p1 = exp2_fast(fmaf(s[nt][2 * r + 1], c, -ms));
          sum += p0 + p1;
          p[nt / 2][(nt & 1) * 2 + r] = pack_bf16(p0, p1);
        }
        l[r] = sum;
      }
      const uint32_t v_address = shared_address(sv + cur * kTileBytes);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk)
        wgmma::m64n64k16_rs(o, p[kk], wgmma::sw128_descriptor(v_address + kk * 16 * kRowBytes));
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(o);
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  const float total[2] = {quad_sum(l[0]), quad_sum(l[1])};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= dm.t) continue;
    const float inv = 1.0f / total[r];
    bf16* y = out + (int64_t(b) * dm.t + row) * dm.nh * kHd + h * kHd;
#pragma unroll
    for (int nt = 0; nt < kHd / 8; ++nt)
      *reinterpret_cast<uint32_t*>(y + nt * 8 + 2 * tq) = pack_bf16(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
    if (tq == 0) lse[int64_t(bh) * dm.t + row] = (m[r] * c + log2f(total[r])) / kLog2e;
  }
#else
  __trap();  // launched only where ZT_HAS_WGMMA says this target was built
#endif
}

}  // namespace

void flash_attention_forward_wgmma(bf16* out, float* lse, const bf16* qkv, int64_t b, int64_t t, int64_t nh,
                                   int64_t nkv) {
  allow_shared(flash_forward_wgmma_kernel, kShared);
  const dim3 grid(unsigned((t + kBlockRows - 1) / kBlockRows), unsigned(b * nh));
  flash_forward_wgmma_kernel<<<grid, kBlockThreads, kShared, compute_stream()>>>(out, lse, qkv,
                                                                                 flash_dims(t, nh, nkv, kHd));
  ZT_CUDA_CHECK_LAUNCH("flash_forward_wgmma_kernel");
}

}  // namespace zt::cuda
