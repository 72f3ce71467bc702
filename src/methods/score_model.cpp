#include "methods/score_model.h"

#include <fmt/format.h>

#include "config/config.h"
#include "models/mlp_score.h"
#include "util/error.h"

namespace dualign::methods {

int64_t ScoreModel::num_parameters() {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

namespace {

class MlpScoreModel : public ScoreModel {
 public:
  explicit MlpScoreModel(models::ScoreMLPConfig cfg) : net_(cfg) {}
  torch::Tensor forward(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels) override {
    return labels.defined() ? net_->forward(x_t, t, labels) : net_->forward(x_t, t);
  }
  torch::nn::Module& module() override { return *net_; }
  std::string describe() const override {
    const auto& c = net_->config();
    return fmt::format("ScoreMLP(dim={}, hidden={}, depth={}, classes={})", c.data_dim, c.hidden, c.depth,
                       c.num_classes);
  }
  std::vector<int64_t> sample_shape() const override { return {net_->config().data_dim}; }

 private:
  models::ScoreMLP net_;
};

std::shared_ptr<ScoreModel> build_mlp(const config::Section& m) {
  models::ScoreMLPConfig c;
  c.data_dim = m.get<int64_t>("data_dim");
  c.hidden = m.get<int64_t>("hidden");
  c.depth = m.get<int64_t>("depth");
  c.time_embed_dim = m.get<int64_t>("time_embed_dim", c.time_embed_dim);
  c.num_classes = m.get<int64_t>("num_classes", 0);
  m.finish({"kind"});
  return std::make_shared<MlpScoreModel>(c);
}

}  // namespace

std::shared_ptr<ScoreModel> build_score_model(const config::Section& model, const torch::Device& device) {
  auto kind = model.get<std::string>("kind");
  std::shared_ptr<ScoreModel> built;
  if (kind == "mlp") {
    built = build_mlp(model);
  } else {
    fail("config key '{}': unknown model kind '{}' (known: mlp)", model.path("kind"), kind);
  }
  built->module().to(device);
  return built;
}

}  // namespace dualign::methods
