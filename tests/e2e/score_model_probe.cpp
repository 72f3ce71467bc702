// score_model_probe CHECKPOINT IN.safetensors OUT.safetensors: loads the model a training run saved (the `model`
// weights, not the EMA) the way `dualign sample` does and writes its raw output on the inputs of IN (sample,
// timesteps, encoder_hidden_states) as OUT's `output`, for Python tests that compare it with diffusers.
#include <cstdio>
#include <exception>

#include "models/safetensors.h"
#include "models/score_model.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s CHECKPOINT IN.safetensors OUT.safetensors\n", argv[0]);
    return 2;
  }
  try {
    auto model = dualign::models::load_score_model(argv[1], torch::kCPU, /*prefer_ema=*/false);
    auto in = dualign::models::load_safetensors(argv[2]);
    dualign::data::Condition cond;
    if (in.count("encoder_hidden_states")) cond.text = in.at("encoder_hidden_states");
    torch::NoGradGuard no_grad;
    auto out = model->forward(in.at("sample"), in.at("timesteps"), cond);
    dualign::models::save_safetensors(argv[3], {{"output", out.contiguous()}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
