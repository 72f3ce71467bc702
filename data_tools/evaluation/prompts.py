"""Readers for the standard prompt sets, behind one function: read_prompts(path, kind="auto").

  pickapic  Pick-a-Pic parquet (e.g. test_unique): column `caption`; unique captions in first-seen order
  parti     PartiPrompts TSV: column `Prompt`, optional `Category`
  hpsv2     HPSv2 benchmark JSON: a list of prompts (one style per file, the style is the file name:
            anime.json, concept-art.json, paintings.json, photo.json), a dict style -> list of prompts, or a
            directory of such files
  h5        a prompts HDF5 written by encode_prompts.py: `prompt`, optional `category`
  text      one prompt per line; blank lines and lines starting with '#' are skipped
auto picks by extension: .parquet, .tsv, .json or a directory, .h5, anything else text.
"""
import csv
import json
import os
from dataclasses import dataclass

KINDS = ("auto", "pickapic", "parti", "hpsv2", "h5", "text")


@dataclass
class PromptSet:
    prompts: list            # str [P]
    categories: list = None  # str [P] (PartiPrompts category, HPSv2 style) or None
    kind: str = "text"


def detect_kind(path):
    if os.path.isdir(path):
        return "hpsv2"
    ext = os.path.splitext(path)[1].lower()
    return {".parquet": "pickapic", ".tsv": "parti", ".json": "hpsv2", ".h5": "h5", ".hdf5": "h5"}.get(ext, "text")


def read_text(path):
    with open(path, encoding="utf-8") as f:
        prompts = [line.strip() for line in f]
    return PromptSet([p for p in prompts if p and not p.startswith("#")], None, "text")


def read_pickapic(path):
    import pyarrow.parquet as pq
    file = pq.ParquetFile(path)
    if "caption" not in file.schema_arrow.names:
        raise SystemExit(f"error: {path}: no `caption` column (Pick-a-Pic parquet expected; columns: "
                         f"{file.schema_arrow.names})")
    seen = {}
    for batch in file.iter_batches(batch_size=4096, columns=["caption"]):  # streamed: image columns are large
        for caption in batch.column(0).to_pylist():
            if caption is not None and caption.strip():
                seen.setdefault(caption, None)
    return PromptSet(list(seen), None, "pickapic")


def read_parti(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "Prompt" not in rows[0]:
        raise SystemExit(f"error: {path}: expected a PartiPrompts TSV with a `Prompt` column (header: "
                         f"{list(rows[0]) if rows else 'empty file'})")
    rows = [r for r in rows if (r["Prompt"] or "").strip()]
    prompts = [r["Prompt"].strip() for r in rows]
    categories = [r.get("Category") or "" for r in rows] if "Category" in rows[0] else None
    return PromptSet(prompts, categories, "parti")


def _hpsv2_file(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, list):
        data = {os.path.splitext(os.path.basename(path))[0]: data}
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                                             for v in data.values()):
        raise SystemExit(f"error: {path}: expected an HPSv2 benchmark JSON: a list of prompts or a dict style -> "
                         f"list of prompts")
    return data


def read_hpsv2(path):
    files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".json")) \
        if os.path.isdir(path) else [path]
    if not files:
        raise SystemExit(f"error: {path}: no .json files (HPSv2 benchmark: anime.json, concept-art.json, ...)")
    prompts, categories = [], []
    for file in files:
        for style, items in _hpsv2_file(file).items():
            prompts += items
            categories += [style] * len(items)
    return PromptSet(prompts, categories, "hpsv2")


def read_h5(path):
    import h5py
    with h5py.File(path, "r") as f:
        if "prompt" not in f:
            raise SystemExit(f"error: {path}: no `prompt` dataset (expected a prompts file from encode_prompts.py)")
        text = [p.decode() if isinstance(p, bytes) else str(p) for p in f["prompt"][:]]
        categories = [c.decode() if isinstance(c, bytes) else str(c) for c in f["category"][:]] \
            if "category" in f else None
    return PromptSet(text, categories, "h5")


READERS = {"pickapic": read_pickapic, "parti": read_parti, "hpsv2": read_hpsv2, "h5": read_h5, "text": read_text}


def read_prompts(path, kind="auto"):
    """PromptSet of the prompts in `path`; kind is one of KINDS."""
    if kind not in KINDS:
        raise SystemExit(f"error: prompt set kind {kind!r}: expected one of {KINDS}")
    if not os.path.exists(path):
        raise SystemExit(f"error: prompt set {path} does not exist")
    kind = detect_kind(path) if kind == "auto" else kind
    result = READERS[kind](path)
    if not result.prompts:
        raise SystemExit(f"error: {path} ({kind}) holds no prompts")
    return result
