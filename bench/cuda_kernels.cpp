// CUDA kernel micro-benchmark at GPT-2 124M shapes (B=16, T=1024, C=768, NH=12, V=50257, bf16),
// and attention, RMSNorm, RoPE and cross-entropy at Llama 1.1B's too (B=4, T=2048, NH=32, NKV=4,
// HD=64, C=2048, V=32000): each op's median time
// over repeated runs, timed with events on the compute stream, against the device's ceilings
// measured first in the same run (a device-to-device copy for memory bandwidth, an 8192^3 bf16
// GEMM for matrix throughput). One JSON line per op.
// Usage: bench_cuda_kernels [repeats] [--only attention|matmul|memory]
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "zt/core/device.hpp"

#if ZT_HAS_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.hpp"
#include "kernels/cuda/gemm_wgmma.hpp"
#include "zt/core/cuda_check.hpp"
#include "zt/core/cuda_stream.hpp"
#include "zt/kernels/ops.hpp"

namespace {

using namespace zt;
using ops::Activation;
using ops::WeightLayout;

constexpr int64_t kB = 16, kT = 1024, kC = 768, kNH = 12, kV = 50257, kN = kB * kT, kHD = kC / kNH;

int g_repeats = 20;

// Median milliseconds of fn over the repeats, after warm-up runs.
double time_ms(const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  ZT_CUDA_CHECK(cudaEventCreate(&start));
  ZT_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < g_repeats; ++i) {
    ZT_CUDA_CHECK(cudaEventRecord(start, cuda::compute_stream()));
    fn();
    ZT_CUDA_CHECK(cudaEventRecord(stop, cuda::compute_stream()));
    ZT_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    ZT_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  ZT_CUDA_CHECK(cudaEventDestroy(start));
  ZT_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A device tensor of uniform values in [lo, hi): a 16M-element random block, tiled.
Tensor random_device(const Shape& shape, DType dtype, double lo, double hi, uint64_t seed) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda());
  const int64_t n = t.numel(), block = std::min<int64_t>(n, int64_t(1) << 24);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> dist{float(lo), float(hi)};
  std::vector<float> host(static_cast<size_t>(block), 0.0f);
  for (float& x : host) x = dist(gen);
  const Tensor chunk = Tensor::from_floats({block}, host, DType::f32).to(dtype).to(Device::cuda());
  const Tensor flat = t.flatten();
  for (int64_t i = 0; i < n; i += block) {
    const int64_t len = std::min(block, n - i);
    flat.view(size_t(i), {len}).copy_from(chunk.view(0, {len}));
  }
  return t;
}

struct Ceilings {
  double tflops = 0, gbps = 0;
};
Ceilings g_peak;

