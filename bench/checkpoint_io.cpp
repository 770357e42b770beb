// Checkpoint save and load time for a model's full training state (f32 master weights and AdamW
// moments), against a plain sequential write (with fsync) and read of the same bytes by every
// rank in the same run. Page-cache copies of every file are dropped (posix_fadvise) before each
// read, so reads come from the disk as far as the kernel allows.
// Usage: mpirun -np N bench_checkpoint_io [model] [stage] [dir]    prints one JSON line (rank 0)
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zt/comm/process_group.hpp"
#include "zt/engine/checkpoint.hpp"
#include "zt/engine/engine.hpp"
#include "zt/models/builtin.hpp"
#include "zt/models/causal_lm.hpp"

namespace fs = std::filesystem;
using namespace zt;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void drop_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void drop_cache_tree(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) drop_cache(e.path().string());
}

// Collective: seconds from a barrier to the last rank's end.
template <typename F>
double timed(comm::ProcessGroup& g, F&& f) {
  g.barrier().wait();
  const double t0 = now_s();
  f();
  g.barrier().wait();
  return now_s() - t0;
}

void plain_write(const std::string& path, size_t bytes) {
  std::vector<char> chunk(64 << 20, 1);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ZT_CHECK(fd >= 0, "cannot create ", path);
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(chunk.size(), bytes - done);
    ZT_CHECK(::write(fd, chunk.data(), n) == ssize_t(n), "write to ", path, " failed");
    done += n;
  }
  ::fsync(fd);
  ::close(fd);
}

void plain_read(const std::string& path) {
  std::vector<char> chunk(64 << 20);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ZT_CHECK(fd >= 0, "cannot open ", path);
  while (::read(fd, chunk.data(), chunk.size()) > 0) {
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_name = argc > 1 ? argv[1] : "gpt2-medium";
  const int stage = argc > 2 ? std::atoi(argv[2]) : 1;
  const std::string dir = argc > 3 ? argv[3] : "/tmp/zt_bench_checkpoint";
  try {
    auto world = comm::init_process_group();
    const int rank = world->rank(), n = world->size();
    auto model = models::build_causal_lm(models::builtin_config(model_name));
    model->init_weights(1);
    engine::Config c;
    c.train_micro_batch_size_per_gpu = 1;
    c.gradient_accumulation_steps = 1;
    c.train_batch_size = n;
    c.optimizer = engine::OptimizerConfig{"AdamW", {{"lr", 1e-4}}};
    c.zero.stage = stage;
    auto engine = engine::initialize(model, std::make_shared<nn::CrossEntropyLoss>(), c, nullptr, world).engine;
    // One step, so that the moments exist.
    Tensor ids = Tensor::from_ints({1, 8}, {1, 2, 3, 4, 5, 6, 7, 8});
    engine->forward(ids, ids);
    engine->backward();
    engine->step();
    if (rank == 0) {
      fs::remove_all(dir);
      fs::create_directories(dir);
    }
    world->barrier().wait();

    const double save_s = timed(*world, [&] { engine->save_checkpoint(dir, "bench"); });
    const std::string shard = dir + "/bench/" + engine::checkpoint_shard_name(rank, n);
    const auto shard_bytes = size_t(fs::file_size(shard));
    Tensor total = Tensor::zeros({1}, DType::i64);
    total.data<int64_t>()[0] = int64_t(shard_bytes);
    world->all_reduce(total, comm::ReduceOp::sum).wait();
    const double bytes = double(total.data<int64_t>()[0]);
    if (rank == 0) drop_cache_tree(dir);
    drop_cache(shard);
    const double load_s = timed(*world, [&] { engine->load_checkpoint(dir); });

    const std::string plain = dir + "/plain_" + std::to_string(rank) + ".bin";
    const double write_s = timed(*world, [&] { plain_write(plain, shard_bytes); });
    drop_cache(plain);
    const double read_s = timed(*world, [&] { plain_read(plain); });
    fs::remove(plain);

    if (rank == 0) {
      const double gb = bytes / 1e9;
      nlohmann::json j{{"model", model_name},
                       {"parameters", engine->layout().parameter_count()},
                       {"stage", stage},
                       {"ranks", n},
                       {"dtype", "f32"},
                       {"checkpoint_bytes", bytes},
                       {"save_s", save_s},
                       {"save_gb_s", gb / save_s},
                       {"load_s", load_s},
                       {"load_gb_s", gb / load_s},
                       {"plain_write_fsync_s", write_s},
                       {"plain_write_gb_s", gb / write_s},
                       {"plain_read_s", read_s},
                       {"plain_read_gb_s", gb / read_s}};
      std::printf("%s\n", j.dump().c_str());
      fs::remove_all(dir);
    }
    world->barrier().wait();
    world.reset();
    comm::finalize();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_checkpoint_io: %s\n", e.what());
    return 1;
  }
  return 0;
}
