#include "zt/core/random.hpp"

#include <algorithm>
#include <cmath>

namespace zt {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Elements [begin, end) of t from draw().
template <class Draw>
void fill_range(const Tensor& t, int64_t begin, int64_t end, Draw&& draw) {
  switch (t.dtype()) {
    case DType::f32: { float* p = t.data<float>(); for (int64_t i = begin; i < end; ++i) p[i] = float(draw()); break; }
    case DType::f64: { double* p = t.data<double>(); for (int64_t i = begin; i < end; ++i) p[i] = draw(); break; }
    case DType::bf16: { auto* p = static_cast<uint16_t*>(t.raw()); for (int64_t i = begin; i < end; ++i) p[i] = float_to_bf16(float(draw())); break; }
    case DType::f16: { auto* p = static_cast<uint16_t*>(t.raw()); for (int64_t i = begin; i < end; ++i) p[i] = float_to_f16(float(draw())); break; }
    default: ZT_THROW("random fill of a non-float tensor ", t.describe());
  }
}

// Tensors past this many elements are filled in parallel blocks (a 7B model's initialization
// would otherwise take minutes on one thread).
constexpr int64_t kParallelFillElements = int64_t(1) << 24;
constexpr int64_t kFillBlock = int64_t(1) << 20;

// Fills t from draw(generator). Small tensors take their draws from rng in order. A large one
// takes one draw of rng as a base seed, and block i of kFillBlock elements draws from a generator
// of its own seeded by base + i: the same values whatever the number of threads.
template <class Draw>
void fill(const Tensor& t, Rng& rng, Draw&& draw) {
  ZT_CHECK(t.device().is_cpu(), "random fill of a ", t.device().name(), " tensor: fill on the host and copy");
  const int64_t n = t.numel();
  if (n <= kParallelFillElements) {
    fill_range(t, 0, n, [&] { return draw(rng); });
    return;
  }
  const uint64_t base = rng.next_u64();
  const int64_t blocks = (n + kFillBlock - 1) / kFillBlock;
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < blocks; ++b) {
    Rng block_rng(base + uint64_t(b));
    fill_range(t, b * kFillBlock, std::min(n, (b + 1) * kFillBlock), [&] { return draw(block_rng); });
  }
}
}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_normal_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_normal_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

uint64_t Rng::below(uint64_t bound) {
  ZT_CHECK(bound > 0, "Rng::below(0)");
  return next_u64() % bound;
}

void fill_normal(const Tensor& t, double mean, double std, Rng& rng) {
  fill(t, rng, [&](Rng& g) { return mean + std * g.normal(); });
}

void fill_uniform(const Tensor& t, double low, double high, Rng& rng) {
  fill(t, rng, [&](Rng& g) { return low + (high - low) * g.uniform(); });
}

}  // namespace zt
