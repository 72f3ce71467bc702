#include "train/data_source.h"

#include "config/config.h"
#include "eval/gmm.h"
#include "train/h5_source.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::train {
namespace {

// Exact samples from a Gaussian mixture: the global micro-batch is drawn from the stream (seed, step, micro)
// and sliced, so any number of ranks sees the same global batch.
class GmmSource : public DataSource {
 public:
  GmmSource(eval::Gmm gmm, ShardSpec shard) : gmm_(std::move(gmm)), shard_(shard) {}

  methods::Batch next(int64_t step, int64_t micro) override {
    methods::Batch b;
    b.step = step;
    b.micro = micro;
    b.seed = derive_seed(shard_.seed, "batch", {step, micro});
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(b.seed, "data"));
    auto all = gmm_.sample(shard_.global_micro_batch, gen);
    b.global_size = shard_.global_micro_batch;
    b.offset = shard_.local_offset();
    b.x = all.narrow(0, b.offset, shard_.local_size()).to(shard_.device);
    return b;
  }

 private:
  eval::Gmm gmm_;
  ShardSpec shard_;
};

// No data, only the batch identity (step, micro, seed, this rank's slice of global_micro_batch): for methods that
// sample from the policy itself (constrained alignment). x is an empty [local, 0] tensor, so local_size() works.
class NoDataSource : public DataSource {
 public:
  explicit NoDataSource(ShardSpec shard) : shard_(shard) {}

  methods::Batch next(int64_t step, int64_t micro) override {
    methods::Batch b;
    b.step = step;
    b.micro = micro;
    b.seed = derive_seed(shard_.seed, "batch", {step, micro});
    b.global_size = shard_.global_micro_batch;
    b.offset = shard_.local_offset();
    b.x = torch::empty({shard_.local_size(), 0}, torch::TensorOptions().device(shard_.device));
    return b;
  }

 private:
  ShardSpec shard_;
};

eval::Gmm read_gmm(const config::Section& data) {
  auto means = data.get<std::vector<std::vector<double>>>("means");
  auto weights = data.get<std::vector<double>>("weights");
  if (means.size() != weights.size())
    fail("config keys '{}' and '{}': {} means but {} weights", data.path("means"), data.path("weights"), means.size(),
         weights.size());
  return eval::Gmm(means, weights, data.get<double>("std"));
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const config::Section& data, const ShardSpec& shard) {
  auto kind = data.get<std::string>("kind");
  if (kind == "gmm") {
    auto gmm = read_gmm(data);
    data.finish({"kind"});
    return std::make_unique<GmmSource>(std::move(gmm), shard);
  }
  if (kind == "h5") return make_h5_source(data, shard);
  if (kind == "none") {
    data.finish();
    return std::make_unique<NoDataSource>(shard);
  }
  fail("config key '{}': unknown data kind '{}' (known: gmm, h5, none)", data.path("kind"), kind);
}

}  // namespace dualign::train
