#!/usr/bin/env python3
"""Memory and time of back-propagating a CLIP reward through VAE decode + the CLIP image tower, dualign (C++) next
to PyTorch (diffusers AutoencoderKL + transformers CLIPVisionModelWithProjection), with and without gradient
checkpointing, on the same random weights, latents and thread count (CPU, fp32).

Each measurement runs in its own process, so peak RSS is that configuration's alone; "act" is peak RSS minus the
RSS after loading (activations and autograd buffers of one step). Prints one JSON line per run and a table.

  python bench/reward_backprop_bench.py --bin build/bin/bench_reward_backprop --threads 2
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

# medium: SD's VAE layout at half width decoding 256 px images, a ViT-B-sized CLIP tower (224 px, patch 14).
VAE = dict(in_channels=3, out_channels=3, block_out_channels=(64, 128, 256, 256), layers_per_block=2,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           latent_channels=4, norm_num_groups=32, sample_size=256)
CLIP = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=8, image_size=224,
            patch_size=14, projection_dim=512, hidden_act="gelu")
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def make_models(directory, batch):
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.manual_seed(0)
    AutoencoderKL(**VAE).save_pretrained(os.path.join(directory, "vae"))
    CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP)).save_pretrained(os.path.join(directory, "clip"))
    latent = VAE["sample_size"] // 8
    save_file({"latents": torch.randn(batch, 4, latent, latent), "text": torch.randn(1, CLIP["projection_dim"])},
              os.path.join(directory, "io.safetensors"))


def torch_child(directory, threads, iters, checkpointing):
    """The same step in PyTorch; prints the JSON line the C++ binary prints."""
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
    from transformers import CLIPVisionModelWithProjection
    torch.set_num_threads(threads)
    vae = AutoencoderKL.from_pretrained(os.path.join(directory, "vae")).eval().requires_grad_(False)
    clip = CLIPVisionModelWithProjection.from_pretrained(os.path.join(directory, "clip")).eval().requires_grad_(False)
    if checkpointing:
        vae.enable_gradient_checkpointing()
        clip.gradient_checkpointing_enable()
    io = load_file(os.path.join(directory, "io.safetensors"))
    text = F.normalize(io["text"], dim=-1)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    size = CLIP["image_size"]
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, grad_norm = [], 0.0
    for i in range(iters + 1):
        latents = io["latents"].clone().requires_grad_(True)
        start = time.perf_counter()
        images = vae.decode(latents / vae.config.scaling_factor).sample
        x = (images * 0.5 + 0.5).clamp(0, 1)
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        image = clip(pixel_values=(x - mean) / std).image_embeds
        (F.normalize(image, dim=-1) * text).sum().backward()
        if i:
            times.append(time.perf_counter() - start)
        grad_norm = latents.grad.norm().item()
    times.sort()
    print(json.dumps({"impl": "pytorch", "checkpointing": checkpointing, "median_s": round(times[len(times) // 2], 4),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "loaded_rss_mb": round(loaded, 1), "grad_norm": grad_norm}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("DUALIGN_BIN", "build/bin"), "bench_reward_backprop"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("DIR", "CHECKPOINTING"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        torch_child(a.child[0], a.threads, a.iters, a.child[1] == "1")
        return
    directory = tempfile.mkdtemp(prefix="reward-backprop-bench-")
    make_models(directory, a.batch)
    rows = []
    for ckpt in ("0", "1"):
        for cmd in ([a.bin, directory, str(a.threads), str(a.iters), ckpt],
                    [sys.executable, __file__, "--threads", str(a.threads), "--iters", str(a.iters), "--child",
                     directory, ckpt]):
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads))).stdout
            line = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(line))
            rows.append(line)
    print(f"\nbatch {a.batch}, {VAE['sample_size']} px decode + {CLIP['image_size']} px CLIP tower, {a.threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'impl':<8} {'ckpt':<5} {'s/step':>8} {'peak MB':>9} {'act MB':>8} {'|grad|':>10}")
    for r in rows:
        print(f"{r['impl']:<8} {str(r['checkpointing']):<5} {r['median_s']:>8.2f} {r['peak_rss_mb']:>9.0f} "
              f"{r['peak_rss_mb'] - r['loaded_rss_mb']:>8.0f} {r['grad_norm']:>10.4g}")


if __name__ == "__main__":
    main()
