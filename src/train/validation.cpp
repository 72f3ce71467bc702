#include "train/validation.h"

#include <filesystem>

#include "eval/png.h"
#include "eval/sampling.h"
#include "models/score_model.h"
#include "train/settings.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/seed.h"

namespace dualign::train {

ValidationSamples::ValidationSamples(const TrainSettings& s, const diffusion::NoiseSchedule& schedule, bool rank0)
    : schedule_(schedule),
      dir_(s.run_dir + "/samples"),
      every_(s.sample_every),
      count_(s.sample_count),
      steps_(s.sample_steps),
      seed_(derive_seed(s.seed, "validation")),
      enabled_(rank0 && s.sample_every > 0) {}

void ValidationSamples::maybe_write(int64_t step, models::ScoreModel& model, MetricsWriter& metrics) {
  if (!enabled_ || step % every_ != 0) return;
  const auto shape = model.sample_shape();
  const bool points = shape.size() == 1 && shape[0] == 2;
  const bool images = shape.size() == 3 && (shape[0] == 1 || shape[0] == 3);
  if ((!points && !images) || model.text_conditional()) {
    if (!warned_) log::info("validation samples: skipped ({}): PNGs need images or 2-D points without text prompts",
                            model.describe());
    warned_ = true;
    return;
  }
  data::Condition cond;
  if (model.num_classes() > 0)  // row i gets class ⌊i·K/n⌋: every class, in blocks
    cond.class_id = torch::arange(count_, torch::kInt64) * model.num_classes() / count_;
  eval::SampleSpec spec;
  spec.sampler.kind = "ddim";
  spec.sampler.num_inference_steps = steps_;
  auto x = eval::sample(model, schedule_, spec, count_, seed_, cond);
  eval::GridOptions grid;
  grid.max_images = count_;
  auto picture = points ? eval::draw_scatter(x) : eval::make_grid(x, grid);
  std::filesystem::create_directories(dir_);
  const std::string file = fmt::format("{}/step-{:08d}.png", dir_, step);
  const std::string png = eval::encode_png(picture);
  eval::write_png(file, picture);
  metrics.log_image(step, "samples", png, static_cast<int>(picture.size(0)), static_cast<int>(picture.size(1)),
                    static_cast<int>(picture.size(2)));
}

}  // namespace dualign::train
