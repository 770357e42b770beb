#include "zt/engine/memory_estimator.hpp"

#include <algorithm>
#include <cstdio>

#include "zt/core/error.hpp"

namespace zt::engine {

namespace {

// Python's int() of a float: truncation toward zero.
int64_t trunc(double v) { return int64_t(v); }

void check(const MemoryEstimateOptions& o) {
  ZT_CHECK(o.num_gpus_per_node > 0, "memory estimate: num_gpus_per_node must be positive, got ", o.num_gpus_per_node);
  ZT_CHECK(o.num_nodes > 0, "memory estimate: num_nodes must be positive, got ", o.num_nodes);
  ZT_CHECK(o.additional_buffer_factor > 0, "memory estimate: additional_buffer_factor must be positive, got ",
           o.additional_buffer_factor);
}

std::string gb(int64_t bytes, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%*.2fGB", width, double(bytes) / double(1LL << 30));
  return buf;
}

std::string options_str(const MemoryEstimate& e, const MemoryEstimateRow& row) {
  // DeepSpeed pads "cpu" to the width of "none".
  const char* optimizer = row.optimizer_nvme ? "nvme" : (row.offload_optimizer ? "cpu " : "none");
  if (e.stage == 2) return str("offload_optimizer=", optimizer);
  return str("offload_param=", row.offload_param ? "cpu " : "none", ", offload_optimizer=", optimizer,
             ", zero_init=", row.zero_init ? 1 : 0);
}

}  // namespace

MemoryNeeds estimate_zero2_model_states_mem_needs(int64_t total_params, bool cpu_offload,
                                                  const MemoryEstimateOptions& o) {
  check(o);
  const int64_t total_gpus = o.num_nodes * o.num_gpus_per_node;
  const double p = double(total_params);
  MemoryNeeds m;
  if (cpu_offload) {
    m.gpu_bytes = 2 * total_params;
    m.cpu_bytes = trunc(p * double(std::max<int64_t>(4 * total_gpus, 16)) * o.additional_buffer_factor);
  } else {
    // 2 for the 16-bit parameters; 18 per partitioned parameter: 16-bit and 32-bit gradients (2 + 4),
    // 32-bit master weights (4) and Adam's two moments (8).
    m.gpu_bytes = 2 * total_params + trunc(18.0 * p / double(total_gpus));
    m.cpu_bytes = trunc(p * 4.0 * double(o.num_gpus_per_node) * o.additional_buffer_factor);
  }
  return m;
}

MemoryNeeds estimate_zero3_model_states_mem_needs(int64_t total_params, int64_t largest_layer_params, bool cpu_offload,
                                                  bool cpu_offload_params, bool zero_init,
                                                  const MemoryEstimateOptions& o) {
  check(o);
  const int64_t total_gpus = o.num_nodes * o.num_gpus_per_node;
  const double gpus_factor = 1.0 / double(o.num_nodes);
  const double p = double(total_params), f = o.additional_buffer_factor;
  const double per_node = 4.0 * double(o.num_gpus_per_node);
  const int64_t largest_layer_memory = 4 * largest_layer_params;
  MemoryNeeds m;
  if (cpu_offload) {
    const double k = cpu_offload_params ? 18.0 : 16.0;
    m.gpu_bytes = cpu_offload_params ? largest_layer_memory : largest_layer_memory + trunc(2.0 * p / double(total_gpus));
    m.cpu_bytes = zero_init ? trunc(p * k * gpus_factor * f) : trunc(p * std::max(per_node, k * gpus_factor) * f);
  } else {
    m.gpu_bytes = largest_layer_memory + trunc(18.0 * p / double(total_gpus));
    m.cpu_bytes = zero_init ? trunc(double(largest_layer_params) * per_node * f) : trunc(p * per_node * f);
  }
  return m;
}

// fp32 master weights and Adam's two moments: what NVMe offload of the optimizer moves off the host.
constexpr double kOptimizerStateBytes = 12.0;

MemoryNeeds estimate_zero2_nvme_mem_needs(int64_t total_params, const MemoryEstimateOptions& o) {
  MemoryNeeds m = estimate_zero2_model_states_mem_needs(total_params, true, o);
  const int64_t total_gpus = o.num_nodes * o.num_gpus_per_node;
  const double p = double(total_params);
  m.cpu_bytes = trunc(p * double(std::max<int64_t>(4 * total_gpus, 16 - 12)) * o.additional_buffer_factor);
  m.nvme_bytes = trunc(p * kOptimizerStateBytes / double(o.num_nodes));
  return m;
}

MemoryNeeds estimate_zero3_nvme_mem_needs(int64_t total_params, int64_t largest_layer_params, bool cpu_offload_params,
                                          bool zero_init, const MemoryEstimateOptions& o) {
  MemoryNeeds m =
      estimate_zero3_model_states_mem_needs(total_params, largest_layer_params, true, cpu_offload_params, zero_init, o);
  const double g = 1.0 / double(o.num_nodes), p = double(total_params), f = o.additional_buffer_factor;
  const double k = (cpu_offload_params ? 18.0 : 16.0) - kOptimizerStateBytes;
  const double per_node = 4.0 * double(o.num_gpus_per_node);
  m.cpu_bytes = zero_init ? trunc(p * k * g * f) : trunc(p * std::max(per_node, k * g) * f);
  m.nvme_bytes = trunc(p * kOptimizerStateBytes * g);
  return m;
}

MemoryNeeds estimate_zt_model_states(int64_t total_params, const ZtEstimateOptions& o) {
  ZT_CHECK(total_params > 0, "memory estimate: the parameter count must be positive, got ", total_params);
  ZT_CHECK(o.world_size > 0, "memory estimate: the world size must be positive, got ", o.world_size);
  ZT_CHECK(o.stage >= 0 && o.stage <= 3, "memory estimate: ZeRO stage ", o.stage, " is not 0-3");
  ZT_CHECK(o.offload_optimizer == "none" || o.offload_optimizer == "cpu" || o.offload_optimizer == "nvme",
           "memory estimate: offload_optimizer \"", o.offload_optimizer, "\" is not one of none, cpu, nvme");
  ZT_CHECK(o.offload_optimizer == "none" || o.stage >= 1, "memory estimate: optimizer offload needs stage 1-3");
  const int64_t p = total_params, n = o.world_size;
  const int64_t shard = (p + n - 1) / n;  // Ψ/N, rounded up
  MemoryNeeds m;
  m.gpu_bytes = 2 * (o.stage == 3 ? shard : p) + 2 * (o.stage >= 2 ? shard : p);
  const int64_t states = 12 * (o.stage == 0 ? p : shard);
  const int64_t tiles = std::max<int64_t>(1, o.buffer_count) * o.tile_bytes;
  if (o.offload_optimizer == "none") {
    m.gpu_bytes += states;
  } else if (o.offload_optimizer == "cpu") {
    m.cpu_bytes = states + 2 * shard + tiles;
  } else {
    m.cpu_bytes = 2 * shard + tiles + o.buffer_count * 4 * std::min(o.sub_group_size, shard);
    m.nvme_bytes = states;
  }
  return m;
}

MemoryEstimate estimate_zero2(int64_t total_params, const MemoryEstimateOptions& options) {
  ZT_CHECK(total_params > 0, "memory estimate: the parameter count must be positive, got ", total_params);
  MemoryEstimate e{2, total_params, 0, options, {}, {}};
  for (bool offload : {true, false}) {
    MemoryEstimateRow row;
    row.offload_optimizer = offload;
    row.needs = estimate_zero2_model_states_mem_needs(total_params, offload, options);
    e.rows.push_back(row);
  }
  MemoryEstimateRow nvme;
  nvme.offload_optimizer = nvme.optimizer_nvme = true;
  nvme.needs = estimate_zero2_nvme_mem_needs(total_params, options);
  e.nvme_rows.push_back(nvme);
  return e;
}

MemoryEstimate estimate_zero3(int64_t total_params, int64_t largest_layer_params, const MemoryEstimateOptions& options) {
  ZT_CHECK(total_params > 0, "memory estimate: the parameter count must be positive, got ", total_params);
  ZT_CHECK(largest_layer_params > 0 && largest_layer_params <= total_params,
           "memory estimate: the largest layer's parameter count must be in [1, ", total_params, "], got ",
           largest_layer_params);
  MemoryEstimate e{3, total_params, largest_layer_params, options, {}, {}};
  for (bool offload : {true, false})
    for (bool offload_params : {true, false}) {
      if (!offload && offload_params) continue;
      for (bool zero_init : {true, false}) {
        MemoryEstimateRow row{offload_params, offload, zero_init, false, {}};
        row.needs = estimate_zero3_model_states_mem_needs(total_params, largest_layer_params, offload, offload_params,
                                                          zero_init, options);
        e.rows.push_back(row);
      }
    }
  for (bool offload_params : {true, false})
    for (bool zero_init : {true, false}) {
      MemoryEstimateRow row{offload_params, true, zero_init, true, {}};
      row.needs = estimate_zero3_nvme_mem_needs(total_params, largest_layer_params, offload_params, zero_init, options);
      e.nvme_rows.push_back(row);
    }
  return e;
}

std::string format_memory_estimate(const MemoryEstimate& e) {
  const MemoryEstimateOptions& o = e.options;
  std::string out = "Estimated memory needed for params, optim states and gradients for a:\n";
  out += str("HW: Setup with ", o.num_nodes, o.num_nodes > 1 ? " nodes, " : " node, ", o.num_gpus_per_node,
             o.num_gpus_per_node > 1 ? " GPUs" : " GPU", " per node.\n");
  out += str("SW: Model with ", e.total_params / 1000000, "M total params");
  if (e.stage == 3) out += str(", ", e.largest_layer_params / 1000000, "M largest layer params");
  out += ".\n  per CPU  |  per GPU |   Options\n";
  for (const MemoryEstimateRow& row : e.rows)
    out += str(" ", gb(row.needs.cpu_bytes, 7), " | ", gb(row.needs.gpu_bytes, 6), " | ", options_str(e, row), "\n");
  if (e.nvme_rows.empty()) return out;
  out += "What offload_optimizer=nvme moves off the host (fp32 master weights and optimizer states):\n"
         "  per CPU  |  per GPU | per NVMe |   Options\n";
  for (const MemoryEstimateRow& row : e.nvme_rows)
    out += str(" ", gb(row.needs.cpu_bytes, 7), " | ", gb(row.needs.gpu_bytes, 6), " | ", gb(row.needs.nvme_bytes, 6),
               " | ", options_str(e, row), "\n");
  return out;
}

std::string format_zt_estimate(int64_t total_params, int64_t world_size, int64_t buffer_count, int64_t sub_group_size) {
  std::string out = str("zt's engine per rank (", world_size, world_size > 1 ? " ranks" : " rank",
                        "; bf16 parameters and gradients, f32 master weights and Adam moments; offload tiles ",
                        buffer_count, " x 64 MiB, NVMe sub-groups of ", sub_group_size, " elements):\n",
                        "  stage | offload_optimizer |  per GPU  | per host  | per NVMe\n");
  for (int stage : {1, 2, 3})
    for (const char* offload : {"none", "cpu", "nvme"}) {
      ZtEstimateOptions o;
      o.stage = stage;
      o.offload_optimizer = offload;
      o.world_size = world_size;
      o.buffer_count = buffer_count;
      o.sub_group_size = sub_group_size;
      const MemoryNeeds m = estimate_zt_model_states(total_params, o);
      char line[128];
      std::snprintf(line, sizeof line, "      %d | %-17s | %s | %s | %s\n", stage, offload, gb(m.gpu_bytes, 7).c_str(),
                    gb(m.cpu_bytes, 7).c_str(), gb(m.nvme_bytes, 6).c_str());
      out += line;
    }
  return out;
}

nlohmann::json memory_estimate_json(const MemoryEstimate& e) {
  nlohmann::json rows = nlohmann::json::array();
  std::vector<MemoryEstimateRow> all = e.rows;
  all.insert(all.end(), e.nvme_rows.begin(), e.nvme_rows.end());
  for (const MemoryEstimateRow& row : all) {
    nlohmann::json r = {{"offload_optimizer", row.optimizer_nvme ? "nvme" : (row.offload_optimizer ? "cpu" : "none")},
                        {"per_cpu_bytes", row.needs.cpu_bytes},
                        {"per_gpu_bytes", row.needs.gpu_bytes},
                        {"per_cpu_gib", double(row.needs.cpu_bytes) / double(1LL << 30)},
                        {"per_gpu_gib", double(row.needs.gpu_bytes) / double(1LL << 30)}};
    if (row.optimizer_nvme) {
      r["per_nvme_bytes"] = row.needs.nvme_bytes;
      r["per_nvme_gib"] = double(row.needs.nvme_bytes) / double(1LL << 30);
    }
    if (e.stage == 3) {
      r["offload_param"] = row.offload_param ? "cpu" : "none";
      r["zero_init"] = row.zero_init;
    }
    rows.push_back(r);
  }
  nlohmann::json j = {{"stage", e.stage},
                      {"total_params", e.total_params},
                      {"num_gpus_per_node", e.options.num_gpus_per_node},
                      {"num_nodes", e.options.num_nodes},
                      {"additional_buffer_factor", e.options.additional_buffer_factor},
                      {"rows", rows}};
  if (e.stage == 3) j["largest_layer_params"] = e.largest_layer_params;
  return j;
}

int64_t largest_layer_parameters(const models::TransformerConfig& cfg) {
  const int64_t c = cfg.hidden_size, h = cfg.intermediate_size;
  const int64_t hd = cfg.head_dim ? cfg.head_dim : c / cfg.num_heads;
  std::vector<int64_t> modules = {cfg.vocab_size * c, 2 * c};  // embedding (and the head's weight), a norm
  if (cfg.is_gpt2()) {
    modules.push_back(cfg.max_position_embeddings * c);  // wpe
    modules.push_back(c * 3 * c + 3 * c);                 // c_attn
    modules.push_back(c * c + c);                         // attn.c_proj
    modules.push_back(c * h + h);                         // c_fc
    modules.push_back(h * c + c);                         // mlp.c_proj
  } else {
    const int64_t q = cfg.num_heads * hd, kv = cfg.num_kv_heads * hd;
    modules.push_back(c * q + (cfg.attention_bias ? q : 0));       // q_proj
    modules.push_back(c * kv + (cfg.attention_bias ? kv : 0));     // k_proj, v_proj
    modules.push_back(q * c + (cfg.attention_out_bias ? c : 0));   // o_proj
    modules.push_back(c * h + (cfg.mlp_bias ? h : 0));             // gate_proj, up_proj
    modules.push_back(h * c + (cfg.mlp_bias ? c : 0));             // down_proj
  }
  return *std::max_element(modules.begin(), modules.end());
}

}  // namespace zt::engine
