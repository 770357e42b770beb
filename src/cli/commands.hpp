// Each `zt` subcommand lives in its own file and adds itself to the app here. A subcommand's
// callback parses into config structs and calls the library; errors surface as zt::Error.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace zt::cli {

// The command line as the process received it (for subcommands that relaunch themselves).
const std::vector<std::string>& raw_arguments();
void set_raw_arguments(int argc, char** argv);

void add_train_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_estimate_command(CLI::App& app);
void add_launch_command(CLI::App& app);
void add_bench_command(CLI::App& app);  // bench.cpp: the parent of `zt bench <name>`
void add_convert_command(CLI::App& app);

}  // namespace zt::cli
