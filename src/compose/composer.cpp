#include "compose/composer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>

#include "ckpt/checkpoint.h"
#include "ckpt/state.h"
#include "ckpt/store.h"
#include "compose/pointwise_kl.h"
#include "dist/comm.h"
#include "util/error.h"
#include "util/log.h"
#include "util/seed.h"

namespace dualign::compose {
namespace {

std::vector<std::string> component_names(const std::vector<Component>& components) {
  std::vector<std::string> names;
  for (size_t i = 0; i < components.size(); ++i) names.push_back("q" + std::to_string(i + 1));
  return names;
}

// All ranks' rows of a per-rank tensor whose row counts are Rows::share of n (equal sizes required).
torch::Tensor all_gather_rows(dist::Comm& comm, const torch::Tensor& local, int64_t n) {
  if (comm.size() == 1) return local;
  DUALIGN_CHECK(n % comm.size() == 0, "{} samples do not split evenly over {} ranks", n, comm.size());
  std::vector<int64_t> shape(local.sizes().begin(), local.sizes().end());
  shape[0] = n;
  auto out = torch::empty(shape, local.options());
  comm.all_gather(out, local.contiguous());
  return out;
}

}  // namespace

Composer::Composer(std::vector<Component> components, const diffusion::NoiseSchedule& schedule,
                   std::vector<int64_t> sample_shape, ComposeSettings settings, dist::Comm& comm,
                   torch::Device device, std::shared_ptr<models::ScoreModel> student)
    : components_(std::move(components)),
      schedule_(schedule),
      shape_(std::move(sample_shape)),
      s_(std::move(settings)),
      comm_(comm),
      device_(device),
      student_(std::move(student)),
      dual_(component_names(components_), s_.dual) {
  DUALIGN_CHECK(s_.mode == "dual" || s_.mode == "primal", "compose mode: expected dual | primal, got '{}'", s_.mode);
  DUALIGN_CHECK(s_.dual.projection == "simplex", "compose: the weights live on the simplex (projection simplex), got '{}'",
                s_.dual.projection);
  DUALIGN_CHECK(s_.n >= comm_.size(), "compose: {} samples per round for {} ranks", s_.n, comm_.size());
  if (s_.mode == "primal") {
    DUALIGN_CHECK(student_, "compose mode primal needs a student model");
    DUALIGN_CHECK(s_.mcmc_n % comm_.size() == 0 && s_.distill_batch % comm_.size() == 0,
                  "compose primal: --mcmc-n ({}) and --distill-batch ({}) must be divisible by the {} ranks", s_.mcmc_n,
                  s_.distill_batch, comm_.size());
    student_->module().train();
    optimizer_ = std::make_unique<torch::optim::Adam>(student_->parameters(), torch::optim::AdamOptions(s_.distill_lr));
  }
  maybe_resume();
}

Rows Composer::my_rows(int64_t n) const { return Rows::share(n, comm_.rank(), comm_.size()); }

torch::Tensor Composer::sample(int64_t n, uint64_t seed, const std::vector<double>& lambda) {
  auto x_T = initial_noise(n, shape_, seed, my_rows(n)).to(device_);
  if (s_.mode == "primal") {
    torch::NoGradGuard no_grad;
    student_->module().eval();
    auto x = sample_eps(model_eps(*student_, schedule_), schedule_, s_.sampler, x_T, s_.batch);
    student_->module().train();
    return x;
  }
  return sample_eps(composed_eps(components_, lambda.empty() ? dual_.lambda() : lambda), schedule_, s_.sampler, x_T,
                    s_.batch);
}

torch::Tensor Composer::sample_langevin(int64_t n, uint64_t seed, const std::vector<double>& lambda) {
  return annealed_langevin(composed_eps(components_, lambda), schedule_, s_.langevin, n, shape_, seed, my_rows(n),
                           device_);
}

torch::Tensor Composer::estimate_kl(const torch::Tensor& x0, int64_t n, uint64_t seed,
                                    const std::vector<double>& lambda, bool student_score) {
  const auto rows = my_rows(n);
  DUALIGN_CHECK(x0.size(0) == rows.length, "KL estimate: {} samples on this rank, expected {}", x0.size(0), rows.length);
  auto draws = draw_kl(schedule_, n, s_.strata, shape_, seed).rows(rows.start, rows.length);
  std::optional<EpsFn> p_eps;
  if (student_score) {
    DUALIGN_CHECK(student_, "KL estimate with the student's score, but there is no student (mode dual)");
    student_->module().eval();
    p_eps = model_eps(*student_, schedule_);
  }
  auto kl = pointwise_kl(components_, lambda, p_eps, schedule_, x0, draws, s_.batch);
  if (student_) student_->module().train();
  return kl;
}

void Composer::distill(int64_t round, RoundRecord& record) {
  const auto lambda = dual_.lambda();
  auto local = sample_langevin(s_.mcmc_n, derive_seed(s_.seed, "compose/langevin", {round}), lambda);
  auto data = all_gather_rows(comm_, local.to(torch::kCPU).contiguous(), s_.mcmc_n);  // every rank: all samples
  const auto bs = Rows::share(s_.distill_batch, comm_.rank(), comm_.size());
  auto params = student_->parameters();
  double loss_window = 0;
  int64_t window = 0;
  for (int64_t step = 0; step < s_.distill_steps; ++step) {
    // The global batch (indices, timesteps, noise) from (seed, round, step); this rank takes its rows.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(s_.seed, "compose/dsm", {round, step}));
    auto idx = at::randint(s_.mcmc_n, {s_.distill_batch}, gen, torch::kInt64).narrow(0, bs.start, bs.length);
    auto t = at::randint(schedule_.num_train_timesteps(), {s_.distill_batch}, gen, torch::kInt64)
                 .narrow(0, bs.start, bs.length);
    std::vector<int64_t> shape{s_.distill_batch};
    shape.insert(shape.end(), shape_.begin(), shape_.end());
    auto eps = at::normal(0.0, 1.0, shape, gen).narrow(0, bs.start, bs.length).to(device_);
    auto x0 = data.index_select(0, idx).to(device_);
    t = t.to(device_);
    auto x_t = schedule_.add_noise(x0, eps, t);
    auto out = student_->forward(x_t, t, {});
    // Sum over this rank's rows / global batch: the all-reduced sum is the global mean.
    auto loss = (out - schedule_.target(x0, eps, t)).pow(2).flatten(1).mean(1).sum() / double(s_.distill_batch);
    optimizer_->zero_grad();
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : params) grads.push_back(p.grad().defined() ? p.grad().flatten() : torch::zeros({p.numel()}, p.options()));
    auto flat = torch::cat(grads).contiguous();
    if (comm_.size() > 1) comm_.all_reduce(flat);
    int64_t offset = 0;
    for (auto& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.grad().copy_(flat.narrow(0, offset, p.numel()).view_as(p));
      offset += p.numel();
    }
    optimizer_->step();
    double global_loss = comm_.size() > 1 ? comm_.all_reduce_double(loss.item<double>()) : loss.item<double>();
    if (step >= s_.distill_steps - 50) {
      loss_window += global_loss;
      ++window;
    }
  }
  record.dsm_loss = window ? loss_window / double(window) : 0;
}

