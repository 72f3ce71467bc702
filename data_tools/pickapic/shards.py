"""One unit's encoded rows -> HDF5 files (`preference_pairs`, optionally `labelled_samples`), each written as
NAME.tmp and renamed, so a file is either complete or absent.

Storage (src/data/README.md): latents float16, chunked one sample per chunk (the loader reads samples in random
order, so a chunk never holds rows it does not need) with shuffle + gzip + Fletcher-32; one text embedding per
unique caption of the file (`prompt_embedding` [P, L, D] float16, `prompt_index` [N] int32) and the empty
prompt's (`empty_prompt_embedding` [1, L, D]) for prompt dropout. SDXL adds the pooled embedding of each caption
(`prompt_pooled` [P, D'], `empty_prompt_pooled` [1, D']) and each image's size conditioning (`time_ids_w`,
`time_ids_l` or `time_ids` [N, 6] float32)."""
import os

import h5py
import numpy as np

FORMAT_VERSION = 1
GZIP_LEVEL = 4
POSTERIOR_PARTS = ("", "_logvar", "_flip", "_flip_logvar")  # dataset suffix per part of a stored posterior


def _filters(shape):
    return dict(chunks=(1,) + tuple(shape[1:]), compression="gzip", compression_opts=GZIP_LEVEL, shuffle=True,
                fletcher32=True)


def _small(f, name, values, dtype):
    a = np.asarray(values, dtype=dtype)
    f.create_dataset(name, data=a, chunks=(min(len(a), 4096),), compression="gzip", compression_opts=GZIP_LEVEL,
                     shuffle=True, fletcher32=True)


def _posteriors(f, name, posteriors):
    """posteriors: list per sample of dicts part suffix -> float32 array [C, h, w] (parts present in all)."""
    for suffix in POSTERIOR_PARTS:
        if suffix not in posteriors[0]:
            continue
        a = np.stack([p[suffix] for p in posteriors]).astype(np.float16)
        f.create_dataset(name + suffix, data=a, **_filters(a.shape))


def _text(f, captions, embed, empty):
    """The prompt table of this file's unique captions (first-seen order) and each sample's row in it.
    embed: caption -> (hidden [L, D], pooled [D'] or None); empty: the same for the empty prompt."""
    table = list(dict.fromkeys(captions))
    row = {c: i for i, c in enumerate(table)}
    for name, part in (("prompt_embedding", 0), ("prompt_pooled", 1)):
        if empty[part] is None:
            continue
        emb = np.stack([embed[c][part] for c in table]).astype(np.float16)
        f.create_dataset(name, data=emb, **_filters(emb.shape))
        f.create_dataset("empty_" + name, data=empty[part][None].astype(np.float16),
                         **_filters((1,) + empty[part].shape))
    _small(f, "prompt_index", [row[c] for c in captions], np.int32)
    f.create_dataset("prompt", data=captions, dtype=h5py.string_dtype())


def _time_ids(f, name, rows):
    a = np.stack(rows).astype(np.float32)
    f.create_dataset(name, data=a, chunks=(min(len(a), 4096), 6), compression="gzip", compression_opts=GZIP_LEVEL,
                     shuffle=True, fletcher32=True)


def _atomic(path, fill, attrs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path + ".tmp", "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        fill(f)
    os.replace(path + ".tmp", path)


def write_pairs(path, pairs, embed, empty, attrs):
    """pairs: dicts with winner/loser posteriors, caption, preference, optional score_w/score_l."""
    def fill(f):
        _posteriors(f, "winner", [p["winner"] for p in pairs])
        _posteriors(f, "loser", [p["loser"] for p in pairs])
        _text(f, [p["caption"] for p in pairs], embed, empty)
        _small(f, "preference", [p["preference"] for p in pairs], np.float32)
        if "time_ids_w" in pairs[0]:
            _time_ids(f, "time_ids_w", [p["time_ids_w"] for p in pairs])
            _time_ids(f, "time_ids_l", [p["time_ids_l"] for p in pairs])
        if "score_w" in pairs[0]:
            _small(f, "score_w", [p["score_w"] for p in pairs], np.float32)
            _small(f, "score_l", [p["score_l"] for p in pairs], np.float32)
    _atomic(path, fill, dict(attrs, format="preference_pairs", version=np.int64(FORMAT_VERSION)))


def write_labelled(path, pairs, embed, empty, attrs):
    """KTO's unpaired samples from decided pairs: the winner desirable, the loser not (winner, loser, ...)."""
    samples = [(p[side], p["caption"], side == "winner", p.get("score_w" if side == "winner" else "score_l"),
                p.get("time_ids_w" if side == "winner" else "time_ids_l")) for p in pairs for side in ("winner", "loser")]

    def fill(f):
        _posteriors(f, "samples", [s[0] for s in samples])
        _text(f, [s[1] for s in samples], embed, empty)
        _small(f, "desirable", [s[2] for s in samples], np.uint8)
        if samples[0][3] is not None:
            _small(f, "score", [s[3] for s in samples], np.float32)
        if samples[0][4] is not None:
            _time_ids(f, "time_ids", [s[4] for s in samples])
    _atomic(path, fill, dict(attrs, format="labelled_samples", version=np.int64(FORMAT_VERSION)))
