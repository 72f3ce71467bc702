#!/usr/bin/env python3
"""Guided-sampling parity fixtures from diffusers' StableDiffusionPipeline (no download).

A tiny random text-conditional UNet2DConditionModel is saved in diffusers layout, and the real pipeline samples
from it with given prompt_embeds / negative_prompt_embeds, fixed initial latents, guidance 7.5 and
output_type="latent", once per scheduler case and step count. The pipeline needs a VAE, a text encoder and a
tokenizer to exist; it does not run them with output_type="latent" and prompt embeddings given (the VAE only
fixes vae_scale_factor, hence the default height), so tiny random ones (data_tools/pickapic_to_h5.py's) fill
those slots.

Noise: every row r has its own torch.Generator seeded with seeds[r]. Its first draw is the row's x_T
(randn([1, 4, 16, 16])); the pipeline gets latents = cat(x_T) and generator = that list of generators, so the
stochastic schedulers (DDIM with eta > 0, DDPM, Euler ancestral) draw each row's step noise from the same
generator right after its x_T, which is exactly what `dualign sample` does with one generator per sample.

Every scheduler is built as users do it: SchedulerClass.from_config(SD-1.5's scheduler_config.json, **overrides).

SDXL (OUT_DIR/sdxl): StableDiffusionXLPipeline on a tiny random text_time UNet (no text encoders, tokenizers or
VAE: prompt, pooled and negative embeddings are given and output_type="latent"), SDXL base's scheduler config,
explicit original size / crop / target size (the time ids, the same for the negative branch as the pipeline's
default), guidance 5.

usage: make_sampling_fixtures.py OUT_DIR
"""
import json
import os
import shutil
import sys
import tempfile

import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data_tools"))
from pickapic import models as pickapic  # noqa: E402  (tiny_random_models)

torch.set_num_threads(int(os.environ.get("DUALIGN_THREADS", "1")))

# runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json as shipped (a PNDM config; its missing keys take
# each class's defaults in from_config)
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
                  "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
                  "clip_sample": False}

CLASSES = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler, "pndm": PNDMScheduler, "euler": EulerDiscreteScheduler,
           "euler_ancestral": EulerAncestralDiscreteScheduler, "dpmsolver++": DPMSolverMultistepScheduler}

# name: (dualign sampler kind, diffusers overrides, guidance_rescale, eta)
CASES = {
    "ddim": ("ddim", {}, 0.0, 0.0),
    "ddim_trailing_rescale": ("ddim", {"timestep_spacing": "trailing"}, 0.7, 0.0),
    "ddim_eta1": ("ddim", {}, 0.0, 1.0),
    "ddpm": ("ddpm", {}, 0.0, 0.0),
    "pndm": ("pndm", {}, 0.0, 0.0),  # SD-1.5's own: PLMS, skip_prk_steps
    "pndm_prk": ("pndm", {"skip_prk_steps": False}, 0.0, 0.0),
    "euler": ("euler", {}, 0.0, 0.0),
    "euler_karras_v": ("euler", {"use_karras_sigmas": True, "prediction_type": "v_prediction"}, 0.0, 0.0),
    "euler_ancestral": ("euler_ancestral", {}, 0.0, 0.0),
    "dpmsolver++": ("dpmsolver++", {}, 0.0, 0.0),  # DPM-Solver++(2M)
    "dpmsolver++_karras": ("dpmsolver++", {"use_karras_sigmas": True}, 0.0, 0.0),
    "dpmsolver++_3m_leading": ("dpmsolver++", {"solver_order": 3, "timestep_spacing": "leading"}, 0.0, 0.0),
}
STEPS = (20, 50)
GUIDANCE = 7.5
SEEDS = (11, 12345)

UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)


# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json as shipped
SDXL_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
                  "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
                  "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False}
SDXL_CASES = {
    "euler": ("euler", {}, 0.0, 0.0),  # SDXL's own
    "dpmsolver++_karras": ("dpmsolver++", {"use_karras_sigmas": True}, 0.0, 0.0),
    "ddim_trailing_rescale": ("ddim", {"timestep_spacing": "trailing"}, 0.7, 0.0),
}
SDXL_STEPS = (20,)
SDXL_GUIDANCE = 5.0
# SDXL's layout at toy width: transformer depths (1, 2), per-block heads, linear projections, a pooled text
# embedding of 20 and 6 time ids x 8.
SDXL_UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                 attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), use_linear_projection=True,
                 norm_num_groups=8, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=20 + 6 * 8)
SDXL_SIZES = dict(original_size=(1024, 768), crops_coords_top_left=(32, 0), target_size=(1024, 1024))


def override_text(value):
    return json.dumps(value) if not isinstance(value, str) else value