void report(const std::string& op, const std::string& shape, double ms, double flops, double bytes,
            const std::string& version = "") {
  nlohmann::json j;
  j["op"] = op;
  j["shape"] = shape;
  if (!version.empty()) j["version"] = version;
  j["dtype"] = op.find("adamw") != std::string::npos ? "f32" : "bf16";
  j["ms"] = ms;
  if (flops > 0) {
    const double tf = flops / (ms * 1e-3) / 1e12;
    j["tflops"] = tf;
    j["pct_of_matrix_peak"] = 100.0 * tf / g_peak.tflops;
  }
  if (bytes > 0) {
    const double gb = bytes / (ms * 1e-3) / 1e9;
    j["gb_per_s"] = gb;
    j["pct_of_bandwidth"] = 100.0 * gb / g_peak.gbps;
  }
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

void measure_ceilings() {
  {
    const size_t bytes = size_t(2) << 30;
    const Tensor a = Tensor::empty({int64_t(bytes)}, DType::u8, Device::cuda());
    const Tensor b = Tensor::empty({int64_t(bytes)}, DType::u8, Device::cuda());
    a.zero_();
    const double ms = time_ms([&] {
      ZT_CUDA_CHECK(cudaMemcpyAsync(b.raw(), a.raw(), bytes, cudaMemcpyDeviceToDevice, cuda::compute_stream()));
    });
    g_peak.gbps = 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
  }
  {
    const int64_t m = 8192;
    const Tensor x = random_device({m, m}, DType::bf16, -1, 1, 1), w = random_device({m, m}, DType::bf16, -1, 1, 2);
    const Tensor y = Tensor::empty({m, m}, DType::bf16, Device::cuda());
    const double ms = time_ms(
        [&] { ops::matmul_forward(y, Tensor(), x, w, Tensor(), WeightLayout::out_in, Activation::none); });
    g_peak.tflops = 2.0 * double(m * m) * double(m) / (ms * 1e-3) / 1e12;
  }
  cudaDeviceProp prop{};
  ZT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  nlohmann::json j;
  j["device"] = prop.name;
  j["measured_bandwidth_gb_per_s"] = g_peak.gbps;
  j["measured_bf16_gemm_tflops"] = g_peak.tflops;
  j["repeats"] = g_repeats;
  std::printf("%s\n", j.dump().c_str());
}

void bench_matmuls() {
  struct Linear {
    const char* name;
    int64_t c, oc;
    WeightLayout layout;
    bool bias;
    Activation act;
  };
  const Linear linears[] = {{"qkv", kC, 3 * kC, WeightLayout::in_out, true, Activation::none},
                            {"attn_proj", kC, kC, WeightLayout::in_out, true, Activation::none},
                            {"fc_gelu", kC, 4 * kC, WeightLayout::in_out, true, Activation::gelu_tanh},
                            {"fc_proj", 4 * kC, kC, WeightLayout::in_out, true, Activation::none},
                            {"lm_head", kC, kV, WeightLayout::out_in, false, Activation::none},
                            // The vocabulary padded to a multiple of 64, as llm.c does: aligned rows.
                            {"lm_head_padded_50304", kC, 50304, WeightLayout::out_in, false, Activation::none}};
  for (const Linear& l : linears) {
    const Shape ws = l.layout == WeightLayout::out_in ? Shape{l.oc, l.c} : Shape{l.c, l.oc};
    const Tensor inp = random_device({kN, l.c}, DType::bf16, -1, 1, 3), w = random_device(ws, DType::bf16, -0.05, 0.05, 4);
    const Tensor bias = l.bias ? random_device({l.oc}, DType::bf16, -1, 1, 5) : Tensor();
    const Tensor out = Tensor::empty({kN, l.oc}, DType::bf16, Device::cuda());
    const Tensor pre = l.act == Activation::none ? Tensor() : Tensor::empty({kN, l.oc}, DType::bf16, Device::cuda());
    const double flops = 2.0 * double(kN) * double(l.c) * double(l.oc);
    const std::string shape = "N=" + std::to_string(kN) + " C=" + std::to_string(l.c) + " OC=" + std::to_string(l.oc);
    report(std::string("matmul_forward.") + l.name, shape,
           time_ms([&] { ops::matmul_forward(out, pre, inp, w, bias, l.layout, l.act); }), flops, 0);
    const Tensor dout = random_device({kN, l.oc}, DType::bf16, -1, 1, 6);
    const Tensor dinp = Tensor::empty({kN, l.c}, DType::bf16, Device::cuda());
    const Tensor dw = Tensor::zeros(ws, DType::bf16, Device::cuda());
    const Tensor db = l.bias ? Tensor::zeros({l.oc}, DType::bf16, Device::cuda()) : Tensor();
    report(std::string("matmul_backward.") + l.name, shape,
           time_ms([&] { ops::matmul_backward(dinp, dw, db, dout, inp, w, pre, l.layout, l.act); }), 2 * flops, 0);
    if (std::string(l.name) == "fc_proj") {  // with c_fc's GELU backward fused into the dinp product (the MLP's way)
      const Tensor fc_pre = random_device({kN, l.c}, DType::bf16, -3, 3, 13);
      report("matmul_backward.fc_proj through gelu", shape, time_ms([&] {
               ops::matmul_backward(dinp, dw, db, dout, inp, w, pre, l.layout, l.act, Activation::gelu_tanh, fc_pre);
             }),
             2 * flops, 0);
      // c_fc (in_out (C, 4C)) with only its bias gradient asked for: the column-sum pass alone.
      const Tensor fc_dbias = Tensor::zeros({l.c}, DType::bf16, Device::cuda());
      const Tensor dpre = random_device({kN, l.c}, DType::bf16, -1, 1, 14);
      const Tensor fc_inp = random_device({kN, l.oc}, DType::bf16, -1, 1, 15);
      const Tensor fc_w = random_device({l.oc, l.c}, DType::bf16, -0.05, 0.05, 16);
      report("column sums (c_fc's bias gradient)", "N=16384 C=3072", time_ms([&] {
               ops::matmul_backward(Tensor(), Tensor(), fc_dbias, dpre, fc_inp, fc_w, Tensor(), l.layout,
                                    Activation::none);
             }),
             0, double(kN) * double(l.c) * 2);
    }
    if (l.bias && l.act == Activation::none)  // the products alone, without the bias gradient's pass
      report(std::string("matmul_backward.") + l.name + " (no dbias)", shape,
             time_ms([&] { ops::matmul_backward(dinp, dw, Tensor(), dout, inp, w, pre, l.layout, l.act); }), 2 * flops,
             0);
  }
}

// The own wgmma product (gemm_wgmma.hpp) against cuBLASLt in the same run: the GELU products
// of GPT-2 124M's and 350M's MLPs as matmul_forward / matmul_backward run them (the own kernel
// on, then off; its clusters and staging as ZT_GEMM_CLUSTER and ZT_GEMM_STAGING say), and plain
// products of GPT-2's and Llama 1.1B's shapes (the kernel's own rate, each staging in clusters of
// 1 and 2 blocks).
void bench_own_gemm() {
  struct Mlp {
    const char* name;
    int64_t n, c;
  };
  for (const Mlp& mlp : {Mlp{"gpt2-124M", kN, 768}, Mlp{"gpt2-350M", kN, 1024}}) {
    const int64_t n = mlp.n, c = mlp.c, h = 4 * c;
    const Tensor inp = random_device({n, c}, DType::bf16, -1, 1, 31), w_fc = random_device({c, h}, DType::bf16, -0.05, 0.05, 32);
    const Tensor b_fc = random_device({h}, DType::bf16, -1, 1, 33), out = Tensor::empty({n, h}, DType::bf16, Device::cuda());
    const Tensor pre = Tensor::empty({n, h}, DType::bf16, Device::cuda());
    const Tensor w_proj = random_device({h, c}, DType::bf16, -0.05, 0.05, 34);
    const Tensor dout = random_device({n, c}, DType::bf16, -1, 1, 35), dh = Tensor::empty({n, h}, DType::bf16, Device::cuda());
    const Tensor h_pre = random_device({n, h}, DType::bf16, -3, 3, 36);
    const double flops = 2.0 * double(n) * double(c) * double(h);
    const std::string shape = std::string(mlp.name) + " N=" + std::to_string(n) + " C=" + std::to_string(c) +
                              " OC=" + std::to_string(h);
    for (bool own : {true, false}) {
      const cuda::OwnGemm previous = cuda::set_matmul_own_gemm(own ? cuda::OwnGemm::both : cuda::OwnGemm::none);
      const std::string who = own ? " (own wgmma)" : " (cuBLASLt)";
      report("matmul_forward.fc_gelu" + who, shape, time_ms([&] {
               ops::matmul_forward(out, pre, inp, w_fc, b_fc, WeightLayout::in_out, Activation::gelu_tanh);
             }),
             flops, 0);
      // dh = (dout W_proj) * gelu'(h_pre): the fc_proj backward's input gradient alone.
      report("matmul_backward.fc_proj dinp through gelu" + who, shape, time_ms([&] {
               ops::matmul_backward(dh, Tensor(), Tensor(), dout, out, w_proj, Tensor(), WeightLayout::in_out,
                                    Activation::none, Activation::gelu_tanh, h_pre);
             }),
             flops, 0);
      cuda::set_matmul_own_gemm(previous);
    }
  }
  struct Plain {
    const char* name;
    int64_t m, n, k;
    WeightLayout layout;
  };
  const Plain plains[] = {{"gpt2 fc_proj", kN, 768, 3072, WeightLayout::in_out},
                          {"gpt2 qkv", kN, 2304, 768, WeightLayout::in_out},
                          {"llama gate_up", 8192, 11264, 2048, WeightLayout::out_in},
                          {"llama down", 8192, 2048, 5632, WeightLayout::out_in}};
  for (const Plain& pl : plains) {
    const Shape ws = pl.layout == WeightLayout::out_in ? Shape{pl.n, pl.k} : Shape{pl.k, pl.n};
    const Tensor a = random_device({pl.m, pl.k}, DType::bf16, -1, 1, 41), w = random_device(ws, DType::bf16, -0.05, 0.05, 42);
    const Tensor out = Tensor::empty({pl.m, pl.n}, DType::bf16, Device::cuda());
    const double flops = 2.0 * double(pl.m) * double(pl.n) * double(pl.k);
    const std::string shape = std::string(pl.name) + " M=" + std::to_string(pl.m) + " N=" + std::to_string(pl.n) +
                              " K=" + std::to_string(pl.k);
    cuda::WgmmaGemm p;
    p.out = cuda::ptr<cuda::bf16>(out), p.a = cuda::ptr<cuda::bf16>(a), p.b = cuda::ptr<cuda::bf16>(w);
    p.b_mn_major = pl.layout == WeightLayout::in_out;
    p.m = pl.m, p.n = pl.n, p.k = pl.k;
    for (cuda::WgmmaStaging staging : {cuda::WgmmaStaging::halves, cuda::WgmmaStaging::whole})
      for (int cluster : {1, 2}) {
        p.staging = staging, p.cluster = cluster;
        const std::string how = std::string(staging == cuda::WgmmaStaging::whole ? "whole tile" : "halves") +
                                ", clusters of " + std::to_string(cluster);
        report("gemm plain (own wgmma, " + how + ")", shape, time_ms([&] { cuda::wgmma_gemm(p); }), flops, 0);
      }
    report("gemm plain (cuBLASLt)", shape, time_ms([&] {
             ops::matmul_forward(out, Tensor(), a, w, Tensor(), pl.layout, Activation::none);
           }),
           flops, 0);
  }
}

// Causal attention forward and backward at GPT-2 124M's and Llama 1.1B's shapes, for the
// flash kernels in use and their tuning alternatives, and cuDNN's fused backward and forward, in
// the same run. FLOPs are counted causal: each product covers B*NH*T*T/2 scores of HD multiply-adds; the forward has 2
// products, the backward is counted as flash attention's 5 whatever a version does.
void bench_attention() {
  struct Shape {
    const char* name;
    int64_t b, t, nh, nkv, hd;
  };
  const Shape shapes[] = {{"gpt2-124M", kB, kT, kNH, kNH, kHD}, {"llama-1.1B", 4, 2048, 32, 4, 64}};
  for (const Shape& a : shapes) {
    const int64_t width = (a.nh + 2 * a.nkv) * a.hd;
    const Tensor qkv = random_device({a.b, a.t, width}, DType::bf16, -1, 1, 7);
    const Tensor out = Tensor::empty({a.b, a.t, a.nh * a.hd}, DType::bf16, Device::cuda());
    const Tensor lse = Tensor::empty(ops::attention_saved_shape(Device::cuda(), a.b, a.nh, a.t), DType::f32,
                                     Device::cuda());
    const Tensor dout = random_device({a.b, a.t, a.nh * a.hd}, DType::bf16, -1, 1, 8);
    const Tensor dqkv = Tensor::empty({a.b, a.t, width}, DType::bf16, Device::cuda());
    const double product = double(a.b * a.nh) * double(a.t) * double(a.t) / 2 * double(a.hd) * 2;
    const std::string shape = std::string(a.name) + " B=" + std::to_string(a.b) + " T=" + std::to_string(a.t) +
                              " NH=" + std::to_string(a.nh) + " NKV=" + std::to_string(a.nkv) +
                              " HD=" + std::to_string(a.hd);
    // The kernels as they run, then with each tuning alternative (timed where it applies).
    struct Version {
      const char* name;
      cuda::AttentionKernels kernels;
      cuda::FlashAttentionTuning tuning;
      bool forward, backward;
    };
    cuda::FlashAttentionTuning mma_sync, rows64, kv_registers, one_block, w23, w42;
    cuda::FlashAttentionTuning wgmma_bwd, wgmma_bwd_2_splits, wgmma_bwd_1_group;
    mma_sync.forward_mma_sync = true;
    w23.wgmma_forward_shape = 23, w42.wgmma_forward_shape = 42;
    rows64.forward_rows = 64;
    kv_registers.dkv_kv_in_registers = true;
    one_block.dkv_splits = 1;
    wgmma_bwd.backward = wgmma_bwd_2_splits.backward = cuda::FlashAttentionTuning::Backward::wgmma;
    wgmma_bwd_1_group.backward = cuda::FlashAttentionTuning::Backward::wgmma;
    wgmma_bwd_1_group.wgmma_backward_groups = 1;
    cuda::FlashAttentionTuning wgmma_bwd_2_groups;
    wgmma_bwd_2_groups.backward = cuda::FlashAttentionTuning::Backward::wgmma;
    wgmma_bwd_2_groups.wgmma_backward_groups = 2;
    wgmma_bwd_2_splits.dkv_splits = 2;
    cuda::FlashAttentionTuning windows[4];  // the wgmma backward's blocks in windows of heads (v14)
    const int window_heads[4] = {16, 48, 64, 9999};  // 9999: the grid's own order
    for (int i = 0; i < 4; ++i) {
      windows[i].backward = cuda::FlashAttentionTuning::Backward::wgmma;
      windows[i].wgmma_backward_window = window_heads[i];
    }
    const bool grouped = a.nh != a.nkv;
    const bool wgmma = a.hd == 64 && cuda::flash_wgmma_runs();
    const Version versions[] = {{wgmma ? "v6 wgmma fwd" : "v3", cuda::AttentionKernels::flash, {}, true, true},
                                {"v3 mma.sync fwd", cuda::AttentionKernels::flash, mma_sync, wgmma, false},
                                {"v6 wgmma 3 stages", cuda::AttentionKernels::flash, w23, wgmma, false},
                                {"v6 wgmma 4 groups", cuda::AttentionKernels::flash, w42, wgmma, false},
                                {"v3 64-row fwd", cuda::AttentionKernels::flash, rows64, true, false},
                                {"v3 dkv K,V in registers", cuda::AttentionKernels::flash, kv_registers, false, true},
                                {"v3 dkv 1 block/group", cuda::AttentionKernels::flash, one_block, false, grouped},
                                {"v7 wgmma bwd", cuda::AttentionKernels::flash, wgmma_bwd, false, wgmma},
                                {"v7 wgmma bwd 2 splits", cuda::AttentionKernels::flash, wgmma_bwd_2_splits,
                                 false, wgmma && grouped},
                                {"v7 wgmma bwd 1 group", cuda::AttentionKernels::flash, wgmma_bwd_1_group, false,
                                 wgmma},
                                {"v7 wgmma bwd 2 groups", cuda::AttentionKernels::flash, wgmma_bwd_2_groups, false,
                                 wgmma},
                                {"v14 wgmma bwd window 16", cuda::AttentionKernels::flash, windows[0], false,
                                 wgmma && a.nkv * a.b > 16},
                                {"v14 wgmma bwd window 48", cuda::AttentionKernels::flash, windows[1], false,
                                 wgmma && a.nkv * a.b > 48},
                                {"v14 wgmma bwd window 64", cuda::AttentionKernels::flash, windows[2], false,
                                 wgmma && a.nkv * a.b > 64},
                                {"v7 wgmma bwd, grid order", cuda::AttentionKernels::flash, windows[3], false, wgmma}};
    for (const Version& v : versions) {
      cuda::set_attention_kernels(v.kernels);
      cuda::set_flash_attention_tuning(v.tuning);
      if (v.forward)
        report("attention_forward", shape, time_ms([&] { ops::attention_forward(out, lse, qkv, a.nh, a.nkv); }),
               2 * product, 0, v.name);
      if (!v.backward) continue;
      ops::attention_forward(out, lse, qkv, a.nh, a.nkv);  // the backward reads this forward's out and lse
      report("attention_backward", shape,
             time_ms([&] { ops::attention_backward(dqkv, dout, qkv, out, lse, a.nh, a.nkv); }), 5 * product, 0,
             v.name);
    }
    {  // The backward as Llama runs it, with the rotary embedding's inverse: inside the kernels,
       // against the plain backward and then rope_backward (v15).
      cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
      cuda::set_flash_attention_tuning({});
      std::vector<float> freq(size_t(a.hd / 2));
      for (size_t i = 0; i < freq.size(); ++i) freq[i] = float(std::pow(10000.0, -2.0 * double(i) / double(a.hd)));
      const Tensor inv_freq = Tensor::from_floats({a.hd / 2}, freq).to(Device::cuda());
      const ops::RotaryPositions rotary{inv_freq, 0};
      ops::attention_forward(out, lse, qkv, a.nh, a.nkv);
      report("attention_backward", shape,
             time_ms([&] { ops::attention_backward(dqkv, dout, qkv, out, lse, a.nh, a.nkv, &rotary); }), 5 * product,
             0, "default, RoPE inside");
      report("attention_backward", shape, time_ms([&] {
               ops::attention_backward(dqkv, dout, qkv, out, lse, a.nh, a.nkv);
               ops::rope_backward(dqkv.reshape({a.b, a.t, a.nh + 2 * a.nkv, a.hd}), inv_freq, a.nh + a.nkv, 0);
             }),
             5 * product, 0, "default, then rope_backward");
    }
    // cuDNN's fused backward (after our forward) and forward, each where the build has cuDNN and
    // it has a plan for the shape (else a line saying why, so no fallback is timed under its name).
    auto time_cudnn = [&](const char* op, const cuda::FlashAttentionTuning& tuning, const std::string& no_plan,
                          double flops, const std::function<void()>& run) {
      if (!no_plan.empty()) {
        const nlohmann::json j = {{"op", op}, {"shape", shape}, {"version", "cudnn"}, {"skipped", no_plan}};
        std::printf("%s\n", j.dump().c_str());
        return;
      }
      cuda::set_flash_attention_tuning(tuning);
      cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
      report(op, shape, time_ms(run), flops, 0, "cudnn");
    };
    cuda::FlashAttentionTuning cudnn_bwd, cudnn_fwd;
    cudnn_bwd.backward = cuda::FlashAttentionTuning::Backward::cudnn;
    cudnn_fwd.forward = cuda::FlashAttentionTuning::Forward::cudnn;
    cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
    cuda::set_flash_attention_tuning({});
    ops::attention_forward(out, lse, qkv, a.nh, a.nkv);  // ours, for the backward to read
    time_cudnn("attention_backward", cudnn_bwd, cuda::cudnn_attention_backward_support(a.b, a.t, a.nh, a.nkv, a.hd),
               5 * product, [&] { ops::attention_backward(dqkv, dout, qkv, out, lse, a.nh, a.nkv); });
    time_cudnn("attention_forward", cudnn_fwd, cuda::cudnn_attention_forward_support(a.b, a.t, a.nh, a.nkv, a.hd),
               2 * product, [&] { ops::attention_forward(out, lse, qkv, a.nh, a.nkv); });
    cuda::set_attention_kernels(cuda::AttentionKernels::automatic);
    cuda::set_flash_attention_tuning({});
  }
}

void bench_memory_bound() {
  const double act = double(kN) * double(kC) * 2;  // one (N, C) bf16 tensor
  const Tensor x = random_device({kN, kC}, DType::bf16, -2, 2, 9), w = random_device({kC}, DType::bf16, 0.5, 1.5, 10);
  const Tensor b = random_device({kC}, DType::bf16, -1, 1, 11), y = Tensor::empty({kN, kC}, DType::bf16, Device::cuda());
  const Tensor mean = Tensor::empty({kN}, DType::f32, Device::cuda()), rstd = Tensor::empty({kN}, DType::f32, Device::cuda());
  const std::string shape = "N=16384 C=768";
  report("layernorm_forward", shape, time_ms([&] { ops::layernorm_forward(y, mean, rstd, x, w, b, 1e-5); }), 0, 2 * act);
  const Tensor dy = random_device({kN, kC}, DType::bf16, -1, 1, 12), dx = Tensor::empty({kN, kC}, DType::bf16, Device::cuda());
  const Tensor dw = Tensor::zeros({kC}, DType::bf16, Device::cuda()), db = Tensor::zeros({kC}, DType::bf16, Device::cuda());
  report("layernorm_backward", shape,
         time_ms([&] { ops::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd); }), 0, 3 * act);
  // As training runs it: the residual stream's gradient added in the same pass (4 passes over (N, C)).
  const Tensor dadd = random_device({kN, kC}, DType::bf16, -1, 1, 21);
  report("layernorm_backward_residual", shape,
         time_ms([&] { ops::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, dadd); }), 0, 4 * act);
  report("rmsnorm_forward", shape, time_ms([&] { ops::rmsnorm_forward(y, rstd, x, w, 1e-5); }), 0, 2 * act);
  report("rmsnorm_backward", shape, time_ms([&] { ops::rmsnorm_backward(dx, dw, dy, x, w, rstd); }), 0, 3 * act);
  {  // Llama 1.1B's rows: N = 4 * 2048, C = 2048
    const int64_t n = 8192, c = 2048;
    const double bytes = double(n) * double(c) * 2;
    const Tensor lx = random_device({n, c}, DType::bf16, -2, 2, 18), lw = random_device({c}, DType::bf16, 0.5, 1.5, 19);
    const Tensor ly = Tensor::empty({n, c}, DType::bf16, Device::cuda()), ldy = random_device({n, c}, DType::bf16, -1, 1, 20);
    const Tensor lr = Tensor::empty({n}, DType::f32, Device::cuda()), ldw = Tensor::zeros({c}, DType::bf16, Device::cuda());
    report("rmsnorm_forward", "N=8192 C=2048", time_ms([&] { ops::rmsnorm_forward(ly, lr, lx, lw, 1e-5); }), 0, 2 * bytes);
    report("rmsnorm_backward", "N=8192 C=2048", time_ms([&] { ops::rmsnorm_backward(ly, ldw, ldy, lx, lw, lr); }), 0,
           3 * bytes);
    const Tensor ladd = random_device({n, c}, DType::bf16, -1, 1, 22), ldx = Tensor::empty({n, c}, DType::bf16, Device::cuda());
    report("rmsnorm_backward_residual", "N=8192 C=2048",
           time_ms([&] { ops::rmsnorm_backward(ldx, ldw, ldy, lx, lw, lr, ladd); }), 0, 4 * bytes);
    // Llama's qkv (B=4, T=2048, 32 + 2 * 4 heads of 64): the 36 query and key heads rotated in
    // place (each read and written once).
    const Tensor qkv = random_device({4, 2048, 40, 64}, DType::bf16, -2, 2, 23);
    std::vector<float> freq(32);
    for (size_t i = 0; i < freq.size(); ++i) freq[i] = float(std::pow(10000.0, -double(i) / 32.0));
    const Tensor inv_freq = Tensor::from_floats({32}, freq).to(Device::cuda());
    report("rope_forward", "B=4 T=2048 heads=36/40 HD=64",
           time_ms([&] { ops::rope_forward(qkv, inv_freq, 36, 0); }), 0, 2 * double(n) * 36 * 64 * 2);
  }
  {
    const Tensor h = random_device({kN, 4 * kC}, DType::bf16, -3, 3, 17);
    const Tensor g = Tensor::empty({kN, 4 * kC}, DType::bf16, Device::cuda());
    report("gelu_forward", "N=16384 H=3072", time_ms([&] { ops::gelu_forward(g, h); }), 0, 2 * 4 * act);
  }
  report("add (residual)", shape, time_ms([&] { ops::add(y, x, dy); }), 0, 3 * act);
  {  // GPT-2's token embedding, gathered and scatter-added (random ids over the padded vocabulary)
    std::vector<int32_t> t(static_cast<size_t>(kN));
    std::mt19937 gen(21);
    for (auto& id : t) id = int32_t(gen() % uint32_t(kV));
    const Tensor ids = Tensor::from_ints({kN}, t).to(Device::cuda());
    const Tensor table = random_device({50304, kC}, DType::bf16, -1, 1, 22);
    const Tensor dtable = Tensor::zeros({50304, kC}, DType::bf16, Device::cuda());
    report("embedding_forward", "N=16384 V=50304 C=768", time_ms([&] { ops::embedding_forward(y, ids, table, false); }),
           0, 2 * act);
    // Bytes: dout read, and each row of the table it lands on read and written.
    report("embedding_backward", "N=16384 V=50304 C=768",
           time_ms([&] { ops::embedding_backward(dtable, dy, ids); }), 0, 3 * act);
  }

  // GPT-2's vocabulary as is and padded (rows in registers), and Llama's (N = 4 * 2048).
  for (const auto& [n, v] : {std::pair<int64_t, int64_t>{kN, kV}, {kN, 50304}, {8192, 32000}}) {
    const Tensor logits = random_device({n, v}, DType::bf16, -4, 4, 13);
    std::vector<int32_t> t(static_cast<size_t>(n));
    std::mt19937 gen(14);
    for (auto& id : t) id = int32_t(gen() % uint32_t(kV < v ? kV : v));
    const Tensor targets = Tensor::from_ints({n}, t).to(Device::cuda());
    const Tensor losses = Tensor::empty({n}, DType::f32, Device::cuda());
    const Tensor dlogits = Tensor::empty({n, v}, DType::bf16, Device::cuda());
    const double bytes = double(n) * double(v) * 2;
    const std::string shape = "N=" + std::to_string(n) + " V=" + std::to_string(v);
    report("cross_entropy_fused", shape,
           time_ms([&] { ops::cross_entropy_fused(losses, dlogits, logits, targets, 1.0 / double(n)); }), 0, 2 * bytes);
    report("cross_entropy_forward", shape, time_ms([&] { ops::cross_entropy_forward(losses, logits, targets); }), 0,
           bytes);
  }
  {
    const int64_t n = 124439808;  // GPT-2 124M's parameter count
    const Tensor p = random_device({n}, DType::f32, -1, 1, 15), g = random_device({n}, DType::f32, -1, 1, 16);
    const Tensor m = Tensor::zeros({n}, DType::f32, Device::cuda()), v = Tensor::zeros({n}, DType::f32, Device::cuda());
    ops::AdamWParams hp;
    hp.weight_decay = 0.1;
    report("adamw_step", "n=124439808 f32", time_ms([&] { ops::adamw_step(p, g, m, v, hp, 1.0); }), 0,
           28.0 * double(n));
    // GPT-2 124M's 148 parameter tensors as views into the same buffers: one pass over all of
    // them, against one call per tensor.
    std::vector<int64_t> sizes = {kV * kC, 1024 * kC};
    for (int layer = 0; layer < 12; ++layer)
      for (int64_t s : {kC, kC, kC * 3 * kC, 3 * kC, kC * kC, kC, kC, kC, kC * 4 * kC, 4 * kC, 4 * kC * kC, kC})
        sizes.push_back(s);
    sizes.push_back(kC);
    sizes.push_back(kC);
    std::vector<ops::AdamWBuffers> buffers;
    int64_t offset = 0;
    for (int64_t s : sizes) {
      buffers.push_back({p.view(size_t(offset), {s}), g.view(size_t(offset), {s}), m.view(size_t(offset), {s}),
                         v.view(size_t(offset), {s})});
      offset += s;
    }
    const std::string tensors = std::to_string(buffers.size()) + " tensors, " + std::to_string(offset) + " f32";
    report("adamw_step_many", tensors, time_ms([&] { ops::adamw_step_many(buffers, hp, 1.0); }), 0, 28.0 * double(offset));
    report("adamw_step per tensor", tensors, time_ms([&] {
             for (const auto& b : buffers) ops::adamw_step(b.param, b.grad, b.exp_avg, b.exp_avg_sq, hp, 1.0);
           }), 0, 28.0 * double(offset));
    const Tensor half = Tensor::empty({n}, DType::bf16, Device::cuda());
    report("cast f32->bf16", "n=124439808", time_ms([&] { ops::cast(half, p); }), 0, 6.0 * double(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!zt::cuda_is_available()) {
    std::printf("{\"skipped\": \"no CUDA device: bench_cuda_kernels needs a GPU\"}\n");
    return 0;
  }
  std::string only;  // empty: every group
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
      if (only != "attention" && only != "matmul" && only != "memory" && only != "gemm") {
        std::fprintf(stderr, "bench_cuda_kernels: --only %s is not a group (attention, matmul, memory, gemm)\n",
                     only.c_str());
        return 2;
      }
    } else if (std::atoi(argv[i]) > 0) {
      g_repeats = std::atoi(argv[i]);
    } else {
      std::fprintf(stderr, "usage: bench_cuda_kernels [repeats] [--only attention|matmul|memory|gemm]\n");
      return 2;
    }
  }
  const auto runs = [&](const char* group) { return only.empty() || only == group; };
  try {
    measure_ceilings();
    if (runs("matmul")) bench_matmuls();
    if (runs("gemm") && cuda::flash_wgmma_runs()) bench_own_gemm();
    if (runs("attention")) bench_attention();
    if (runs("memory")) bench_memory_bound();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_kernels: %s\n", e.what());
    return 1;
  }
  return 0;
}

#else

int main() {
  std::printf("{\"skipped\": \"this build of zt has no CUDA\"}\n");
  return 0;
}

#endif
