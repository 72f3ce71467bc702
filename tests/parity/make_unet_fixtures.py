#!/usr/bin/env python3
"""Parity fixtures from diffusers (no download): tiny random UNet2DConditionModels saved in diffusers layout with
inputs, outputs and parameter gradients of a fixed loss, in fp32 and under torch.autocast("cpu", torch.bfloat16)
(keys *_bf16: the forward in autocast, the loss of the output cast to fp32 outside it); scheduler tables and
sampling trajectories.

usage: make_unet_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

torch.set_num_threads(int(os.environ.get("DUALIGN_THREADS", "1")))

# Tiny configs: cross-attention, class-conditional without attention, SD2-style linear projection with lists, and
# SDXL-style (plain first block, transformer depths differing per block and reversed for the up blocks, linear
# projection, per-block heads, text_time added conditioning: a pooled text embedding of 24 + 6 time ids x 8).
UNETS = {
    "cross_attn": dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                       block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                       attention_head_dim=8, norm_num_groups=8),
    "class_cond": dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(32, 64), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), mid_block_type="UNetMidBlock2D",
                       num_class_embeds=10, norm_num_groups=8),
    "linear_proj": dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=24,
                        attention_head_dim=(2, 4), transformer_layers_per_block=2, use_linear_projection=True,
                        norm_num_groups=8, class_embed_type="timestep"),
    "text_time": dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
                      block_out_channels=(16, 32, 64),
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                      cross_attention_dim=32, attention_head_dim=(1, 2, 4), transformer_layers_per_block=(1, 2, 3),
                      use_linear_projection=True, norm_num_groups=8, addition_embed_type="text_time",
                      addition_time_embed_dim=8, projection_class_embeddings_input_dim=24 + 6 * 8),
}


def make_unet(out_dir, name, cfg, seed):
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg)
    # diffusers zero-initialises nothing here, but make every parameter non-trivial anyway
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.02 * torch.randn_like(p))
    unet.save_pretrained(os.path.join(out_dir, name))  # config.json + diffusion_pytorch_model.safetensors
    g = torch.Generator().manual_seed(seed + 1)
    b, size = 2, cfg["sample_size"]
    io = {
        "sample": torch.randn(b, cfg["in_channels"], size, size, generator=g),
        "timesteps": torch.tensor([17, 901], dtype=torch.int64),
    }
    if "cross_attention_dim" in cfg:
        io["encoder_hidden_states"] = torch.randn(b, 5, cfg["cross_attention_dim"], generator=g)
    if "num_class_embeds" in cfg:
        io["class_labels"] = torch.tensor([3, 7], dtype=torch.int64)
    if cfg.get("class_embed_type") == "timestep":
        io["class_labels"] = torch.tensor([4, 250], dtype=torch.int64)
    added = None
    if cfg.get("addition_embed_type") == "text_time":
        # SDXL's time ids: original size (h, w), crop top-left (y, x), target size (h, w)
        io["text_embeds"] = torch.randn(b, 24, generator=g)
        io["time_ids"] = torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0],
                                       [768.0, 1344.0, 16.0, 48.0, 1024.0, 1024.0]])
        added = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}
    io["target"] = torch.randn(b, cfg["out_channels"], size, size, generator=g)
    out = unet(io["sample"], io["timesteps"], encoder_hidden_states=io.get("encoder_hidden_states"),
               class_labels=io.get("class_labels"), added_cond_kwargs=added).sample
    loss = ((out - io["target"]) ** 2).mean()
    loss.backward()
    io["output"] = out.detach()
    io["loss"] = loss.detach().reshape(1)
    for pname, p in unet.named_parameters():
        io["grad." + pname] = p.grad.detach().clone()
    unet.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = unet(io["sample"], io["timesteps"], encoder_hidden_states=io.get("encoder_hidden_states"),
                   class_labels=io.get("class_labels"), added_cond_kwargs=added).sample
    loss = ((out.float() - io["target"]) ** 2).mean()
    loss.backward()
    io["output_bf16"] = out.detach().float()
    io["loss_bf16"] = loss.detach().reshape(1)
    for pname, p in unet.named_parameters():
        io["grad_bf16." + pname] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(out_dir, name + "_io.safetensors"))
    return sum(p.numel() for p in unet.parameters())


def model_fn(x, t):
    """A deterministic stand-in for a denoiser that both sides evaluate the same way (float32)."""
    return 0.5 * x + 0.1 * torch.sin(x * (float(t) / 100.0))


# name: (scheduler class, constructor kwargs, steps, eta)
SCHEDULERS = {
    "ddpm_linear_clip": (DDPMScheduler, dict(beta_schedule="linear"), 10, None),
    "ddim_sd": (DDIMScheduler, dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                    clip_sample=False, set_alpha_to_one=False, steps_offset=1), 10, 0.0),
    "ddim_cos_v_eta1": (DDIMScheduler, dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                                            clip_sample=False), 10, 1.0),
    "ddim_trailing": (DDIMScheduler, dict(beta_schedule="linear", clip_sample=False, timestep_spacing="trailing"),
                      10, 0.0),
}


def make_schedulers(out_dir):
    tensors = {}
    for kind, extra in [("linear", {}), ("scaled_linear", dict(beta_start=0.00085, beta_end=0.012)),
                        ("squaredcos_cap_v2", {})]:
        s = DDPMScheduler(beta_schedule=kind, **extra)
        tensors["alphas_cumprod." + kind] = s.alphas_cumprod.clone()
        tensors["betas." + kind] = s.betas.clone()
    for name, (cls, kwargs, steps, eta) in SCHEDULERS.items():
        s = cls(num_train_timesteps=1000, **kwargs)
        s.set_timesteps(steps)
        g = torch.Generator().manual_seed(42)
        x = torch.randn(3, 6, generator=g)
        traj, noises = [x.clone()], []
        for t in s.timesteps:
            out = model_fn(x, t)
            if cls is DDIMScheduler:
                noise = torch.randn(x.shape, generator=g)
                x = s.step(out, t, x, eta=eta, variance_noise=noise if eta > 0 else None).prev_sample
            else:
                # DDPM draws its noise from the generator inside step(): record the same draw from a copy
                copy = torch.Generator()
                copy.set_state(g.get_state())
                noise = torch.randn(x.shape, generator=copy) if int(t) > 0 else torch.zeros_like(x)
                x = s.step(out, t, x, generator=g).prev_sample
            noises.append(noise)
            traj.append(x.clone())
        tensors["timesteps." + name] = s.timesteps.clone().to(torch.int64)
        tensors["trajectory." + name] = torch.stack(traj)
        tensors["noise." + name] = torch.stack(noises)
    save_file(tensors, os.path.join(out_dir, "schedulers.safetensors"))


def main():
    out_dir = sys.argv[1]
    tmp = out_dir + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    counts = {}
    for i, (name, cfg) in enumerate(UNETS.items()):
        counts[name] = make_unet(tmp, name, cfg, seed=100 + i)
    make_schedulers(tmp)
    with open(os.path.join(tmp, "summary.json"), "w") as f:
        json.dump({"param_counts": counts}, f, indent=2)
    if os.path.exists(out_dir):
        import shutil
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    print("fixtures written to", out_dir, counts)


if __name__ == "__main__":
    main()
