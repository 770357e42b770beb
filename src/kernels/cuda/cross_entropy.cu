// Softmax cross-entropy over the vocabulary fused with its backward: a block per row reads the
// row's logits in their storage type (never an f32 copy), keeps a running max and sum per thread
// (one exp per element), and writes dlogits in a second pass, which the L2 mostly serves. Rows of
// whole aligned 16-byte chunks (GPT-2's padded 50304, Llama's 32000) are read once, into shared
// memory where two fit a multiprocessor, else into registers.
#include <cuda_bf16.h>

#include "common.cuh"

namespace zt::cuda {

namespace {

// Calls fn(j, value) for every element of row x (V) that this thread owns: a scalar head up to the
// first 16-byte boundary, 16-byte vectors, a scalar tail.
template <class T, class Fn>
__device__ __forceinline__ void for_each_owned(const T* x, int64_t v, Fn&& fn) {
  constexpr int kVec = Chunk16<T>::n;
  const int64_t misalign = int64_t(reinterpret_cast<uintptr_t>(x) % 16) / int64_t(sizeof(T));
  int64_t head = misalign ? kVec - misalign : 0;
  head = head < v ? head : v;
  const int64_t body = (v - head) / kVec;
  const int64_t tail_start = head + body * kVec;
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) fn(j, to_float(x[j]));
  const Chunk16<T>* xv = reinterpret_cast<const Chunk16<T>*>(x + head);
  for (int64_t i = threadIdx.x; i < body; i += blockDim.x) {
    const Chunk16<T> chunk = xv[i];
#pragma unroll
    for (int k = 0; k < kVec; ++k) fn(head + i * kVec + k, to_float(chunk.v[k]));
  }
  for (int64_t j = tail_start + threadIdx.x; j < v; j += blockDim.x) fn(j, to_float(x[j]));
}

template <class T>
__global__ void cross_entropy_kernel(float* losses, T* dlogits, const T* logits, const int32_t* targets,
                                     int* counted, int64_t v, float dloss, const float* dloss_at) {
  __shared__ float shared[32];
  if (dloss_at) dloss = *dloss_at;
  const int64_t row = blockIdx.x;
  const T* x = logits + row * v;
  T* dx = dlogits ? dlogits + row * v : nullptr;
  const int32_t target = targets[row];
  if (target == ops::kIgnoreIndex) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    if (dx)
      for (int64_t j = threadIdx.x; j < v; j += blockDim.x) dx[j] = from_float<T>(0.0f);
    return;
  }
  const bool valid = target >= 0 && target < v;
  // Read before any thread may overwrite it (dlogits may alias logits); the reductions below
  // hold barriers that order this read before the second pass.
  const float x_target = valid ? to_float(x[target]) : NAN;
  float m = -INFINITY, s = 0.0f;
  for_each_owned(x, v, [&](int64_t, float value) {
    if (value > m) {
      s = s * __expf(m - value) + 1.0f;
      m = value;
    } else {
      s += __expf(value - m);
    }
  });
  const float row_max = block_max(m, shared);
  const float sum = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - row_max), shared);
  if (threadIdx.x == 0) {
    losses[row] = valid ? logf(sum) + row_max - x_target : NAN;
    if (counted) atomicAdd(counted, 1);
  }
  if (!dx) return;
  const float scale = valid ? dloss / sum : NAN;
  if (reinterpret_cast<uintptr_t>(dx) % 16 == reinterpret_cast<uintptr_t>(x) % 16) {
    // Same alignment (in place, or a twin buffer): the writes go out as 16-byte vectors too.
    constexpr int kVec = Chunk16<T>::n;
    const int64_t misalign = int64_t(reinterpret_cast<uintptr_t>(x) % 16) / int64_t(sizeof(T));
    int64_t head = misalign ? kVec - misalign : 0;
    head = head < v ? head : v;
    const int64_t body = (v - head) / kVec;
    for (int64_t j = threadIdx.x; j < head; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
    // The second read is the row's last (evict first); dlogits is not read again here (stream).
    const uint4* xv = reinterpret_cast<const uint4*>(x + head);
    uint4* dv = reinterpret_cast<uint4*>(dx + head);
    for (int64_t i = threadIdx.x; i < body; i += blockDim.x) {
      Chunk16<T> chunk, out;
      chunk.raw = __ldcs(xv + i);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        const int64_t j = head + i * kVec + k;
        out.v[k] = from_float<T>(__expf(to_float(chunk.v[k]) - row_max) * scale - (j == target ? dloss : 0.0f));
      }
      __stcs(dv + i, out.raw);
    }
    for (int64_t j = head + body * kVec + threadIdx.x; j < v; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
  } else {
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x)
      dx[j] = from_float<T>(__expf(to_float(x[j]) - row_max) * scale - (j == target ? dloss : 0.0f));
  }
}

