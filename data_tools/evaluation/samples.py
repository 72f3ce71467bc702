"""Read the `samples` HDF5 files that `dualign sample --prompts` writes (layout: src/eval/samples_io.h).

  samples       float32 [N, 4, h, w]  latents in the model's space (VAE latent * scaling_factor)
  prompt        string  [N]           optional: the prompt of each sample
  prompt_index  int64   [N]           optional: row of that prompt in the prompts HDF5
  seed          int64   [N]           optional: the noise seed of each sample
  image_index   int64   [N]           optional: which of the -n images of its prompt this sample is
Either `prompt` or `prompt_index` plus the prompts file is needed to know what each sample shows.
"""
from dataclasses import dataclass, field

import h5py
import numpy as np

from .prompts import read_h5


@dataclass
class Samples:
    path: str
    latents: np.ndarray                  # float32 [N, C, h, w]
    prompts: list                        # str [N]
    prompt_index: np.ndarray = None      # int64 [N] or None
    seed: np.ndarray = None              # int64 [N] or None
    image_index: np.ndarray = None       # int64 [N] or None
    attrs: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.latents)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_int(f, name, n, path):
    if name not in f:
        return None
    values = f[name][:]
    if values.shape != (n,) or not np.issubdtype(values.dtype, np.integer):
        raise SystemExit(f"error: {path}: `{name}` must be integers [{n}] (one per sample), got {values.dtype} "
                         f"{list(values.shape)}")
    return values.astype(np.int64)


def read_samples(path, prompts_path=None):
    """A Samples record; `prompts_path` (prompts HDF5) resolves `prompt_index` when the file has no `prompt`."""
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        fmt = _text(fmt) if fmt is not None else None
        if fmt != "samples" or "samples" not in f:
            raise SystemExit(f"error: {path}: expected a `dualign sample` file (format samples, dataset samples), "
                             f"got format {fmt!r}")
        latents = f["samples"][:].astype(np.float32)
        if latents.ndim != 4:
            raise SystemExit(f"error: {path}: samples must be latents [N, C, h, w], got shape {list(latents.shape)}")
        n = len(latents)
        prompt_index = _optional_int(f, "prompt_index", n, path)
        seed = _optional_int(f, "seed", n, path)
        image_index = _optional_int(f, "image_index", n, path)
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v.tolist() if hasattr(v, "tolist") else v)
                 for k, v in f.attrs.items()}
        if "prompt" in f:
            prompts = [_text(p) for p in f["prompt"][:]]
        elif prompt_index is not None and prompts_path:
            table = read_h5(prompts_path).prompts
            if prompt_index.min() < 0 or prompt_index.max() >= len(table):
                raise SystemExit(f"error: {path}: prompt_index spans [{prompt_index.min()}, {prompt_index.max()}] "
                                 f"but {prompts_path} holds {len(table)} prompts")
            prompts = [table[i] for i in prompt_index]
        else:
            raise SystemExit(f"error: {path}: no `prompt` dataset (and no prompt_index + --prompts file)")
    if len(prompts) != n:
        raise SystemExit(f"error: {path}: {len(prompts)} prompts for {n} samples")
    return Samples(path, latents, prompts, prompt_index, seed, image_index, attrs)
