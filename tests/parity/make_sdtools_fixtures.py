#!/usr/bin/env python3
"""Parity fixtures for the Stable Diffusion toolchain (no download): tiny random diffusers AutoencoderKLs, transformers
CLIP image towers, the CLIP reward models of data_tools/evaluation, and the hand-made image statistics of the
constrained-alignment reference code, with inputs, outputs and gradients. The C++ test (sdtools_parity_test.cpp)
recomputes everything and compares.

usage: make_sdtools_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from diffusers import AutoencoderKL
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

SRC = os.environ.get("DUALIGN_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "data_tools"))
import encode_reward_prompts as erp  # noqa: E402
from evaluation import clip_models, open_clip_models, scorers  # noqa: E402

torch.set_num_threads(int(os.environ.get("DUALIGN_THREADS", "1")))

# AutoencoderKL: SD's layout at toy width; a 3-stage one without quant convs and mid attention, 2 latent channels
# and odd widths that no other test uses.
VAES = {
    "vae_sd_like": dict(in_channels=3, out_channels=3, block_out_channels=(32, 64),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=16),
    "vae_unusual": dict(in_channels=3, out_channels=3, block_out_channels=(8, 16, 24),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=2, latent_channels=2, norm_num_groups=4, sample_size=24,
                        scaling_factor=0.5, shift_factor=0.1, use_quant_conv=False, use_post_quant_conv=False,
                        mid_block_add_attention=False),
}
# CLIP image towers: OpenAI-style (quick_gelu) and LAION-style (gelu, other sizes, eps 1e-6).
CLIPS = {
    "clip_quick_gelu": dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                            image_size=32, patch_size=8, projection_dim=16, hidden_act="quick_gelu"),
    "clip_gelu": dict(hidden_size=48, intermediate_size=80, num_attention_heads=6, num_hidden_layers=3,
                      image_size=28, patch_size=7, projection_dim=12, hidden_act="gelu", layer_norm_eps=1e-6),
}
PROMPTS = ["a red bird on a branch", "two cats"]


def perturb(module):
    with torch.no_grad():  # diffusers zero-initialises some convs; make every weight matter
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))


def make_vae(out, name, cfg, seed):
    torch.manual_seed(seed)
    vae = AutoencoderKL(**cfg).eval()
    perturb(vae)
    vae.save_pretrained(os.path.join(out, name))
    g = torch.Generator().manual_seed(seed + 1)
    down = 2 ** (len(cfg["block_out_channels"]) - 1)
    io = {"images": torch.rand(2, 3, 4 * down, 6 * down, generator=g) * 2 - 1}
    io["eps"] = torch.randn(2, cfg["latent_channels"], 4, 6, generator=g)
    x = io["images"].clone().requires_grad_(True)
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * io["eps"]
    dec = vae.decode(z).sample
    io["target"] = torch.randn(dec.shape, generator=g)
    loss = ((dec - io["target"]) ** 2).mean() + 0.1 * (post.mean ** 2).mean() + 0.1 * post.logvar.mean()
    loss.backward()
    io.update(mean=post.mean.detach(), logvar=post.logvar.detach(), decoded=dec.detach(), loss=loss.detach().reshape(1),
              grad_images=x.grad)
    for pname, p in vae.named_parameters():
        io["grad." + pname] = p.grad.detach().clone()
    vae.zero_grad()
    # Tiled + sliced decode of diffusion latents 2.5 tiles wide (tiles of sample_size pixels, 25 % overlap).
    tile = vae.tile_latent_min_size
    latents = (torch.randn(2, cfg["latent_channels"], 2 * tile, 5 * tile // 2, generator=g)).requires_grad_(True)
    io["tiled_latents"] = latents.detach().clone()
    vae.enable_tiling()
    vae.enable_slicing()
    scaled = latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
    tiled = vae.decode(scaled).sample
    io["tiled_weights"] = torch.randn(tiled.shape, generator=g)
    (tiled * io["tiled_weights"]).sum().backward()
    io.update(tiled_decoded=tiled.detach(), tiled_grad_latents=latents.grad)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(out, name + "_io.safetensors"))


def make_clip_tower(out, name, cfg, seed):
    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg)).eval()
    model.save_pretrained(os.path.join(out, name))
    g = torch.Generator().manual_seed(seed + 1)
    s = cfg["image_size"]
    pixels = torch.randn(3, 3, s, s, generator=g).requires_grad_(True)
    embeds = model(pixel_values=pixels).image_embeds
    weights = torch.randn(embeds.shape, generator=g)
    (embeds * weights).sum().backward()
    io = {"pixel_values": pixels.detach(), "image_embeds": embeds.detach(), "weights": weights,
          "grad_pixel_values": pixels.grad}
    save_file(io, os.path.join(out, name + "_io.safetensors"))


def clip_pixels(images, size, crop, interpolation="bicubic"):
    """CLIP preprocessing of [-1, 1] images on tensors, via transformers' torchvision CLIPImageProcessor."""
    x = ((images * 0.5) + 0.5).clamp(0, 1)
    resample = 3 if interpolation == "bicubic" else 2
    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": crop, "width": crop},
                              do_rescale=False, resample=resample)
    return proc(images=list(x), return_tensors="pt")["pixel_values"]


