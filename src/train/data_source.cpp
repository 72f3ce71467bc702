#include "train/data_source.h"

#include "config/config.h"
#include "data/gmm.h"
#include "train/h5_source.h"
#include "util/error.h"
#include "util/seed.h"

namespace dualign::train {

data::Batch ShardSpec::identity(int64_t step, int64_t micro) const {
  data::Batch b;
  b.step = step;
  b.micro = micro;
  b.seed = derive_seed(seed, "batch", {step, micro});
  b.global_size = global_micro_batch;
  b.offset = local_offset();
  return b;
}

namespace {

// Exact samples from a Gaussian mixture: the global micro-batch is drawn from the stream (seed, step, micro)
// and sliced, so any number of ranks sees the same global batch. With `groups` (one id per component) each row
// also carries the group of the component it came from (Batch::group): several datasets in one stream.
class GmmSource : public DataSource {
 public:
  GmmSource(data::Gmm gmm, std::vector<int64_t> groups, ShardSpec shard)
      : gmm_(std::move(gmm)), groups_(std::move(groups)), shard_(shard) {}

  data::Batch next(int64_t step, int64_t micro) override {
    data::Batch b = shard_.identity(step, micro);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(b.seed, "data"));
    if (groups_.empty()) {
      auto all = gmm_.sample(shard_.global_micro_batch, gen);
      b.x = all.narrow(0, b.offset, shard_.local_size()).to(shard_.device);
      return b;
    }
    // The same draws as Gmm::sample, keeping the component of each row.
    const int64_t n = shard_.global_micro_batch;
    auto k = at::multinomial(gmm_.weights, n, /*replacement=*/true, gen);
    auto noise = at::normal(0.0, 1.0, {n, gmm_.dim()}, gen).to(torch::kFloat64);
    auto all = (gmm_.means.index_select(0, k) + gmm_.std * noise).to(torch::kFloat32);
    auto group = torch::tensor(groups_, torch::kInt64).index_select(0, k);
    b.x = all.narrow(0, b.offset, shard_.local_size()).to(shard_.device);
    b.group = group.narrow(0, b.offset, shard_.local_size()).to(shard_.device);
    return b;
  }

 private:
  data::Gmm gmm_;
  std::vector<int64_t> groups_;  // component -> group id; empty: no groups
  ShardSpec shard_;
};

// No data, only the batch identity (step, micro, seed, this rank's slice of global_micro_batch): for methods that
// sample from the policy itself (constrained alignment). x is an empty [local, 0] tensor, so local_size() works.
class NoDataSource : public DataSource {
 public:
  explicit NoDataSource(ShardSpec shard) : shard_(shard) {}

  data::Batch next(int64_t step, int64_t micro) override {
    data::Batch b = shard_.identity(step, micro);
    b.x = torch::empty({shard_.local_size(), 0}, torch::TensorOptions().device(shard_.device));
    return b;
  }

 private:
  ShardSpec shard_;
};

data::Gmm read_gmm(const config::Section& data) {
  auto means = data.get<std::vector<std::vector<double>>>("means");
  auto weights = data.get<std::vector<double>>("weights");
  if (means.size() != weights.size())
    fail("config keys '{}' and '{}': {} means but {} weights", data.path("means"), data.path("weights"), means.size(),
         weights.size());
  return data::Gmm(means, weights, data.get<double>("std"));
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const config::Section& data, const ShardSpec& shard) {
  auto kind = data.get<std::string>("kind");
  if (kind == "gmm") {
    auto gmm = read_gmm(data);
    auto groups = data.get<std::vector<int64_t>>("groups", {});
    data.finish({"kind"});
    if (!groups.empty() && static_cast<int64_t>(groups.size()) != gmm.means.size(0))
      fail("config key '{}': {} group ids for {} mixture components", data.path("groups"), groups.size(),
           gmm.means.size(0));
    for (int64_t g : groups)
      if (g < 0) fail("config key '{}': group ids must be >= 0, got {}", data.path("groups"), g);
    return std::make_unique<GmmSource>(std::move(gmm), std::move(groups), shard);
  }
  if (kind == "h5") return make_h5_source(data, shard);
  if (kind == "none") {
    data.finish();
    return std::make_unique<NoDataSource>(shard);
  }
  fail("config key '{}': unknown data kind '{}' (known: gmm, h5, none)", data.path("kind"), kind);
}

}  // namespace dualign::train
