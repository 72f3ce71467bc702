"""Images -> VAE posteriors and captions -> text embeddings, as the official Diffusion-DPO SD-1.5 training script
prepares them: resize the short side to R (bilinear), centre crop R x R, [-1, 1]; the flipped image is the crop
mirrored left-right, encoded on its own (a flipped latent is not the latent of the flipped image)."""
import io
import math

import numpy as np
import torch
from PIL import Image


def load_image(data, resolution):
    """Bytes -> RGB PIL image R x R: torchvision's Resize(R, bilinear) + CenterCrop(R) (the official transforms)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(resolution * long / short)
    size = (resolution, new_long) if w <= h else (new_long, resolution)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - resolution) / 2.0)), int(round((h - resolution) / 2.0))
    return img.crop((left, top, left + resolution, top + resolution))


def to_tensor(img):
    """RGB PIL image -> float32 [3, R, R] in [-1, 1]."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0


def flipped(img):
    return img.transpose(Image.FLIP_LEFT_RIGHT)


@torch.no_grad()
def encode_posteriors(vae, images, device):
    """PIL images -> (mean, logvar) float32 numpy [B, C, h, w] of the VAE posterior in the scaled latent space:
    z = scaling_factor · (mean + std · ε) = mean_s + exp(logvar_s / 2) · ε with mean_s = scaling_factor · mean and
    logvar_s = logvar + 2 log(scaling_factor) (diffusers clamps logvar to [-30, 20])."""
    x = torch.stack([to_tensor(i) for i in images]).to(device)
    dist = vae.encode(x).latent_dist
    sf = float(vae.config.scaling_factor)
    mean = (dist.mean * sf).float().cpu().numpy()
    logvar = (dist.logvar + 2.0 * math.log(sf)).float().cpu().numpy()
    return mean, logvar


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts, device):
    """Captions -> float32 numpy [B, L, D]: the text encoder's last hidden state, padded to L tokens."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0].float().cpu().numpy()