// For the kernels that read a row of whole 16-byte chunks once.
// A row whose target is the ignore index: loss 0 and a zero gradient (dx: the row's chunks, or null).
__device__ __forceinline__ void ignore_row(float* losses, uint4* dx, int64_t row, int chunks) {
  if (threadIdx.x == 0) losses[row] = 0.0f;
  if (dx)
    for (int k = threadIdx.x; k < chunks; k += blockDim.x) dx[k] = make_uint4(0, 0, 0, 0);
}

// The row's loss, from thread 0, once the block has the row's sum of exps.
__device__ __forceinline__ void write_loss(float* losses, int* counted, int64_t row, bool valid, float sum,
                                          float row_max, float x_target) {
  if (threadIdx.x != 0) return;
  losses[row] = valid ? logf(sum) + row_max - x_target : NAN;
  if (counted) atomicAdd(counted, 1);
}

// Adds one chunk's exp(x - max) to s, element by element, as 2^(x log2 e - max log2 e): one FFMA
// and one MUFU.EX2 an element.
template <class T>
__device__ __forceinline__ void add_chunk_exps(float& s, const Chunk16<T>& c, float max_log2) {
#pragma unroll
  for (int e = 0; e < Chunk16<T>::n; ++e) s += exp2_fast(fmaf(to_float(c.v[e]), kLog2e, -max_log2));
}

// One chunk of dlogits into dst: softmax * scale, less dloss at the target where this chunk holds
// it (target_lane: its element in the chunk, else -1).
template <class T>
__device__ __forceinline__ void store_gradient(uint4* dst, const Chunk16<T>& c, float max_log2, float scale,
                                               int target_lane, float dloss) {
  constexpr int kVec = Chunk16<T>::n;
  float g[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) g[e] = exp2_fast(fmaf(to_float(c.v[e]), kLog2e, -max_log2)) * scale;
  if (target_lane >= 0) {  // the one-hot term, in the one chunk that holds the target
#pragma unroll
    for (int e = 0; e < kVec; ++e)
      if (e == target_lane) g[e] -= dloss;
  }
  Chunk16<T> out;
#pragma unroll
  for (int e = 0; e < kVec; ++e) out.v[e] = from_float<T>(g[e]);
  __stcs(dst, out.raw);
}

// The same for rows that are whole 16-byte chunks (aligned), at most K chunks a thread of
// Threads: the row is read once into registers, so the gradient pass reads no memory (the general
// kernel reads each row twice, the second time mostly from the L2).
template <class T, int K, int Threads>
__global__ void __launch_bounds__(Threads) cross_entropy_rows_kernel(float* losses, T* dlogits, const T* logits,
                                                                   const int32_t* targets, int* counted, int64_t v,
                                                                   float dloss, const float* dloss_at) {
  constexpr int kVec = Chunk16<T>::n;
  __shared__ float shared[32];
  if (dloss_at) dloss = *dloss_at;
  const int64_t row = blockIdx.x;
  const int chunks = int(v / kVec);  // rows are far below 2^31 elements
  const uint4* x = reinterpret_cast<const uint4*>(logits + row * v);
  uint4* dx = dlogits ? reinterpret_cast<uint4*>(dlogits + row * v) : nullptr;
  const int32_t target = targets[row];
  if (target == ops::kIgnoreIndex) return ignore_row(losses, dx, row, chunks);
  const bool valid = target >= 0 && target < v;
  const float x_target = valid ? to_float(logits[row * v + target]) : NAN;
  Chunk16<T> r[K];
  float m = -INFINITY;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = int(threadIdx.x) + i * Threads;
    if (k >= chunks) continue;
    r[i].raw = __ldcs(x + k);
#pragma unroll
    for (int e = 0; e < kVec; ++e) m = fmaxf(m, to_float(r[i].v[e]));
  }
  const float row_max = block_max(m, shared);
  const float max_log2 = row_max * kLog2e;
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < K; ++i)
    if (int(threadIdx.x) + i * Threads < chunks) add_chunk_exps(s, r[i], max_log2);
  const float sum = block_sum(s, shared);
  write_loss(losses, counted, row, valid, sum, row_max, x_target);
  if (!dx) return;
  const float scale = valid ? dloss / sum : NAN;
  const int target_chunk = valid ? target / kVec : -1;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int k = int(threadIdx.x) + i * Threads;
    if (k < chunks) store_gradient(dx + k, r[i], max_log2, scale, k == target_chunk ? target % kVec : -1, dloss);
  }
}

