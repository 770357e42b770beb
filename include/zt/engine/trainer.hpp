// The training loop behind `zt train`: a model, a dataset and the run's settings in, a loss
// curve and throughput out, on one process or on every rank of a launch. The engine's settings
// (ZeRO stage, precision, batch, optimizer, schedule, clipping) come from a DeepSpeed JSON
// config when one is given; without one, from these options (stage 0, f32, AdamW with a
// warmup-cosine schedule).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zt/core/device.hpp"
#include "zt/data/dataset.hpp"
#include "zt/models/causal_lm.hpp"
#include "zt/zero/options.hpp"

namespace zt::engine {

struct TrainOptions {
  std::string model = "gpt2-tiny";  // a built-in name or a Hugging Face model folder
  std::string data = "synthetic";   // "synthetic" or a token-shard path
  int64_t steps = 400;
  int64_t batch_size = 16;          // B, sequences per step
  int64_t seq_len = 64;             // T
  double lr = 5e-3;
  int64_t warmup_steps = 20;
  double min_lr_ratio = 0.1;        // cosine decay to lr * min_lr_ratio
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;           // <= 0: off
  uint64_t seed = 42;
  int64_t log_every = 25;
  int threads = 0;                  // 0: OpenMP's default
  std::string deepspeed_config;     // a DeepSpeed JSON file; empty: the settings above
  std::string save_dir;             // checkpoints go here (every save_every steps and at the end)
  int64_t save_every = 0;           // 0: only at the end
  std::string resume_dir;           // continue from this folder's latest checkpoint
  std::string device = "cpu";       // "cpu", "cuda" or "cuda:N": where parameters, states and compute live
  std::string precision = "auto";   // "fp32", "bf16", or "auto": bf16 on CUDA, fp32 on the CPU
  int zero_stage = 0;               // without a DeepSpeed config
  int64_t vocab_multiple = 1;       // a built-in model's vocabulary rounded up to a multiple of this
                                    // (64: tensor-core-friendly lm_head); the data keeps its own
  // Activation checkpointing of every decoder block, as an activation_checkpointing section would
  // (added to a DeepSpeed config's own); cpu_checkpointing implies it and keeps the blocks'
  // inputs in host memory.
  bool activation_checkpointing = false;
  bool cpu_checkpointing = false;
};

struct StepRecord {
  int64_t step = 0;
  double loss = 0;
  double grad_norm = 0;
  double lr = 0;
  double ms = 0;
  bool applied = true;              // false when an fp16 overflow skipped the step
};

struct TrainResult {
  std::vector<StepRecord> steps;
  double entropy_floor = -1;        // nats/token when the data has a known floor, else -1
  double tokens_per_s = 0;          // over the steps after the first
  double final_loss = 0;            // mean of the last 10 steps' losses
  int64_t parameters = 0;
  int stage = 0, world_size = 1;
  zero::MemoryReport memory;        // what rank 0 holds at the end
  std::string device = "cpu", precision = "fp32";
  size_t device_peak_bytes = 0;     // most CUDA memory held at once by one rank, the largest over the
                                    // ranks (0 on the CPU)
  double median_step_ms = 0;        // over the steps after the first
  int64_t train_batch_size = 0;     // sequences a step over all ranks (the config's train_batch_size)
  int64_t tokens_per_step = 0;      // train_batch_size x seq_len
  std::string model_description, data_description;
};

struct Config;
void validate(const TrainOptions& options);
// Where this rank trains: options.device, with "cuda" meaning this rank's own GPU,
// cuda:LOCAL_RANK (device_for_local_rank).
Device rank_device(const TrainOptions& options);
// The engine config of a run: the DeepSpeed file's, or one made from the options.
Config engine_config(const TrainOptions& options, int world_size);

using ProgressFn = std::function<void(const std::string& line)>;
TrainResult train(const TrainOptions& options, const ProgressFn& progress);

// Builds the model that options.model names (initialized with the seed, or loaded).
std::shared_ptr<models::CausalLM> make_model(const TrainOptions& options);
// The vocabulary the data draws from: the model's, before any rounding by vocab_multiple.
int64_t data_vocab_size(const TrainOptions& options, const models::CausalLM& model);
// The run's data: the synthetic corpus, token shards, or text (.txt, .md, .json, .jsonl files or a
// folder of them) that the model folder's tokenizer turns into shards first, cached in
// "<data>.zt-shards" beside it (rank 0 tokenizes; the others wait at the barrier).
std::unique_ptr<data::Dataset> make_dataset(const TrainOptions& options, int64_t vocab_size, int rank, int world_size);
// Where make_dataset reads token shards from for options.data, tokenizing text when needed.
// Collective over the world group when text is tokenized.
std::string prepare_token_data(const TrainOptions& options);

}  // namespace zt::engine
