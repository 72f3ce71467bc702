#!/usr/bin/env python3
"""PickScore of generated latents: decode `dualign sample` latents with the SD VAE, score image/prompt with CLIP.

Input: a `samples` HDF5 file written by `dualign sample --prompts` (src/eval/samples_io.h):
  samples  float32 [N, 4, h, w]  latents in the model's space (VAE latent * scaling_factor, as pickapic_to_h5.py
                                 stores the training pairs)
  prompt   string  [N]           the prompt of each sample (or prompt_index [N] + --prompts FILE.h5)
Score, as DiffusionDPO's utils/pickscore_utils.py computes it:
  score_i = logit_scale.exp() * <text_emb_i / |text_emb_i|, image_emb_i / |image_emb_i|>
Output JSON: n, pickscore/mean, pickscore/se (standard error over samples), pickscore/std, scores [N],
prompts [N], models. --png PATH also writes a grid of the decoded images.

Models: --pretrained SD_DIR (its vae/) and --pickscore CLIP_DIR (a CLIPModel, e.g. yuvalkirstain/PickScore_v1;
the processor comes from --processor DIR, default CLIP_DIR, e.g. laion/CLIP-ViT-H-14-laion2B-s32B-b79K); or
--tiny-random: the tiny random VAE of pickapic_to_h5.py (same --seed = the VAE the tiny pairs were encoded with)
and a tiny random CLIPModel built from a config (no downloads; the scores are meaningless, for tests only).

  python data_tools/pickscore.py --samples run/samples.h5 --out run/pickscore.json \\
      --pretrained /models/sd15 --pickscore /models/PickScore_v1 --processor /models/CLIP-ViT-H-14
"""
import argparse
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pickapic_to_h5 as pickapic  # noqa: E402  (tiny random VAE and tokenizer)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


# ---- models -------------------------------------------------------------------------------------------------
def tiny_random_scorer(seed, image_size=32):
    """(vae, clip, processor): the converter's tiny VAE + a tiny random CLIPModel with a matching processor."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    try:  # transformers 5 without torchvision: the PIL processor (the default one warns and falls back to it)
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor
    vae, _, tokenizer, _ = pickapic.tiny_random_models(seed)
    torch.manual_seed(seed + 1)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                  image_size=image_size, patch_size=8)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                                image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return vae.eval(), clip, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def pretrained_scorer(sd_dir, clip_dir, processor_dir):
    from diffusers import AutoencoderKL
    from transformers import AutoProcessor, CLIPModel
    vae = AutoencoderKL.from_pretrained(sd_dir, subfolder="vae").eval()
    clip = CLIPModel.from_pretrained(clip_dir).eval()
    return vae, clip, AutoProcessor.from_pretrained(processor_dir or clip_dir)


# ---- scoring ------------------------------------------------------------------------------------------------
def read_samples(path, prompts_path=None):
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != "samples" or "samples" not in f:
            raise SystemExit(f"error: {path}: expected a `dualign sample` file (format samples, dataset samples), "
                             f"got format {fmt!r}")
        latents = f["samples"][:].astype(np.float32)
        if "prompt" in f:
            prompts = [p.decode() if isinstance(p, bytes) else p for p in f["prompt"][:]]
        elif "prompt_index" in f and prompts_path:
            with h5py.File(prompts_path, "r") as g:
                table = [p.decode() if isinstance(p, bytes) else p for p in g["prompt"][:]]
            prompts = [table[i] for i in f["prompt_index"][:]]
        else:
            raise SystemExit(f"error: {path}: no `prompt` dataset (and no prompt_index + --prompts file)")
    if latents.ndim != 4:
        raise SystemExit(f"error: {path}: samples must be latents [N, C, h, w], got shape {latents.shape}")
    return latents, prompts


@torch.no_grad()
def decode(vae, latents, device):
    """Latents in model space -> uint8 images [N, H, W, 3]."""
    x = vae.decode(torch.from_numpy(latents).to(device) / vae.config.scaling_factor).sample
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def features(out):
    """get_*_features returns a tensor (transformers 4) or an output whose pooler_output is projected (5)."""
    return out if torch.is_tensor(out) else out.pooler_output


@torch.no_grad()
def pickscores(clip, processor, images, prompts, device):
    pil = [Image.fromarray(a) for a in images]
    image_in = processor(images=pil, return_tensors="pt").to(device)
    text_in = processor(text=prompts, padding=True, truncation=True, max_length=processor.tokenizer.model_max_length,
                        return_tensors="pt").to(device)
    image_emb = features(clip.get_image_features(**image_in))
    text_emb = features(clip.get_text_features(**text_in))
    image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
    return (clip.logit_scale.exp() * (text_emb * image_emb).sum(-1)).float().cpu().numpy()


def save_grid(images, path, cols=8):
    n, h, w, _ = images.shape
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    Image.fromarray(grid).save(path)


def score_file(args):
    torch.set_num_threads(args.threads)
    latents, prompts = read_samples(args.samples, args.prompts)
    if args.tiny_random:
        vae, clip, processor = tiny_random_scorer(args.seed)
        models = "tiny-random"
        print("WARNING: --tiny-random: random VAE and CLIP (tests only; the scores are meaningless)", flush=True)
    else:
        if not (args.pretrained and args.pickscore):
            raise SystemExit("error: give --pretrained SD_DIR and --pickscore CLIP_DIR, or --tiny-random")
        vae, clip, processor = pretrained_scorer(args.pretrained, args.pickscore, args.processor)
        models = f"vae={os.path.abspath(args.pretrained)} clip={os.path.abspath(args.pickscore)}"
    vae.to(args.device)
    clip.to(args.device)

    scores, decoded = [], []
    for i in range(0, len(latents), args.batch_size):
        images = decode(vae, latents[i:i + args.batch_size], args.device)
        scores.append(pickscores(clip, processor, images, prompts[i:i + args.batch_size], args.device))
        if args.png:
            decoded.append(images)
    scores = np.concatenate(scores).astype(np.float64)
    n = len(scores)
    std = float(scores.std(ddof=1)) if n > 1 else 0.0
    result = {"n": n, "pickscore/mean": float(scores.mean()), "pickscore/se": std / math.sqrt(n), "pickscore/std": std,
              "scores": scores.tolist(), "prompts": prompts, "models": models, "samples": os.path.abspath(args.samples)}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    if args.png:
        save_grid(np.concatenate(decoded), args.png)
    print(json.dumps({k: result[k] for k in ("n", "pickscore/mean", "pickscore/se")}), flush=True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", required=True, help="samples HDF5 from `dualign sample --prompts`")
    p.add_argument("--out", required=True, help="output JSON")
    p.add_argument("--prompts", help="prompts HDF5 (only when the samples file has prompt_index but no prompt)")
    p.add_argument("--pretrained", help="Stable Diffusion directory (its vae/ decodes the latents)")
    p.add_argument("--pickscore", help="CLIP model directory (PickScore_v1)")
    p.add_argument("--processor", help="CLIP processor directory (default: the --pickscore directory)")
    p.add_argument("--tiny-random", action="store_true", help="tiny random VAE and CLIP (tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny-random models")
    p.add_argument("--png", help="also write a grid of the decoded images here")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    args = p.parse_args(argv)
    if args.tiny_random and (args.pretrained or args.pickscore):
        p.error("--tiny-random excludes --pretrained/--pickscore")
    score_file(args)


if __name__ == "__main__":
    main()
