// The small GPT the multi-rank tests train: sizes that divide by no world size (7,621 parameters
// with the defaults), so that partitions, buckets and gathers meet uneven boundaries.
#pragma once

#include "zt/models/config.hpp"

namespace zt::test {

inline models::TransformerConfig odd_gpt(int64_t vocab = 37, int64_t hidden = 12) {
  models::TransformerConfig c;
  c.model_type = "gpt2";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_layers = 2;
  c.num_heads = c.num_kv_heads = 3;
  c.intermediate_size = 20;
  c.max_position_embeddings = 16;
  c.tie_word_embeddings = true;
  c.attention_bias = c.attention_out_bias = c.mlp_bias = true;
  return c;
}

}  // namespace zt::test
