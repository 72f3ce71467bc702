#!/usr/bin/env python3
"""PickScore of generated latents: decode `dualign sample` latents with the SD VAE, score image/prompt with CLIP.

One model, PickScore only; the paired base-vs-tuned protocol with all scorers is evaluate_samples.py. Both use
data_tools/evaluation/ (decode.py, scorers.py).

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

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluation import clip_models, decode as decoding  # noqa: E402
from evaluation.clip_models import CLIP_MEAN, CLIP_STD, features  # noqa: E402,F401  (used by the tools test)
from evaluation.samples import read_samples as read_samples_file  # noqa: E402
from evaluation.scorers import PickScore  # noqa: E402


# ---- models -------------------------------------------------------------------------------------------------
def tiny_random_scorer(seed, image_size=32):
    """(vae, clip, processor): the converter's tiny VAE + a tiny random CLIPModel with a matching processor."""
    clip, processor = clip_models.tiny_random_clip(seed + 1, image_size)
    return decoding.tiny_random_vae(seed), clip, processor


def pretrained_scorer(sd_dir, clip_dir, processor_dir):
    return (decoding.pretrained_vae(sd_dir), clip_models.load_clip(clip_dir),
            clip_models.load_processor(processor_dir or clip_dir))


# ---- scoring ------------------------------------------------------------------------------------------------
def read_samples(path, prompts_path=None):
    samples = read_samples_file(path, prompts_path)
    return samples.latents, samples.prompts


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
    scorer = PickScore(clip, processor, args.device)

    scores, decoded = [], []
    for start, images in decoding.decode_batches(vae, latents, args.device, args.batch_size, "pickscore"):
        scores.append(scorer.score(images, prompts[start:start + len(images)]).numpy())
        if args.png:
            decoded.append(images.numpy())
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
