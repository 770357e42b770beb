// Runs the flash attention kernels (with each tuning alternative) under the CPU
// emulation of emu.hpp, on the sources transform.py rewrote, against a reference in double:
// errors by norm and by (token, head) row, with the CUDA tests' bounds.
// Usage: flash_emulate [B T NH NKV HD]...   (default: a set of small cases)
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "emu.hpp"  // first: the CUDA built-ins the headers below use
#include "common.cuh"
#include "flash_attention.cuh"

// What the launchers call from the rest of the library, for a process with no device: memory is
// host memory, the stream is none, the device has an H100's 132 multiprocessors (and the occupancy
// query in emu.hpp says 2 blocks each).
namespace zt {
namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "error %s:%d %s\n", file, line, message.c_str());
  std::abort();
}
}  // namespace detail
namespace cuda {
cudaStream_t compute_stream() { return nullptr; }
int multiprocessor_count() { return 132; }
Scratch::Scratch(size_t n) { ptr_ = std::malloc(n + 16); std::memset(ptr_, 0xff, n); }
Scratch::~Scratch() { std::free(ptr_); }
void set_device(int) {}
static FlashAttentionTuning g_tuning;
void set_flash_attention_tuning(const FlashAttentionTuning& t) { g_tuning = t; }
FlashAttentionTuning flash_attention_tuning() { return g_tuning; }
}  // namespace cuda
}  // namespace zt

using bf16 = __nv_bfloat16;

struct Case {
  int b, t, nh, nkv, hd;
};

