"""Units -> files: each work unit (units.py) becomes its pair shard(s) (shards.py) and a marker
OUT/.units/UNIT.json (written last, atomically) with its counts. A rerun skips units with a marker, so an
interrupted Slurm array is resumed by running it again; the summary adds the counts of every finished unit."""
import argparse
import glob
import json
import multiprocessing
import os

import numpy as np
import torch

from . import encode, models, shards, units

MARKERS = ".units"

# Per worker process: the models, loaded once (worker_init).
_state = {}


def shard_path(out, split, kind, unit):
    """OUT/pickapic-UNIT.h5 (train pairs), OUT/heldout/..., OUT/labelled/..., OUT/heldout/labelled/..."""
    parts = [out] + (["heldout"] if split == "heldout" else []) + (["labelled"] if kind == "labelled" else [])
    return os.path.join(*parts, f"pickapic-{unit.name}.h5")


def worker_init(args):
    torch.set_num_threads(args.threads)
    if args.pretrained:
        vae, text_encoder, tokenizer, name = models.pretrained_models(args.pretrained)
    else:
        vae, text_encoder, tokenizer, name = models.tiny_random_models(args.seed, shape=args.tiny_shape)
    sdxl = isinstance(text_encoder, tuple)  # SDXL: two text encoders, a pooled embedding, size conditioning
    if sdxl:
        text_encoder = tuple(e.to(args.device) for e in text_encoder)
        encode_text = lambda prompts: encode.encode_prompts_sdxl(text_encoder, tokenizer, prompts, args.device)  # noqa: E731
    else:
        text_encoder = text_encoder.to(args.device)
        encode_text = lambda prompts: (encode.encode_prompts(text_encoder, tokenizer, prompts, args.device), None)  # noqa: E731
    _state.update(vae=vae.to(args.device), encode_text=encode_text, sdxl=sdxl, model_name=name, args=args,
                  scorer=None)
    if args.scorer:  # a reward model of data_tools/evaluation scores every image (DMPO's target: reward)
        from evaluation.scorers import build_scorers, parse_overrides
        seed = args.seed if args.scorer_tiny_random else None
        _state["scorer"] = build_scorers([args.scorer], args.device, args.scorer_weights,
                                         parse_overrides(args.scorer_weight), seed)[args.scorer]
    _state["empty"] = _rows(encode_text([""]))[0]


def _rows(encoded):
    """(hidden [B, L, D], pooled [B, P] or None) -> per-caption (hidden, pooled or None)."""
    hidden, pooled = encoded
    return [(hidden[i], None if pooled is None else pooled[i]) for i in range(len(hidden))]


def _decide(rows, args, stats, where):
    """Rows -> decided pairs (winner image first) with their captions, labels and column scores."""
    pairs = []
    for i, row in rows:
        tie = units.is_tie(row["label_0"])
        if tie and not args.keep_ties:
            stats["ties"] += 1
            continue
        try:
            (a, ids_a), (b, ids_b) = (encode.load_image_with_geometry(row[k], args.resolution)
                                      for k in ("jpg_0", "jpg_1"))
        except Exception as e:  # a broken image drops its pair, never the run
            stats["bad_images"] += 1
            print(f"{where} row {i}: cannot decode an image ({e}); pair dropped", flush=True)
            continue
        swap = not tie and float(row["label_0"]) == 0.0
        p = {"images": (b, a) if swap else (a, b), "caption": row["caption"] or "", "preference": 0.5 if tie else 1.0}
        if _state["sdxl"]:
            p["time_ids_w"], p["time_ids_l"] = (ids_b, ids_a) if swap else (ids_a, ids_b)
        if args.score_columns:
            s = [float(row[c]) for c in args.score_columns]
            p["score_w"], p["score_l"] = (s[1], s[0]) if swap else (s[0], s[1])
        pairs.append(p)
    return pairs


def _encode_images(pairs, args):
    """Replaces each pair's images by the winner's and loser's posteriors (float16; flipped too) and scores."""
    if not pairs:
        return
    vae, device = _state["vae"], args.device
    images = [img for p in pairs for img in p["images"]]
    parts = {"": encode.encode_posteriors(vae, images, device)}
    if args.flip:
        parts["_flip"] = encode.encode_posteriors(vae, [encode.flipped(img) for img in images], device)
    if _state["scorer"] is not None:
        scores = _state["scorer"].score(torch.from_numpy(np.stack([np.asarray(img) for img in images])),
                                        [p["caption"] for p in pairs for _ in (0, 1)]).numpy()
    for j, p in enumerate(pairs):
        for k, side in enumerate(("winner", "loser")):
            p[side] = {}
            for suffix, (mean, logvar) in parts.items():
                p[side][suffix] = mean[2 * j + k].astype(np.float16)
                p[side][suffix + "_logvar"] = logvar[2 * j + k].astype(np.float16)
        if _state["scorer"] is not None:
            p["score_w"], p["score_l"] = float(scores[2 * j]), float(scores[2 * j + 1])
        del p["images"]


