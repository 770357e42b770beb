// The gradient reducer's flat buffer (stages 0, 1) is never cleared: zero() marks each slot, the
// window's first gradient of a parameter is written over the buffer (Parameter::grad_for_write), later
// ones add to it, and what no backward wrote reads as zeros. Driven as the engine's hooks drive it,
// on the CPU, against values known by construction: written, added to, handed to its parameter
// and left unwritten, never handed out, used twice (a tied weight), folded from another dtype,
// and a window whose backwards ran as a CUDA graph's replay.
#include <gtest/gtest.h>

#include <vector>

#include "zt/comm/process_group.hpp"
#include "zt/kernels/ops.hpp"
#include "zt/nn/containers.hpp"
#include "zt/nn/layers.hpp"
#include "zt/zero/flat_layout.hpp"
#include "zt/zero/grad_reducer.hpp"

namespace zt {
namespace {

// Every element of the slot's part of the gradients.
std::vector<double> slot_values(const Tensor& grads, const zero::ParamSlot& s) {
  const Tensor part = grads.view(size_t(s.offset), {s.numel}).to(DType::f64);
  const double* p = part.data<double>();
  return std::vector<double>(p, p + s.numel);
}

Tensor filled(const Shape& shape, double value, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_(value);
  return t;
}

void expect_all(const Tensor& grads, const zero::ParamSlot& s, double value) {
  for (double v : slot_values(grads, s)) ASSERT_EQ(v, value) << s.name;
}

struct Fixture {
  std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(nn::LinearOptions{3, 4, true}),
      std::make_shared<nn::Linear>(nn::LinearOptions{4, 2, true})});
  std::shared_ptr<comm::ProcessGroup> group = comm::init_process_group();
  zero::FlatLayout layout{*model, 1, 4, 1 << 20};
  zero::ZeroOptions options;
  std::unique_ptr<zero::GradReducer> reducer;
  explicit Fixture(int stage) {
    options.stage = stage;
    reducer = std::make_unique<zero::GradReducer>(layout, *group, options);
  }
  nn::Parameter& param(int slot) { return *layout.slots()[size_t(slot)].param; }
  // As the engine's before_backward hook does, for one use of the parameter.
  void hand_out(int slot, DType compute = DType::f32) {
    param(slot).grad = reducer->grad_destination(slot, compute);
  }
  // As its grad_ready hook does.
  void ready(int slot) {
    reducer->grad_ready(slot);
    param(slot).grad = Tensor();
  }
  // One backward in which every slot's gradient is `value`, written as a product would write it.
  void write_all(double value) {
    reducer->begin_backward(true);
    for (int i = 0; i < int(layout.slots().size()); ++i) {
      hand_out(i);
      bool overwrite = false;
      const Tensor& g = param(i).grad_for_write(overwrite);
      EXPECT_TRUE(overwrite) << "the window's first gradient of " << layout.slots()[size_t(i)].name;
      g.fill_(value);
      ready(i);
    }
    reducer->finish_backward();
  }
};