def make_rewards(out, seed):
    g = torch.Generator().manual_seed(seed)
    # Non-square, larger than the towers' 32 px, some pixels outside [-1, 1] (the clamp is part of the formula).
    images = torch.rand(3, 3, 40, 52, generator=g) * 2.2 - 1.1
    io = {"images": images}

    clip, processor = clip_models.tiny_random_clip(seed)  # a CLIPModel with logit_scale: PickScore's shape
    clip.save_pretrained(os.path.join(out, "tiny_clip"))
    erp.save_text_embeddings(os.path.join(out, "tiny_clip_prompts.safetensors"),
                             clip_models.text_embeddings(clip, processor, PROMPTS), PROMPTS)
    text = clip_models.text_embeddings(clip, processor, PROMPTS)
    size = clip.config.vision_config.image_size
    pixels = clip_pixels(images, size, size)
    io["clip_pixel_values"] = pixels
    with torch.no_grad():
        image = clip_models.features(clip.get_image_features(pixel_values=pixels)).float()
    cos = clip_models.cosine(text[1:2].expand_as(image), image)
    io["pickscore"] = clip.logit_scale.exp() * cos  # PickScore's formula (prompt 1)
    io["clip_score"] = 100.0 * cos.clamp(min=0)

    torch.manual_seed(seed + 3)
    head = scorers.AestheticHead(clip.config.projection_dim).eval()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, os.path.join(out, "aesthetic_head.safetensors"))
    with torch.no_grad():
        io["aesthetic"] = head(image / image.norm(dim=-1, keepdim=True)).squeeze(-1)

    hps = open_clip_models.tiny_random_model(seed + 4)
    erp.export_visual(hps, os.path.join(out, "tiny_hps_visual.safetensors"))
    erp.save_text_embeddings(os.path.join(out, "tiny_hps_prompts.safetensors"),
                             erp.open_clip_text_features(hps, PROMPTS), PROMPTS)
    with torch.no_grad():
        hps_pixels = open_clip_models.preprocess(((images * 0.5 + 0.5).clamp(0, 1) * 255.0).permute(0, 2, 3, 1),
                                                 open_clip_models.image_size(hps), "cpu")
        o = hps(hps_pixels, open_clip_models.tokenizer(hps)([PROMPTS[0]] * 3))
        io["hpsv2"] = (o["image_features"] * o["text_features"]).sum(-1)

    # The reference code's image statistics, written as it writes them (differentiable_losses.py), with gradients.
    for name, fn in STATISTICS.items():
        x = images.clone().requires_grad_(True)
        r = fn(x)
        r.sum().backward()
        io["stat." + name] = r.detach()
        io["stat_grad." + name] = x.grad
    save_file({k: v.contiguous().float() for k, v in io.items()}, os.path.join(out, "rewards_io.safetensors"))


def _rgb(im_pix_un):
    im_pix = ((im_pix_un * 0.5) + 0.5).clamp(0, 1)
    return im_pix[:, 0], im_pix[:, 1], im_pix[:, 2]


def _luminance(x):
    r, g, b = _rgb(x)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _local_contrast(x):
    y = _luminance(x)
    y_blur = torchvision.transforms.GaussianBlur(kernel_size=5, sigma=1.0)(y.unsqueeze(1)).squeeze(1)
    return (y - y_blur).abs().mean(dim=(1, 2))


def _saturation(x):
    r, g, b = _rgb(x)
    max_rgb = torch.maximum(torch.maximum(r, g), b)
    min_rgb = torch.minimum(torch.minimum(r, g), b)
    return ((max_rgb - min_rgb) / (max_rgb + 1e-8)).mean(dim=(1, 2))


def _colorfulness(x):
    r, g, b = _rgb(x)
    rg, yb = r - g, 0.5 * (r + g) - b
    return torch.sqrt(torch.std(rg, dim=(1, 2)) ** 2 + torch.std(yb, dim=(1, 2)) ** 2) + 0.3 * torch.sqrt(
        rg.mean(dim=(1, 2)) ** 2 + yb.mean(dim=(1, 2)) ** 2)


STATISTICS = {
    "brightness": lambda x: _luminance(x).mean(dim=(1, 2)),
    "global_contrast": lambda x: torch.std(_luminance(x), dim=(1, 2)),
    "local_contrast": _local_contrast,
    "saturation": _saturation,
    "colorfulness": _colorfulness,
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (name, cfg) in enumerate(VAES.items()):
        make_vae(out, name, cfg, 100 + 10 * i)
    for i, (name, cfg) in enumerate(CLIPS.items()):
        make_clip_tower(out, name, cfg, 200 + 10 * i)
    make_rewards(out, 300)
    with open(os.path.join(out, "sdtools_manifest.json"), "w") as f:
        json.dump({"vaes": list(VAES), "clips": list(CLIPS), "statistics": list(STATISTICS), "prompts": PROMPTS}, f)


if __name__ == "__main__":
    main()