void Composer::run(const std::function<void(const RoundRecord&)>& on_round) {
  const size_t m = components_.size();
  for (int64_t round = rounds_done(); round < s_.rounds; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    RoundRecord rec;
    rec.round = round;
    rec.lambda = dual_.lambda();
    if (s_.mode == "primal") distill(round, rec);
    auto x0 = sample(s_.n, derive_seed(s_.seed, "compose/x_T", {round}));
    auto kl = estimate_kl(x0, s_.n, derive_seed(s_.seed, "compose/kl", {round}), rec.lambda,
                          s_.mode == "primal");  // [rows, m]
    std::vector<double> sumsq(m);
    for (size_t i = 0; i < m; ++i) {
      auto col = kl.select(1, int64_t(i));
      dual_.add(i, col.sum().item<double>(), double(col.size(0)));
      sumsq[i] = col.pow(2).sum().item<double>();
    }
    if (comm_.size() > 1) sumsq = comm_.all_reduce_doubles(sumsq);
    auto logged = dual_.end_step(dual_.updates() + 1, comm_);  // `every` = 1 for composition: one update per round
    DUALIGN_CHECK(!logged.empty(), "compose: the dual step did not run (dual.every must be 1)");
    for (size_t i = 0; i < m; ++i) {
      const double mean = logged.at("dual/q" + std::to_string(i + 1) + "/value");
      const double var = std::max(0.0, sumsq[i] / double(s_.n) - mean * mean) * double(s_.n) / double(s_.n - 1);
      rec.kl.push_back(mean);
      rec.kl_se.push_back(std::sqrt(var / double(s_.n)));
    }
    rec.lambda_next = dual_.lambda();
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    history_.push_back(rec);
    if (!s_.checkpoint_dir.empty()) save(round + 1);
    if (on_round) on_round(rec);
  }
}

