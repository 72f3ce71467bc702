#!/usr/bin/env python3
"""Bytes per pair of Pick-a-Pic shards: today's layout (a converter of an earlier commit, float32 latent means and
one float32 text embedding per pair, uncompressed) vs data_tools/pickapic_to_h5.py's (float16 posteriors, one text
embedding per unique caption, chunked compression), on the same generated parquet and the same models.

Storage depends on tensor shapes, so the models are tiny random ones with SD-1.5's shapes (--tiny-shape
sd15-shaped: 512 px -> latents [4, 64, 64], text [77, 768]); with random weights the values compress differently
from a real VAE's (the float16 means are near-incompressible either way). The earlier converter is read from git
(`git show REV:data_tools/pickapic_to_h5.py`) and given the same models. Prints a Markdown table and JSON.

  python bench/pickapic_bytes.py --rows 24 --captions 6 --baseline-rev 9ffc33c
"""
import argparse
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "data_tools"))
from pickapic import convert, models  # noqa: E402


def photo_like(seed, size):
    """A smooth random image (low-frequency noise, upsampled) as JPEG: closer to a photo than white noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_parquet(path, rows, captions, size):
    labels = [[1.0, 0.0][i % 2] for i in range(rows)]
    pq.write_table(pa.table({"caption": [f"a generated prompt number {i % captions} with some words" for i in range(rows)],
                             "jpg_0": [photo_like(2 * i, size) for i in range(rows)],
                             "jpg_1": [photo_like(2 * i + 1, size) for i in range(rows)],
                             "label_0": labels}), path)


def baseline_module(rev, workdir):
    src = subprocess.run(["git", "-C", REPO, "show", f"{rev}:data_tools/pickapic_to_h5.py"], check=True,
                         capture_output=True, text=True).stdout
    path = os.path.join(workdir, "pickapic_to_h5_baseline.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("pickapic_to_h5_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dataset_bytes(paths):
    """{dataset: bytes on disk} summed over files, and the total file size."""
    out = {}
    for p in paths:
        with h5py.File(p, "r") as f:
            for k in f:
                if isinstance(f[k], h5py.Dataset):
                    out[k] = out.get(k, 0) + f[k].id.get_storage_size()
    return out, sum(os.path.getsize(p) for p in paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=24, help="pairs in the parquet (no ties)")
    ap.add_argument("--captions", type=int, default=6, help="distinct captions (pairs per caption = rows / captions)")
    ap.add_argument("--baseline-rev", default="9ffc33c", help="commit whose pickapic_to_h5.py is today's layout")
    ap.add_argument("--shape", default="sd15-shaped", choices=sorted(models.TINY_SHAPES))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    res = models.TINY_SHAPES[a.shape]["resolution"]
    tmp = tempfile.mkdtemp(prefix="pickapic-bytes-")
    parquet = os.path.join(tmp, "train-0000.parquet")
    make_parquet(parquet, a.rows, a.captions, (res * 5 // 4, res))

    base = baseline_module(a.baseline_rev, tmp)
    base.tiny_random_models = lambda seed=0, workdir=None: models.tiny_random_models(seed, workdir, shape=a.shape)
    base_paths, base_stats = base.convert(argparse.Namespace(
        parquet=[parquet], out=os.path.join(tmp, "today"), pretrained=None, tiny_random=True, resolution=res,
        shard_size=a.rows, batch_size=4, max_rows=0, device="cpu", threads=a.threads, seed=0))
    results = {"today": (base_paths, base_stats["pairs"])}
    for name, extra in (("new (flips stored)", []), ("new, --no-flip", ["--no-flip"])):
        out = os.path.join(tmp, name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", ""))
        paths, stats = convert.convert(convert.parse_args(
            ["--parquet", parquet, "--out", out, "--tiny-random", "--tiny-shape", a.shape, "--resolution", str(res),
             "--shard-size", str(a.rows), "--batch-size", "4", "--threads", str(a.threads)] + extra))
        results[name] = (paths, stats["pairs"])

    today = dataset_bytes(results["today"][0])[1] / results["today"][1]
    print(f"\n{a.rows} pairs, {a.captions} captions ({a.rows / a.captions:g} pairs per caption), {a.shape} models\n")
    print("| layout | bytes per pair | vs today | largest datasets (bytes per pair) |")
    print("|---|---|---|---|")
    report = {}
    for name, (paths, pairs) in results.items():
        per_dataset, total = dataset_bytes(paths)
        top = sorted(per_dataset.items(), key=lambda kv: -kv[1])[:4]
        print(f"| {name} | {total / pairs:,.0f} | {total / pairs / today:.1%} | "
              + ", ".join(f"{k} {v / pairs:,.0f}" for k, v in top) + " |")
        report[name] = {"bytes_per_pair": total / pairs, "ratio": total / pairs / today,
                        "datasets": {k: v / pairs for k, v in per_dataset.items()}}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
