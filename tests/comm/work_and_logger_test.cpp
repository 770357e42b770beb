// Work handles, timeouts, waiting without spinning, and the comms logger's arithmetic.
#include <gtest/gtest.h>

#include <ctime>
#include <thread>

#include "comm/host_work.hpp"
#include "comm/poll.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/comm/process_group.hpp"
#include "zt/core/error.hpp"
#include "zt/core/timer.hpp"

using namespace zt;
using namespace zt::comm;

namespace {

OpInfo info_for(double timeout_s) {
  OpInfo info;
  info.op = "all_reduce";
  info.bytes = 4096;
  info.what = "all_reduce of 4096 bytes (f32 x 1024 on cpu, sum) on group 'world' (size 3)";
  info.group_size = 3;
  info.timeout_s = timeout_s;
  return info;
}

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

TEST(CommWork, EmptyHandleIsComplete) {
  Work w;
  EXPECT_TRUE(w.is_completed());
  w.wait();
}

TEST(CommWork, TimeoutNamesOpBytesAndGroup) {
  std::string reported;
  auto work = std::make_shared<HostWork>(info_for(0.05), [&](const std::string& m) { reported = m; });
  Work w(work);
  EXPECT_FALSE(w.is_completed());
  Timer timer;
  try {
    w.wait();
    FAIL() << "wait() returned for an op that never completed";
  } catch (const Error& e) {
    const std::string m = e.message();
    EXPECT_NE(m.find("all_reduce of 4096 bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("group 'world' (size 3)"), std::string::npos) << m;
    EXPECT_NE(m.find("did not complete within 0.05 s"), std::string::npos) << m;
  }
  EXPECT_GE(timer.elapsed_s(), 0.04);
  EXPECT_LT(timer.elapsed_s(), 2.0);
  EXPECT_TRUE(w.is_completed());       // finished, by failing
  EXPECT_EQ(reported.empty(), false);  // the backend heard of it
  EXPECT_FALSE(work->complete());      // a late completion changes nothing
  EXPECT_THROW(w.wait(), Error);
}

TEST(CommWork, CompletedFromAnotherThread) {
  auto work = std::make_shared<HostWork>(info_for(10), nullptr);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    work->complete();
  });
  const double cpu0 = thread_cpu_s();
  Work(work).wait();
  EXPECT_LT(thread_cpu_s() - cpu0, 0.01);  // the waiter slept
  t.join();
}

TEST(CommWork, WaitAllRethrowsTheFirstFailure) {
  auto failed = std::make_shared<HostWork>(info_for(10), nullptr);
  failed->fail("boom");
  EXPECT_THROW(wait_all({Work(), Work(failed), Work()}), Error);
}

TEST(CommPoll, WaitingDoesNotSpin) {
  PollBackoff backoff;
  const double cpu0 = thread_cpu_s();
  Timer timer;
  while (timer.elapsed_s() < 0.2) backoff.pause();
  EXPECT_LT(thread_cpu_s() - cpu0, 0.05) << "200 ms of polling used too much CPU";
}

TEST(CommTimeout, FromEnvironment) {
  setenv("ZT_COMM_TIMEOUT_S", "2.5", 1);
  EXPECT_DOUBLE_EQ(default_comm_timeout_s(), 2.5);
  setenv("ZT_COMM_TIMEOUT_S", "-1", 1);
  EXPECT_THROW(default_comm_timeout_s(), Error);
  setenv("ZT_COMM_TIMEOUT_S", "soon", 1);
  EXPECT_THROW(default_comm_timeout_s(), Error);
  unsetenv("ZT_COMM_TIMEOUT_S");
  EXPECT_DOUBLE_EQ(default_comm_timeout_s(), 600.0);
}

TEST(CommReduceOp, RoundTrip) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::avg, ReduceOp::max, ReduceOp::min})
    EXPECT_EQ(reduce_op_from_name(reduce_op_name(op)), op);
  EXPECT_THROW(reduce_op_from_name("prod"), Error);
}

