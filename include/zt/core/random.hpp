// A small, fast, seedable generator (xoshiro256**, seeded through splitmix64), so that every
// run with the same seed draws the same numbers on every machine.
#pragma once

#include <cstdint>

#include "zt/core/tensor.hpp"

namespace zt {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next_u64();
  double uniform();                       // [0, 1)
  double normal();                        // standard normal (Box-Muller)
  uint64_t below(uint64_t bound);         // uniform integer in [0, bound)

 private:
  uint64_t s_[4];
  double spare_normal_ = 0;
  bool has_spare_ = false;
};

// Fills a host tensor of any float dtype with N(mean, std^2) (or uniform) draws. Tensors of up to
// 2^24 elements take their draws from rng in order; larger ones are filled in parallel blocks of
// 2^20, each from a generator seeded by one draw of rng plus the block's index (the same values
// at any thread count).
void fill_normal(const Tensor& t, double mean, double std, Rng& rng);
void fill_uniform(const Tensor& t, double low, double high, Rng& rng);

}  // namespace zt
