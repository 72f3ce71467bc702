// Inference schedulers without diffusers: with the exact ε (or v) of a Gaussian each one maps N(0, I) back to
// the data distribution; timesteps and σ against values diffusers prints; scheduler_config.json reading like
// from_config; guidance rescale against its formula. Bitwise parity with diffusers is tests/parity.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "diffusion/guidance.h"
#include "diffusion/scheduler.h"
#include "diffusion/scheduler_json.h"
#include "diffusion/sigmas.h"
#include "util/error.h"

using namespace dualign::diffusion;

namespace {

const char* kSd15 = R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false,
  "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false})";

// The exact model output of data N(mu, sigma² I) at the noise level the scheduler means by timestep t:
// ᾱ = 1 / (1 + σ(t)²) with σ(t) interpolated linearly in the float32 table, as the Euler and DPM schedulers do
// (for integer t this is the table's ᾱ_t up to rounding).
ScoreFn exact_model(const NoiseSchedule& s, const torch::Tensor& mu, double sigma) {
  const auto table = sigma_table(s);
  return [&s, table, mu, sigma](const torch::Tensor& x, const torch::Tensor& t) {
    auto tc = t.to(torch::kFloat64).contiguous();
    std::vector<double> ts(tc.data_ptr<double>(), tc.data_ptr<double>() + tc.numel());
    auto sig = torch::tensor(interp_sigmas(ts, table), torch::kFloat64).reshape({-1, 1});
    auto a = 1 / (1 + sig * sig);
    auto eps = (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * sigma * sigma + 1 - a);
    if (!s.predicts_v()) return eps;
    auto x0 = (x - (1 - a).sqrt() * eps) / a.sqrt();
    return a.sqrt() * eps - (1 - a).sqrt() * x0;
  };
}

struct Moments {
  double mean_err, var_ratio;
};

Moments run(const NoiseSchedule& s, SamplerConfig c, const torch::Tensor& mu, double sigma, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x_T = torch::randn({n, mu.size(0)}, gen, torch::kFloat64);
  x_T = (x_T - x_T.mean(0)) / x_T.std(0);  // exact moments: deterministic schedulers have no Monte-Carlo error
  auto scheduler = make_scheduler(s, c);
  auto x0 = sample_with_scheduler(*scheduler, exact_model(s, mu, sigma), x_T, [&gen](const at::Tensor& like) {
    return torch::randn(like.sizes(), gen, like.options());
  });
  return {(x0.mean(0) - mu).abs().max().item<double>(), (x0.var(0) / (sigma * sigma)).mean().item<double>()};
}

}  // namespace

// 200 steps of the linear schedule (x_T ~ N(0, I) then ignores only a 0.6% share of the data in the t = T
// marginal). Deterministic kinds have discretization error only: small for the multistep ones (PNDM, DPM-Solver++),
// a few percent in the variance for first-order Euler and DDIM; the stochastic ones add Monte-Carlo error
// (n = 4000: 1.3% of σ in the mean, 2.2% in the variance) and their first-order SDE bias (-9% in the variance at
// 200 steps; diffusers' own schedulers give the same numbers, see tests/parity).
TEST(Scheduler, RecoversGaussianWithExactModel) {
  const double sigma = 0.5;
  auto mu = torch::tensor({1.0, -0.5, 0.25}, torch::kFloat64);
  struct Case { std::string kind; std::vector<std::string> overrides; std::string prediction; double mean_tol, var_tol; };
  std::vector<Case> cases{
      {"ddim", {}, "epsilon", 0.01, 0.04},
      {"pndm", {}, "epsilon", 0.01, 0.01},
      {"pndm", {"skip_prk_steps=false"}, "epsilon", 0.01, 0.01},
      {"euler", {}, "epsilon", 0.01, 0.04},
      {"euler", {"use_karras_sigmas=true"}, "v_prediction", 0.01, 0.04},
      {"euler_ancestral", {}, "epsilon", 0.04, 0.12},
      {"ddpm", {}, "epsilon", 0.04, 0.12},
      {"dpmsolver++", {}, "epsilon", 0.01, 0.01},
      {"dpmsolver++", {"use_karras_sigmas=true", "solver_type=heun"}, "v_prediction", 0.01, 0.01},
      {"dpmsolver++", {"solver_order=3", "timestep_spacing=trailing"}, "epsilon", 0.01, 0.01},
  };
  for (const auto& c : cases) {
    auto spec = parse_scheduler_config(kSd15, "sd15", c.kind, c.overrides);
    spec.schedule = {.kind = "linear", .prediction = c.prediction};
    NoiseSchedule s(spec.schedule);
    spec.sampler.num_inference_steps = 200;
    auto m = run(s, spec.sampler, mu, sigma, 4000, 1);
    std::printf("%-16s %-40s mean err %.4f, var ratio %.4f\n", c.kind.c_str(),
                (c.overrides.empty() ? std::string("-") : c.overrides[0] + (c.overrides.size() > 1 ? " ..." : "")).c_str(),
                m.mean_err, m.var_ratio);
    EXPECT_LT(m.mean_err, c.mean_tol) << c.kind;
    EXPECT_NEAR(m.var_ratio, 1.0, c.var_tol) << c.kind;
  }
}

