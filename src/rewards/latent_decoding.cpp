#include "rewards/latent_decoding.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "config/config.h"
#include "models/vae.h"
#include "rewards/reward.h"
#include "util/error.h"

namespace dualign::rewards {
namespace {

// One frozen decoder and a one-entry cache: the last latents it decoded (the same tensor, same grad mode) and the
// images, replaced at the next call.
struct SharedDecoder {
  models::AutoencoderKL vae{nullptr};
  std::mutex mutex;
  torch::Tensor last_latents, last_images;
  bool last_grad = false;

  torch::Tensor decode(const torch::Tensor& latents) {
    std::lock_guard lock(mutex);
    const bool grad = torch::GradMode::is_enabled() && latents.requires_grad();
    if (last_latents.defined() && last_latents.is_same(latents) && last_grad == grad) return last_images;
    torch::AutoGradMode mode(grad);
    auto device = vae->parameters().front().device();
    last_images = vae->decode_latents(latents.to(device, torch::kFloat32));
    last_latents = latents;
    last_grad = grad;
    return last_images;
  }
};

std::shared_ptr<SharedDecoder> shared_decoder(const std::string& dir, const torch::Device& device, bool checkpointing,
                                              bool slicing, bool tiling) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<SharedDecoder>> decoders;
  const auto key = fmt::format("{}|{}|{}{}{}", dir, device.str(), checkpointing, slicing, tiling);
  std::lock_guard lock(mutex);
  if (auto d = decoders[key].lock()) return d;
  auto d = std::make_shared<SharedDecoder>();
  d->vae = models::load_diffusers_vae(dir);
  for (auto& p : d->vae->parameters()) p.set_requires_grad(false);
  d->vae->eval();
  d->vae->set_gradient_checkpointing(checkpointing);
  d->vae->set_slicing(slicing);
  d->vae->set_tiling(tiling);
  d->vae->to(device);
  decoders[key] = d;
  return d;
}

class DecodedReward : public Reward {
 public:
  DecodedReward(std::unique_ptr<Reward> inner, std::shared_ptr<SharedDecoder> decoder, std::string dir)
      : inner_(std::move(inner)), decoder_(std::move(decoder)), dir_(std::move(dir)) {}
  std::string describe() const override { return fmt::format("{} of VAE-decoded latents ({})", inner_->describe(), dir_); }
  torch::Tensor score(const torch::Tensor& x, const data::Condition& cond) override {
    const auto& c = decoder_->vae->config();
    DUALIGN_CHECK(x.dim() == 4 && x.size(1) == c.latent_channels,
                  "reward on latents ({}): expected latents [B, {}, h, w], got {}", dir_, c.latent_channels,
                  c10::str(x.sizes()));
    return inner_->score(decoder_->decode(x), cond).to(x.device());
  }

 private:
  std::unique_ptr<Reward> inner_;
  std::shared_ptr<SharedDecoder> decoder_;
  std::string dir_;
};

}  // namespace

std::unique_ptr<Reward> on_decoded_latents(std::unique_ptr<Reward> image_reward, const config::Section& s,
                                           const torch::Device& device) {
  const auto dir = s.get<std::string>("vae");
  const bool checkpointing = s.get<bool>("gradient_checkpointing", false);
  const bool slicing = s.get<bool>("slicing", false);
  const bool tiling = s.get<bool>("tiling", false);
  s.finish();
  std::shared_ptr<SharedDecoder> decoder;
  try {
    decoder = shared_decoder(dir, device, checkpointing, slicing, tiling);
  } catch (const Error& e) {
    fail("config key '{}': {}", s.path("vae"), e.what());
  }
  return std::make_unique<DecodedReward>(std::move(image_reward), std::move(decoder), dir);
}

}  // namespace dualign::rewards