void Composer::save(int64_t rounds) {
  if (comm_.rank() == 0) {
    ckpt::CheckpointStore store(s_.checkpoint_dir, 2);
    store.save(rounds, [&](ckpt::CheckpointWriter& w) {
      w.put_group("dual", dual_.state());
      if (student_) {
        w.put_group("student", ckpt::module_state(student_->module()));
        w.put_group("optimizer", ckpt::adam_state(*optimizer_, student_->module()));
      }
      w.set_attr("mode", s_.mode);
      w.set_attr("rounds", rounds);
      w.put_text("history_json", history_json(history_));
    });
  }
  comm_.barrier();  // `latest` is complete before any rank goes on (and before a resume could read it)
}

void Composer::maybe_resume() {
  if (s_.checkpoint_dir.empty()) return;
  ckpt::CheckpointStore store(s_.checkpoint_dir, 2);
  auto latest = store.latest();
  if (!latest) return;
  ckpt::CheckpointReader r(*latest);
  DUALIGN_CHECK(r.has_attr("mode") && r.attr_string("mode") == s_.mode,
                "checkpoint {} is from a compose run in mode '{}', this run is mode '{}' (use another --out)", *latest,
                r.has_attr("mode") ? r.attr_string("mode") : "?", s_.mode);
  r.load_into("dual", dual_.state());
  if (student_) {
    r.load_into("student", ckpt::module_state(student_->module()));
    ckpt::load_adam_state(*optimizer_, student_->module(), r.group("optimizer"), *latest);
  }
  history_ = history_from_json(r.text("history_json"));
  log::info("compose: resumed from {} after {} rounds, λ = {}", *latest, history_.size(), fmt::format("{}", dual_.lambda()));
}

std::string history_json(const std::vector<RoundRecord>& history) {
  auto out = nlohmann::json::array();
  for (const auto& r : history)
    out.push_back({{"round", r.round}, {"lambda", r.lambda}, {"kl", r.kl}, {"kl_se", r.kl_se},
                   {"lambda_next", r.lambda_next}, {"dsm_loss", r.dsm_loss}, {"seconds", r.seconds}});
  return out.dump();
}

std::vector<RoundRecord> history_from_json(const std::string& text) {
  std::vector<RoundRecord> out;
  for (const auto& j : nlohmann::json::parse(text)) {
    RoundRecord r;
    r.round = j.at("round");
    r.lambda = j.at("lambda").get<std::vector<double>>();
    r.kl = j.at("kl").get<std::vector<double>>();
    r.kl_se = j.at("kl_se").get<std::vector<double>>();
    r.lambda_next = j.at("lambda_next").get<std::vector<double>>();
    r.dsm_loss = j.at("dsm_loss");
    r.seconds = j.at("seconds");
    out.push_back(r);
  }
  return out;
}

}  // namespace dualign::compose
