"""Pick-a-Pic converter end to end on generated parquet files with tiny random VAE/CLIP models (no downloads).

Content: ties dropped (kept with --keep-ties), a broken image drops its pair, winner/loser follow label_0, the
stored posteriors are the VAE's (mean and log-variance in the scaled space, also of the flipped image, which is not
the mirrored latent), one text embedding per unique caption plus the empty prompt's, the held-out split follows
SHA-256 of the caption, KTO's labelled samples, scores from parquet columns and from a data_tools/evaluation scorer.
SDXL shards: both text encoders' hidden states and the pooled embedding equal diffusers' StableDiffusionXLPipeline
.encode_prompt (to float16 rounding), each image's size conditioning, SDXL's VAE scaling factor.
Scale: two Slurm-array tasks run in parallel (one with two worker processes) write the same files with the same
values as one process; a rerun skips finished units; a killed unit's leftovers are redone. Every file passes
`dualign data validate`."""
import concurrent.futures
import hashlib
import json
import math
import os
import shutil
import sys

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from e2e_util import BIN, SRC, run, temp_dir

sys.path.insert(0, str(SRC / "data_tools"))
from pickapic import convert, encode, models  # noqa: E402

SCRIPT = SRC / "data_tools" / "pickapic_to_h5.py"
HELDOUT = 0.4
COMMON = ["--tiny-random", "--resolution", "32", "--shard-size", "5", "--batch-size", "3", "--threads", "1",
          "--heldout-fraction", str(HELDOUT), "--labelled", "--score-columns", "s_0", "s_1"]


def jpeg(seed, size=(40, 36)):
    rng = np.random.default_rng(seed)
    buf = encode.io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_parquets(tmp):
    """Two files (14 and 9 rows, row groups of 5 and 4): captions repeat in threes, ties at label 0.5, a broken image."""
    files, rows = [], {}
    for f, n in enumerate((14, 9)):
        labels = [[1.0, 0.0, 0.5, 1.0, 0.0][(i + f) % 5] for i in range(n)]
        cols = {"caption": [f"a photo of thing {f}-{i // 3}" for i in range(n)],
                "jpg_0": [jpeg(100 * f + 2 * i) for i in range(n)], "jpg_1": [jpeg(100 * f + 2 * i + 1) for i in range(n)],
                "label_0": labels, "s_0": [float(i) for i in range(n)], "s_1": [10.0 + i for i in range(n)]}
        if f == 0:
            cols["jpg_1"][8] = b"not an image"
        path = str(tmp / f"train-{f:04d}.parquet")
        pq.write_table(pa.table(cols), path, row_group_size=5 if f == 0 else 4)
        files.append(path)
        rows[path] = [{k: cols[k][i] for k in cols} for i in range(n)]
    return files, rows


def expected_pairs(path, rows, unit_start, unit_stop, split):
    """The parquet rows a unit's file of `split` holds, in order (the test's own reading of the rules)."""
    out = []
    for i in range(unit_start, min(unit_stop, len(rows))):
        r = rows[i]
        if r["label_0"] == 0.5 or (path.endswith("0000.parquet") and i == 8):
            continue
        h = int.from_bytes(hashlib.sha256(r["caption"].encode()).digest()[:8], "big") / 2.0 ** 64
        if (h < HELDOUT) == (split == "heldout"):
            out.append(r)
    return out


def read_h5(path):
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f}
        attrs = {k: f.attrs[k] for k in f.attrs}
    if "prompt" in data:
        data["prompt"] = np.array([s.decode() if isinstance(s, bytes) else s for s in data["prompt"]])
    return data, attrs


def tree(out):
    """Every file below `out` (relative path -> bytes-free content: datasets and attributes, or JSON)."""
    found = {}
    for dirpath, _, names in os.walk(out):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, out)
            found[rel] = read_h5(p) if n.endswith(".h5") else json.load(open(p))
    return found