TEST(CommsLogger, NcclTestsBandwidthFormulas) {
  // 1 GB in 1 s on 4 ranks.
  EXPECT_DOUBLE_EQ(comm_bandwidth("all_reduce", 1000000000, 1.0, 4).algbw_gbs, 1.0);
  EXPECT_DOUBLE_EQ(comm_bandwidth("all_reduce", 1000000000, 1.0, 4).busbw_gbs, 1.5);
  EXPECT_DOUBLE_EQ(comm_bandwidth("all_gather", 1000000000, 1.0, 4).busbw_gbs, 0.75);
  EXPECT_DOUBLE_EQ(comm_bandwidth("reduce_scatter", 1000000000, 1.0, 4).busbw_gbs, 0.75);
  EXPECT_DOUBLE_EQ(comm_bandwidth("all_to_all", 1000000000, 1.0, 4).busbw_gbs, 0.75);
  EXPECT_DOUBLE_EQ(comm_bandwidth("broadcast", 1000000000, 1.0, 4).busbw_gbs, 1.0);
  EXPECT_DOUBLE_EQ(comm_bandwidth("reduce", 1000000000, 2.0, 4).busbw_gbs, 0.5);
  EXPECT_DOUBLE_EQ(comm_bandwidth("send", 1000000000, 1.0, 2).busbw_gbs, 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor("all_reduce", 2), 1.0);
  EXPECT_DOUBLE_EQ(busbw_factor("all_reduce", 1), 0.0);
}

TEST(CommsLogger, DeepSpeedOpNames) {
  EXPECT_EQ(canonical_comm_op("all_gather_into_tensor"), "all_gather");
  EXPECT_EQ(canonical_comm_op("reduce_scatter_tensor"), "reduce_scatter");
  EXPECT_EQ(canonical_comm_op("all_to_all_single"), "all_to_all");
  EXPECT_EQ(canonical_comm_op("isend"), "send");
  EXPECT_EQ(canonical_comm_op("all_reduce"), "all_reduce");
  EXPECT_THROW(canonical_comm_op("all_reduse"), Error);
  CommsLogger logger;
  EXPECT_THROW(logger.configure({.enabled = true, .verbose = false, .prof_all = true, .prof_ops = {"bogus"}}), Error);
}

TEST(CommsLogger, ProfilesOnlyWhatIsAsked) {
  CommsLogger logger;
  EXPECT_FALSE(logger.should_profile("all_reduce"));  // disabled by default
  logger.configure({.enabled = true, .verbose = false, .prof_all = true, .prof_ops = {}});
  EXPECT_TRUE(logger.should_profile("broadcast"));  // prof_all by default
  logger.configure({.enabled = true, .verbose = false, .prof_all = false, .prof_ops = {"reduce_scatter_tensor"}});
  EXPECT_TRUE(logger.should_profile("reduce_scatter"));
  EXPECT_TRUE(logger.should_profile("reduce_scatter_v"));
  EXPECT_FALSE(logger.should_profile("all_reduce"));
}

TEST(CommsLogger, SummaryAggregatesByOpAndSize) {
  CommsLogger logger;
  logger.configure({.enabled = true, .verbose = false, .prof_all = true, .prof_ops = {}});
  logger.record("all_reduce", 1 << 20, 0.001, 2, "g");
  logger.record("all_reduce", 1 << 20, 0.003, 2, "g");
  logger.record("all_reduce", 8, 0.0001, 2, "g");
  logger.record("all_gather", 4096, 0.0002, 2, "g");
  const auto rows = logger.stats();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].op, "all_gather");
  EXPECT_EQ(rows[1].op, "all_reduce");
  EXPECT_EQ(rows[1].bytes, 8u);
  EXPECT_EQ(rows[2].count, 2);
  EXPECT_NEAR(rows[2].total_s, 0.004, 1e-12);
  // Average of the per-call bandwidths: (1.048576 / 0.001 + 1.048576 / 0.003) / 2 GB/s.
  EXPECT_NEAR(rows[2].algbw_sum_gbs / 2, (1.048576 + 1.048576 / 3) / 2, 1e-9);
  const std::string table = logger.summary_table();
  EXPECT_NE(table.find("1.0 MiB"), std::string::npos) << table;
  EXPECT_NE(table.find("Avg Latency(ms)"), std::string::npos) << table;
  EXPECT_NE(table.find("busbw_avg (GB/s)"), std::string::npos) << table;
  EXPECT_EQ(format_bytes(8), "8 B");
  EXPECT_EQ(format_bytes(256u << 20), "256.0 MiB");
}
