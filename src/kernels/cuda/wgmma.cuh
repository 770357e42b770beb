// Hopper's warpgroup matrix products (wgmma, sm_90a only): the shared-memory operand
// descriptor for 128-byte-swizzled tiles, the ordering instructions, the shapes the flash
// attention kernels use, the bulk reduction the backward adds dQ with, and the mbarriers and TMA
// copies that fill the tiles (the TMA's 128-byte swizzle is this layout). A warpgroup is 4
// consecutive warps starting at a warp index divisible by 4; every one of its 128 threads
// executes each instruction.
//
// Accumulators (f32, m64nN): thread t of the warpgroup holds d[j][e] for 8-column block j at row
// 16 (t / 32) + (t % 32) / 4 + 8 (e / 2), column 8 j + 2 (t % 4) + e % 2: each warp's 16 rows laid
// out as mma.sync's m16n8 C fragments (flash_common.cuh), so a pair of blocks packs to bf16 as
// the register A operand of the next product.
//
// Tiles in shared memory: rows of 64 bf16 (128 bytes), the 16-byte chunk c of row r stored at
// chunk c ^ (r % 8), the tile 1024-byte aligned. The same tile serves as a K-major operand (rows
// are M or N, the 64 columns are K: Q, K) and as an MN-major one (rows are K, columns N: V).
#pragma once

#include <cstdint>

namespace zt::cuda::wgmma {

// Byte offset of chunk `chunk` (8 bf16) of row `row` in a 128-byte-swizzled tile.
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  return uint32_t(row) * 128u + (uint32_t(chunk ^ (row & 7)) << 4);
}

// The descriptor of a 128-byte-swizzled tile starting at shared address `address` (advance it by
// 32 bytes for the next 16 columns of a K-major operand, by 16 rows = 2048 bytes for the next 16
// rows of an MN-major one). The stride byte offset is 1024, between groups of 8 rows. The leading
// byte offset matters only for an MN-major operand wider than one 128-byte atom (64 columns): it
// is then the distance between its 64-column tiles (a 128-column B: the second tile's start).
__device__ __forceinline__ uint64_t sw128_descriptor(uint32_t address, uint32_t leading_bytes = 1024) {
  uint64_t d = uint64_t((address & 0x3FFFF) >> 4);
  d |= uint64_t(leading_bytes >> 4) << 16;  // leading dimension byte offset
  d |= uint64_t(1024 >> 4) << 32;           // stride dimension byte offset
  d |= uint64_t(1) << 62;                   // 128-byte swizzle
  return d;
}

// Every instruction below exists on sm_90a only; compiled for another target the functions are
// empty, and the kernels that use them must not run there (ZT_HAS_WGMMA says where they do).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ZT_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define ZT_WGMMA_ASM(...) \
  do {                    \
  } while (0)
#endif