def assert_same_tree(a, b, what):
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb), (what, sorted(set(ta) ^ set(tb)))
    for rel in ta:
        if rel.endswith(".json"):
            assert ta[rel] == tb[rel], (what, rel)
            continue
        (da, aa), (db, ab) = ta[rel], tb[rel]
        assert sorted(da) == sorted(db) and {k: str(v) for k, v in aa.items()} == {k: str(v) for k, v in ab.items()}, rel
        for k in da:
            assert da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k]), (what, rel, k)
    return ta


def check_content(out, files, rows, stats):
    vae, text_encoder, tokenizer, _ = models.tiny_random_models(seed=0)
    sf = vae.config.scaling_factor
    n_rows = sum(len(r) for r in rows.values())
    ties = sum(r["label_0"] == 0.5 for rs in rows.values() for r in rs)
    assert stats["rows"] == n_rows and stats["ties"] == ties and stats["bad_images"] == 1, stats
    assert stats["pairs"] + stats["heldout_pairs"] == n_rows - ties - 1, stats
    assert stats["pairs"] > 0 and stats["heldout_pairs"] > 0, stats
    empty = encode.encode_prompts(text_encoder, tokenizer, [""], "cpu")[0]
    mirrored_gap, shared_captions = [], []
    for path in files:
        for start in range(0, len(rows[path]), 5):
            unit = f"{os.path.splitext(os.path.basename(path))[0]}-{start:09d}"
            for split in ("train", "heldout"):
                sub = [] if split == "train" else ["heldout"]
                want = expected_pairs(path, rows[path], start, start + 5, split)
                pairs_file = os.path.join(out, *sub, f"pickapic-{unit}.h5")
                if not want:
                    assert not os.path.exists(pairs_file), pairs_file
                    continue
                d, attrs = read_h5(pairs_file)
                assert attrs["split"] == split and attrs["format"] == "preference_pairs", attrs
                assert list(d["prompt"]) == [r["caption"] for r in want], (pairs_file, d["prompt"])
                assert d["winner"].dtype == np.float16 and d["prompt_embedding"].dtype == np.float16
                # one embedding per unique caption, in first-seen order
                captions = list(dict.fromkeys(r["caption"] for r in want))
                assert d["prompt_embedding"].shape[0] == len(captions), (pairs_file, captions)
                shared_captions.append(len(captions) < len(want))
                assert [captions[i] for i in d["prompt_index"]] == [r["caption"] for r in want]
                ref = encode.encode_prompts(text_encoder, tokenizer, captions, "cpu")
                np.testing.assert_allclose(d["prompt_embedding"], ref, rtol=2e-3, atol=2e-3)
                np.testing.assert_allclose(d["empty_prompt_embedding"][0], empty, rtol=2e-3, atol=2e-3)
                np.testing.assert_array_equal(d["preference"], np.ones(len(want), np.float32))
                for k, r in enumerate(want):
                    a, b = encode.load_image(r["jpg_0"], 32), encode.load_image(r["jpg_1"], 32)
                    (w, l), (sw, sl) = ((a, b), (r["s_0"], r["s_1"])) if r["label_0"] == 1.0 else ((b, a), (r["s_1"], r["s_0"]))
                    assert (d["score_w"][k], d["score_l"][k]) == (sw, sl), (pairs_file, k)
                    for side, img in (("winner", w), ("loser", l)):
                        x = encode.to_tensor(img)[None]
                        with torch.no_grad():
                            dist = vae.encode(x).latent_dist
                            dist_flip = vae.encode(torch.flip(x, dims=[3])).latent_dist
                        for suffix, dd in (("", dist), ("_flip", dist_flip)):
                            np.testing.assert_allclose(d[side + suffix][k], (dd.mean * sf)[0].numpy(), rtol=3e-3, atol=3e-3)
                            np.testing.assert_allclose(d[side + suffix + "_logvar"][k],
                                                       (dd.logvar + 2 * math.log(sf))[0].numpy(), rtol=3e-3, atol=3e-3)
                        mirrored_gap.append(np.abs(d[side + "_flip"][k].astype(np.float32)
                                                   - d[side][k][..., ::-1].astype(np.float32)).max())
                # KTO: winner desirable, loser not, the same posteriors and scores
                kto, kattrs = read_h5(os.path.join(out, *sub, "labelled", f"pickapic-{unit}.h5"))
                assert kattrs["format"] == "labelled_samples"
                np.testing.assert_array_equal(kto["desirable"], np.tile([1, 0], len(want)).astype(np.uint8))
                np.testing.assert_array_equal(kto["samples"][0::2], d["winner"])
                np.testing.assert_array_equal(kto["samples_flip_logvar"][1::2], d["loser_flip_logvar"])
                np.testing.assert_array_equal(kto["score"][0::2], d["score_w"])
                assert [kto["prompt"][2 * k] for k in range(len(want))] == list(d["prompt"])
    assert any(shared_captions), "no file stores fewer embeddings than pairs"
    # The flipped image's posterior is encoded, not the mirrored latent (the tiny VAE is far from equivariant).
    assert min(mirrored_gap) > 1e-2, min(mirrored_gap)


