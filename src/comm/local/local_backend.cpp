#include "local_backend.hpp"

#include <deque>
#include <map>
#include <mutex>

#include "zt/comm/comms_logger.hpp"
#include "zt/core/error.hpp"
#include "zt/core/timer.hpp"

namespace zt::comm {

namespace {

class LocalBackend : public Backend {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }

  Work all_reduce(const Tensor&, ReduceOp, const OpInfo& info) override { return timed(info, [] {}); }
  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp, const OpInfo& info) override {
    return timed(info, [&] { copy_unless_same(output, input); });
  }
  Work reduce_scatter_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>&, ReduceOp,
                        const OpInfo& info) override {
    return timed(info, [&] { copy_unless_same(output, input); });
  }
  Work all_gather(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    return timed(info, [&] { copy_unless_same(output, input); });
  }
  Work all_gather_v(const Tensor& output, const Tensor& input, const std::vector<int64_t>&,
                    const OpInfo& info) override {
    return timed(info, [&] { copy_unless_same(output, input); });
  }
  Work broadcast(const Tensor&, int, const OpInfo& info) override { return timed(info, [] {}); }
  Work reduce(const Tensor&, int, ReduceOp, const OpInfo& info) override { return timed(info, [] {}); }
  Work all_to_all(const Tensor& output, const Tensor& input, const OpInfo& info) override {
    return timed(info, [&] { copy_unless_same(output, input); });
  }
  Work send(const Tensor& tensor, int, int tag, const OpInfo& info) override {
    return timed(info, [&] {
      std::lock_guard<std::mutex> lock(mutex_);
      mailbox_[tag].push_back(tensor.clone());
    });
  }
  Work recv(const Tensor& tensor, int, int tag, const OpInfo& info) override {
    return timed(info, [&] {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = mailbox_.find(tag);
      ZT_CHECK(it != mailbox_.end() && !it->second.empty(), info.what,
               ": no message from this rank to itself is waiting (send before recv in a one-rank world)");
      Tensor message = std::move(it->second.front());
      it->second.pop_front();
      ZT_CHECK(message.nbytes() == tensor.nbytes(), info.what, ": the message sent holds ", message.nbytes(),
               " bytes, the receive buffer ", tensor.nbytes());
      Tensor(tensor).copy_from(message);
    });
  }
  Work barrier(const OpInfo& info) override { return timed(info, [] {}); }

  std::shared_ptr<Backend> split(int color, int, double) override {
    if (color < 0) return nullptr;
    return std::make_shared<LocalBackend>();
  }
  bool failed() const override { return false; }
  std::string failure() const override { return ""; }

 private:
  template <class F>
  Work timed(const OpInfo& info, F&& f) {
    Timer timer;
    f();
    if (info.profile) comms_logger().record(info.op, info.bytes, timer.elapsed_s(), 1, info.what);
    return Work();
  }

  static void copy_unless_same(const Tensor& output, const Tensor& input) {
    if (output.raw() == input.raw() && output.device() == input.device()) return;
    Tensor(output).copy_from(input);
  }

  std::mutex mutex_;
  std::map<int, std::deque<Tensor>> mailbox_;
};

}  // namespace

std::shared_ptr<Backend> make_local_backend() { return std::make_shared<LocalBackend>(); }

}  // namespace zt::comm
