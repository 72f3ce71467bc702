// PNDMScheduler (Liu et al. 2022): pseudo linear multistep (PLMS) on the DDIM transfer x_t → x_{t-δ}, optionally
// after three pseudo Runge-Kutta steps (skip_prk_steps: false). Stable Diffusion ships skip_prk_steps: true, which
// is crowsonkb's PLMS: the first step is repeated once to get a second-order start. Coefficients are float32, as
// diffusers computes them from its float32 alphas_cumprod.
#include <torch/torch.h>

#include <cmath>
#include <deque>

#include "diffusion/scheduler_kinds.h"
#include "util/error.h"

namespace dualign::diffusion {
namespace {

class PndmScheduler : public Scheduler {
 public:
  PndmScheduler(const NoiseSchedule& schedule, const SamplerConfig& config)
      : schedule_(schedule), n_train_(schedule.num_train_timesteps()),
        n_steps_(config.num_inference_steps) {
    const auto& ac = schedule.alphas_cumprod();
    alphas_cumprod_.assign(ac.data_ptr<float>(), ac.data_ptr<float>() + ac.numel());
    final_alpha_cumprod_ = config.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
    // ascending, as diffusers' _timesteps
    auto descending = inference_timesteps(n_train_, n_steps_, config.timestep_spacing, config.steps_offset);
    std::vector<int64_t> asc(descending.rbegin(), descending.rend());
    if (config.skip_prk_steps) {
      DUALIGN_CHECK(asc.size() >= 2, "pndm with skip_prk_steps needs num_inference_steps >= 2, got {}", n_steps_);
      // concat(asc[:-1], asc[-2:-1], asc[-1:]) reversed: the second-highest timestep appears twice
      std::vector<int64_t> plms(asc.begin(), asc.end() - 1);
      plms.push_back(asc[asc.size() - 2]);
      plms.push_back(asc.back());
      timesteps_.assign(plms.rbegin(), plms.rend());
      num_prk_ = 0;
    } else {
      DUALIGN_CHECK(asc.size() >= 4, "pndm with Runge-Kutta steps needs num_inference_steps >= 4, got {}", n_steps_);
      // prk = (asc[-4:].repeat(2) + tile([0, T // n // 2], 4))[:-1].repeat(2)[1:-1] reversed
      std::vector<int64_t> base;
      for (size_t j = asc.size() - 4; j < asc.size(); ++j)
        for (int64_t add : {int64_t{0}, n_train_ / n_steps_ / 2}) base.push_back(asc[j] + add);
      base.pop_back();
      std::vector<int64_t> doubled;
      for (auto t : base) doubled.insert(doubled.end(), {t, t});
      std::vector<int64_t> prk(doubled.begin() + 1, doubled.end() - 1);
      timesteps_.assign(prk.rbegin(), prk.rend());
      num_prk_ = timesteps_.size();
      for (auto it = asc.rbegin() + 3; it != asc.rend(); ++it) timesteps_.push_back(*it);  // asc[:-3] reversed
    }
  }

  size_t num_steps() const override { return timesteps_.size(); }
  double model_timestep(size_t i) const override { return double(timesteps_[i]); }

  at::Tensor step(size_t i, const at::Tensor& out, const at::Tensor& x, const at::Tensor&) override {
    DUALIGN_CHECK(i == counter_, "pndm: steps must be taken in order (expected step {}, got {})", counter_, i);
    // The history holds raw outputs (ε or v); prev_sample converts the combined output, as diffusers does.
    at::Tensor prev = i < num_prk_ ? step_prk(out, timesteps_[i], x) : step_plms(out, timesteps_[i], x);
    ++counter_;
    return prev;
  }

 private:
  at::Tensor step_prk(const at::Tensor& out, int64_t timestep, const at::Tensor& x) {
    const int64_t diff_to_prev = counter_ % 2 ? 0 : n_train_ / n_steps_ / 2;
    const int64_t prev_t = timestep - diff_to_prev;
    const int64_t t = timesteps_[counter_ / 4 * 4];
    at::Tensor m = out;
    switch (counter_ % 4) {
      case 0:
        cur_model_output_ = out * (1.0 / 6);
        ets_.push_back(out);
        cur_sample_ = x;
        break;
      case 1:
      case 2:
        cur_model_output_ = cur_model_output_ + out * (1.0 / 3);
        break;
      default:
        m = cur_model_output_ + out * (1.0 / 6);
        cur_model_output_ = at::Tensor();
    }
    return prev_sample(cur_sample_.defined() ? cur_sample_ : x, t, prev_t, m);
  }

  at::Tensor step_plms(const at::Tensor& out, int64_t timestep, const at::Tensor& x_in) {
    int64_t prev_t = timestep - n_train_ / n_steps_;
    int64_t t = timestep;
    if (counter_ != 1) {
      while (ets_.size() > 3) ets_.pop_front();
      ets_.push_back(out);
    } else {
      prev_t = timestep;
      t = timestep + n_train_ / n_steps_;
    }
    at::Tensor m, x = x_in;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      m = out;
      cur_sample_ = x;
    } else if (n == 1 && counter_ == 1) {
      m = (out + ets_.back()) / 2;
      x = cur_sample_;
      cur_sample_ = at::Tensor();
    } else if (n == 2) {
      m = (ets_[1] * 3 - ets_[0]) / 2;
    } else if (n == 3) {
      m = (ets_[2] * 23 - ets_[1] * 16 + ets_[0] * 5) / 12;
    } else {
      m = (ets_[3] * 55 - ets_[2] * 59 + ets_[1] * 37 - ets_[0] * 9) * (1.0 / 24);
    }
    return prev_sample(x, t, prev_t, m);
  }

  // PNDM paper eq. 9 (diffusers' _get_prev_sample), in float32 coefficients.
  at::Tensor prev_sample(const at::Tensor& x, int64_t t, int64_t prev_t, at::Tensor out) const {
    const float a_t = alphas_cumprod_.at(size_t(t));
    const float a_prev = prev_t >= 0 ? alphas_cumprod_.at(size_t(prev_t)) : final_alpha_cumprod_;
    const float b_t = 1 - a_t, b_prev = 1 - a_prev;
    if (schedule_.predicts_v()) out = out * std::sqrt(a_t) + x * std::sqrt(b_t);
    const float sample_coeff = std::sqrt(a_prev / a_t);
    const float denom = a_t * std::sqrt(b_prev) + std::sqrt(a_t * b_t * a_prev);
    return x * sample_coeff - out * (a_prev - a_t) / denom;
  }

  const NoiseSchedule& schedule_;
  int64_t n_train_, n_steps_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_;
  std::vector<int64_t> timesteps_;
  size_t num_prk_ = 0;
  // multistep state, as diffusers keeps it
  size_t counter_ = 0;
  std::deque<at::Tensor> ets_;
  at::Tensor cur_sample_, cur_model_output_;
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm_scheduler(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return std::make_unique<PndmScheduler>(schedule, config);
}

}  // namespace dualign::diffusion