TEST(GradReducer, FirstGradientsAreWrittenOverTheBufferAndTheRestReadAsZeros) {
  for (int stage : {0, 1}) {
    SCOPED_TRACE(testing::Message() << "stage " << stage);
    Fixture f(stage);
    ASSERT_EQ(f.layout.slots().size(), 4u);
    f.reducer->zero();
    f.write_all(5.0);  // the buffer now holds 5 everywhere: what a stale window leaves
    for (const auto& s : f.layout.slots()) expect_all(f.reducer->gradients(), s, 5.0);

    f.reducer->zero();
    f.reducer->begin_backward(true);
    // Slot 0 is written once (2), then a second use adds (tied: 2 + 1).
    f.hand_out(0);
    bool overwrite = false;
    f.param(0).grad_for_write(overwrite).fill_(2.0);
    EXPECT_TRUE(overwrite);
    f.hand_out(0);
    EXPECT_FALSE(f.param(0).grad_unwritten) << "the second use finds it written";
    ops::add_(f.param(0).grad_for_accumulate(), filled(f.param(0).shape, 1.0, DType::f32));
    f.ready(0);
    // Slot 1 is added to by an op that can only add (a norm's weight): cleared first, then 3.
    f.hand_out(1);
    ops::add_(f.param(1).grad_for_accumulate(), filled(f.param(1).shape, 3.0, DType::f32));
    f.ready(1);
    // Slot 2 is handed out and its backward makes no gradient of it; slot 3 is never handed out.
    f.hand_out(2);
    f.ready(2);
    f.reducer->finish_backward();
    const Tensor grads = f.reducer->gradients();
    expect_all(grads, f.layout.slots()[0], 3.0);
    expect_all(grads, f.layout.slots()[1], 3.0);
    expect_all(grads, f.layout.slots()[2], 0.0);
    expect_all(grads, f.layout.slots()[3], 0.0);
    for (int i = 0; i < 4; ++i) EXPECT_FALSE(f.param(i).grad_unwritten);
  }
}

// Two micro-batches: the first writes, the second adds; a slot only the second one reaches is
// written by it.
TEST(GradReducer, AWindowOfMicroBatchesAddsAfterTheFirstWrite) {
  Fixture f(0);
  f.reducer->zero();
  f.write_all(7.0);
  f.reducer->zero();
  f.reducer->begin_backward(false);
  for (int i : {0, 1}) {
    f.hand_out(i);
    bool overwrite = false;
    f.param(i).grad_for_write(overwrite).fill_(1.0);
    EXPECT_TRUE(overwrite);
    f.ready(i);
  }
  f.reducer->finish_backward();
  f.reducer->begin_backward(true);
  for (int i : {0, 1, 2}) {
    f.hand_out(i);
    bool overwrite = true;
    const Tensor& g = f.param(i).grad_for_write(overwrite);
    EXPECT_EQ(overwrite, i == 2) << f.layout.slots()[size_t(i)].name;
    if (overwrite) g.fill_(4.0);
    else ops::add_(g, filled(g.shape(), 1.0));
    f.ready(i);
  }
  f.reducer->finish_backward();
  const Tensor grads = f.reducer->gradients();
  expect_all(grads, f.layout.slots()[0], 2.0);
  expect_all(grads, f.layout.slots()[1], 2.0);
  expect_all(grads, f.layout.slots()[2], 4.0);
  expect_all(grads, f.layout.slots()[3], 0.0);
}

// A compute dtype other than the buffer's: the workspace's first fold is written over the slot.
TEST(GradReducer, AWorkspacesFirstFoldIsWrittenOverTheSlot) {
  Fixture f(0);
  f.reducer->zero();
  f.write_all(9.0);
  f.reducer->zero();
  f.reducer->begin_backward(true);
  f.hand_out(0, DType::f64);
  ops::add_(f.param(0).grad_for_accumulate(), filled(f.param(0).shape, 2.0, DType::f64));
  f.ready(0);
  f.reducer->finish_backward();
  expect_all(f.reducer->gradients(), f.layout.slots()[0], 2.0);
  expect_all(f.reducer->gradients(), f.layout.slots()[1], 0.0);
}

// Gradients read between zero() and any backward are zeros; after a replayed window they are the
// buffer as the replay's kernels left it (nothing cleared on the host's word).
TEST(GradReducer, ReadsBeforeABackwardAreZerosAndAReplayedWindowIsKept) {
  Fixture f(0);
  f.reducer->zero();
  f.write_all(6.0);
  f.reducer->zero();
  for (const auto& s : f.layout.slots()) expect_all(f.reducer->gradients(), s, 0.0);
  f.reducer->gradients().fill_(8.0);  // what a replay's kernels would have written
  f.reducer->zero();
  f.reducer->backward_replayed();
  for (const auto& s : f.layout.slots()) expect_all(f.reducer->gradients(), s, 8.0);
}

}  // namespace
}  // namespace zt
