"""Latents -> images with the Stable Diffusion VAE (diffusers AutoencoderKL), in batches on any device."""
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pickapic.models import tiny_random_models  # noqa: E402  (the tiny random VAE of the tiny training pairs)


def pretrained_vae(sd_dir):
    """The vae/ of a Stable Diffusion directory (diffusers layout), or a directory that is itself a VAE."""
    from diffusers import AutoencoderKL
    sub = "vae" if os.path.isdir(os.path.join(sd_dir, "vae")) else None
    if not os.path.isfile(os.path.join(sd_dir, sub or "", "config.json")):
        raise SystemExit(f"error: {sd_dir}: no VAE config (expected {sd_dir}/vae/config.json or {sd_dir}/config.json, "
                         f"an AutoencoderKL in diffusers layout)")
    return AutoencoderKL.from_pretrained(sd_dir, subfolder=sub).eval()


def tiny_random_vae(seed):
    """The converter's tiny random VAE: the same seed gives the VAE that encoded the tiny training pairs."""
    vae, _, _, _ = tiny_random_models(seed)
    return vae.eval()


@torch.no_grad()
def decode(vae, latents, device):
    """Model-space latents [B, 4, h, w] (numpy or tensor) -> uint8 images [B, H, W, 3] on the CPU.

    The samples hold VAE latent * scaling_factor (as training caches them), so divide before decoding."""
    x = torch.as_tensor(np.asarray(latents, dtype=np.float32)).to(device)
    x = vae.decode(x / vae.config.scaling_factor).sample
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu()


def decode_batches(vae, latents, device, batch_size, desc="decode"):
    """Yields (start row, uint8 images [B, H, W, 3]) over all latents, with a progress bar."""
    for start in tqdm(range(0, len(latents), batch_size), desc=desc, file=sys.stdout, mininterval=1.0):
        yield start, decode(vae, latents[start:start + batch_size], device)