// A wrong sampler does not pass the test above: PNDM fed ε of the wrong sign drifts far from the data.
TEST(Scheduler, ExactModelTestDetectsAWrongModel) {
  auto spec = parse_scheduler_config(kSd15, "sd15");
  NoiseSchedule s(spec.schedule);
  spec.sampler.num_inference_steps = 50;
  auto mu = torch::tensor({1.0, -0.5}, torch::kFloat64);
  auto exact = exact_model(s, mu, 0.5);
  auto scheduler = make_scheduler(s, spec.sampler);
  auto x_T = torch::randn({256, 2}, torch::kFloat64);
  auto x0 = sample_with_scheduler(*scheduler, [&](const torch::Tensor& x, const torch::Tensor& t) {
    return -exact(x, t);
  }, x_T);
  EXPECT_GT((x0.mean(0) - mu).abs().max().item<double>(), 1.0);
}

TEST(Scheduler, TimestepsAsDiffusersSetsThem) {
  auto sd = parse_scheduler_config(kSd15, "sd15");
  NoiseSchedule s(sd.schedule);
  auto steps = [&](SamplerConfig c, int64_t n) {
    c.num_inference_steps = n;
    auto sch = make_scheduler(s, c);
    std::vector<double> out;
    for (size_t i = 0; i < sch->num_steps(); ++i) out.push_back(sch->model_timestep(i));
    return out;
  };
  // PNDMScheduler.from_config(sd15).set_timesteps(10): PLMS repeats the second timestep
  EXPECT_EQ(steps(sd.sampler, 10), (std::vector<double>{901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1}));
  // with Runge-Kutta warm-up (skip_prk_steps false): 12 PRK calls over the 4 highest timesteps and their
  // midpoints, then PLMS
  auto prk = steps(parse_scheduler_config(kSd15, "sd15", "pndm", {"skip_prk_steps=false"}).sampler, 10);
  EXPECT_EQ(std::vector<double>(prk.begin(), prk.begin() + 14),
            (std::vector<double>{901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501}));
  // DPMSolverMultistepScheduler: linspace over n + 1 points, the last dropped
  EXPECT_EQ(steps(parse_scheduler_config(kSd15, "sd15", "dpmsolver++").sampler, 5),
            (std::vector<double>{999, 799, 599, 400, 200}));
  // Euler: fractional float32 linspace timesteps
  auto euler = steps(parse_scheduler_config(kSd15, "sd15", "euler").sampler, 4);
  EXPECT_EQ(euler, (std::vector<double>{999, 666, 333, 0}));
  auto euler7 = steps(parse_scheduler_config(kSd15, "sd15", "euler").sampler, 7);
  EXPECT_DOUBLE_EQ(euler7[1], double(float(999.0 * 5 / 6)));
}

TEST(Scheduler, EulerInitNoiseSigmaOfStableDiffusion) {
  auto spec = parse_scheduler_config(kSd15, "sd15", "euler");
  NoiseSchedule s(spec.schedule);
  spec.sampler.num_inference_steps = 50;
  // σ_max of SD-1.5's scaled_linear schedule is 14.6146 (EulerDiscreteScheduler.init_noise_sigma)
  EXPECT_NEAR(make_scheduler(s, spec.sampler)->init_noise_sigma(), 14.6146, 1e-4);
  // leading spacing starts from sqrt(σ_max² + 1)
  auto leading = parse_scheduler_config(kSd15, "sd15", "euler", {"timestep_spacing=leading"});
  leading.sampler.num_inference_steps = 50;
  const double sigma_981 = interp_sigmas({981.0}, sigma_table(s))[0];
  EXPECT_NEAR(make_scheduler(s, leading.sampler)->init_noise_sigma(), std::sqrt(sigma_981 * sigma_981 + 1), 1e-4);
}

