// The gradient reducer's flat buffer (stages 0, 1) is not cleared as a whole: zero() clears the
// small slots in one launch and marks the large ones, the window's first gradient of a large
// parameter is written over the buffer (Parameter::grad_for_write), later ones add to it, and what
// no backward wrote reads as zeros. Driven as the engine's hooks drive it, on the CPU, against
// values known by construction: written, added to, handed to its parameter and left unwritten,
// never handed out, used twice (a tied weight), folded from another dtype, and windows whose
// backwards ran as a CUDA graph's replay.
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

Tensor filled(const Shape& shape, double value, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_(value);
  return t;
}

void expect_all(const Tensor& grads, const zero::ParamSlot& s, double value) {
  const Tensor part = grads.view(size_t(s.offset), {s.numel}).to(DType::f64);
  const double* p = part.data<double>();
  for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(p[i], value) << s.name << " element " << i;
}

// Slots: 0 and 2 large weights (marked), 1 and 3 small biases (cleared by zero()), 4 and 5 a
// small weight and bias after slot 3 (the three cleared as one range).
constexpr int kSlots = 6;
struct Fixture {
  std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(nn::LinearOptions{256, 256, true}),
      std::make_shared<nn::Linear>(nn::LinearOptions{256, 260, true}),
      std::make_shared<nn::Linear>(nn::LinearOptions{260, 3, true})});
  std::shared_ptr<comm::ProcessGroup> group = comm::init_process_group();
  zero::FlatLayout layout{*model, 1, 4, 1 << 22};
  zero::ZeroOptions options;
  std::unique_ptr<zero::GradReducer> reducer;
  explicit Fixture(int stage) {
    options.stage = stage;
    reducer = std::make_unique<zero::GradReducer>(layout, *group, options);
  }
  const zero::ParamSlot& slot(int i) { return layout.slots()[size_t(i)]; }
  // Every slot of gradients() holds its value in values (one per slot).
  void expect_slots(const std::vector<double>& values) {
    ASSERT_EQ(values.size(), size_t(kSlots));
    const Tensor grads = reducer->gradients();
    for (int i = 0; i < kSlots; ++i) expect_all(grads, slot(i), values[size_t(i)]);
  }
  nn::Parameter& param(int i) { return *slot(i).param; }
  bool large(int i) { return slot(i).numel >= zero::GradReducer::kMarkedSlotElements; }
  // As the engine's before_backward hook does, for one use of the parameter.
  void hand_out(int i, DType compute = DType::f32) { param(i).grad = reducer->grad_destination(i, compute); }
  // As its grad_ready hook does.
  void ready(int i) {
    reducer->grad_ready(i);
    param(i).grad = Tensor();
  }
  // A backward's gradient `value` of slot i, as a product would write it: over the buffer where
  // the parameter asks for that, else added.
  void make(int i, double value, bool expect_overwrite) {
    bool overwrite = false;
    const Tensor& g = param(i).grad_for_write(overwrite);
    EXPECT_EQ(overwrite, expect_overwrite) << slot(i).name;
    if (overwrite) g.fill_(value);
    else ops::add_(g, filled(g.shape(), value));
  }
  // One window in which every slot's gradient is `value`.
  void write_all(double value) {
    reducer->zero();
    reducer->begin_backward(true);
    for (int i = 0; i < kSlots; ++i) {
      hand_out(i);
      make(i, value, large(i));
      ready(i);
    }
    reducer->finish_backward();
  }
};

TEST(GradReducer, FirstGradientsAreWrittenOverTheBufferAndTheRestReadAsZeros) {
  for (int stage : {0, 1}) {
    SCOPED_TRACE(testing::Message() << "stage " << stage);
    Fixture f(stage);
    ASSERT_EQ(f.layout.slots().size(), size_t(kSlots));
    ASSERT_TRUE(f.large(0) && !f.large(1) && f.large(2) && !f.large(3) && !f.large(4) && !f.large(5));
    f.write_all(5.0);  // the buffer now holds 5 everywhere: what a stale window leaves
    f.expect_slots({5, 5, 5, 5, 5, 5});

    f.reducer->zero();
    f.reducer->begin_backward(true);
    // Slot 0 is written (2), then a second use adds to it (a tied weight: 2 + 1).
    f.hand_out(0);
    f.make(0, 2.0, true);
    f.hand_out(0);
    EXPECT_FALSE(f.param(0).grad_unwritten) << "the second use finds it written";
    f.make(0, 1.0, false);
    f.ready(0);
    // Slot 1 (cleared by zero()) is added to by an op that can only add (a norm's weight).
    f.hand_out(1);
    ops::add_(f.param(1).grad_for_accumulate(), filled(f.param(1).shape, 3.0));
    f.ready(1);
    // Slot 2 is handed out and its backward makes no gradient of it; slots 3-5 are never handed out.
    f.hand_out(2);
    f.ready(2);
    f.reducer->finish_backward();
    f.expect_slots({3, 3, 0, 0, 0, 0});
    for (int i = 0; i < kSlots; ++i) EXPECT_FALSE(f.param(i).grad_unwritten);
  }
}

// Two micro-batches: the first writes, the second adds; a slot only the second one reaches is
// written by it.
TEST(GradReducer, AWindowOfMicroBatchesAddsAfterTheFirstWrite) {
  Fixture f(0);
  f.write_all(7.0);
  f.reducer->zero();
  f.reducer->begin_backward(false);
  for (int i : {0, 1}) {
    f.hand_out(i);
    f.make(i, 1.0, f.large(i));
    f.ready(i);
  }
  f.reducer->finish_backward();
  f.reducer->begin_backward(true);  // the engine's zero() comes only before a window's first
  for (int i : {0, 1, 2}) {
    f.hand_out(i);
    f.make(i, i == 2 ? 4.0 : 1.0, i == 2);
    f.ready(i);
  }
  f.reducer->finish_backward();
  f.expect_slots({2, 2, 4, 0, 0, 0});
}

// A compute dtype other than the buffer's: the workspace's first fold is written over the slot.
TEST(GradReducer, AWorkspacesFirstFoldIsWrittenOverTheSlot) {
  Fixture f(0);
  f.write_all(9.0);
  f.reducer->zero();
  f.reducer->begin_backward(true);
  f.hand_out(0, DType::f64);
  ops::add_(f.param(0).grad_for_accumulate(), filled(f.param(0).shape, 2.0, DType::f64));
  f.ready(0);
  f.reducer->finish_backward();
  f.expect_slots({2, 0, 0, 0, 0, 0});
}

// Gradients read between zero() and any backward are zeros. A window whose backwards were a
// replay keeps what the replay's kernels wrote, and the window after it starts cleared again.
TEST(GradReducer, ReadsBeforeABackwardAreZerosAndReplayedWindowsAreKept) {
  Fixture read(0);
  read.write_all(6.0);
  read.reducer->zero();
  read.expect_slots({0, 0, 0, 0, 0, 0});

  Fixture f(0);
  f.write_all(6.0);
  f.reducer->zero();                      // as train_batch does before launching the graph
  f.reducer->gradients().fill_(8.0);      // what the replay's kernels write
  f.reducer->backward_replayed();
  f.expect_slots({8, 8, 8, 8, 8, 8});
  f.reducer->zero();                      // the next window, after the step
  f.expect_slots({0, 0, 0, 0, 0, 0});
}

}  // namespace
}  // namespace zt
