#include "zt/comm/comm_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../launcher/device_info.hpp"
#include "zt/comm/comms_logger.hpp"
#include "zt/core/error.hpp"
#include "zt/core/timer.hpp"

namespace zt::comm {

namespace {

// nccl-tests' type names.
const char* nccl_type_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "float";
    case DType::f64: return "double";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "half";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::i8: return "int8";
    case DType::u8: return "uint8";
    case DType::b8: return "bool";
  }
  return "?";
}

bool has_redop(const std::string& op) { return op == "all_reduce" || op == "reduce_scatter" || op == "reduce"; }
bool has_root(const std::string& op) { return op == "broadcast" || op == "reduce"; }
bool chunked(const std::string& op) { return op == "all_gather" || op == "reduce_scatter" || op == "all_to_all"; }

// Element i of rank r's input: small integers, exact in every dtype and in sums over up to 16
// ranks, so that the check is exact.
float input_value(int r, int64_t i) { return float((r + i) % 8 + 1); }

Tensor make_input(int rank, int64_t n, DType dtype, Device device) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = input_value(rank, i);
  Tensor host = Tensor::from_floats({n}, v, dtype);
  return device.is_cpu() ? host : host.to(device);
}

double reduce_over_ranks(ReduceOp op, int n, int64_t i, DType dtype) {
  double acc = input_value(0, i);
  for (int r = 1; r < n; ++r) {
    const double v = input_value(r, i);
    acc = op == ReduceOp::max ? std::max(acc, v) : op == ReduceOp::min ? std::min(acc, v) : acc + v;
  }
  if (op == ReduceOp::avg) acc = dtype_is_float(dtype) ? acc / n : std::trunc(acc / n);
  return acc;
}

int64_t count_wrong(const Tensor& got, const std::function<double(int64_t)>& want, DType dtype) {
  const std::vector<float> v = got.to(Device::cpu()).to_floats();
  const double rel = dtype == DType::bf16 ? 1e-2 : dtype == DType::f16 ? 1e-3 : 1e-6;
  int64_t wrong = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double w = want(int64_t(i));
    if (std::abs(double(v[i]) - w) > rel * std::abs(w)) ++wrong;
  }
  return wrong;
}

// The buffers of one op at one size, and how to run and check it.
struct Case {
  Tensor in, out;
  int64_t chunk = 0;  // per-rank elements of chunked ops
};

Case make_case(const std::string& op, int64_t count, int n, int rank, const CommBenchOptions& o) {
  Case c;
  if (chunked(op)) {
    c.chunk = count / n;
    const int64_t total = c.chunk * n;
    if (op == "all_gather") {
      c.in = make_input(rank, c.chunk, o.dtype, o.device);
      c.out = Tensor::zeros({total}, o.dtype, o.device);
    } else if (op == "reduce_scatter") {
      c.in = make_input(rank, total, o.dtype, o.device);
      c.out = Tensor::zeros({c.chunk}, o.dtype, o.device);
    } else {
      c.in = make_input(rank, total, o.dtype, o.device);
      c.out = Tensor::zeros({total}, o.dtype, o.device);
    }
  } else {
    c.in = make_input(rank, count, o.dtype, o.device);
    if (op == "sendrecv") c.out = Tensor::zeros({count}, o.dtype, o.device);
  }
  return c;
}

std::vector<Work> launch(ProcessGroup& g, const std::string& op, Case& c, const CommBenchOptions& o) {
  if (op == "all_reduce") return {g.all_reduce(c.in, o.redop)};
  if (op == "all_gather") return {g.all_gather(c.out, c.in)};
  if (op == "reduce_scatter") return {g.reduce_scatter(c.out, c.in, o.redop)};
  if (op == "broadcast") return {g.broadcast(c.in, o.root)};
  if (op == "reduce") return {g.reduce(c.in, o.root, o.redop)};
  if (op == "all_to_all") return {g.all_to_all(c.out, c.in)};
  if (op == "sendrecv") {
    // nccl-tests' sendrecv: each rank sends to the next and receives from the previous.
    const int n = g.size(), r = g.rank();
    return {g.send(c.in, (r + 1) % n), g.recv(c.out, (r + n - 1) % n)};
  }
  ZT_THROW("zt bench comm: unknown op '", op,
           "' (expected all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all or sendrecv)");
}

