#include "ddo/settings.h"

#include "config/config.h"
#include "util/error.h"

namespace dualign::ddo {

DdoSettings DdoSettings::read(const config::Config& cfg) {
  DdoSettings s;
  auto root = cfg.root();
  s.seed = uint64_t(root.get<int64_t>("seed", 0));
  s.threads = root.get<int>("threads", 0);
  auto run = cfg.section("run");
  s.run_dir = run.get<std::string>("dir");
  s.resume = run.get<std::string>("resume", "auto");
  DUALIGN_CHECK(s.resume == "auto" || s.resume == "none", "config key 'run.resume': ddo supports auto | none, got '{}'",
                s.resume);

  auto d = cfg.section("ddo");
  s.reference = d.get<std::string>("reference");
  s.device = d.get<std::string>("device", s.device);
  s.objective.name = d.get<std::string>("objective");
  DUALIGN_CHECK(s.objective.name == "rlhf" || s.objective.name == "dpo" || s.objective.name == "kto",
                "config key '{}' (set at {}): expected rlhf, dpo or kto, got '{}'", d.path("objective"),
                cfg.origin(d.path("objective")), s.objective.name);
  s.da.beta = d.get<double>("beta");
  s.da.beta_prime = d.get<double>("beta_prime", s.da.beta);
  s.da.iterations = d.get<int64_t>("iterations");
  s.n_ref = d.get<int64_t>("n_ref");
  s.block = d.get<int64_t>("block", s.block);
  s.eval_pairs = d.get<int64_t>("eval_pairs", 0);
  s.objective.max_ratio = d.get<double>("max_ratio", 0.0);
  if (d.has("condition")) {
    auto c = d.section("condition");
    s.condition.class_id = c.get<int64_t>("class", -1);
    s.condition.prompts_file = c.get<std::string>("prompts", "");
    s.condition.prompt = c.get<int64_t>("prompt", 0);
    s.condition.guidance = c.get<double>("guidance", 1.0);
    c.finish();
    DUALIGN_CHECK(s.condition.active() && (s.condition.class_id < 0 || s.condition.prompts_file.empty()),
                  "config '{}' (set at {}): give exactly one of 'class' and 'prompts'", d.path("condition"),
                  cfg.origin(d.path("condition")));
  }
  DUALIGN_CHECK(s.da.beta > 0 && s.da.beta_prime >= 0, "config 'ddo.beta' must be > 0 and 'ddo.beta_prime' >= 0 (got {}, {})",
                s.da.beta, s.da.beta_prime);
  DUALIGN_CHECK(s.n_ref >= 2 && s.block >= 1 && s.eval_pairs >= 0,
                "config 'ddo.n_ref' must be >= 2, 'ddo.block' >= 1, 'ddo.eval_pairs' >= 0 (got {}, {}, {})", s.n_ref,
                s.block, s.eval_pairs);
  if (d.has("dpo")) {
    auto p = d.section("dpo");
    s.objective.dpo_beta = p.get<double>("beta", s.objective.dpo_beta);
    s.objective.partners = p.get<int64_t>("partners", s.objective.partners);
    p.finish();
  }
  s.objective.partners = std::min(s.objective.partners, s.n_ref);
  if (d.has("kto")) {
    auto k = d.section("kto");
    s.objective.kto_beta = k.get<double>("beta", s.objective.kto_beta);
    const auto threshold = k.get<std::string>("threshold", "median");
    if (threshold != "median") {
      try {
        s.objective.kto_threshold = std::stod(threshold);
      } catch (const std::exception&) {
        fail("config key '{}': expected a number or 'median', got '{}'", k.path("threshold"), threshold);
      }
    }
    s.objective.kto_desirable_weight = k.get<double>("desirable_weight", 1.0);
    s.objective.kto_undesirable_weight = k.get<double>("undesirable_weight", 1.0);
    k.finish();
  }
  if (d.has("potential")) {
    auto p = d.section("potential");
    s.potential.hidden = p.get<int64_t>("hidden", s.potential.hidden);
    s.potential.depth = p.get<int64_t>("depth", s.potential.depth);
    s.potential.kind = p.get<std::string>("kind", s.potential.kind);
    s.potential.channels = p.get<int64_t>("channels", s.potential.channels);
    if (s.potential.kind != "mlp" && s.potential.kind != "conv")
      fail("config key '{}': expected mlp or conv, got '{}'", p.path("kind"), s.potential.kind);
    p.finish();
  }
  if (d.has("fit")) {
    auto f = d.section("fit");
    s.da.fit.steps = f.get<int64_t>("steps", s.da.fit.steps);
    s.da.fit.batch = f.get<int64_t>("batch", s.da.fit.batch);
    s.da.fit.lr = f.get<double>("lr", s.da.fit.lr);
    f.finish();
  }
  if (d.has("sampler")) {
    auto p = d.section("sampler");
    s.sampler.kind = p.get<std::string>("kind", s.sampler.kind);
    s.sampler.steps = p.get<int64_t>("steps", s.sampler.steps);
    s.sampler.eta = p.get<double>("eta", s.sampler.eta);
    s.sampler.batch = p.get<int64_t>("batch", s.sampler.batch);
    p.finish();
  }
  if (d.has("sampling")) {
    auto p = d.section("sampling");
    auto& m = s.sampling;
    m.n = p.get<int64_t>("n", m.n);
    m.pool = p.get<int64_t>("pool", m.pool);
    m.nested_n = p.get<int64_t>("nested_n", m.nested_n);
    m.nested_chains = p.get<int64_t>("nested_chains", m.nested_chains);
    m.nested_steps = p.get<int64_t>("nested_steps", m.nested_steps);
    m.iterates = p.get<bool>("iterates", m.iterates);
    p.finish();
    DUALIGN_CHECK(m.n >= 0 && m.nested_n >= 0 && (m.n == 0 || m.pool >= 2 * m.n),
                  "config 'ddo.sampling': n, nested_n must be >= 0 and pool >= 2n (got {}, {}, {})", m.n, m.nested_n,
                  m.pool);
  }
  d.finish({"reward"});
  return s;
}

}  // namespace dualign::ddo