def _embed_captions(pairs, args):
    """{caption: (text embedding, pooled embedding or None)} for the unique captions of the unit."""
    captions = list(dict.fromkeys(p["caption"] for p in pairs))
    embed = {}
    for i in range(0, len(captions), args.batch_size):
        chunk = captions[i:i + args.batch_size]
        embed.update(zip(chunk, _rows(_state["encode_text"](chunk))))
    return embed


def attributes(args, unit, split, vae_scaling_factor, model_name):
    return {
        "source": os.path.basename(unit.path), "source_rows": f"[{unit.start}, {unit.stop})", "split": split,
        "models": model_name, "resolution": np.int64(args.resolution), "vae_scaling_factor": vae_scaling_factor,
        "image_preprocessing": "resize short side to resolution (bilinear), centre crop",
        "latents": "VAE posterior mean * scaling_factor; *_logvar: log-variance of the same scaled latent "
                   "(logvar + 2 ln scaling_factor); *_flip: posterior of the horizontally flipped image",
        "text_embedding": ("SDXL: penultimate hidden states of both text encoders, concatenated; prompt_pooled: the "
                           "second encoder's projected pooled output; time_ids_w/_l: (original h, w, crop top, left, "
                           "R, R) of each image" if _state["sdxl"] else "text encoder last hidden state") +
                          " of each unique caption (prompt_embedding[prompt_index])",
        "ties": "kept (preference 0.5)" if args.keep_ties else "dropped",
        "heldout_fraction": float(args.heldout_fraction),
        "scores": args.scorer or (",".join(args.score_columns) if args.score_columns else "none"),
    }


def process_unit(unit):
    """One unit -> its files and marker; returns its counts."""
    args = _state["args"]
    stats = {"units": 1, "rows": 0, "ties": 0, "bad_images": 0, "pairs": 0, "heldout_pairs": 0}
    columns = units.COLUMNS + list(args.score_columns or [])
    pairs, batch = [], []

    def flush():
        decided = _decide(batch, args, stats, unit.name)
        _encode_images(decided, args)  # images are decoded and encoded a batch at a time: memory stays bounded
        pairs.extend(decided)
        batch.clear()

    for i, row in enumerate(units.read_unit(unit, columns)):
        stats["rows"] += 1
        batch.append((unit.start + i, row))
        if len(batch) >= args.batch_size:
            flush()
    flush()
    embed = _embed_captions(pairs, args)
    files = []
    sf = float(_state["vae"].config.scaling_factor)
    for split in ("train", "heldout"):
        chosen = [p for p in pairs if units.heldout(p["caption"], args.heldout_fraction) == (split == "heldout")]
        stats["pairs" if split == "train" else "heldout_pairs"] += len(chosen)
        if not chosen:
            continue
        attrs = attributes(args, unit, split, sf, _state["model_name"])
        path = shard_path(args.out, split, "pairs", unit)
        shards.write_pairs(path, chosen, embed, _state["empty"], attrs)
        files.append(path)
        decided = [p for p in chosen if p["preference"] == 1.0]
        if args.labelled and decided:
            path = shard_path(args.out, split, "labelled", unit)
            shards.write_labelled(path, decided, embed, _state["empty"], attrs)
            files.append(path)
    marker = os.path.join(args.out, MARKERS, unit.name + ".json")
    with open(marker + ".tmp", "w") as f:
        json.dump({"unit": unit.name, "files": [os.path.relpath(p, args.out) for p in files], **stats}, f)
    os.replace(marker + ".tmp", marker)
    return stats


def _remove_partial(out, unit):
    """A killed run leaves NAME.tmp files of an unfinished unit: they are rewritten from scratch."""
    for path in glob.glob(os.path.join(out, "**", f"pickapic-{unit.name}.h5.tmp"), recursive=True):
        os.remove(path)


