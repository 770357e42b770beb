// Runs mpirun, passes its output through, and collects every rank's exit status from the
// marker lines that the rank wrappers write to stderr.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include "zt/comm/launcher.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/error.hpp"
#include "zt/core/log.hpp"

extern char** environ;

namespace zt::comm {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<pid_t> g_child{0};

void forward_signal(int sig) {
  const pid_t child = g_child.load();
  if (child > 0) kill(child, sig);
}

// While mpirun runs: SIGTERM to the launcher goes on to mpirun (which ends the job); SIGINT
// from a terminal reaches mpirun directly, so the launcher ignores it, as system() does.
class SignalScope {
 public:
  explicit SignalScope(pid_t child) {
    g_child.store(child);
    struct sigaction forward = {};
    forward.sa_handler = forward_signal;
    sigemptyset(&forward.sa_mask);
    forward.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &forward, &old_term_);
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGINT, &ignore, &old_int_);
  }
  ~SignalScope() {
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
    g_child.store(0);
  }

 private:
  struct sigaction old_term_ = {}, old_int_ = {};
};

pid_t spawn(const std::vector<std::string>& argv, int stderr_fd) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ZT_CHECK(rc == 0, "zt launch: cannot start ", argv[0], ": ", std::strerror(rc),
           " (Open MPI's mpirun is needed: Debian's openmpi-bin)");
  return pid;
}

// "[zt launch] rank-exit rank=3 status=137" -> (3, 137).
bool parse_marker(const std::string& line, int* rank, int* status) {
  const size_t at = line.find(kRankExitMarker);
  if (at == std::string::npos) return false;
  return std::sscanf(line.c_str() + at + std::strlen(kRankExitMarker), " rank=%d status=%d", rank, status) == 2;
}

std::string describe_status(int status) {
  if (status > 128 && status < 128 + 65) {
    const int sig = status - 128;
    const char* name = strsignal(sig);
    return str("was killed by signal ", sig, " (", name ? name : "?", ")");
  }
  return str("exited with status ", status);
}

}  // namespace

int launch_processes(const LaunchOptions& options, const std::vector<std::string>& program_argv) {
  const Resources resources = resolve_resources(options);
  const std::vector<std::string> argv = build_mpirun_argv(options, resources, program_argv);
  int world_size = 0;
  std::string hosts;
  for (const auto& h : resources) {
    world_size += int(h.slots.size());
    hosts += str(hosts.empty() ? "" : ", ", h.host, ":", h.slots.size());
  }
  log_info("zt launch: ", world_size, " ranks on ", hosts);
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + (a.find('\n') == std::string::npos ? a : "'<rank wrapper>'");
  log_debug("zt launch: ", command);

  int fds[2];
  ZT_CHECK(pipe2(fds, O_CLOEXEC) == 0, "zt launch: pipe: ", std::strerror(errno));
  const pid_t pid = spawn(argv, fds[1]);
  close(fds[1]);
  SignalScope signals(pid);

  // A failed rank's peers get until their own comm timeout, and a minute more, to report.
  const double grace_s = default_comm_timeout_s() + 60.0;
  std::map<int, int> statuses;  // rank -> exit status
  int first_failure = 0;
  Clock::time_point failed_at{}, terminated_at{};
  bool terminated = false, killed = false;
  std::string pending;
  char buf[65536];
  while (true) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, 200);
    if (ready > 0) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;  // mpirun and every rank closed stderr
      pending.append(buf, size_t(n));
      size_t start = 0, nl;
      while ((nl = pending.find('\n', start)) != std::string::npos) {
        const std::string line = pending.substr(start, nl - start + 1);
        int rank = -1, status = 0;
        if (parse_marker(line, &rank, &status)) {
          statuses[rank] = status;
          if (status != 0 && first_failure == 0) {
            first_failure = status;
            failed_at = Clock::now();
            if (options.fail_fast)
              log_warn("zt launch: rank ", rank, " ", describe_status(status), "; ending the other ranks (--fail_fast)");
            else
              log_warn("zt launch: rank ", rank, " ", describe_status(status), "; waiting up to ", grace_s,
                       " s for the other ranks to finish or report their errors");
          }
        } else {
          std::fwrite(line.data(), 1, line.size(), stderr);
        }
        start = nl + 1;
      }
      pending.erase(0, start);
      std::fflush(stderr);
    } else if (ready < 0 && errno != EINTR) {
      break;
    }
    const auto now = Clock::now();
    if (first_failure != 0 && !terminated &&
        (options.fail_fast || now - failed_at > std::chrono::duration<double>(grace_s))) {
      if (!options.fail_fast)
        log_error("zt launch: ranks still running ", grace_s, " s after the first failure; ending them");
      kill(pid, SIGTERM);
      terminated = true;
      terminated_at = now;
    }
    if (terminated && !killed && now - terminated_at > std::chrono::seconds(15)) {
      kill(pid, SIGKILL);
      killed = true;
    }
  }
  if (!pending.empty()) std::fwrite(pending.data(), 1, pending.size(), stderr);
  close(fds[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  const int mpirun_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);

  std::string missing, failed;
  for (int r = 0; r < world_size; ++r) {
    const auto it = statuses.find(r);
    if (it == statuses.end()) missing += str(missing.empty() ? "" : ", ", r);
    else if (it->second != 0) failed += str(failed.empty() ? "" : "; ", "rank ", r, " ", describe_status(it->second));
  }
  if (!failed.empty()) log_error("zt launch: ", failed);
  if (first_failure != 0) return first_failure;
  if (!missing.empty()) {
    log_error("zt launch: no exit status from rank(s) ", missing, " (mpirun ", describe_status(mpirun_status), ")");
    return mpirun_status != 0 ? mpirun_status : 1;
  }
  return mpirun_status;
}

}  // namespace zt::comm
