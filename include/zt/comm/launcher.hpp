// zt launch: DeepSpeed's launcher flags over Open MPI's mpirun. The launcher resolves hosts and
// slots (hostfile, --include/--exclude, --num_nodes, --num_gpus), builds the mpirun command, and
// runs it; each rank runs under a small sh wrapper that sets RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_SIZE (and CUDA_VISIBLE_DEVICES when slots were filtered) and reports its exit status,
// so that the launcher returns the first failing rank's status.
//
// Failures: mpirun runs with --enable-recovery and orte_abort_on_non_zero_status=0, so that a
// dead rank does not take the others down at once: they reach their own communication timeout
// and report which collective failed (docs/COMM.md). Open MPI then returns 0 whatever the ranks
// did, hence the wrapper's reports. With fail_fast the launcher ends the job at the first failed
// rank instead; without it, it ends the job if ranks still run a grace period (the comm timeout
// plus 60 s) after the first failure, so that a launch never hangs.
#pragma once

#include <string>
#include <vector>

namespace zt::comm {

// One line of a hostfile: "worker-1 slots=4".
struct HostSlots {
  std::string host;
  int slots = 0;
};

// DeepSpeed's hostfile: one "HOST slots=N" per line, '#' starts a comment, blank lines are
// skipped. A bad line is a zt::Error naming the file, the line number and the line.
std::vector<HostSlots> parse_hostfile(const std::string& path);
std::vector<HostSlots> parse_hostfile_text(const std::string& text, const std::string& source);

// The slots (GPU indices) a launch uses on each host, in hostfile order.
struct HostResources {
  std::string host;
  std::vector<int> slots;
};
using Resources = std::vector<HostResources>;

Resources resources_from_hostfile(const std::vector<HostSlots>& hosts);
// DeepSpeed's --include / --exclude: "HOST[:SLOT[,SLOT...]][@HOST...]". Mutually exclusive.
Resources filter_resources(const Resources& all, const std::string& include, const std::string& exclude);

struct LaunchOptions {
  int num_procs = -1;       // --num_gpus / --num_procs: ranks per host (-1: every slot; locally every GPU, or 1)
  int num_nodes = -1;       // --num_nodes: the first N hosts (-1: all)
  std::string hostfile;     // --hostfile; empty: /job/hostfile if it exists, else this host alone
  std::string include;      // --include / -i
  std::string exclude;      // --exclude / -e
  std::string master_addr;  // --master_addr; empty: the first host, or 127.0.0.1 on one host
  int master_port = 29500;  // --master_port
  bool fail_fast = false;   // --fail_fast: end every rank as soon as one fails
  std::string mpirun = "mpirun";
  std::vector<std::string> mpirun_args;  // --launcher_args: passed to mpirun as they are
};

// The hosts and slots the options select.
Resources resolve_resources(const LaunchOptions& options);
// The whole mpirun command line (argv[0] is the mpirun executable).
std::vector<std::string> build_mpirun_argv(const LaunchOptions& options, const Resources& resources,
                                           const std::vector<std::string>& program_argv);
// Runs program_argv on every slot and waits. Returns 0 when every rank exited 0, else the first
// failing rank's exit status (128 + signal for a rank killed by a signal), or mpirun's own.
int launch_processes(const LaunchOptions& options, const std::vector<std::string>& program_argv);

// The marker line a rank's wrapper writes to stderr when it ends; the launcher swallows it.
constexpr const char* kRankExitMarker = "[zt launch] rank-exit";

}  // namespace zt::comm