double err_norm(const std::vector<double>& got, const std::vector<double>& want) {
  double d = 0, n = 0;
  for (size_t i = 0; i < got.size(); ++i) d += (got[i] - want[i]) * (got[i] - want[i]), n += want[i] * want[i];
  return std::sqrt(d / n);
}
double worst_row(const std::vector<double>& got, const std::vector<double>& want, int width) {
  double total = 0;
  for (double x : want) total += x * x;
  const size_t rows = want.size() / width;
  const double rms = std::sqrt(total / rows);
  double worst = 0;
  for (size_t r = 0; r < rows; ++r) {
    double d = 0, n = 0;
    for (size_t i = r * width; i < (r + 1) * width; ++i) d += (got[i] - want[i]) * (got[i] - want[i]), n += want[i] * want[i];
    const double e = std::sqrt(d) / (std::sqrt(n) + rms);
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

int main(int argc, char** argv) {
  std::vector<Case> cases = {{1, 130, 4, 2, 64}, {2, 77, 2, 1, 64}, {1, 200, 2, 2, 128}, {1, 64, 2, 2, 64},
                             {1, 150, 8, 1, 64}, {1, 100, 4, 1, 128}};
  if (argc > 1) {
    cases.clear();
    for (int i = 1; i + 4 < argc; i += 5)
      cases.push_back({std::atoi(argv[i]), std::atoi(argv[i + 1]), std::atoi(argv[i + 2]), std::atoi(argv[i + 3]),
                       std::atoi(argv[i + 4])});
  }
  std::mt19937 gen(7);
  bool ok = true;
  for (const Case& k : cases) {
    const int width = (k.nh + 2 * k.nkv) * k.hd, ow = k.nh * k.hd, group = k.nh / k.nkv;
    std::uniform_real_distribution<float> u2(-2, 2), u1(-1, 1);
    std::vector<bf16> qkv(size_t(k.b) * k.t * width), dout(size_t(k.b) * k.t * ow);
    for (auto& x : qkv) x = __float2bfloat16_rn(u2(gen));
    for (auto& x : dout) x = __float2bfloat16_rn(u1(gen));
    auto Q = [&](int b, int t, int h, int d) { return double(__bfloat162float(qkv[(size_t(b) * k.t + t) * width + h * k.hd + d])); };
    auto K = [&](int b, int t, int h, int d) { return Q(b, t, k.nh + h, d); };
    auto V = [&](int b, int t, int h, int d) { return Q(b, t, k.nh + k.nkv + h, d); };
    auto DO = [&](int b, int t, int h, int d) { return double(__bfloat162float(dout[(size_t(b) * k.t + t) * ow + h * k.hd + d])); };
    // reference
    const double scale = 1.0 / std::sqrt(double(k.hd));
    std::vector<double> out(size_t(k.b) * k.t * ow), lse(size_t(k.b) * k.nh * k.t), dqkv(qkv.size(), 0.0);
    for (int b = 0; b < k.b; ++b)
      for (int h = 0; h < k.nh; ++h) {
        const int kh = h / group;
        std::vector<double> P(size_t(k.t) * k.t, 0.0), dP(size_t(k.t) * k.t, 0.0);
        for (int i = 0; i < k.t; ++i) {
          double mx = -1e300;
          for (int j = 0; j <= i; ++j) {
            double s = 0;
            for (int d = 0; d < k.hd; ++d) s += Q(b, i, h, d) * K(b, j, kh, d);
            P[size_t(i) * k.t + j] = s * scale;
            mx = std::max(mx, s * scale);
          }
          double sum = 0;
          for (int j = 0; j <= i; ++j) sum += std::exp(P[size_t(i) * k.t + j] - mx);
          lse[(size_t(b) * k.nh + h) * k.t + i] = mx + std::log(sum);
          for (int j = 0; j <= i; ++j) P[size_t(i) * k.t + j] = std::exp(P[size_t(i) * k.t + j] - mx) / sum;
          for (int d = 0; d < k.hd; ++d) {
            double o = 0;
            for (int j = 0; j <= i; ++j) o += P[size_t(i) * k.t + j] * V(b, j, kh, d);
            out[(size_t(b) * k.t + i) * ow + h * k.hd + d] = o;
          }
          double D = 0;
          for (int j = 0; j <= i; ++j) {
            double dp = 0;
            for (int d = 0; d < k.hd; ++d) dp += DO(b, i, h, d) * V(b, j, kh, d);
            dP[size_t(i) * k.t + j] = dp;
            D += P[size_t(i) * k.t + j] * dp;
          }
          for (int j = 0; j <= i; ++j) {
            const double p = P[size_t(i) * k.t + j], ds = p * (dP[size_t(i) * k.t + j] - D);
            for (int d = 0; d < k.hd; ++d) {
              dqkv[(size_t(b) * k.t + i) * width + h * k.hd + d] += scale * ds * K(b, j, kh, d);
              dqkv[(size_t(b) * k.t + j) * width + (k.nh + kh) * k.hd + d] += scale * ds * Q(b, i, h, d);
              dqkv[(size_t(b) * k.t + j) * width + (k.nh + k.nkv + kh) * k.hd + d] += p * DO(b, i, h, d);
            }
          }
        }
      }
    for (int variant : {0, 1, 2, 3}) {  // default; one dK/dV block a group; 64-row forward; K, V in registers
        if (variant == 1 && group == 1) continue;
        if (variant >= 2 && k.hd != 64) continue;
        zt::cuda::FlashAttentionTuning tuning;
        tuning.dkv_splits = variant == 1 ? 1 : 0;
        tuning.forward_rows = variant == 2 ? 64 : 0;
        tuning.dkv_kv_in_registers = variant == 3;
        zt::cuda::set_flash_attention_tuning(tuning);
        std::vector<bf16> d_out(out.size()), d_dqkv(qkv.size());
        std::vector<float> d_lse(lse.size()), dsum(lse.size());
        std::memset(d_out.data(), 0xff, d_out.size() * 2);
        std::memset(d_dqkv.data(), 0xff, d_dqkv.size() * 2);
        std::memset(d_lse.data(), 0xff, d_lse.size() * 4);
        zt::cuda::flash_attention_forward(d_out.data(), d_lse.data(), qkv.data(), k.b, k.t, k.nh, k.nkv, k.hd);
        zt::cuda::flash_attention_backward(d_dqkv.data(), dsum.data(), dout.data(), d_out.data(), qkv.data(),
                                           d_lse.data(), k.b, k.t, k.nh, k.nkv, k.hd);
        std::vector<double> go(out.size()), gl(lse.size()), gq, gk, gv, wq, wk, wv;
        for (size_t i = 0; i < out.size(); ++i) go[i] = __bfloat162float(d_out[i]);
        for (size_t i = 0; i < lse.size(); ++i) gl[i] = d_lse[i];
        for (size_t r = 0; r < size_t(k.b) * k.t; ++r)
          for (int c = 0; c < width; ++c) {
            const double g = __bfloat162float(d_dqkv[r * width + c]), w = dqkv[r * width + c];
            if (c < k.nh * k.hd) gq.push_back(g), wq.push_back(w);
            else if (c < (k.nh + k.nkv) * k.hd) gk.push_back(g), wk.push_back(w);
            else gv.push_back(g), wv.push_back(w);
          }
        const double e[5] = {err_norm(go, out), err_norm(gl, lse), err_norm(gq, wq), err_norm(gk, wk), err_norm(gv, wv)};
        const double r[4] = {worst_row(go, out, k.hd), worst_row(gq, wq, k.hd), worst_row(gk, wk, k.hd),
                             worst_row(gv, wv, k.hd)};
        const bool pass = e[0] < 1.5e-2 && e[1] < 1e-5 && e[2] < 3e-2 && e[3] < 3e-2 && e[4] < 3e-2 && r[0] < 0.05 &&
                          r[1] < 0.1 && r[2] < 0.1 && r[3] < 0.1;
        ok = ok && pass;
        std::printf("B%d T%d NH%d NKV%d HD%d variant=%d: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e | rows out %.2e dq %.2e dk %.2e dv %.2e %s\n",
                    k.b, k.t, k.nh, k.nkv, k.hd, variant, e[0], e[1], e[2], e[3], e[4], r[0], r[1], r[2], r[3],
                    pass ? "ok" : "FAIL");
        std::fflush(stdout);
      }
  }
  std::printf(ok ? "all ok\n" : "FAILURES\n");
  return ok ? 0 : 1;
}
