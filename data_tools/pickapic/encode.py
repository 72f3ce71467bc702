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
    return load_image_with_geometry(data, resolution)[0]


def load_image_with_geometry(data, resolution):
    """load_image and SDXL's size conditioning of the result: (image, time_ids [6] float32) with time_ids =
    (original height, original width, crop top, crop left, R, R), the crop in the resized image's pixels as
    diffusers' SDXL training scripts record it."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    original_w, original_h = img.size
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(resolution * long / short)
    size = (resolution, new_long) if w <= h else (new_long, resolution)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - resolution) / 2.0)), int(round((h - resolution) / 2.0))
    time_ids = np.array([original_h, original_w, top, left, resolution, resolution], dtype=np.float32)
    return img.crop((left, top, left + resolution, top + resolution)), time_ids


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


def _token_ids(tokenizer, prompts, device):
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids.to(device)


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts, device):
    """Captions -> float32 numpy [B, L, D]: the text encoder's last hidden state, padded to L tokens."""
    return text_encoder(_token_ids(tokenizer, prompts, device))[0].float().cpu().numpy()


@torch.no_grad()
def encode_prompts_sdxl(text_encoders, tokenizers, prompts, device):
    """Captions -> (hidden [B, L, D1 + D2], pooled [B, P]) float32 numpy as StableDiffusionXLPipeline.encode_prompt
    forms them: the penultimate hidden state of each encoder, concatenated along the features, and the projected
    pooled output (text_embeds) of the second encoder."""
    hidden, pooled = [], None
    for encoder, tokenizer in zip(text_encoders, tokenizers):
        out = encoder(_token_ids(tokenizer, prompts, device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        if out[0].ndim == 2:  # CLIPTextModelWithProjection: text_embeds first
            pooled = out[0]
    if pooled is None:
        raise ValueError("SDXL prompts: no text encoder returned a pooled projection (text_encoder_2 must be a "
                         "CLIPTextModelWithProjection)")
    return torch.cat(hidden, dim=-1).float().cpu().numpy(), pooled.float().cpu().numpy()
