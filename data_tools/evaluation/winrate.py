"""Paired comparison of tuned vs base scores with prompt-clustered bootstrap confidence intervals.

Each pair is one prompt and seed scored under both models. Per pair:
  win  = 1 if tuned > base, 0.5 if equal, 0 otherwise       (win rate = mean over pairs)
  diff = tuned - base                                         (mean difference = mean over pairs)
Samples of one prompt are correlated (same text, often similar images), so the bootstrap resamples prompts with
replacement, keeping all pairs of a drawn prompt, and recomputes each statistic as the pooled mean over the drawn
pairs. The CI is the percentile interval of the resampled statistics; the SE is their standard deviation. All
statistics share the same resamples (a seeded numpy Generator), so a report is reproducible.
"""
import numpy as np

DEFAULT_RESAMPLES = 10000
DEFAULT_CONFIDENCE = 0.95


def outcomes(base, tuned):
    """Per-pair win (1), tie (0.5) or loss (0) of tuned over base."""
    base, tuned = np.asarray(base, dtype=np.float64), np.asarray(tuned, dtype=np.float64)
    return (tuned > base).astype(np.float64) + 0.5 * (tuned == base)


def cluster_bootstrap(values, cluster, n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE, seed=0):
    """Bootstrap of pooled means, resampling clusters.

    values: {name: per-pair values [P]}; cluster: int ids [P]. Returns {name: {estimate, se, ci: [lo, hi]}}."""
    names = list(values)
    table = np.stack([np.asarray(values[k], dtype=np.float64) for k in names], axis=1)  # [P, K]
    cluster = np.asarray(cluster)
    if table.shape[0] != len(cluster) or len(cluster) == 0:
        raise ValueError(f"bootstrap needs one cluster id per pair: {table.shape[0]} values, {len(cluster)} ids")
    _, codes = np.unique(cluster, return_inverse=True)
    n_clusters = codes.max() + 1
    sums = np.zeros((n_clusters, len(names)))
    np.add.at(sums, codes, table)
    counts = np.bincount(codes, minlength=n_clusters).astype(np.float64)

    rng = np.random.default_rng(seed)
    stats = np.empty((n_resamples, len(names)))
    chunk = max(1, 2_000_000 // n_clusters)  # bounds the [chunk, clusters] index matrix
    for start in range(0, n_resamples, chunk):
        draw = rng.integers(0, n_clusters, size=(min(chunk, n_resamples - start), n_clusters))
        stats[start:start + len(draw)] = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)[:, None]
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2], axis=0)
    estimate = table.mean(axis=0)
    se = stats.std(axis=0, ddof=1)
    return {k: {"estimate": float(estimate[i]), "se": float(se[i]), "ci": [float(lo[i]), float(hi[i])]}
            for i, k in enumerate(names)}


def compare(base, tuned, cluster, n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE, seed=0):
    """Paired summary of one scorer: win rate and mean difference with CIs, both models' means, counts."""
    base, tuned = np.asarray(base, dtype=np.float64), np.asarray(tuned, dtype=np.float64)
    if base.shape != tuned.shape or base.ndim != 1:
        raise ValueError(f"paired scores must be two equal 1-D arrays, got {base.shape} and {tuned.shape}")
    win = outcomes(base, tuned)
    boot = cluster_bootstrap({"win_rate": win, "mean_diff": tuned - base, "base": base, "tuned": tuned}, cluster,
                             n_resamples, confidence, seed)
    return {
        "n_pairs": int(len(base)),
        "n_prompts": int(len(np.unique(cluster))),
        "wins": int((win == 1).sum()), "ties": int((win == 0.5).sum()), "losses": int((win == 0).sum()),
        **boot,
    }


def bootstrap_settings(n_resamples=DEFAULT_RESAMPLES, confidence=DEFAULT_CONFIDENCE, seed=0):
    return {"resamples": n_resamples, "confidence": confidence, "seed": seed, "unit": "prompt",
            "interval": "percentile"}