def convert(args):
    """Converts this task's unfinished units; returns (every shard file of the finished units, summed counts)."""
    os.makedirs(os.path.join(args.out, MARKERS), exist_ok=True)
    mine = units.my_units(units.plan_units(args.parquet, args.shard_size, args.max_rows), args.shard_index,
                          args.shard_count)
    done = lambda u: os.path.exists(os.path.join(args.out, MARKERS, u.name + ".json"))  # noqa: E731
    todo = [u for u in mine if not done(u)]
    for u in todo:
        _remove_partial(args.out, u)
    print(f"pick-a-pic: {len(mine)} units for shard {args.shard_index}/{args.shard_count}, "
          f"{len(mine) - len(todo)} already done, {len(todo)} to convert with {args.workers} worker(s)", flush=True)
    if todo and args.workers > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch started its threads
        with ctx.Pool(args.workers, initializer=worker_init, initargs=(args,)) as pool:
            for i, _ in enumerate(pool.imap_unordered(process_unit, todo)):
                print(f"pick-a-pic: {i + 1}/{len(todo)} units", flush=True)
    elif todo:
        worker_init(args)
        for i, u in enumerate(todo):
            process_unit(u)
            print(f"pick-a-pic: {i + 1}/{len(todo)} units", flush=True)
    return summarize(args.out, mine, len(mine) - len(todo), f"{args.shard_index}/{args.shard_count}")


def summarize(out, mine, skipped, shard):
    """Every file of this task's units and their summed counts (from the markers, so a rerun reports all)."""
    totals, files = {"skipped_units": skipped}, []
    for u in mine:
        with open(os.path.join(out, MARKERS, u.name + ".json")) as f:
            m = json.load(f)
        files += [os.path.join(out, p) for p in m["files"]]
        for k, v in m.items():
            if isinstance(v, int):
                totals[k] = totals.get(k, 0) + v
    print(json.dumps({"shard": shard, **totals}), flush=True)
    return sorted(files), totals


def parse_args(argv=None, description=__doc__):
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parquet", nargs="+", required=True, help="Pick-a-Pic parquet file(s)")
    p.add_argument("--out", required=True, help="output directory (train pair shards; heldout/, labelled/ below)")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--pretrained", help="Stable Diffusion directory (diffusers layout: vae/, text_encoder/, tokenizer/; "
                   "SDXL also text_encoder_2/, tokenizer_2/)")
    m.add_argument("--tiny-random", action="store_true", help="tiny random models built from configs (tests)")
    p.add_argument("--tiny-shape", default="tiny", choices=sorted(models.TINY_SHAPES),
                   help="shapes of the --tiny-random models (sd15-shaped: SD-1.5's latent and text shapes; "
                        "sdxl-tiny / sdxl-shaped: two text encoders and SDXL's conditioning, tiny or SDXL-sized)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--shard-size", type=int, default=2000, help="parquet rows per work unit (= per output shard)")
    p.add_argument("--shard-index", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_ID", 0)),
                   help="this task's index in a Slurm array (default $SLURM_ARRAY_TASK_ID or 0)")
    p.add_argument("--shard-count", type=int, default=int(os.environ.get("SLURM_ARRAY_TASK_COUNT", 1)),
                   help="tasks in the array (default $SLURM_ARRAY_TASK_COUNT or 1)")
    p.add_argument("--workers", type=int, default=1, help="worker processes of this task (one model copy each)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--batch-size", type=int, default=8, help="pairs encoded together")
    p.add_argument("--max-rows", type=int, default=0, help="use only the first N rows of each parquet file")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny-random models (and a tiny scorer)")
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="do not store the flipped images' posteriors (halves the latent bytes; the trainer's "
                        "data.flip_probability must then be 0)")
    p.add_argument("--keep-ties", action="store_true",
                   help="keep split decisions (label_0 = 0.5) as pairs with preference 0.5, jpg_0 first "
                        "(the official script drops them)")
    p.add_argument("--heldout-fraction", type=float, default=0.0,
                   help="captions whose SHA-256 falls below this fraction go to OUT/heldout/")
    p.add_argument("--labelled", action="store_true",
                   help="also write KTO's labelled_samples (winner desirable, loser not) to OUT/labelled/")
    p.add_argument("--score-columns", nargs=2, metavar=("COL_0", "COL_1"),
                   help="parquet columns with the reward of jpg_0 and jpg_1 -> score_w / score_l")
    p.add_argument("--scorer", help="score every image with this data_tools/evaluation scorer (e.g. pickscore)")
    p.add_argument("--scorer-weights", help="weights directory of the scorer (evaluate_samples.py --weights)")
    p.add_argument("--scorer-weight", action="append", help="SCORER[.PART]=PATH override")
    p.add_argument("--scorer-tiny-random", action="store_true", help="a tiny random scorer (tests)")
    args = p.parse_args(argv)
    if args.score_columns and args.scorer:
        p.error("--score-columns and --scorer both give scores: choose one")
    if not 0.0 <= args.heldout_fraction < 1.0:
        p.error("--heldout-fraction must lie in [0, 1)")
    return args
