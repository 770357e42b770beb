// Device helpers shared by the flash attention kernels (flash_forward.cu, flash_backward.cu): the
// tensor-core product
// mma.sync m16n8k16 (bf16 in, f32 accumulators), ldmatrix fragment loads, cp.async staging of
// 64-row tiles, and the warp-level products the kernels are written in.
//
// Fragment layouts of m16n8k16, for lane = 4 g + tq (g = lane / 4, tq = lane % 4):
//   A (16 x 16, row-major): a[0] (row g, cols 2tq, 2tq+1), a[1] (row g+8, same cols),
//                           a[2] (row g, cols 2tq+8, +9), a[3] (row g+8, cols 2tq+8, +9)
//   B (16 x 8):             b[0] (rows 2tq, 2tq+1, col g), b[1] (rows 2tq+8, +9, col g)
//   C (16 x 8, f32):        c[0], c[1] (row g, cols 2tq, 2tq+1), c[2], c[3] (row g+8, same cols)
// so an accumulator tile pair (16 x 16) packs to bf16 as the A fragment of the next product: what
// turns probabilities into the left operand of P V without a trip through shared memory.
//
// Scores are kept in the log2 domain: with c = log2(e) / sqrt(HD), p = 2^(c s - c m) for the raw
// product s = q.k and the row's running maximum m of raw scores (one FFMA and one ex2 a score).
#pragma once

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "wgmma.cuh"

namespace zt::cuda::flash {

constexpr int kThreads = 128;  // 4 warps a block in every kernel
constexpr int kTile = 64;      // rows of a staged inner tile: keys (forward, dQ) or queries (dK/dV)
constexpr int kPad = 8;        // bf16 elements of padding per shared row: ldmatrix conflict-free

struct FlashDims {
  int t, nh, nkv, width;   // width: the qkv row, (NH + 2*NKV) * HD
  float scale, scale_log2;  // 1/sqrt(HD), and times log2(e)
};

inline FlashDims flash_dims(int64_t t, int64_t nh, int64_t nkv, int64_t hd) {
  const double scale = 1.0 / std::sqrt(double(hd));
  return {int(t), int(nh), int(nkv), int((nh + 2 * nkv) * hd), float(scale), float(scale * 1.4426950408889634)};
}

// Blocks sharing a key/value head's group of `group` query heads, as the backwards choose them:
// 1 for a group of one; `forced` > 0 rounded down to a divisor of the group; else the smallest
// divisor s for which the longest block, longest / s steps, is within limit() (the whole group
// where none is). limit() runs only in that last case.
template <class Limit>
int group_splits(int64_t group, int forced, int64_t longest, Limit limit) {
  if (group == 1) return 1;
  if (forced > 0) {
    int64_t s = forced < group ? forced : group;
    while (group % s != 0) --s;
    return int(s);
  }
  const double most = limit();
  for (int64_t s = 1; s < group; ++s)
    if (group % s == 0 && double(longest / s) <= most) return int(s);
  return int(group);
}

template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

// Four 8x8 b16 matrices; lane i gives the address of row i % 8 of matrix i / 8. Without trans,
// lane t receives (row t/4, columns 2(t%4), 2(t%4)+1) of each; with trans, (rows 2(t%4) and
// 2(t%4)+1, column t/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

// The inverse of ldmatrix_x4 without trans: lane i gives the address of row i % 8 of matrix i / 8,
// and lane t's r[m] is (row t/4, columns 2(t%4), 2(t%4)+1) of matrix m: an accumulator tile
// pair's packed bf16 rows, stored.
__device__ __forceinline__ void stmatrix_x4(uint32_t address, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(address), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}

// 16 bytes global -> shared without passing through registers; zeros when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// acc + the dot product of two 16-byte chunks of 8 bf16 each, in f32 (D = rowsum(dO * O)).
__device__ __forceinline__ float dot_chunk(const uint4& x, const uint4& y, float acc) {
  const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&x);
  const __nv_bfloat162* yp = reinterpret_cast<const __nv_bfloat162*>(&y);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 a = __bfloat1622float2(xp[j]), b = __bfloat1622float2(yp[j]);
    acc = fmaf(a.x, b.x, fmaf(a.y, b.y, acc));
  }
  return acc;
}

// Reduces a per-thread partial over the 4 threads that share an accumulator row.
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

