#include "zt/engine/activation_checkpointing.hpp"

#include <vector>

#include "zt/models/causal_lm.hpp"
#include "zt/nn/checkpoint.hpp"

namespace zt::engine {

namespace {

std::vector<nn::Checkpoint*> checkpoints_in(nn::Module& model) {
  std::vector<nn::Checkpoint*> out;
  model.visit([&](const std::string&, nn::Module& m) {
    if (auto* c = dynamic_cast<nn::Checkpoint*>(&m)) out.push_back(c);
  });
  return out;
}

}  // namespace

void apply_activation_checkpointing(nn::Module& model, const ActivationCheckpointingConfig& config) {
  if (!config.enabled) return;
  const nn::CheckpointOptions options{config.cpu_checkpointing};
  if (auto* lm = dynamic_cast<models::CausalLM*>(&model)) {
    lm->checkpoint_blocks(config.number_checkpoints.value_or(lm->num_blocks()), options);
    return;
  }
  ZT_CHECK(!config.number_checkpoints, "activation_checkpointing.number_checkpoints = ", *config.number_checkpoints,
           ": it counts the decoder blocks of a causal LM; this model (", model.type_name(),
           ") checkpoints the modules its author wrapped in nn::Checkpoint; remove the key");
  const auto checkpoints = checkpoints_in(model);
  ZT_CHECK(!checkpoints.empty(), "activation_checkpointing: this model (", model.type_name(),
           ") has no decoder blocks and no nn::Checkpoint modules, so nothing would be checkpointed; wrap the "
           "modules to recompute in nn::Checkpoint or remove the section");
  for (nn::Checkpoint* c : checkpoints) c->set_options(options);
}

std::string describe_activations(nn::Module& model, Device device) {
  const auto checkpoints = checkpoints_in(model);
  if (checkpoints.empty()) return "kept for backward";
  size_t on_host = 0;
  for (const nn::Checkpoint* c : checkpoints) on_host += c->options().cpu_checkpointing;
  std::string where;
  if (device.is_cpu()) {
    where = "inputs in host memory";
  } else if (on_host == checkpoints.size()) {
    where = "inputs in pinned host memory";
  } else if (on_host == 0) {
    where = "inputs on " + device.name();
  } else {
    where = str(on_host, " of them with inputs in pinned host memory, the others on ", device.name());
  }
  if (auto* lm = dynamic_cast<models::CausalLM*>(&model); lm && lm->checkpointed_blocks() == int64_t(checkpoints.size()))
    return str("checkpointed at ", lm->checkpointed_blocks(), " of ", lm->num_blocks(), " blocks, ", where);
  return str("checkpointed at ", checkpoints.size(), checkpoints.size() == 1 ? " module, " : " modules, ", where);
}

}  // namespace zt::engine
