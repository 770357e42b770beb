// The launcher's pieces on their own: hostfile parsing, DeepSpeed's resource filters, the
// mpirun command line; and whole launches of a shell command through mpirun.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "zt/comm/launcher.hpp"
#include "zt/core/error.hpp"

using namespace zt;
using namespace zt::comm;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

bool contains(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// The index of the first occurrence of x, or -1.
int index_of(const std::vector<std::string>& v, const std::string& x) {
  const auto it = std::find(v.begin(), v.end(), x);
  return it == v.end() ? -1 : int(it - v.begin());
}

Resources two_hosts() { return resources_from_hostfile({{"worker-0", 4}, {"worker-1", 4}}); }

}  // namespace

TEST(CommHostfile, ParsesHostsSlotsAndComments) {
  const auto hosts = parse_hostfile_text(
      "# the cluster\n"
      "worker-0 slots=4\n"
      "\n"
      "   worker-1   slots=8   # the big one\n",
      "test");
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0].host, "worker-0");
  EXPECT_EQ(hosts[0].slots, 4);
  EXPECT_EQ(hosts[1].host, "worker-1");
  EXPECT_EQ(hosts[1].slots, 8);
}

TEST(CommHostfile, BadLineNamesFileLineAndText) {
  const std::string path = testing::TempDir() + "/zt_hostfile_bad";
  {
    std::ofstream f(path);
    f << "worker-0 slots=4\n# fine\nworker-1 slot=4\n";
  }
  const std::string m = error_of([&] { parse_hostfile(path); });
  EXPECT_NE(m.find(path + ":3"), std::string::npos) << m;
  EXPECT_NE(m.find("'worker-1 slot=4'"), std::string::npos) << m;
  EXPECT_NE(m.find("HOST slots=N"), std::string::npos) << m;
  std::remove(path.c_str());
}

TEST(CommHostfile, RejectsWhatDeepSpeedRejects) {
  EXPECT_NE(error_of([] { parse_hostfile_text("worker-0\n", "h"); }).find("h:1"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile_text("a slots=0\n", "h"); }).find("positive"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile_text("a slots=x4\n", "h"); }).find("positive"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile_text("a slots=2 extra\n", "h"); }).find("extra"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile_text("a slots=2\nb slots=1\na slots=3\n", "h"); }).find("h:3"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile_text("# nothing\n", "h"); }).find("no hosts"), std::string::npos);
  EXPECT_NE(error_of([] { parse_hostfile("/nonexistent/hostfile"); }).find("/nonexistent/hostfile"), std::string::npos);
}

TEST(CommResources, IncludeAndExclude) {
  Resources r = filter_resources(two_hosts(), "worker-0:0,2@worker-1", "");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].slots, (std::vector<int>{0, 2}));
  EXPECT_EQ(r[1].slots, (std::vector<int>{0, 1, 2, 3}));
  r = filter_resources(two_hosts(), "worker-1:3,1", "");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, "worker-1");
  EXPECT_EQ(r[0].slots, (std::vector<int>{1, 3}));
  r = filter_resources(two_hosts(), "", "worker-0@worker-1:0");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].slots, (std::vector<int>{1, 2, 3}));
  EXPECT_NE(error_of([] { filter_resources(two_hosts(), "worker-9", ""); }).find("worker-9"), std::string::npos);
  EXPECT_NE(error_of([] { filter_resources(two_hosts(), "worker-0:7", ""); }).find("no slot 7"), std::string::npos);
  EXPECT_NE(error_of([] { filter_resources(two_hosts(), "worker-0", "worker-1"); }).find("mutually exclusive"),
            std::string::npos);
  EXPECT_NE(error_of([] { filter_resources(two_hosts(), "", "worker-0@worker-1"); }).find("no slots"),
            std::string::npos);
}

TEST(CommResources, NumNodesAndNumGpus) {
  const std::string path = testing::TempDir() + "/zt_hostfile_ok";
  {
    std::ofstream f(path);
    f << "worker-0 slots=4\nworker-1 slots=4\nworker-2 slots=2\n";
  }
  LaunchOptions o;
  o.hostfile = path;
  EXPECT_EQ(resolve_resources(o).size(), 3u);
  o.num_nodes = 2;
  o.num_procs = 2;
  Resources r = resolve_resources(o);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].slots, (std::vector<int>{0, 1}));
  o.num_nodes = 4;
  EXPECT_NE(error_of([&] { resolve_resources(o); }).find("--num_nodes 4"), std::string::npos);
  o.num_nodes = -1;
  o.num_procs = 3;  // worker-2 has 2
  EXPECT_NE(error_of([&] { resolve_resources(o); }).find("worker-2"), std::string::npos);
  o.num_procs = 1;
  o.include = "worker-0";
  EXPECT_NE(error_of([&] { resolve_resources(o); }).find("cannot be combined"), std::string::npos);
  std::remove(path.c_str());
}

