"""diffusers as the reference for `dualign sample` / `dualign export` in the e2e tests (no downloads):

  save_tiny_pipeline(dir, ...)   a tiny random Stable Diffusion pipeline in diffusers layout: data_tools'
                                 tiny random VAE / CLIP text encoder / tokenizer (seed 0, the ones the converter and
                                 encode_prompts.py --tiny-random use), a tiny text-conditional UNet and SD-1.5's
                                 scheduler_config.json (PNDM, PLMS, steps_offset 1)
  pipeline_latents(dir, samples) what StableDiffusionPipeline.from_pretrained(dir) makes of the rows of a dualign
                                 samples file: the same prompt and negative prompt embeddings, x_T drawn from one
                                 torch.Generator per row seeded with the row's `seed` (the generator then draws the
                                 row's step noise, as dualign does), output_type="latent"
  save_tiny_sdxl_pipeline(dir)   the same for Stable Diffusion XL: the converter's tiny SDXL-style VAE and text
                                 encoder pair (--tiny-shape sdxl-tiny), a tiny UNet with text_time added conditioning
                                 and two transformer depths, SDXL base's scheduler_config.json (Euler, leading)
  pipeline_latents(..., sdxl=True)  with StableDiffusionXLPipeline: pooled embeddings too, default time ids
"""
import json
import os
import sys
import tempfile

import h5py
import numpy as np

from e2e_util import SRC

sys.path.insert(0, str(SRC / "data_tools"))
from pickapic import models as pickapic  # noqa: E402  (tiny_random_models)

SD15_SCHEDULER = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "trained_betas": None, "clip_sample": False}
SCHEDULERS = {"ddim": "DDIMScheduler", "pndm": "PNDMScheduler", "euler": "EulerDiscreteScheduler",
              "euler_ancestral": "EulerAncestralDiscreteScheduler", "dpmsolver++": "DPMSolverMultistepScheduler"}


def save_tiny_pipeline(directory, unet_seed=0):
    """A tiny SD pipeline whose latents are 4 x 16 x 16 and whose text embeddings are 16 x 32 (the tiny CLIP's)."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    vae, text_encoder, tokenizer, _ = pickapic.tiny_random_models(0, tempfile.mkdtemp(prefix="tiny-tokenizer-"))
    torch.manual_seed(unet_seed)
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                mid_block_type="UNetMidBlock2DCrossAttn",
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64),
                                layers_per_block=1, norm_num_groups=8,
                                cross_attention_dim=text_encoder.config.hidden_size, attention_head_dim=8)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler.from_config(SD15_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory)
    # the scheduler_config.json as SD-1.5 ships it (written by an old diffusers: only some keys, and clip_sample,
    # which PNDMScheduler does not have)
    with open(os.path.join(directory, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", **SD15_SCHEDULER}, f, indent=2)
    return directory


SDXL_SCHEDULER = {"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
                  "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "epsilon",
                  "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
                  "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False}


# The default UNet of save_tiny_sdxl_pipeline: two blocks, transformer depths 1 and 2.
TINY_SDXL_UNET = dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(32, 64),
                      layers_per_block=1, norm_num_groups=8, transformer_layers_per_block=(1, 2),
                      attention_head_dim=(4, 8))


def save_tiny_sdxl_pipeline(directory, unet_seed=0, unet=None):
    """A tiny SDXL pipeline: latents 4 x 16 x 16, text 16 x 64 (both tiny encoders), pooled 16, 6 time ids.
    `unet` (keyword arguments of UNet2DConditionModel) replaces TINY_SDXL_UNET's architecture."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    vae, encoders, tokenizers, _ = pickapic.tiny_random_models(0, tempfile.mkdtemp(prefix="tiny-tokenizer-"),
                                                               shape="sdxl-tiny")
    pooled_dim = encoders[1].config.projection_dim
    time_dim = 8
    torch.manual_seed(unet_seed)
    net = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, **(unet or TINY_SDXL_UNET),
                               cross_attention_dim=encoders[0].config.hidden_size + encoders[1].config.hidden_size,
                               use_linear_projection=True, addition_embed_type="text_time",
                               addition_time_embed_dim=time_dim,
                               projection_class_embeddings_input_dim=pooled_dim + 6 * time_dim)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1],
                                     tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=net,
                                     scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER))
    pipe.save_pretrained(directory)
    return directory


def pipeline_latents(directory, samples_path, prompts_path, steps, guidance=7.5, sampler=None, batch=8, sdxl=False):
    """diffusers' latents for every row of a dualign samples file (its prompt_index and seed datasets). The pipeline
    runs on the same batches of rows as `dualign sample --batch` (a different batch size changes which matrix
    kernels run, hence the last bits, which 50 guided steps amplify)."""
    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    torch.set_num_threads(1)  # as the dualign processes run (OMP_NUM_THREADS=1): the same summation order
    if sdxl:
        pipe = StableDiffusionXLPipeline.from_pretrained(directory)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(directory, safety_checker=None, requires_safety_checker=False)
    if sampler:
        pipe.scheduler = getattr(diffusers, SCHEDULERS[sampler]).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    with h5py.File(samples_path, "r") as f:
        seeds, prompt_index = f["seed"][:], f["prompt_index"][:]
    with h5py.File(prompts_path, "r") as f:
        embeddings = torch.from_numpy(f["text_embedding"][:])
        negative = torch.from_numpy(f["negative_text_embedding"][:])
        if sdxl:
            pooled = torch.from_numpy(f["pooled_text_embedding"][:])
            negative_pooled = torch.from_numpy(f["negative_pooled_text_embedding"][:])
    cfg = pipe.unet.config
    out = []
    for start in range(0, len(seeds), batch):
        rows = slice(start, start + batch)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[rows]]
        x_T = torch.cat([torch.randn((1, cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=g)
                         for g in generators])
        index = torch.from_numpy(prompt_index[rows])
        prompt_embeds = embeddings[index]
        extra = {}
        if sdxl:  # the pipeline's default size conditioning: (H, W, 0, 0, H, W) of its default sample size
            extra = dict(pooled_prompt_embeds=pooled[index],
                         negative_pooled_prompt_embeds=negative_pooled.expand(len(index), -1).contiguous())
        with torch.no_grad():
            out.append(pipe(prompt_embeds=prompt_embeds,
                            negative_prompt_embeds=negative.expand_as(prompt_embeds).contiguous(), latents=x_T,
                            generator=generators, guidance_scale=guidance, num_inference_steps=steps,
                            output_type="latent", **extra).images)
    return torch.cat(out).numpy()


def max_abs_diff(samples_path, reference):
    with h5py.File(samples_path, "r") as f:
        ours = f["samples"][:]
    return float(np.abs(ours - reference).max()), float(np.abs(reference).max())