// The same for rows of whole aligned 16-byte chunks that fit twice in a multiprocessor's shared
// memory (GPT-2's 50304 and Llama's 32000 in bf16): the row is read once into shared memory, where
// each thread keeps its own chunks (no thread reads another's), so 2 or 3 blocks share a
// multiprocessor and one's loads overlap another's exps. Dynamic shared memory: v elements.
template <class T, int Threads>
__global__ void __launch_bounds__(Threads) cross_entropy_staged_kernel(float* losses, T* dlogits, const T* logits,
                                                                     const int32_t* targets, int* counted, int64_t v,
                                                                     float dloss, const float* dloss_at) {
  constexpr int kVec = Chunk16<T>::n;
  extern __shared__ uint4 staged[];  // (v / kVec) chunks of this row
  __shared__ float shared[32];
  if (dloss_at) dloss = *dloss_at;
  const int64_t row = blockIdx.x;
  const int chunks = int(v / kVec);
  const uint4* x = reinterpret_cast<const uint4*>(logits + row * v);
  uint4* dx = dlogits ? reinterpret_cast<uint4*>(dlogits + row * v) : nullptr;
  const int32_t target = targets[row];
  if (target == ops::kIgnoreIndex) return ignore_row(losses, dx, row, chunks);
  const bool valid = target >= 0 && target < v;
  const float x_target = valid ? to_float(logits[row * v + target]) : NAN;
  float m = -INFINITY;
#pragma unroll 4
  for (int k = threadIdx.x; k < chunks; k += Threads) {
    Chunk16<T> c;
    c.raw = __ldcs(x + k);
    staged[k] = c.raw;
#pragma unroll
    for (int e = 0; e < kVec; ++e) m = fmaxf(m, to_float(c.v[e]));
  }
  const float row_max = block_max(m, shared);
  const float max_log2 = row_max * kLog2e;
  float s = 0.0f;
#pragma unroll 4
  for (int k = threadIdx.x; k < chunks; k += Threads) {
    Chunk16<T> c;
    c.raw = staged[k];
    add_chunk_exps(s, c, max_log2);
  }
  const float sum = block_sum(s, shared);
  write_loss(losses, counted, row, valid, sum, row_max, x_target);
  if (!dx) return;
  const float scale = valid ? dloss / sum : NAN;
  const int target_chunk = valid ? target / kVec : -1;
#pragma unroll 4
  for (int k = threadIdx.x; k < chunks; k += Threads) {
    Chunk16<T> c;
    c.raw = staged[k];
    store_gradient(dx + k, c, max_log2, scale, k == target_chunk ? target % kVec : -1, dloss);
  }
}

constexpr int kStagedThreads = 512;
constexpr size_t kStagedMaxBytes = size_t(112) << 10;  // two rows a multiprocessor (228 KiB of shared memory)

template <class T>
void launch_staged(float* losses, T* dlogits, const T* logits, const int32_t* targets, int* counted, int64_t n,
                   int64_t v, float dloss, const float* dloss_at) {
  auto kernel = cross_entropy_staged_kernel<T, kStagedThreads>;
  ZT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kStagedMaxBytes)));
  kernel<<<unsigned(n), kStagedThreads, size_t(v) * sizeof(T), compute_stream()>>>(losses, dlogits, logits, targets,
                                                                                 counted, v, dloss, dloss_at);
}

template <class T, int K, int Threads>
void launch_rows(float* losses, T* dlogits, const T* logits, const int32_t* targets, int* counted, int64_t n,
                 int64_t v, float dloss, const float* dloss_at) {
  cross_entropy_rows_kernel<T, K, Threads><<<unsigned(n), Threads, 0, compute_stream()>>>(
      losses, dlogits, logits, targets, counted, v, dloss, dloss_at);
}

