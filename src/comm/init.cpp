// The world group: which backends a process gets, from the options and from how it was started.
#include <cstdlib>
#include <mutex>
#include <numeric>

#include "backend.hpp"
#include "local/local_backend.hpp"
#include "mpi/mpi_backend.hpp"
#include "mpi/mpi_runtime.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/env.hpp"
#include "zt/core/error.hpp"
#include "zt/core/log.hpp"

namespace zt::comm {

namespace {

std::mutex g_world_mutex;
std::shared_ptr<ProcessGroup> g_world;
std::string g_world_backend;

// The first of the variables that is set, as an integer.
int first_env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* name : names) {
    const char* v = std::getenv(name);
    if (v && *v) return int(env_int(name, fallback));
  }
  return fallback;
}

}  // namespace

// zt launch sets RANK/LOCAL_RANK/WORLD_SIZE; mpirun alone sets Open MPI's; other MPIs PMI's.
int launched_world_size() { return first_env_int({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}, 1); }
int launched_rank() { return first_env_int({"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"}, 0); }
int launched_local_rank() { return first_env_int({"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"}, 0); }

double default_comm_timeout_s() {
  const double t = env_double("ZT_COMM_TIMEOUT_S", 600.0);
  ZT_CHECK(t > 0, "ZT_COMM_TIMEOUT_S=", t, " must be a positive number of seconds");
  return t;
}

std::shared_ptr<ProcessGroup> init_process_group(const ProcessGroupOptions& options) {
  std::lock_guard<std::mutex> lock(g_world_mutex);
  const std::string& backend = options.backend;
  ZT_CHECK(backend == "auto" || backend == "local" || backend == "mpi" || backend == "nccl", "unknown comm backend '",
           backend, "' (expected auto, local, mpi or nccl)");
  if (g_world) {
    ZT_CHECK(backend == "auto" || backend == g_world_backend, "the process group was initialized with backend '",
             g_world_backend, "'; it cannot be initialized again with '", backend, "'");
    return g_world;
  }
  const double timeout_s = options.timeout_s > 0 ? options.timeout_s : default_comm_timeout_s();
  const int launched = launched_world_size();
  ZT_CHECK(backend != "local" || launched == 1, "comm backend 'local' is for a single process, but this one was launched as one of ",
           launched, " ranks");
  const bool use_mpi = backend == "mpi" || (launched > 1 && backend != "local");

  std::shared_ptr<Backend> host = use_mpi ? make_mpi_world_backend() : make_local_backend();
  if (use_mpi && launched > 1)
    ZT_CHECK(host->size() == launched, "the launch says ", launched, " ranks (WORLD_SIZE / OMPI_COMM_WORLD_SIZE), but MPI ",
             "started ", host->size(), ": start the ranks with zt launch or mpirun, not on their own");
  std::string device_kind;
  if (backend == "mpi") device_kind = "none";
  else if (backend == "nccl") device_kind = "nccl";
  else if (backend == "local") device_kind = "local";
  else device_kind = launched > 1 ? "nccl" : "local";

  std::vector<int> ranks(size_t(host->size()));
  std::iota(ranks.begin(), ranks.end(), 0);
  if (host->size() > 1) set_error_rank(host->rank());
  g_world = std::make_shared<ProcessGroup>("world", std::move(ranks), host->rank(), host, device_kind, timeout_s);
  g_world_backend = backend;
  log_debug("process group ", g_world->describe(), ": rank ", g_world->rank(), ", backend ", g_world->backend_name(),
            ", timeout ", timeout_s, " s");
  return g_world;
}

bool is_initialized() {
  std::lock_guard<std::mutex> lock(g_world_mutex);
  return g_world != nullptr;
}

std::shared_ptr<ProcessGroup> world() {
  std::lock_guard<std::mutex> lock(g_world_mutex);
  ZT_CHECK(g_world != nullptr, "no process group: call zt::comm::init_process_group first");
  return g_world;
}

void finalize() {
  {
    std::lock_guard<std::mutex> lock(g_world_mutex);
    g_world.reset();
  }
  if (comms_logger().enabled()) comms_logger().log_summary();
  MpiRuntime::shutdown_process_runtime();
}

}  // namespace zt::comm