def make_sdxl(out_dir):
    os.makedirs(out_dir)
    torch.manual_seed(8)
    unet = UNet2DConditionModel(**SDXL_UNET)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.02 * torch.randn_like(p))
    unet.eval()
    unet.save_pretrained(os.path.join(out_dir, "unet"))
    with open(os.path.join(out_dir, "scheduler_config.json"), "w") as f:
        json.dump(SDXL_SCHEDULER, f, indent=2)
    g = torch.Generator().manual_seed(4)
    rows, dim = len(SEEDS), SDXL_UNET["cross_attention_dim"]
    tensors = {"prompt_embeds": torch.randn(rows, 7, dim, generator=g),
               "negative_prompt_embeds": torch.randn(rows, 7, dim, generator=g),
               "pooled_prompt_embeds": torch.randn(rows, 20, generator=g),
               "negative_pooled_prompt_embeds": torch.randn(rows, 20, generator=g),
               "time_ids": torch.tensor([list(SDXL_SIZES["original_size"] + SDXL_SIZES["crops_coords_top_left"] +
                                              SDXL_SIZES["target_size"])] * rows, dtype=torch.float32),
               "seeds": torch.tensor(SEEDS, dtype=torch.int64)}
    manifest = {"guidance_scale": SDXL_GUIDANCE, "steps": list(SDXL_STEPS), "cases": {}}
    for name, (kind, overrides, rescale, eta) in SDXL_CASES.items():
        scheduler = CLASSES[kind].from_config(SDXL_SCHEDULER, **overrides)
        pipe = StableDiffusionXLPipeline(vae=None, text_encoder=None, text_encoder_2=None, tokenizer=None,
                                         tokenizer_2=None, unet=unet, scheduler=scheduler, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        manifest["cases"][name] = {"kind": kind, "overrides": [f"{k}={override_text(v)}" for k, v in overrides.items()],
                                   "guidance_rescale": rescale, "eta": eta}
        for steps in SDXL_STEPS:
            generators = [torch.Generator().manual_seed(s) for s in SEEDS]
            x_T = torch.cat([torch.randn((1, 4, 16, 16), generator=gen) for gen in generators])
            tensors["x_T"] = x_T
            with torch.no_grad():
                latents = pipe(prompt_embeds=tensors["prompt_embeds"],
                               negative_prompt_embeds=tensors["negative_prompt_embeds"],
                               pooled_prompt_embeds=tensors["pooled_prompt_embeds"],
                               negative_pooled_prompt_embeds=tensors["negative_pooled_prompt_embeds"],
                               latents=x_T.clone(), generator=generators, guidance_scale=SDXL_GUIDANCE,
                               guidance_rescale=rescale, eta=eta, num_inference_steps=steps, height=128, width=128,
                               output_type="latent", **SDXL_SIZES).images
            tensors[f"latents.{name}.{steps}"] = latents.contiguous()
            tensors[f"timesteps.{name}.{steps}"] = scheduler.timesteps.to(torch.float64).contiguous()
            print(f"sdxl {name:24s} {steps:3d} steps: |latents| max {latents.abs().max():.3f}", flush=True)
    save_file(tensors, os.path.join(out_dir, "sampling.safetensors"))
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=2)


def main():
    out_dir = sys.argv[1]
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    make_sdxl(os.path.join(tmp, "sdxl"))
    torch.manual_seed(7)
    unet = UNet2DConditionModel(**UNET)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.02 * torch.randn_like(p))
    unet.eval()
    unet.save_pretrained(os.path.join(tmp, "unet"))
    with open(os.path.join(tmp, "sd15_scheduler_config.json"), "w") as f:
        json.dump(SD15_SCHEDULER, f, indent=2)
    vae, text_encoder, tokenizer, _ = pickapic.tiny_random_models(0, tempfile.mkdtemp(prefix="tiny-tokenizer-"))

    g = torch.Generator().manual_seed(3)
    prompt_embeds = torch.randn(len(SEEDS), 7, UNET["cross_attention_dim"], generator=g)
    negative_embeds = torch.randn(len(SEEDS), 7, UNET["cross_attention_dim"], generator=g)
    tensors = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds,
               "seeds": torch.tensor(SEEDS, dtype=torch.int64)}
    manifest = {"guidance_scale": GUIDANCE, "steps": list(STEPS), "cases": {}}
    for name, (kind, overrides, rescale, eta) in CASES.items():
        scheduler = CLASSES[kind].from_config(SD15_SCHEDULER, **overrides)
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        manifest["cases"][name] = {"kind": kind, "overrides": [f"{k}={override_text(v)}" for k, v in overrides.items()],
                                   "guidance_rescale": rescale, "eta": eta}
        for steps in STEPS:
            generators = [torch.Generator().manual_seed(s) for s in SEEDS]
            x_T = torch.cat([torch.randn((1, 4, 16, 16), generator=gen) for gen in generators])
            tensors["x_T"] = x_T
            with torch.no_grad():
                latents = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, latents=x_T.clone(),
                               generator=generators, guidance_scale=GUIDANCE, guidance_rescale=rescale, eta=eta,
                               num_inference_steps=steps, output_type="latent").images
            tensors[f"latents.{name}.{steps}"] = latents.contiguous()
            tensors[f"timesteps.{name}.{steps}"] = scheduler.timesteps.to(torch.float64).contiguous()
            print(f"{name:24s} {steps:3d} steps: |latents| max {latents.abs().max():.3f}", flush=True)
    save_file(tensors, os.path.join(tmp, "sampling.safetensors"))
    with open(os.path.join(tmp, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    print("fixtures written to", out_dir)


if __name__ == "__main__":
    main()
