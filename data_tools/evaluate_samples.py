#!/usr/bin/env python3
"""Compare a tuned model with its base on the same prompts and seeds: decode both `dualign sample` files with the
SD VAE, score every image with PickScore, CLIP score, the LAION aesthetic predictor and HPSv2, and write a report
(report.md, report.json, grid-NNN.png) with paired win rates and mean differences, each with a prompt-clustered
bootstrap CI.

Inputs: two `samples` HDF5 files from `dualign sample --prompts` (latents × scaling_factor, `prompt` or
`prompt_index` + --prompts, optional `seed` / `image_index`; see data_tools/evaluation/samples.py). Pairs are
matched on (prompt, image_index) when both files have image_index, else row by row (see evaluation/pairing.py).
Models come from local files only: --vae SD_DIR (its vae/) and --weights DIR holding
  PickScore_v1/  CLIP-ViT-H-14-laion2B-s32B-b79K/  clip-vit-large-patch14/
  sac+logos+ava1-l14-linearMSE.pth  HPS_v2_compressed.pt
(any of them can be pointed elsewhere with --weight SCORER[.PART]=PATH); or --tiny-random (tests only).

  python data_tools/evaluate_samples.py --base base/samples.h5 --tuned dpo/samples.h5 --out eval/dpo_vs_base \\
      --vae /models/sd15 --weights /models/scorers --prompt-set /data/PartiPrompts.tsv
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluation import decode, grids, pairing, report, samples, scorers, winrate  # noqa: E402
from evaluation.prompts import KINDS, read_prompts  # noqa: E402

DEFAULT_SCORERS = "pickscore,clip,aesthetic,hpsv2"


def grid_pairs(pairs, n_prompts):
    """Indices of the first pair of each of the first n_prompts prompts (in pair order)."""
    chosen, seen = [], set()
    for i, c in enumerate(pairs.cluster):
        if len(seen) >= n_prompts:
            break
        if c not in seen:
            seen.add(c)
            chosen.append(i)
    return chosen


def score_side(vae, models, latents, rows, prompts, keep, args, side):
    """Scores [P] per scorer of latents[rows] (decoded in batches); the decoded images of the pairs in `keep`."""
    scores = {name: np.empty(len(rows)) for name in models}
    kept = {}
    for start, images in decode.decode_batches(vae, latents[rows], args.device, args.batch_size,
                                                  f"{side}: decode + score"):
        batch_prompts = prompts[start:start + len(images)]
        for name, model in models.items():
            scores[name][start:start + len(images)] = model.score(images, batch_prompts).numpy()
        for i in keep:
            if start <= i < start + len(images):
                kept[i] = images[i - start].numpy()
    return scores, kept


def categories_of(pairs, prompt_set_path, kind):
    prompt_set = read_prompts(prompt_set_path, kind)
    if prompt_set.categories is None:
        return None
    table = {}
    for p, c in zip(prompt_set.prompts, prompt_set.categories):
        table.setdefault(p, c)
    return [table.get(p, "(not in prompt set)") for p in pairs.prompts]


def evaluate(args):
    torch.set_num_threads(args.threads)
    base = samples.read_samples(args.base, args.prompts)
    tuned = samples.read_samples(args.tuned, args.prompts)
    pairs = pairing.pair_samples(base, tuned, args.allow_seed_mismatch)
    names = args.scorers.split(",")
    if args.tiny_random:
        print("WARNING: --tiny-random: random VAE and scorers (tests only; the scores are meaningless)", flush=True)
        vae = decode.tiny_random_vae(args.seed)
        models = scorers.build_scorers(names, args.device, tiny_random_seed=args.seed)
        model_info = "tiny-random"
    else:
        if not args.vae:
            raise SystemExit("error: give --vae SD_DIR (Stable Diffusion directory with vae/) or --tiny-random")
        vae = decode.pretrained_vae(args.vae)
        models = scorers.build_scorers(names, args.device, args.weights, scorers.parse_overrides(args.weight))
        model_info = f"vae={os.path.abspath(args.vae)} weights={os.path.abspath(args.weights) if args.weights else '-'}"
        if args.weight:
            model_info += " " + " ".join(args.weight)
    vae.to(args.device)

    keep = grid_pairs(pairs, args.grid_prompts)
    base_scores, base_images = score_side(vae, models, base.latents, pairs.base_rows, pairs.prompts, keep, args,
                                          args.base_name)
    tuned_scores, tuned_images = score_side(vae, models, tuned.latents, pairs.tuned_rows, pairs.prompts, keep, args,
                                            args.tuned_name)

    boot = dict(n_resamples=args.resamples, confidence=args.confidence, seed=args.bootstrap_seed)
    results = {n: winrate.compare(base_scores[n], tuned_scores[n], pairs.cluster, **boot) for n in models}
    out = {
        "base": {"name": args.base_name, "path": os.path.abspath(args.base), "n_samples": len(base)},
        "tuned": {"name": args.tuned_name, "path": os.path.abspath(args.tuned), "n_samples": len(tuned)},
        "pairing": {"key": pairs.key, "n_pairs": len(pairs), "n_prompts": int(pairs.cluster.max() + 1),
                    "seeds": "matched" if pairs.seed is not None else "not recorded"},
        "bootstrap": winrate.bootstrap_settings(**boot),
        "models": model_info,
        "scorers": {n: scorers.SCORERS[n].summary for n in models},
        "results": results,
    }
    if args.prompt_set:
        cats = categories_of(pairs, args.prompt_set, args.prompt_set_kind)
        if cats is not None:
            cats = np.array(cats)
            out["categories"] = {n: {c: winrate.compare(base_scores[n][cats == c], tuned_scores[n][cats == c],
                                                        pairs.cluster[cats == c], **boot)
                                     for c in dict.fromkeys(cats)} for n in models}
    os.makedirs(args.out, exist_ok=True)
    rows = [{"prompt": pairs.prompts[i], "seed": None if pairs.seed is None else int(pairs.seed[i]),
             "base_image": base_images[i], "tuned_image": tuned_images[i],
             "base_scores": {n: base_scores[n][i] for n in models},
             "tuned_scores": {n: tuned_scores[n][i] for n in models}} for i in keep]
    out["grids"] = grids.write_grids(rows, args.out, args.grid_per_page, args.grid_size,
                                     (args.base_name, args.tuned_name))
    out["pairs"] = [{"prompt": pairs.prompts[i], "base_row": int(pairs.base_rows[i]),
                     "tuned_row": int(pairs.tuned_rows[i]),
                     "seed": None if pairs.seed is None else int(pairs.seed[i]),
                     "image_index": None if pairs.image_index is None else int(pairs.image_index[i]),
                     "base": {n: float(base_scores[n][i]) for n in models},
                     "tuned": {n: float(tuned_scores[n][i]) for n in models}} for i in range(len(pairs))]
    json_path, md_path = report.write_report(out, args.out)
    print(json.dumps({n: {"win_rate": r["win_rate"]["estimate"], "win_rate_ci": r["win_rate"]["ci"],
                          "mean_diff": r["mean_diff"]["estimate"]} for n, r in results.items()}), flush=True)
    print(f"report: {md_path}", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="samples HDF5 of the base model")
    p.add_argument("--tuned", required=True, help="samples HDF5 of the tuned model")
    p.add_argument("--base-name", default="base")
    p.add_argument("--tuned-name", default="tuned")
    p.add_argument("--out", required=True, help="report directory (report.md, report.json, grid-NNN.png)")
    p.add_argument("--prompts", help="prompts HDF5 (only for samples files with prompt_index but no prompt)")
    p.add_argument("--scorers", default=DEFAULT_SCORERS, help=f"comma-separated, of {sorted(scorers.SCORERS)}")
    p.add_argument("--vae", help="Stable Diffusion directory (its vae/) or a VAE directory")
    p.add_argument("--weights", help="directory holding the scorer weights (layout above)")
    p.add_argument("--weight", action="append", metavar="SCORER[.PART]=PATH", help="one scorer weight elsewhere")
    p.add_argument("--tiny-random", action="store_true", help="tiny random VAE and scorers (tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny-random models")
    p.add_argument("--prompt-set", help="the prompt set sampled, any format of encode_prompts.py or its prompts HDF5 "
                   "(per-category tables for PartiPrompts categories and HPSv2 styles)")
    p.add_argument("--prompt-set-kind", default="auto", choices=KINDS)
    p.add_argument("--allow-seed-mismatch", action="store_true", help="pair samples whose recorded seeds differ")
    p.add_argument("--resamples", type=int, default=winrate.DEFAULT_RESAMPLES, help="bootstrap resamples")
    p.add_argument("--confidence", type=float, default=winrate.DEFAULT_CONFIDENCE)
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--grid-prompts", type=int, default=16, help="prompts shown in the grids (first pair of each)")
    p.add_argument("--grid-per-page", type=int, default=8)
    p.add_argument("--grid-size", type=int, default=256, help="minimum displayed image size in pixels")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    args = p.parse_args(argv)
    if args.tiny_random and (args.vae or args.weights or args.weight):
        p.error("--tiny-random excludes --vae/--weights/--weight")
    if not 0 < args.confidence < 1:
        p.error("--confidence must be in (0, 1)")
    return evaluate(args)


if __name__ == "__main__":
    main()
