// Checkpoints: exact round trip of model/optimizer/RNG/cursor state, clear errors, atomic store + rotation,
// and a SIGKILL while writing that leaves the previous checkpoint loadable with `latest` naming it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "ckpt/store.h"
#include "data/h5.h"
#include "data_test_util.h"

namespace dualign {
namespace {

struct Net : torch::nn::Module {
  Net() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 8));
    bn = register_module("bn", torch::nn::BatchNorm1d(8));
    fc2 = register_module("fc2", torch::nn::Linear(8, 1));
  }
  torch::Tensor forward(torch::Tensor x) { return fc2(torch::relu(bn(fc1(x)))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

// One training step whose data and dropout-free noise come from `gen` (so RNG state matters).
double train_step(Net& net, torch::optim::AdamW& opt, at::Generator& gen) {
  auto x = torch::randn({16, 4}, gen);
  auto y = x.sum(1, true) + 0.1 * torch::randn({16, 1}, gen);
  opt.zero_grad();
  auto loss = torch::mse_loss(net.forward(x), y);
  loss.backward();
  opt.step();
  return loss.item<double>();
}

void save_training_state(ckpt::CheckpointWriter& w, Net& net, torch::optim::AdamW& opt, at::Generator& gen) {
  w.put_group("model", ckpt::module_state(net));
  w.put_group("optimizer", ckpt::adam_state(opt, net));
  w.put_group("rng", ckpt::rng_states({{"data", gen}}));
  ckpt::put_cursor(w, {2, 48}, 16);
  w.set_attr("git_sha", "abc123");
  w.put_text("config_yaml", "method: dpo\nlr: 1.0e-3\n");
}

TEST(CkptFile, ResumeIsBitwiseExact) {
  at::set_num_threads(1);
  auto path = (test::temp_dir() / "c.h5").string();
  torch::manual_seed(0);
  Net a;
  torch::optim::AdamW opt_a(a.parameters(), torch::optim::AdamWOptions(1e-2));
  auto gen_a = at::make_generator<at::CPUGeneratorImpl>(7);
  for (int i = 0; i < 3; ++i) train_step(a, opt_a, gen_a);
  {
    ckpt::CheckpointWriter w(path);
    save_training_state(w, a, opt_a, gen_a);
    w.close();
  }
  torch::manual_seed(99);  // a different initialisation that the checkpoint must overwrite
  Net b;
  torch::optim::AdamW opt_b(b.parameters(), torch::optim::AdamWOptions(1e-2));
  auto gen_b = at::make_generator<at::CPUGeneratorImpl>(0);
  ckpt::CheckpointReader r(path);
  r.load_into("model", ckpt::module_state(b));
  ckpt::load_adam_state(opt_b, b, r.group("optimizer"), r.path());
  std::map<std::string, at::Generator> gens{{"data", gen_b}};
  ckpt::restore_rng_states(gens, r.group("rng"), r.path());
  EXPECT_EQ(ckpt::get_cursor(r), (data::Cursor{2, 48}));
  EXPECT_EQ(r.attr_string("git_sha"), "abc123");
  EXPECT_EQ(r.text("config_yaml"), "method: dpo\nlr: 1.0e-3\n");
  EXPECT_EQ(r.groups(), (std::vector<std::string>{"model", "optimizer", "rng"}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(train_step(a, opt_a, gen_a), train_step(b, opt_b, gen_b)) << "step " << i;
  auto sa = ckpt::module_state(a), sb = ckpt::module_state(b);
  for (auto& [name, t] : sa) EXPECT_TRUE(torch::equal(t, sb.at(name))) << name;
}

TEST(CkptFile, MismatchedGroupsGiveClearErrors) {
  auto path = (test::temp_dir() / "c.h5").string();
  {
    ckpt::CheckpointWriter w(path);
    w.put_group("model", {{"w", torch::zeros({3, 4})}, {"b", torch::zeros({3})}, {"extra", torch::zeros({1})}});
    w.close();
  }
  ckpt::CheckpointReader r(path);
  auto w = torch::zeros({4, 4}), missing = torch::zeros({2});
  EXPECT_ERROR_MENTIONS(r.load_into("model", {{"w", w}, {"b", torch::zeros({3})}, {"gone", missing}}), path, "model",
                        "missing [gone]", "unexpected [extra]", "w (stored [3, 4], expected [4, 4])");
  EXPECT_ERROR_MENTIONS(r.load_into("model", {{"b", torch::zeros({3}, torch::kLong)}}, false), "model/b", "Float", "Long");
  EXPECT_ERROR_MENTIONS(r.group("ema"), path, "no group 'ema'");
  EXPECT_ERROR_MENTIONS(r.tensor("model", "nope"), path, "model/nope");
  EXPECT_ERROR_MENTIONS(ckpt::get_cursor(r), path, "data cursor");
  // A truncated checkpoint is an error naming the file, not a crash.
  auto dir = std::filesystem::path(path).parent_path();
  auto cut = (dir / "cut.h5").string();
  std::filesystem::copy_file(path, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 3);
  EXPECT_ERROR_MENTIONS(ckpt::CheckpointReader{cut}, cut);
  // A dataset file is not a checkpoint.
  auto other = (dir / "d.h5").string();
  h5::File::create(other).set_attr("/", "format", "images");
  EXPECT_ERROR_MENTIONS(ckpt::CheckpointReader{other}, other, "not a dualign checkpoint");
}

TEST(CkptStore, KeepsTheLastNAndPointsLatestAtTheNewest) {
  auto dir = test::temp_dir().string();
  ckpt::CheckpointStore store(dir, 2);
  EXPECT_FALSE(store.latest());
  for (int64_t step : {10, 20, 30, 40}) {
    for (int r = 0; r < 2; ++r)
      store.save_shard(step, r, 2, [&](auto& w) { w.put_group("optimizer", {{"m", torch::full({2}, r)}}); });
    store.save(step, [&](auto& w) { w.put_group("model", {{"w", torch::full({2}, step)}}); });
  }
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{30, 40}));
  EXPECT_EQ(*store.latest(), store.path(40));
  EXPECT_EQ(ckpt::CheckpointStore::resolve(dir), store.path(40));
  EXPECT_FALSE(std::filesystem::exists(store.shard_path(20, 1, 2)));
  ckpt::CheckpointReader shard(store.shard_path(40, 1, 2));
  EXPECT_EQ(shard.attr_int("rank"), 1);
  EXPECT_TRUE(torch::equal(shard.tensor("optimizer", "m"), torch::full({2}, 1)));
  EXPECT_EQ(ckpt::CheckpointReader(*store.latest()).attr_int("step"), 40);
}

TEST(CkptStore, KillDuringWritingKeepsThePreviousCheckpoint) {
  auto dir = test::temp_dir().string();
  ckpt::CheckpointStore store(dir, 3);
  auto small = torch::arange(1000, torch::kFloat);
  store.save(1, [&](auto& w) { w.put_group("model", {{"w", small}}); });
  auto big = torch::ones({16, 1 << 20});  // 64 MiB, made before fork: the child only does HDF5 I/O

  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: start checkpoint 2, write part of it, tell the parent, keep "writing" until killed.
    try {
      store.save(2, [&](auto& w) {
        w.put_tensor("model", "w", small);
        w.put_tensor("model", "big", big);
        char c = 1;
        (void)!write(ready[1], &c, 1);
        pause();
      });
    } catch (...) {
    }
    _exit(3);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  EXPECT_TRUE(std::filesystem::exists(store.path(2) + ".tmp"));  // the interrupted write
  EXPECT_FALSE(std::filesystem::exists(store.path(2)));
  ASSERT_TRUE(store.latest());
  EXPECT_EQ(*store.latest(), store.path(1));
  ckpt::CheckpointReader r(*store.latest());
  EXPECT_TRUE(torch::equal(r.tensor("model", "w"), small));
  // A truncated .tmp is not mistaken for a checkpoint, and the next save removes it.
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{1}));
  store.save(3, [&](auto& w) { w.put_group("model", {{"w", small}}); });
  EXPECT_FALSE(std::filesystem::exists(store.path(2) + ".tmp"));
  EXPECT_EQ(*store.latest(), store.path(3));
}

}  // namespace
}  // namespace dualign
