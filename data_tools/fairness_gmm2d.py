"""Summary of launch/experiments/mixture_gmm2d.sh: generated mass per dataset of the 2-D OR-composition demo (d1 = one
Gaussian at (0.75, 0); d2 = two Gaussians at (-0.75, ±0.75); covariance 0.025 I) against the exact maximum-entropy
mixture weights, which the paper's constraint form (equal cross-entropies / ELBOs) converges to. A sample belongs to
the dataset of its nearest component mean (the components are ~9 standard deviations apart)."""
import argparse
import json
import pathlib

import h5py
import numpy as np

MEANS = np.array([[0.75, 0.0], [-0.75, 0.75], [-0.75, -0.75]])
GROUP = np.array([0, 1, 1])
VAR = 0.025


def log_density(x, weights):  # mixture of the three components with the given component weights
    d2 = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    log_comp = -0.5 * d2 / VAR - np.log(2 * np.pi * VAR)
    with np.errstate(divide="ignore"):
        a = log_comp + np.log(weights)[None]
    m = a.max(1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(1, keepdims=True)))[:, 0]


def max_entropy_weight(n=200000, seed=0):
    """argmax_w H(w q1 + (1-w) q2) by Monte Carlo with common random numbers (exact up to MC error ~1e-3)."""
    rng = np.random.default_rng(seed)
    x1 = MEANS[0] + np.sqrt(VAR) * rng.standard_normal((n, 2))
    x2 = MEANS[1 + rng.integers(0, 2, n)] + np.sqrt(VAR) * rng.standard_normal((n, 2))
    grid = np.linspace(0.2, 0.5, 301)
    ent = [-(w * log_density(x1, [w, (1 - w) / 2, (1 - w) / 2]).mean() +
             (1 - w) * log_density(x2, [w, (1 - w) / 2, (1 - w) / 2]).mean()) for w in grid]
    return float(grid[int(np.argmax(ent))])


def mass(samples):
    d2 = ((samples[:, None, :] - MEANS[None]) ** 2).sum(-1)
    g = GROUP[d2.argmin(1)]
    share = np.bincount(g, minlength=2) / len(g)
    return share.tolist(), float(np.sqrt(share[1] * (1 - share[1]) / len(g)))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, type=pathlib.Path, help="holds <name>/ (run dir) and samples_<name>.h5")
    ap.add_argument("--runs", nargs="+", required=True, help="run names")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    a = ap.parse_args()
    w1 = max_entropy_weight()
    out = {"max_entropy_mass": [w1, 1 - w1], "disjoint_support_closed_form": [1 / 3, 2 / 3], "runs": {}}
    for name in a.runs:
        with h5py.File(a.root / f"samples_{name}.h5", "r") as f:
            s = f["samples"][()].reshape(-1, 2)
        share, se = mass(s)
        records = [json.loads(l) for l in (a.root / name / "metrics.jsonl").read_text().splitlines()]
        lam = [r["dual/d2/lambda"] for r in records if "dual/d2/lambda" in r]
        spread = [r["dual/rank_spread"] for r in records if "dual/rank_spread" in r]
        out["runs"][name] = {"mass": share, "mass_d2_se": se, "n": len(s),
                             "abs_error_d2_vs_max_entropy": abs(share[1] - (1 - w1)),
                             "lambda_d2_final": lam[-1], "lambda_d2_mean_second_half": float(np.mean(lam[len(lam) // 2:])),
                             "dual_updates": len(lam), "max_rank_spread_of_lambda": max(spread)}
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
