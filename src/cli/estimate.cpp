// `zt estimate`: DeepSpeed's ZeRO-2/ZeRO-3 memory tables (with what NVMe offload of the optimizer
// moves off the host) for a parameter count, a Hugging Face config.json, or a built-in model, and
// zt's own engine per rank under each stage and optimizer offload.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "commands.hpp"
#include "zt/core/error.hpp"
#include "zt/engine/memory_estimator.hpp"
#include "zt/models/builtin.hpp"

namespace zt::cli {

namespace {

struct EstimateArgs {
  double params = 0, largest_layer_params = 0;
  std::string model, stage = "all";
  engine::MemoryEstimateOptions options;
  int64_t buffer_count = 4;            // offload_optimizer.buffer_count, for zt's own figures
  double sub_group_size = 1e9;         // zero_optimization.sub_group_size
  bool json = false;
};

int64_t whole_count(double v, const char* flag) {
  ZT_CHECK(std::isfinite(v) && v >= 1 && v < 9.2e18, flag, " must be a positive count, got ", v);
  return int64_t(std::llround(v));
}

models::TransformerConfig model_config(const std::string& model) {
  if (models::is_builtin(model)) return models::builtin_config(model);
  std::filesystem::path path(model);
  if (std::filesystem::is_directory(path)) path /= "config.json";
  ZT_CHECK(std::filesystem::is_regular_file(path), "--model ", model,
           " is neither a built-in model nor a Hugging Face config.json (or a folder holding one); built-in models: ",
           [] {
             std::string all;
             for (const std::string& n : models::builtin_names()) all += (all.empty() ? "" : ", ") + n;
             return all;
           }());
  return models::TransformerConfig::from_file(path.string());
}

void run(const EstimateArgs& a) {
  ZT_CHECK((a.params > 0) != !a.model.empty(), "give the model as --params N or --model NAME|PATH (one of the two)");
  int64_t total = 0, largest = 0;
  if (!a.model.empty()) {
    const models::TransformerConfig cfg = model_config(a.model);
    total = cfg.parameter_count();
    largest = engine::largest_layer_parameters(cfg);
  } else {
    total = whole_count(a.params, "--params");
  }
  if (a.largest_layer_params > 0) largest = whole_count(a.largest_layer_params, "--largest_layer_params");
  ZT_CHECK(a.stage == "2" || a.stage == "3" || a.stage == "all", "--stage must be 2, 3 or all, got ", a.stage);
  std::vector<engine::MemoryEstimate> estimates;
  if (a.stage != "3") estimates.push_back(engine::estimate_zero2(total, a.options));
  if (a.stage != "2") {
    ZT_CHECK(largest > 0, "the stage-3 estimate needs the largest layer's parameter count: give "
                          "--largest_layer_params N, or describe the model with --model NAME|PATH (or use --stage 2)");
    estimates.push_back(engine::estimate_zero3(total, largest, a.options));
  }
  const int64_t world = a.options.num_gpus_per_node * a.options.num_nodes;
  ZT_CHECK(a.buffer_count >= 1, "--buffer_count must be positive, got ", a.buffer_count);
  const int64_t sub_group = whole_count(a.sub_group_size, "--sub_group_size");
  if (a.json) {
    nlohmann::json j = {{"total_params", total}, {"estimates", nlohmann::json::array()}};
    if (!a.model.empty()) j["model"] = a.model;
    for (const auto& e : estimates) j["estimates"].push_back(engine::memory_estimate_json(e));
    nlohmann::json zt = nlohmann::json::array();
    for (int stage : {1, 2, 3})
      for (const char* offload : {"none", "cpu", "nvme"}) {
        engine::ZtEstimateOptions o;
        o.stage = stage;
        o.offload_optimizer = offload;
        o.world_size = world;
        o.buffer_count = a.buffer_count;
        o.sub_group_size = sub_group;
        const engine::MemoryNeeds m = engine::estimate_zt_model_states(total, o);
        zt.push_back({{"stage", stage}, {"offload_optimizer", offload}, {"per_gpu_bytes", m.gpu_bytes},
                      {"per_host_bytes", m.cpu_bytes}, {"per_nvme_bytes", m.nvme_bytes}});
      }
    j["zt_per_rank"] = zt;
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  for (size_t i = 0; i < estimates.size(); ++i) {
    if (estimates.size() > 1) std::printf("%sZeRO stage %d\n", i ? "\n" : "", estimates[i].stage);
    std::fputs(engine::format_memory_estimate(estimates[i]).c_str(), stdout);
  }
  std::printf("\n%s", engine::format_zt_estimate(total, world, a.buffer_count, sub_group).c_str());
}

}  // namespace

void add_estimate_command(CLI::App& app) {
  auto args = std::make_shared<EstimateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "estimate", "memory for parameters, gradients and optimizer states under ZeRO-2/3 (DeepSpeed's estimates)");
  cmd->add_option("--params", args->params, "total parameter count (1.3e9)");
  cmd->add_option("--model", args->model, "built-in model name, Hugging Face config.json, or a folder holding one");
  cmd->add_option("--largest_layer_params,--largest-layer-params", args->largest_layer_params,
                  "parameters of the largest layer (stage 3; derived from --model)");
  cmd->add_option("--num_gpus,--num_gpus_per_node,--num-gpus", args->options.num_gpus_per_node, "GPUs per node")
      ->capture_default_str();
  cmd->add_option("--num_nodes,--num-nodes", args->options.num_nodes, "nodes")->capture_default_str();
  cmd->add_option("--stage", args->stage, "2, 3 or all")->capture_default_str();
  cmd->add_option("--additional_buffer_factor,--additional-buffer-factor", args->options.additional_buffer_factor,
                  "padding factor on the CPU estimates")
      ->capture_default_str();
  cmd->add_option("--buffer_count,--buffer-count", args->buffer_count,
                  "offload_optimizer.buffer_count (zt's figures: staging tiles and NVMe swap buffers)")
      ->capture_default_str();
  cmd->add_option("--sub_group_size,--sub-group-size", args->sub_group_size,
                  "zero_optimization.sub_group_size (zt's figures: the NVMe swap buffers' size)")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print JSON instead of the table");
  cmd->callback([args] { run(*args); });
}

}  // namespace zt::cli