int64_t check_case(ProcessGroup& g, const std::string& op, const Case& c, const CommBenchOptions& o) {
  const int n = g.size(), r = g.rank();
  const DType dt = o.dtype;
  if (op == "all_reduce") return count_wrong(c.in, [&](int64_t i) { return reduce_over_ranks(o.redop, n, i, dt); }, dt);
  if (op == "reduce") {
    if (r != o.root) return 0;
    return count_wrong(c.in, [&](int64_t i) { return reduce_over_ranks(o.redop, n, i, dt); }, dt);
  }
  if (op == "broadcast") return count_wrong(c.in, [&](int64_t i) { return double(input_value(o.root, i)); }, dt);
  if (op == "all_gather")
    return count_wrong(c.out, [&](int64_t i) { return double(input_value(int(i / c.chunk), i % c.chunk)); }, dt);
  if (op == "reduce_scatter")
    return count_wrong(c.out, [&](int64_t i) { return reduce_over_ranks(o.redop, n, r * c.chunk + i, dt); }, dt);
  if (op == "all_to_all")
    return count_wrong(
        c.out, [&](int64_t i) { return double(input_value(int(i / c.chunk), r * c.chunk + i % c.chunk)); }, dt);
  if (op == "sendrecv") return count_wrong(c.out, [&](int64_t i) { return double(input_value((r + n - 1) % n, i)); }, dt);
  return 0;
}

// The sum (or mean) of one value over the group's ranks, through the host backend.
double sum_over_ranks(ProcessGroup& g, double v) {
  Tensor t = Tensor::empty({1}, DType::f64);
  t.data<double>()[0] = v;
  g.all_reduce(t, ReduceOp::sum).wait();
  return t.data<double>()[0];
}

}  // namespace

std::vector<CommBenchResult> run_comm_bench(ProcessGroup& g, const CommBenchOptions& o,
                                            const std::function<void(const CommBenchResult&)>& on_result) {
  ZT_CHECK(o.min_bytes > 0 && o.min_bytes <= o.max_bytes, "zt bench comm: need 0 < minbytes <= maxbytes, got ",
           o.min_bytes, " and ", o.max_bytes);
  ZT_CHECK(o.step_factor > 1.0, "zt bench comm: the step factor must exceed 1, got ", o.step_factor);
  ZT_CHECK(o.iters > 0 && o.warmup_iters >= 0, "zt bench comm: iterations must be positive");
  ZT_CHECK(o.root >= 0 && o.root < g.size(), "zt bench comm: root ", o.root, " is not a rank of ", g.describe());
  const int n = g.size();
  const size_t esize = dtype_size(o.dtype);
  std::vector<CommBenchResult> results;
  for (const std::string& op : o.ops) {
    for (double s = double(o.min_bytes); s <= double(o.max_bytes) * (1 + 1e-9); s *= o.step_factor) {
      const int64_t count = std::max<int64_t>(1, int64_t(s) / int64_t(esize));
      if (chunked(op) && count / n == 0) continue;  // too small to give every rank an element
      Case c = make_case(op, count, n, g.rank(), o);
      CommBenchResult r;
      r.op = op;
      r.count = chunked(op) ? count / n * n : count;
      r.bytes = size_t(r.count) * esize;
      r.dtype = nccl_type_name(o.dtype);
      r.redop = has_redop(op) ? reduce_op_name(o.redop) : "none";
      r.root = has_root(op) ? o.root : -1;
      // Host collectives run one at a time (MPI forbids concurrent ops on one buffer); device
      // ones queue on the stream back to back, as in nccl-tests, and are waited for at the end.
      const bool host = o.device.is_cpu();
      for (int i = 0; i < o.warmup_iters; ++i) wait_all(launch(g, op, c, o));
      g.barrier().wait();
      Timer timer;
      std::vector<Work> last;
      for (int i = 0; i < o.iters; ++i) {
        last = launch(g, op, c, o);
        if (host) wait_all(last);
      }
      wait_all(last);
      const double seconds = timer.elapsed_s() / o.iters;
      r.time_us = sum_over_ranks(g, seconds) / n * 1e6;
      const Bandwidth bw = comm_bandwidth(op == "sendrecv" ? "send" : op, r.bytes, r.time_us * 1e-6, n);
      r.algbw_gbs = bw.algbw_gbs;
      r.busbw_gbs = bw.busbw_gbs;
      if (o.check) {
        Case fresh = make_case(op, count, n, g.rank(), o);
        wait_all(launch(g, op, fresh, o));
        r.wrong = int64_t(sum_over_ranks(g, double(check_case(g, op, fresh, o))));
      }
      results.push_back(r);
      if (on_result) on_result(r);
    }
  }
  return results;
}

