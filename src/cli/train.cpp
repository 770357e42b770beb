#include "commands.hpp"

namespace zt::cli {

void add_train_command(CLI::App& app) {
  app.add_subcommand("train", "train a model");
}

}  // namespace zt::cli
