// `zt bench`: the parent of the benchmark subcommands. Each benchmark adds itself to the
// parent in its own src/cli/bench_<name>.cpp through an add_bench_<name>_command(CLI::App&)
// declared below, and is called from add_bench_command.
#include "commands.hpp"

namespace zt::cli {

void add_bench_comm_command(CLI::App& bench);  // bench_comm.cpp

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "benchmarks; each prints one JSON line per configuration");
  bench->require_subcommand(1);
  add_bench_comm_command(*bench);
}

}  // namespace zt::cli