__device__ __forceinline__ void fence() { ZT_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { ZT_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() {
  ZT_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads of accumulators across wait() (their values are written by
// the tensor cores, not by the asm statement that issued the product).
template <int N>
__device__ __forceinline__ void fence_operands(float (&d)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
}

// Shared memory written by ordinary stores or cp.async, read next by the tensor cores: each writing
// thread fences before the barrier that publishes it.
__device__ __forceinline__ void fence_shared_for_async() {
  ZT_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// d (64, 128) (+)= A (64, 16) B (16, 128): A K-major; B K-major (B's rows are its 128 columns), or
// with kBMnMajor MN-major (its 16 rows of 128 columns: two 64-column tiles, sw128_descriptor's
// leading_bytes apart); both from shared memory. accumulate = 0 overwrites d.
template <int kBMnMajor = 0>
__device__ __forceinline__ void m64n128k16_ss(float (&d)[16][4], uint64_t a, uint64_t b, int accumulate) {
  ZT_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63},"
      " %64, %65, p, 1, 1, 0, %67;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]),
        "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]),
        "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "l"(a), "l"(b), "r"(accumulate), "n"(kBMnMajor));
}

// d (64, 64) (+)= A (64, 16) B (16, 64): A in registers (a[0..3] as mma.sync's m16n8k16 A fragment
// of each warp's 16 rows), B MN-major from shared memory (its 16 rows of 64 columns).
// accumulate = 0 overwrites d.
__device__ __forceinline__ void m64n64k16_rs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b,
                                             int accumulate = 1) {
  ZT_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31},"
      " {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

// d (64, 64) (+)= A (64, 16) B (16, 64), both from shared memory: K-major (B's rows are its 64
// columns), or with kMnMajor both MN-major (A's 16 rows of 64 M columns, B's 16 rows of 64 N
// columns). accumulate = 0 overwrites d.
template <int kMnMajor = 0>
__device__ __forceinline__ void m64n64k16_ss(float (&d)[8][4], uint64_t a, uint64_t b, int accumulate) {
  ZT_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31},"
      " %32, %33, p, 1, 1, %35, %35;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(a), "l"(b), "r"(accumulate), "n"(kMnMajor));
}

// d (64, 32) (+)= A (64, 16) B (16, 32): both MN-major from shared memory (A's 16 rows of 64 M
// columns, B's 16 rows of which the descriptor's start picks 32 columns). accumulate = 0
// overwrites d.
__device__ __forceinline__ void m64n32k16_ss_mn(float (&d)[4][4], uint64_t a, uint64_t b, int accumulate) {
  ZT_WGMMA_ASM(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15},"
      " %16, %17, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3])
      : "l"(a), "l"(b), "r"(accumulate));
}

// Bulk reduction of `bytes` (a multiple of 16) of f32 from shared memory into global memory
// (global += shared, element by element, in L2), issued by one thread; commit groups and waits as
// for the other bulk copies. Shared memory written by ordinary stores is fenced
// (fence_shared_for_async) and published by a barrier before the issuing thread reads it.
__device__ __forceinline__ void bulk_reduce_add(float* global, uint32_t shared, uint32_t bytes) {
  ZT_WGMMA_ASM("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(global),
               "r"(shared), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { ZT_WGMMA_ASM("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Until at most N of this thread's bulk groups still read their shared source.
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
  ZT_WGMMA_ASM("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
// Until at most N of this thread's bulk groups are incomplete.
template <int N>
__device__ __forceinline__ void bulk_wait() {
  ZT_WGMMA_ASM("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
}

// mbarriers (8 bytes of shared memory each) and TMA copies of tensor-map boxes into shared
// memory (tensor_map.hpp). A barrier initialized for one arrival completes a phase when its one
// thread has arrived (announcing the bytes to come) and the copies that name it have landed.
__device__ __forceinline__ void mbarrier_init(uint32_t bar, int arrivals) {
  ZT_WGMMA_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}
// After the initializations, before any thread or copy uses the barriers (then a block barrier).
__device__ __forceinline__ void fence_mbarrier_init() {
  ZT_WGMMA_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive_expect_bytes(uint32_t bar, uint32_t bytes) {
  ZT_WGMMA_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// One arrival on a barrier (no bytes announced): a consumer saying it is done with a stage.
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  ZT_WGMMA_ASM("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// The registers a thread of this warpgroup holds, lowered or raised to N (a multiple of 8, 24 to
// 256): a producer warpgroup gives its registers to the consumers of the same block.
template <int N>
__device__ __forceinline__ void release_registers() {
  ZT_WGMMA_ASM("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void claim_registers() {
  ZT_WGMMA_ASM("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
// Until the barrier's phase of this parity (0 for its first, then 1, 0, ...) has completed.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  ZT_WGMMA_ASM(
      "{\n"
      ".reg .pred done;\n"
      "wait:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// The box of the tensor map (a __grid_constant__ kernel parameter) at coordinates (x, y, z) into
// shared memory at dst, completing on bar.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void* map, int x, int y, int z, uint32_t bar) {
  ZT_WGMMA_ASM(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z), "r"(bar)
      : "memory");
}
// bytes (a multiple of 16) from global src into shared dst (both 16-byte aligned), completing on bar.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  ZT_WGMMA_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

// The same box written into the shared memory of each block of the cluster that cta_mask names
// (bit r: rank r), at the same offset dst, each completing on its own barrier at offset bar.
__device__ __forceinline__ void tma_load_3d_multicast(uint32_t dst, const void* map, int x, int y, int z, uint32_t bar,
                                                      uint16_t cta_mask) {
  ZT_WGMMA_ASM(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, "
      "{%2, %3, %4}], [%5], %6;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z), "r"(bar), "h"(cta_mask)
      : "memory");
}

// Thread-block clusters (sm_90): the block's rank in its cluster, the cluster's index and count
// along x, one arrival on the barrier at offset bar of the cluster's block `rank`, and the
// barrier that every thread of every block of the cluster passes (after the barriers' set-up,
// and before a block leaves while another may still signal it). The remote arrival keeps the
// default CTA-scoped release: with a cluster-scoped one, a product releasing its stages this way
// ran 2.0-2.8x slower (docs/CUDA_NOTES.md v18), likely because such a release first waits for the
// thread's earlier global stores (an epilogue's) to be performed.
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r = 0;
  ZT_WGMMA_ASM("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t cluster_index() {
  uint32_t r = 0;
  ZT_WGMMA_ASM("mov.u32 %0, %%clusterid.x;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t cluster_count() {
  uint32_t r = 0;
  ZT_WGMMA_ASM("mov.u32 %0, %%nclusterid.x;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ void mbarrier_arrive_in_block(uint32_t bar, uint32_t rank) {
  ZT_WGMMA_ASM(
      "{\n"
      ".reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
      "}\n" ::"r"(bar),
      "r"(rank)
      : "memory");
}
__device__ __forceinline__ void cluster_sync() {
  ZT_WGMMA_ASM("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}

#undef ZT_WGMMA_ASM

}  // namespace zt::cuda::wgmma