TEST(SchedulerJson, ReadsLikeFromConfig) {
  auto pndm = parse_scheduler_config(kSd15, "sd15");
  EXPECT_EQ(pndm.class_name, "PNDMScheduler");
  EXPECT_EQ(pndm.sampler.kind, "pndm");
  EXPECT_EQ(pndm.sampler.steps_offset, 1);
  EXPECT_FALSE(pndm.sampler.set_alpha_to_one);
  EXPECT_TRUE(pndm.sampler.skip_prk_steps);
  EXPECT_EQ(pndm.sampler.timestep_spacing, "leading");
  EXPECT_EQ(pndm.schedule.kind, "scaled_linear");
  EXPECT_DOUBLE_EQ(pndm.schedule.beta_start, 0.00085);
  // As Euler: keys Euler has keep the file's values, the rest take Euler's defaults (linspace)
  auto euler = parse_scheduler_config(kSd15, "sd15", "euler");
  EXPECT_EQ(euler.class_name, "EulerDiscreteScheduler");
  EXPECT_EQ(euler.sampler.timestep_spacing, "linspace");
  EXPECT_EQ(euler.sampler.steps_offset, 1);
  EXPECT_FALSE(euler.sampler.use_karras_sigmas);
  // DDIM from the SD config: SD's values, not DDIM's defaults (set_alpha_to_one true, clip_sample true)
  auto ddim = parse_scheduler_config(kSd15, "sd15", "ddim");
  EXPECT_FALSE(ddim.sampler.set_alpha_to_one);
  EXPECT_FALSE(ddim.sampler.clip_sample);
  // Overrides use diffusers' names and JSON values; bare words are strings
  auto k = parse_scheduler_config(kSd15, "sd15", "dpmsolver++", {"use_karras_sigmas=true", "timestep_spacing=trailing",
                                                                  "solver_order=3"});
  EXPECT_TRUE(k.sampler.use_karras_sigmas);
  EXPECT_EQ(k.sampler.timestep_spacing, "trailing");
  EXPECT_EQ(k.sampler.solver_order, 3);
  // What diffusers writes for DPMSolverMultistepScheduler (lambda_min_clipped: -Infinity) parses
  auto dpm = parse_scheduler_config(R"({"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity,
                                        "beta_schedule": "scaled_linear", "some_future_key": 1})", "dpm.json");
  EXPECT_EQ(dpm.sampler.kind, "dpmsolver++");
  EXPECT_EQ(dpm.ignored_keys, std::vector<std::string>{"some_future_key"});
  // Round trip through the writer
  for (const auto& spec : {pndm, euler, ddim, k}) {
    auto again = parse_scheduler_config(scheduler_config_json(spec.schedule, spec.sampler), "round trip");
    EXPECT_EQ(again.sampler.kind, spec.sampler.kind);
    EXPECT_EQ(again.sampler.timestep_spacing, spec.sampler.timestep_spacing);
    EXPECT_EQ(again.sampler.steps_offset, spec.sampler.steps_offset);
    EXPECT_EQ(again.sampler.use_karras_sigmas, spec.sampler.use_karras_sigmas);
    EXPECT_TRUE(same_schedule(again.schedule, spec.schedule));
  }
}

TEST(SchedulerJson, UnsupportedSettingsNameTheKey) {
  auto message = [](const std::string& json, const std::string& kind = "", std::vector<std::string> o = {}) {
    try {
      parse_scheduler_config(json, "cfg.json", kind, o);
    } catch (const dualign::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(R"({"_class_name": "DDIMScheduler", "thresholding": true})").find("thresholding"), std::string::npos);
  EXPECT_NE(message(R"({"_class_name": "LCMScheduler"})").find("LCMScheduler"), std::string::npos);
  EXPECT_NE(message(R"({"_class_name": "DDIMScheduler", "trained_betas": [0.1]})").find("trained_betas"), std::string::npos);
  EXPECT_NE(message(kSd15, "euler", {"no_such_key=1"}).find("no_such_key"), std::string::npos);
  EXPECT_NE(message(R"({"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"})")
                .find("algorithm_type"), std::string::npos);
  EXPECT_NE(message("{not json", "").find("cfg.json"), std::string::npos);
}

TEST(Guidance, RescaleFollowsTheFormula) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto guided = torch::randn({3, 4, 5, 5}, gen) * 3;
  auto cond = torch::randn({3, 4, 5, 5}, gen);
  EXPECT_TRUE(torch::allclose(rescale_guidance(guided, cond, 0.0), guided));
  auto full = rescale_guidance(guided, cond, 1.0);
  // φ = 1: every sample takes the conditional output's (unbiased) standard deviation
  auto dims = std::vector<int64_t>{1, 2, 3};
  EXPECT_TRUE(torch::allclose(full.std(dims, true), cond.std(dims, true), 1e-5, 1e-6));
  auto half = rescale_guidance(guided, cond, 0.7);
  EXPECT_TRUE(torch::allclose(half, 0.7 * full + 0.3 * guided, 1e-5, 1e-6));
}

// One generator per row: a row's draws do not depend on the other rows of its batch.
TEST(Scheduler, PerRowNoiseIsPerRow) {
  std::vector<at::Generator> both{at::make_generator<at::CPUGeneratorImpl>(1), at::make_generator<at::CPUGeneratorImpl>(2)};
  std::vector<at::Generator> second{at::make_generator<at::CPUGeneratorImpl>(2)};
  auto like = torch::zeros({2, 3, 4});
  auto a = per_row_noise(both)(like), b = per_row_noise(second)(like.narrow(0, 1, 1));
  EXPECT_TRUE(torch::equal(a.narrow(0, 1, 1), b));
  EXPECT_FALSE(torch::equal(a.narrow(0, 0, 1), a.narrow(0, 1, 1)));
}