def convert_in_process(parquets, out, extra=()):
    return convert.convert(convert.parse_args(["--parquet", *parquets, "--out", str(out), *COMMON, *extra]))


def check_sdxl(tmp, parquet, rows):
    """SDXL shards from tiny random SDXL-style models: embeddings as diffusers' SDXL pipeline encodes the captions."""
    from diffusers import StableDiffusionXLPipeline
    files, stats = convert.convert(convert.parse_args(
        ["--parquet", parquet, "--out", str(tmp / "sdxl"), "--tiny-random", "--tiny-shape", "sdxl-tiny", "--resolution",
         "32", "--shard-size", "9", "--threads", "1", "--labelled"]))
    pairs = [p for p in files if "labelled" not in p]
    assert len(pairs) == 1 and stats["pairs"] == 7, (files, stats)
    d, attrs = read_h5(pairs[0])
    assert attrs["vae_scaling_factor"] == models.SDXL_VAE_SCALING_FACTOR, attrs
    assert d["prompt_embedding"].shape == (3, 16, 64) and d["prompt_pooled"].shape == (3, 16), d["prompt_pooled"].shape
    assert d["empty_prompt_pooled"].shape == (1, 16)
    vae, encoders, tokenizers, _ = models.tiny_random_models(0, shape="sdxl-tiny")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1],
                                     tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=None, scheduler=None)
    prompts = [p.decode() if isinstance(p, bytes) else p for p in d["prompt"]] + [""]
    with torch.no_grad():
        hidden, _, pooled, _ = pipe.encode_prompt(prompts, device="cpu", do_classifier_free_guidance=False)
    idx = d["prompt_index"]
    for ours, theirs in ((np.concatenate([d["prompt_embedding"][idx], d["empty_prompt_embedding"]]), hidden),
                         (np.concatenate([d["prompt_pooled"][idx], d["empty_prompt_pooled"]]), pooled)):
        np.testing.assert_allclose(ours.astype(np.float32), theirs.numpy(), atol=2e-3 * np.abs(theirs.numpy()).max())
    # jpeg() images are 40x36: resized to 35x32, centre-cropped at left 2; target 32x32.
    decided = [r for r in rows[:9] if r["label_0"] != 0.5]
    np.testing.assert_array_equal(d["time_ids_w"], [[36, 40, 0, 2, 32, 32]] * len(decided))
    np.testing.assert_array_equal(d["time_ids_l"], d["time_ids_w"])
    kto, _ = read_h5(next(p for p in files if "labelled" in p))
    assert kto["time_ids"].shape == (14, 6) and kto["prompt_pooled"].shape == (3, 16)
    print("SDXL shards: text embeddings equal diffusers' SDXL encode_prompt; time ids per image")
    return files


