// `zt launch [flags] PROGRAM [ARGS...]`: DeepSpeed's launcher flags, mpirun underneath
// (zt/comm/launcher.hpp). Everything from PROGRAM on is passed to each rank unchanged.
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "zt/comm/launcher.hpp"

namespace zt::cli {

void add_launch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("launch", "run a program on several ranks through mpirun (DeepSpeed's launcher flags)");
  auto options = std::make_shared<comm::LaunchOptions>();
  auto launcher_args = std::make_shared<std::string>();
  cmd->add_option("--num_gpus,--num_procs,--num-gpus,--num-procs", options->num_procs,
                  "ranks per host (default: every slot; on this host alone, every GPU, or 1)");
  cmd->add_option("--num_nodes,--num-nodes", options->num_nodes, "use the first N hosts of the hostfile");
  cmd->add_option("-H,--hostfile", options->hostfile, "hosts as 'HOST slots=N' lines (default: /job/hostfile if present)");
  cmd->add_option("-i,--include", options->include, "hosts/slots to use: HOST[:SLOT[,SLOT...]][@HOST...]");
  cmd->add_option("-e,--exclude", options->exclude, "hosts/slots to leave out, same syntax as --include");
  cmd->add_option("--master_addr,--master-addr", options->master_addr, "MASTER_ADDR for the ranks (default: first host)");
  cmd->add_option("--master_port,--master-port", options->master_port, "MASTER_PORT for the ranks")->capture_default_str();
  cmd->add_flag("--fail_fast,--fail-fast", options->fail_fast,
                "end every rank as soon as one fails (default: the others report their own timeouts)");
  cmd->add_option("--launcher_args,--launcher-args", *launcher_args, "extra arguments for mpirun, as one string");
  cmd->add_option("--mpirun", options->mpirun, "the mpirun to use")->capture_default_str();
  // PROGRAM and its arguments, flags included, go to the ranks as they are. With
  // prefix_command, parsing stops at the first positional and leaves the rest in remaining().
  // The positional below never takes a value (its validator refuses all, and positionals are
  // validated); it exists for the help text and so that CLI11 keeps a "--" separator here
  // instead of handing the rest of the line to the parent app.
  cmd->add_option("program", "the program to run on every rank, then its arguments")
      ->check(CLI::Validator([](std::string&) { return std::string("left to the ranks"); }, "PROGRAM [ARGS...]"));
  cmd->validate_positionals();
  cmd->prefix_command();
  cmd->callback([cmd, options, launcher_args] {
    std::vector<std::string> program = cmd->remaining();
    if (!program.empty() && program.front() == "--") program.erase(program.begin());
    if (program.empty()) throw CLI::ValidationError("zt launch", "no program to run (zt launch [flags] PROGRAM [ARGS...])");
    std::istringstream words(*launcher_args);
    for (std::string w; words >> w;) options->mpirun_args.push_back(w);
    const int status = comm::launch_processes(*options, program);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace zt::cli