// Queues rows [row0, row0 + ROWS) of src (rows `stride` elements apart, HD wide) into dst
// (ROWS, HD + kPad); rows at or past t are zero. The caller commits and waits. The loop stays
// rolled: unrolled, the compiler keeps each piece's addresses live across the kernels' inner
// loops (the dQ kernel for HD 64 then takes 226 registers instead of 163, and 2 blocks fit a
// multiprocessor instead of 3).
template <int HD, int ROWS>
__device__ __forceinline__ void stage(bf16* dst, const bf16* src, int64_t stride, int row0, int t) {
  constexpr int kChunks = HD / 8;  // 16-byte pieces a row
  static_assert(ROWS * kChunks % kThreads == 0, "every thread queues the same number of pieces");
#pragma unroll 1
  for (int i = 0; i < ROWS * kChunks / kThreads; ++i) {
    const int c = threadIdx.x + i * kThreads;
    const int r = c / kChunks, d = (c % kChunks) * 8;
    const bool valid = row0 + r < t;
    cp_async16(dst + r * (HD + kPad) + d, src + int64_t(valid ? row0 + r : 0) * stride + d, valid);
  }
}

// The A fragments of MT stacked 16-row tiles of a (16 MT, K) row-major shared tile (stride ld),
// for each of the K/16 k-steps: operands a warp keeps in registers across the inner loop.
template <int K, int MT>
__device__ __forceinline__ void load_a(uint32_t (&a)[MT][K / 16][4], const bf16* tile, int ld) {
  const int lane = threadIdx.x & 31;
  const bf16* row = tile + (lane % 8 + ((lane / 8) % 2) * 8) * ld + (lane / 16) * 8;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int ks = 0; ks < K / 16; ++ks) ldmatrix_x4(a[mt][ks], row + mt * 16 * ld + ks * 16);
}

// acc (16 MT, NT*8) += A (16 MT, K) B, with A in registers (load_a) and B given as its transpose
// bt (NT*8, K), row-major in shared memory (stride ldb): each B fragment read feeds MT m-tiles.
template <int K, int NT, int MT>
__device__ __forceinline__ void mma_a_bt(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][K / 16][4], const bf16* bt,
                                         int ldb) {
  static_assert(NT % 2 == 0, "n-tiles go in pairs");
  const int lane = threadIdx.x & 31;
  const bf16* b_row = bt + ((lane / 16) * 8 + lane % 8) * ldb + ((lane / 8) % 2) * 8;
#pragma unroll
  for (int ks = 0; ks < K / 16; ++ks) {
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t bf[4];
      ldmatrix_x4(bf, b_row + nt * 8 * ldb + ks * 16);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(acc[mt][nt], a[mt][ks], bf[0], bf[1]);
        mma16816(acc[mt][nt + 1], a[mt][ks], bf[2], bf[3]);
      }
    }
  }
}

// The same with A (16, K) read from shared memory (row-major, stride lda) a k-step at a time:
// for operands whose registers the kernel cannot spare.
template <int K, int NT>
__device__ __forceinline__ void mma_s_bt(float (&acc)[1][NT][4], const bf16* a, int lda, const bf16* bt, int ldb) {
  const int lane = threadIdx.x & 31;
  const bf16* a_row = a + (lane % 8 + ((lane / 8) % 2) * 8) * lda + (lane / 16) * 8;
#pragma unroll
  for (int ks = 0; ks < K / 16; ++ks) {
    uint32_t af[1][1][4];
    ldmatrix_x4(af[0][0], a_row + ks * 16);
    mma_a_bt<16, NT, 1>(acc, af, bt + ks * 16, ldb);
  }
}

// acc (16 MT, NT*8) += P (16 MT, KC) B: P in accumulator registers (KC/8 tiles of 16 x 8 per
// m-tile), rounded to bf16 here; B (KC, NT*8) row-major in shared memory (stride ldb), read
// transposed. Each B fragment read feeds MT m-tiles.
template <int KC, int NT, int MT>
__device__ __forceinline__ void mma_p_b(float (&acc)[MT][NT][4], const float (&p)[MT][KC / 8][4], const bf16* b,
                                        int ldb) {
  static_assert(NT % 2 == 0, "n-tiles go in pairs");
  const int lane = threadIdx.x & 31;
  const bf16* b_row = b + (lane % 8 + ((lane / 8) % 2) * 8) * ldb + (lane / 16) * 8;
#pragma unroll
  for (int kk = 0; kk < KC / 16; ++kk) {
    uint32_t af[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      af[mt][0] = pack_bf16(p[mt][2 * kk][0], p[mt][2 * kk][1]);
      af[mt][1] = pack_bf16(p[mt][2 * kk][2], p[mt][2 * kk][3]);
      af[mt][2] = pack_bf16(p[mt][2 * kk + 1][0], p[mt][2 * kk + 1][1]);
      af[mt][3] = pack_bf16(p[mt][2 * kk + 1][2], p[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, b_row + kk * 16 * ldb + nt * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(acc[mt][nt], af[mt], bf[0], bf[1]);
        mma16816(acc[mt][nt + 1], af[mt], bf[2], bf[3]);
      }
    }
  }
}

}  // namespace zt::cuda::flash