TEST(CommResources, LocalWithoutHostfile) {
  LaunchOptions o;
  o.num_procs = 3;
  const Resources r = resolve_resources(o);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].host, "localhost");
  EXPECT_EQ(r[0].slots, (std::vector<int>{0, 1, 2}));
  o.num_nodes = 2;
  EXPECT_NE(error_of([&] { resolve_resources(o); }).find("hostfile"), std::string::npos);
}

TEST(CommLaunchArgv, LocalRunOversubscribedAndRanksWrapped) {
  LaunchOptions o;
  const int n = int(std::thread::hardware_concurrency()) + 2;  // more ranks than cores
  const Resources local = {{"localhost", [&] {
                              std::vector<int> s;
                              for (int i = 0; i < n; ++i) s.push_back(i);
                              return s;
                            }()}};
  const auto argv = build_mpirun_argv(o, local, {"./train", "--steps", "10"});
  EXPECT_EQ(argv[0], "mpirun");
  EXPECT_EQ(contains(argv, "--allow-run-as-root"), geteuid() == 0);
  EXPECT_TRUE(contains(argv, "--oversubscribe"));
  EXPECT_TRUE(contains(argv, "mpi_yield_when_idle"));
  EXPECT_TRUE(contains(argv, "--enable-recovery"));
  EXPECT_TRUE(contains(argv, "MASTER_ADDR=127.0.0.1"));
  EXPECT_TRUE(contains(argv, "MASTER_PORT=29500"));
  EXPECT_FALSE(contains(argv, "--host"));
  const int np = index_of(argv, "-np");
  ASSERT_GE(np, 0);
  EXPECT_EQ(argv[size_t(np) + 1], std::to_string(n));
  EXPECT_EQ(argv[size_t(np) + 2], "/bin/sh");
  EXPECT_NE(argv[size_t(np) + 4].find("RANK="), std::string::npos);
  EXPECT_EQ(argv[size_t(np) + 6], "");  // all slots from 0: CUDA_VISIBLE_DEVICES left alone
  EXPECT_EQ(std::vector<std::string>(argv.end() - 3, argv.end()), (std::vector<std::string>{"./train", "--steps", "10"}));
}

TEST(CommLaunchArgv, OneAppContextPerHost) {
  LaunchOptions o;
  o.master_port = 1234;
  o.mpirun_args = {"--mca", "btl_tcp_if_include", "eth0"};
  const Resources r = filter_resources(two_hosts(), "worker-0:1,3@worker-1", "");
  const auto argv = build_mpirun_argv(o, r, {"prog"});
  EXPECT_TRUE(contains(argv, "MASTER_ADDR=worker-0"));
  EXPECT_TRUE(contains(argv, "MASTER_PORT=1234"));
  EXPECT_TRUE(contains(argv, "btl_tcp_if_include"));
  EXPECT_FALSE(contains(argv, "--oversubscribe"));
  EXPECT_TRUE(contains(argv, "worker-0:2"));
  EXPECT_TRUE(contains(argv, "worker-1:4"));
  EXPECT_TRUE(contains(argv, ":"));
  EXPECT_TRUE(contains(argv, "1,3"));  // CUDA_VISIBLE_DEVICES of worker-0's ranks
  EXPECT_LT(index_of(argv, "worker-0:2"), index_of(argv, "worker-1:4"));
}

TEST(CommLaunch, ReturnsTheFailingRanksStatus) {
  LaunchOptions o;
  o.num_procs = 3;
  EXPECT_EQ(launch_processes(o, {"/bin/sh", "-c", "exit 0"}), 0);
  EXPECT_EQ(launch_processes(o, {"/bin/sh", "-c", "if [ \"$RANK\" = 1 ]; then exit 3; fi"}), 3);
  EXPECT_EQ(launch_processes(o, {"/bin/sh", "-c", "if [ \"$RANK\" = 2 ]; then kill -9 $$; fi"}), 137);
  EXPECT_EQ(launch_processes(o, {"/nonexistent/program"}), 127);
}

TEST(CommLaunch, SetsTheRankEnvironment) {
  LaunchOptions o;
  o.num_procs = 3;
  o.master_port = 29555;
  const std::string check =
      "[ \"$WORLD_SIZE\" = 3 ] && [ \"$RANK\" = \"$OMPI_COMM_WORLD_RANK\" ] && [ \"$LOCAL_RANK\" = \"$RANK\" ] && "
      "[ \"$LOCAL_SIZE\" = 3 ] && [ \"$MASTER_ADDR\" = 127.0.0.1 ] && [ \"$MASTER_PORT\" = 29555 ]";
  EXPECT_EQ(launch_processes(o, {"/bin/sh", "-c", check}), 0);
}

TEST(CommLaunch, FailFastEndsTheOthers) {
  LaunchOptions o;
  o.num_procs = 2;
  o.fail_fast = true;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(launch_processes(o, {"/bin/sh", "-c", "if [ \"$RANK\" = 0 ]; then exit 5; fi; sleep 60"}), 5);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}