std::string comm_bench_table_header() {
  return "#\n"
         "#       size         count      type   redop    root     time   algbw   busbw #wrong\n"
         "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)       \n";
}

std::string comm_bench_table_row(const CommBenchResult& r) {
  char buf[256];
  const std::string wrong = r.wrong < 0 ? "N/A" : std::to_string(r.wrong);
  std::snprintf(buf, sizeof buf, "%12zu  %12lld  %8s  %6s  %6d  %7.2f  %6.2f  %6.2f  %5s\n", r.bytes, (long long)r.count,
                r.dtype.c_str(), r.redop.c_str(), r.root, r.time_us, r.algbw_gbs, r.busbw_gbs, wrong.c_str());
  return buf;
}

BenchContext bench_context(const ProcessGroup& group, const CommBenchOptions& options, const std::string& commit) {
  BenchContext c;
  c.backend = options.device.is_cpu() ? group.backend_name().substr(0, group.backend_name().find('+')) : "nccl";
  c.world_size = group.size();
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  c.host = host;
  if (options.device.is_cuda()) {
    c.device = str(options.device.name(), ": ", local_cuda_device_name(options.device.index));
  } else {
    std::string model;
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
      if (line.rfind("model name", 0) == 0) {
        model = line.substr(line.find(':') + 2);
        break;
      }
    c.device = str("cpu: ", model.empty() ? "unknown" : model, ", ", std::thread::hardware_concurrency(), " cores");
  }
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  c.date = date;
  c.commit = commit;
  c.iters = options.iters;
  c.warmup_iters = options.warmup_iters;
  return c;
}

std::string comm_bench_json(const CommBenchResult& r, const BenchContext& c) {
  nlohmann::ordered_json j;
  j["bench"] = "comm";
  j["op"] = r.op;
  j["backend"] = c.backend;
  j["world_size"] = c.world_size;
  j["bytes"] = r.bytes;
  j["count"] = r.count;
  j["dtype"] = r.dtype;
  j["redop"] = r.redop;
  j["root"] = r.root;
  j["time_us"] = std::round(r.time_us * 100) / 100;
  j["algbw_gbs"] = std::round(r.algbw_gbs * 1e4) / 1e4;
  j["busbw_gbs"] = std::round(r.busbw_gbs * 1e4) / 1e4;
  j["wrong"] = r.wrong;
  j["iters"] = c.iters;
  j["warmup_iters"] = c.warmup_iters;
  j["host"] = c.host;
  j["device"] = c.device;
  j["date"] = c.date;
  j["commit"] = c.commit;
  return j.dump();
}

size_t parse_byte_size(const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  ZT_CHECK(used > 0 && v >= 0, "'", text, "' is not a byte size (examples: 8, 64K, 256M, 1G)");
  const std::string unit = text.substr(used);
  double scale = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") scale = 1024.0;
  else if (unit == "M" || unit == "m" || unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "g" || unit == "GiB") scale = 1024.0 * 1024 * 1024;
  else ZT_CHECK(unit.empty() || unit == "B", "'", text, "': unknown unit '", unit, "' (use K, M or G)");
  return size_t(v * scale);
}

}  // namespace zt::comm