def main():
    tmp = temp_dir("pickapic-test-")
    parquets, rows = make_parquets(tmp)

    # One process converts everything.
    one = tmp / "one"
    files, stats = convert_in_process(parquets, one)
    assert stats["units"] == 5 and stats["skipped_units"] == 0, stats
    check_content(str(one), parquets, rows, stats)
    print("content OK:", stats)

    # A Slurm array of two tasks in parallel, the first with two worker processes: the same files, the same values.
    two = tmp / "two"
    task = lambda i, *extra: run([sys.executable, SCRIPT, "--parquet", *parquets, "--out", two, *COMMON,  # noqa: E731
                                  "--shard-index", str(i), "--shard-count", "2", *extra])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda a: task(*a), [(0, "--workers", "2"), (1,)]))
    assert '"units": 3' in outs[0].stdout and '"units": 2' in outs[1].stdout, [o.stdout[-300:] for o in outs]
    all_files = assert_same_tree(one, two, "two tasks vs one process")
    print(f"two parallel tasks == one process: {len(all_files)} files")

    # A rerun skips finished units and touches nothing.
    mtimes = {p: os.path.getmtime(os.path.join(two, p)) for p in all_files}
    again = task(0)
    assert "3 already done, 0 to convert" in again.stdout, again.stdout
    assert mtimes == {p: os.path.getmtime(os.path.join(two, p)) for p in all_files}

    # A unit killed mid-write (no marker, a stale .tmp, one file missing) is converted again, identically.
    unit = "train-0000-000000005"
    os.remove(two / ".units" / f"{unit}.json")
    os.replace(two / f"pickapic-{unit}.h5", two / f"pickapic-{unit}.h5.tmp")
    redo = task(1)
    assert "1 already done, 1 to convert" in redo.stdout, redo.stdout
    assert not (two / f"pickapic-{unit}.h5.tmp").exists()
    assert_same_tree(one, two, "after redoing a killed unit")
    print("rerun skips finished units; a killed unit is redone")

    # Ties kept on request (preference 0.5, jpg_0 first; never KTO samples); scores from a tiny random PickScore.
    ties = tmp / "ties"
    _, tstats = convert.convert(convert.parse_args(
        ["--parquet", parquets[1], "--out", str(ties), "--tiny-random", "--resolution", "32", "--shard-size", "9",
         "--keep-ties", "--labelled", "--scorer", "pickscore", "--scorer-tiny-random", "--max-rows", "6"]))
    d, _ = read_h5(ties / "pickapic-train-0001-000000000.h5")
    labels = [r["label_0"] for r in rows[parquets[1]][:6]]
    np.testing.assert_array_equal(d["preference"], [0.5 if x == 0.5 else 1.0 for x in labels])
    assert tstats["ties"] == 0 and tstats["pairs"] == 6, tstats
    kto, _ = read_h5(ties / "labelled" / "pickapic-train-0001-000000000.h5")
    assert len(kto["desirable"]) == 2 * sum(x != 0.5 for x in labels)
    from evaluation.scorers import PickScore
    scorer = PickScore.tiny_random(0, "cpu")
    r = rows[parquets[1]][0]
    w, l = (r["jpg_0"], r["jpg_1"]) if r["label_0"] != 0.0 else (r["jpg_1"], r["jpg_0"])
    images = torch.from_numpy(np.stack([np.asarray(encode.load_image(x, 32)) for x in (w, l)]))
    np.testing.assert_allclose([d["score_w"][0], d["score_l"][0]], scorer.score(images, [r["caption"]] * 2).numpy(),
                               rtol=1e-5)
    print("ties kept with preference 0.5; PickScore scores per image")

    sdxl = check_sdxl(tmp, parquets[1], rows[parquets[1]])

    if os.environ.get("DUALIGN_BIN") or BIN.exists():  # the converter alone needs no build
        every = [p for p in sorted(all_files) if p.endswith(".h5")] + ["../ties/pickapic-train-0001-000000000.h5"]
        every += [os.path.relpath(p, two) for p in sdxl]
        for p in every:
            r = run([BIN, "data", "validate", two / p])
            assert "OK" in r.stdout, r.stdout + r.stderr
        print(f"dualign data validate: {len(every)} files OK")
    shutil.rmtree(tmp, ignore_errors=True)
    print("pickapic converter OK:", stats)


if __name__ == "__main__":
    main()