// The staged kernel for rows that fit its shared memory, else the register kernel, or nullptr when
// the rows suit neither: up to 4 chunks a thread
// of 1024, then fewer threads with more registers each (a 1024-thread block has 64 a thread, too
// few past 4 chunks; the counts below are the largest that compile without spills).
template <class T>
auto rows_launch(const T* logits, const T* dlogits, int64_t v)
    -> void (*)(float*, T*, const T*, const int32_t*, int*, int64_t, int64_t, float, const float*) {
  constexpr int kVec = Chunk16<T>::n;
  const auto misaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (v % kVec != 0 || v < 8192 || misaligned(logits) || (dlogits && misaligned(dlogits))) return nullptr;
  if (size_t(v) * sizeof(T) <= kStagedMaxBytes) return launch_staged<T>;
  const int64_t chunks = v / kVec;
  switch ((chunks + 1023) / 1024) {
    case 1: return launch_rows<T, 1, 1024>;
    case 2: return launch_rows<T, 2, 1024>;
    case 3: return launch_rows<T, 3, 1024>;
    case 4: return launch_rows<T, 4, 1024>;
    default: break;
  }
  if (chunks <= 10 * 640) return launch_rows<T, 10, 640>;  // GPT-2's 50304 in bf16: 6288 chunks
  return nullptr;
}

// count_and_dloss (2) = {the targets that are not the ignore index, grad_scale / that count (0
// when none is)}: one block, the count exact in f32 up to 2^24 targets.
__global__ void count_targets_kernel(float* count_and_dloss, const int32_t* targets, int64_t n, double grad_scale) {
  __shared__ int warp_counts[32];
  int count = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) count += targets[i] != ops::kIgnoreIndex;
  count = __reduce_add_sync(0xffffffffu, count);
  if (threadIdx.x % 32 == 0) warp_counts[threadIdx.x / 32] = count;
  __syncthreads();
  if (threadIdx.x != 0) return;
  int total = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) total += warp_counts[w];
  count_and_dloss[0] = float(total);
  count_and_dloss[1] = total ? float(grad_scale / double(total)) : 0.0f;  // as the host's division
}

}  // namespace

void count_targets(float* count_and_dloss, const int32_t* targets, int64_t n, double grad_scale) {
  count_targets_kernel<<<1, 1024, 0, compute_stream()>>>(count_and_dloss, targets, n, grad_scale);
  ZT_CUDA_CHECK_LAUNCH("count_targets_kernel");
}

template <class T>
int64_t cross_entropy(float* losses, T* dlogits, const T* logits, const int32_t* targets, int64_t n, int64_t v,
                      double dloss, bool count, const float* dloss_at) {
  if (n == 0) return count ? 0 : -1;
  Scratch counted(count ? sizeof(int) : 0);
  if (count) ZT_CUDA_CHECK(cudaMemsetAsync(counted.as<int>(), 0, sizeof(int), compute_stream()));
  // Large blocks: fewer rows in flight, so that a row read by the first pass is still in the L2
  // for the second (at 2 blocks of 1024 per SM, 264 rows of 100 KB for GPT-2's vocabulary).
  const int threads = v >= 8192 ? 1024 : (v >= 1024 ? 256 : 64);
  if (const auto launch = rows_launch(logits, dlogits, v)) {
    launch(losses, dlogits, logits, targets, counted.as<int>(), n, v, float(dloss), dloss_at);
    ZT_CUDA_CHECK_LAUNCH("cross_entropy (a row read once)");
  } else {
    cross_entropy_kernel<<<unsigned(n), threads, 0, compute_stream()>>>(losses, dlogits, logits, targets,
                                                                        counted.as<int>(), v, float(dloss), dloss_at);
    ZT_CUDA_CHECK_LAUNCH("cross_entropy_kernel");
  }
  if (!count) return -1;
  int host = 0;
  ZT_CUDA_CHECK(cudaMemcpyAsync(&host, counted.as<int>(), sizeof(int), cudaMemcpyDeviceToHost, compute_stream()));
  ZT_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
  return host;
}

template int64_t cross_entropy<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, double, bool,
                                      const float*);
template int64_t cross_entropy<bf16>(float*, bf16*, const bf16*, const int32_t*, int64_t, int64_t, double, bool,
                                     const float*);

}  // namespace zt::cuda
