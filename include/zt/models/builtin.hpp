// Model shapes known by name, so that `zt train --model NAME` needs no config.json.
#pragma once

#include <string>
#include <vector>

#include "zt/models/config.hpp"

namespace zt::models {

// Names: gpt2-tiny (the default run), gpt2-cpu-bench, gpt2 (124M), gpt2-medium (350M),
// gpt2-large (774M), llama-tiny, tinyllama-1.1b, llama-7b, llama-13b (Llama 2's shapes). An unknown name is an error listing them.
TransformerConfig builtin_config(const std::string& name);
std::vector<std::string> builtin_names();
bool is_builtin(const std::string& name);

}  // namespace zt::models
