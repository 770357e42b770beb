// Loads a Hugging Face model folder, runs it on token ids and writes the ids and the logits to a
// safetensors file: what another implementation's logits are compared against.
// Usage: example_model_logits MODEL_FOLDER OUT.safetensors [batch] [seq_len] [seed]
#include <cstdio>
#include <cstdlib>

#include "zt/core/random.hpp"
#include "zt/io/safetensors.hpp"
#include "zt/models/causal_lm.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_FOLDER OUT.safetensors [batch] [seq_len] [seed]\n", argv[0]);
    return 2;
  }
  try {
    auto model = zt::models::load_pretrained(argv[1]);
    const int64_t b = argc > 3 ? std::atoll(argv[3]) : 2, t = argc > 4 ? std::atoll(argv[4]) : 16;
    zt::Rng rng(argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 1);
    std::vector<int32_t> ids(static_cast<size_t>(b * t));
    for (auto& id : ids) id = int32_t(rng.below(uint64_t(model->config().vocab_size)));
    const zt::Tensor input = zt::Tensor::from_ints({b, t}, ids);
    const zt::Tensor logits = model->forward(input);
    zt::io::save_safetensors(argv[2], {{"input_ids", input}, {"logits", logits}});
    std::printf("wrote %s: logits %s\n", argv[2], logits.describe().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example_model_logits: %s\n", e.what());
    return 1;
  }
  return 0;
}
