// `zt train`: parses the run's settings into TrainOptions and hands over to the library.
// With --nproc N it relaunches itself on N ranks through `zt launch`'s machinery.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "zt/comm/launcher.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/engine/trainer.hpp"

namespace zt::cli {

namespace {

void write_loss_curve(const std::string& path, const engine::TrainOptions& o, const engine::TrainResult& r) {
  nlohmann::json j;
  j["model"] = o.model;
  j["data"] = o.data;
  j["steps"] = o.steps;
  j["batch_size"] = o.batch_size;  // --batch-size; a DeepSpeed config's batch is train_batch_size below
  j["train_batch_size"] = r.train_batch_size;
  j["tokens_per_step"] = r.tokens_per_step;
  j["seq_len"] = o.seq_len;
  j["seed"] = o.seed;
  j["stage"] = r.stage;
  j["world_size"] = r.world_size;
  j["entropy_floor"] = r.entropy_floor;
  j["tokens_per_s"] = r.tokens_per_s;
  j["median_step_ms"] = r.median_step_ms;
  j["parameters"] = r.parameters;
  j["device"] = r.device;
  j["precision"] = r.precision;
  j["vocab_multiple"] = o.vocab_multiple;
  j["device_peak_bytes"] = r.device_peak_bytes;
  j["grad_norm"] = nlohmann::json::array();
  for (const auto& s : r.steps) j["grad_norm"].push_back(s.grad_norm);
  j["memory_per_rank"] = {{"parameters", r.memory.parameters},
                          {"parameters_place", zero::param_place_name(r.memory.parameters_place)},
                          {"parameter_buffers", r.memory.parameter_buffers},
                          {"gradients", r.memory.gradients},
                          {"master_weights", r.memory.master_weights}, {"optimizer_states", r.memory.optimizer_states},
                          {"model_states", r.memory.model_states()}, {"bucket_peak", r.memory.bucket_peak},
                          {"gathered_peak", r.memory.gathered_peak}};
  j["loss"] = nlohmann::json::array();
  for (const auto& s : r.steps) j["loss"].push_back(s.loss);
  j["step_ms"] = nlohmann::json::array();  // each step's wall time, the first with its warm-up
  for (const auto& s : r.steps) j["step_ms"].push_back(s.ms);
  std::ofstream out(path);
  ZT_CHECK(out.good(), "cannot write the loss curve to ", path);
  out << j.dump(1) << "\n";
}

std::string self_executable() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  ZT_CHECK(n > 0, "cannot find the zt executable to relaunch (/proc/self/exe)");
  return std::string(buf, size_t(n));
}

// This process's command line without --nproc, to run on every rank.
std::vector<std::string> rank_command_line() {
  std::vector<std::string> argv{self_executable()};
  const auto& raw = raw_arguments();
  for (size_t i = 1; i < raw.size(); ++i) {
    if (raw[i] == "--nproc") {
      ++i;
      continue;
    }
    if (raw[i].rfind("--nproc=", 0) == 0) continue;
    argv.push_back(raw[i]);
  }
  return argv;
}

void run_training(const engine::TrainOptions& options, const std::string& curve_path) {
  const engine::TrainResult r = engine::train(options, [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  });
  const bool rank0 = comm::world()->rank() == 0;
  comm::finalize();
  if (!rank0) return;
  if (r.entropy_floor >= 0) {
    std::printf("final loss %.4f (mean of the last 10 steps); entropy floor %.4f; %.1f%% above the floor; %.0f tokens/s\n",
                r.final_loss, r.entropy_floor, 100.0 * (r.final_loss / r.entropy_floor - 1.0), r.tokens_per_s);
  } else {
    std::printf("final loss %.4f (mean of the last 10 steps); %.0f tokens/s\n", r.final_loss, r.tokens_per_s);
  }
  if (!curve_path.empty()) write_loss_curve(curve_path, options, r);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<engine::TrainOptions>();
  auto curve_path = std::make_shared<std::string>();
  auto nproc = std::make_shared<int>(1);
  CLI::App* cmd = app.add_subcommand("train", "train a model (default: a small GPT on the built-in synthetic corpus)");
  cmd->add_option("--model", options->model, "built-in model name or Hugging Face model folder")->capture_default_str();
  cmd->add_option("--data", options->data, "\"synthetic\" or a token-shard file or folder")->capture_default_str();
  cmd->add_option("--deepspeed_config,--deepspeed-config", options->deepspeed_config,
                  "DeepSpeed JSON config: ZeRO stage, precision, batch, optimizer, schedule (overrides the flags below)");
  cmd->add_option("--nproc", *nproc, "ranks to launch on this machine (through mpirun)")->capture_default_str();
  cmd->add_option("--steps", options->steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--batch-size", options->batch_size, "sequences per step and rank")->capture_default_str();
  cmd->add_option("--seq-len", options->seq_len, "tokens per sequence")->capture_default_str();
  cmd->add_option("--lr", options->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", options->warmup_steps, "linear warmup steps")->capture_default_str();
  cmd->add_option("--min-lr-ratio", options->min_lr_ratio, "cosine decay floor, as a fraction of --lr")->capture_default_str();
  cmd->add_option("--weight-decay", options->weight_decay, "AdamW decoupled weight decay")->capture_default_str();
  cmd->add_option("--grad-clip", options->grad_clip, "global gradient-norm clip (<= 0: off)")->capture_default_str();
  cmd->add_option("--seed", options->seed, "seed for weights and data")->capture_default_str();
  cmd->add_option("--log-every", options->log_every, "steps between progress lines")->capture_default_str();
  cmd->add_option("--threads", options->threads, "OpenMP threads per rank (0: default)")->capture_default_str();
  cmd->add_option("--save", options->save_dir, "save checkpoints to this folder (at the end, and every --save-every steps)");
  cmd->add_option("--save-every", options->save_every, "steps between checkpoints (0: only at the end)")->capture_default_str();
  cmd->add_option("--resume", options->resume_dir, "continue from the latest checkpoint in this folder");
  cmd->add_option("--device", options->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--precision", options->precision, "fp32, bf16, or auto (bf16 on CUDA) without a DeepSpeed config")
      ->capture_default_str();
  cmd->add_option("--zero-stage", options->zero_stage, "ZeRO stage without a DeepSpeed config")->capture_default_str();
  cmd->add_option("--vocab-multiple", options->vocab_multiple,
                  "round a built-in model's vocabulary up to a multiple of this (64 for the tensor cores)")
      ->capture_default_str();
  cmd->add_flag("--activation-checkpointing", options->activation_checkpointing,
               "recompute each decoder block's forward in its backward instead of keeping its activations "
               "(as a DeepSpeed activation_checkpointing section)");
  cmd->add_flag("--cpu-checkpointing", options->cpu_checkpointing,
                "with activation checkpointing, keep the blocks' saved inputs in host memory (implies "
                "--activation-checkpointing)");
  cmd->add_option("--loss-curve", *curve_path, "write every step's loss as JSON to this file");
  cmd->callback([options, curve_path, nproc] {
    ZT_CHECK(*nproc >= 1, "--nproc must be at least 1, got ", *nproc);
    if (*nproc > 1 && comm::launched_world_size() == 1) {
      comm::LaunchOptions launch;
      launch.num_procs = *nproc;
      const int status = comm::launch_processes(launch, rank_command_line());
      ZT_CHECK(status == 0, "training on ", *nproc, " ranks failed (exit status ", status, ")");
      return;
    }
    run_training(*options, *curve_path);
  });
}

}  // namespace zt::cli
