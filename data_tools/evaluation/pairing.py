"""Match each tuned sample with the base sample of the same prompt and seed.

Key, in order of preference:
  (prompt, image_index)        both files have `image_index` and prompt strings
  (prompt_index, image_index)  both files have `image_index` and `prompt_index`; their prompt texts must still agree
  row order                    neither key exists: the files must have the same length and the same prompt per row
When both files carry `seed`, paired samples must have the same seed (the point of a paired comparison), unless
allow_seed_mismatch is set.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    base_rows: np.ndarray     # int64 [P]: row in the base file
    tuned_rows: np.ndarray    # int64 [P]: row in the tuned file
    prompts: list             # str [P]
    cluster: np.ndarray       # int64 [P]: one id per distinct prompt (the bootstrap resamples these)
    seed: np.ndarray          # int64 [P] or None
    image_index: np.ndarray   # int64 [P] or None
    key: str                  # how the pairs were matched

    def __len__(self):
        return len(self.base_rows)


def _keyed_rows(samples, use_prompt_text):
    rows = {}
    for i in range(len(samples)):
        head = samples.prompts[i] if use_prompt_text else int(samples.prompt_index[i])
        key = (head, int(samples.image_index[i]))
        if key in rows:
            raise SystemExit(f"error: {samples.path}: rows {rows[key]} and {i} share the pairing key {key!r} "
                             f"((prompt, image_index) must be unique)")
        rows[key] = i
    return rows


def _pair_by_key(base, tuned):
    use_text = True
    if base.prompt_index is not None and tuned.prompt_index is not None:
        use_text = False  # indices are exact; the prompt text is checked below
    base_rows, tuned_rows = _keyed_rows(base, use_text), _keyed_rows(tuned, use_text)
    missing = [k for k in base_rows if k not in tuned_rows]
    extra = [k for k in tuned_rows if k not in base_rows]
    if missing or extra:
        raise SystemExit(f"error: {base.path} and {tuned.path} hold different samples: {len(missing)} base keys "
                         f"missing from tuned (e.g. {missing[:3]}), {len(extra)} tuned keys missing from base "
                         f"(e.g. {extra[:3]}); sample both models with the same prompts and -n")
    keys = list(base_rows)
    b = np.array([base_rows[k] for k in keys], dtype=np.int64)
    t = np.array([tuned_rows[k] for k in keys], dtype=np.int64)
    name = "(prompt, image_index)" if use_text else "(prompt_index, image_index)"
    return b, t, name


def _pair_by_row(base, tuned):
    if len(base) != len(tuned):
        raise SystemExit(f"error: {base.path} has {len(base)} samples but {tuned.path} has {len(tuned)}, and they "
                         f"lack `image_index` to pair them by key; sample both models with the same prompts and -n")
    rows = np.arange(len(base), dtype=np.int64)
    return rows, rows.copy(), "row order"


def pair_samples(base, tuned, allow_seed_mismatch=False):
    """Pairs of (base row, tuned row) showing the same prompt (and seed, where the files record it)."""
    if base.image_index is not None and tuned.image_index is not None:
        b, t, key = _pair_by_key(base, tuned)
    else:
        b, t, key = _pair_by_row(base, tuned)
    prompts = [base.prompts[i] for i in b]
    differ = [(int(i), int(j)) for i, j in zip(b, t) if base.prompts[i] != tuned.prompts[j]]
    if differ:
        i, j = differ[0]
        raise SystemExit(f"error: paired by {key}, {len(differ)} pairs show different prompts, e.g. base row {i} "
                         f"{base.prompts[i]!r} vs tuned row {j} {tuned.prompts[j]!r}")
    seed = None
    if base.seed is not None and tuned.seed is not None:
        seed = base.seed[b]
        mismatch = np.flatnonzero(seed != tuned.seed[t])
        if len(mismatch) and not allow_seed_mismatch:
            k = mismatch[0]
            raise SystemExit(f"error: paired by {key}, {len(mismatch)} pairs have different seeds, e.g. base row "
                             f"{b[k]} seed {seed[k]} vs tuned row {t[k]} seed {tuned.seed[t[k]]} "
                             f"(sample both models with the same --seed, or pass --allow-seed-mismatch)")
    image_index = base.image_index[b] if base.image_index is not None else None
    codes = {}
    cluster = np.array([codes.setdefault(p, len(codes)) for p in prompts], dtype=np.int64)
    return Pairs(b, t, prompts, cluster, seed, image_index, key)
