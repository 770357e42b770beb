// The mpirun command line of a launch.
#include <unistd.h>

#include <cstring>
#include <thread>

#include "zt/comm/launcher.hpp"
#include "zt/core/error.hpp"

extern char** environ;

namespace zt::comm {

namespace {

// Runs as: /bin/sh -c SCRIPT zt-rank CUDA_VISIBLE_DEVICES_OR_EMPTY PROGRAM ARGS...
// The program runs as a child (not exec'd) so that its exit status, a death by signal included
// (128 + N), reaches the launcher through the marker line; mpirun itself would report 0.
const char* const kRankWrapper =
    "export RANK=\"${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}\" "
    "LOCAL_RANK=\"${OMPI_COMM_WORLD_LOCAL_RANK:-${MPI_LOCALRANKID:-0}}\" "
    "WORLD_SIZE=\"${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-1}}\" "
    "LOCAL_SIZE=\"${OMPI_COMM_WORLD_LOCAL_SIZE:-1}\"\n"
    "if [ -n \"$1\" ]; then export CUDA_VISIBLE_DEVICES=\"$1\"; fi\n"
    "shift\n"
    "\"$@\"\n"
    "status=$?\n"
    "echo \"[zt launch] rank-exit rank=$RANK status=$status\" >&2\n"
    "exit $status\n";

bool is_this_host(const std::string& host) {
  if (host == "localhost" || host == "127.0.0.1") return true;
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return false;
  const std::string full(name);
  return host == full || host == full.substr(0, full.find('.'));
}

// Variables that ranks on other hosts need from here (mpirun gives local ranks the whole
// environment, remote ones only what -x names).
bool exported_to_remote_ranks(const std::string& name) {
  for (const char* prefix : {"ZT_", "NCCL_", "UCX_", "OMPI_MCA_"})
    if (name.rfind(prefix, 0) == 0) return true;
  return name == "PATH" || name == "LD_LIBRARY_PATH" || name == "OMP_NUM_THREADS" || name == "HF_HOME";
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += str(s.empty() ? "" : ",", x);
  return s;
}

}  // namespace

std::vector<std::string> build_mpirun_argv(const LaunchOptions& options, const Resources& resources,
                                           const std::vector<std::string>& program_argv) {
  ZT_CHECK(!program_argv.empty(), "zt launch: no program to run");
  ZT_CHECK(!resources.empty(), "zt launch: no hosts to run on");
  int total = 0;
  for (const auto& h : resources) total += int(h.slots.size());
  const bool one_local_host = resources.size() == 1 && is_this_host(resources[0].host);

  std::vector<std::string> argv = {options.mpirun};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  if (one_local_host && total > int(std::thread::hardware_concurrency())) {
    // More ranks than cores: let Open MPI start them, unbound, yielding the CPU when idle (our
    // own waits sleep too).
    for (const char* a : {"--oversubscribe", "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1"}) argv.push_back(a);
  }
  // A failed rank leaves the others running until their own timeout names the collective.
  for (const char* a : {"--enable-recovery", "--mca", "orte_abort_on_non_zero_status", "0"}) argv.push_back(a);

  const std::string master_addr =
      !options.master_addr.empty() ? options.master_addr : one_local_host ? "127.0.0.1" : resources[0].host;
  argv.insert(argv.end(), {"-x", "MASTER_ADDR=" + master_addr, "-x", str("MASTER_PORT=", options.master_port)});
  if (!one_local_host) {
    for (char** e = environ; e && *e; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (exported_to_remote_ranks(name)) argv.insert(argv.end(), {"-x", name});
    }
  }
  argv.insert(argv.end(), options.mpirun_args.begin(), options.mpirun_args.end());

  // One app context per host, so that each host gets its own slot list.
  for (size_t i = 0; i < resources.size(); ++i) {
    const HostResources& h = resources[i];
    if (i > 0) argv.push_back(":");
    const std::string n = str(h.slots.size());
    argv.insert(argv.end(), {"-np", n});
    if (!one_local_host) argv.insert(argv.end(), {"--host", h.host + ":" + n});
    bool all_from_zero = true;
    for (size_t s = 0; s < h.slots.size(); ++s) all_from_zero = all_from_zero && h.slots[s] == int(s);
    // CUDA_VISIBLE_DEVICES only when slots were picked: otherwise the user's own setting stands.
    argv.insert(argv.end(), {"/bin/sh", "-c", kRankWrapper, "zt-rank", all_from_zero ? "" : join(h.slots)});
    argv.insert(argv.end(), program_argv.begin(), program_argv.end());
  }
  return argv;
}

}  // namespace zt::comm
