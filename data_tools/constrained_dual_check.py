#!/usr/bin/env python3
"""Exact answer of the 2-D constrained-alignment problem, for comparison with the learned dual variables.

    min_p KL(p || p_ref)  s.t.  E_p[r_i] >= b_i     has the solution   p* ∝ p_ref · exp(λ*ᵀ r),
    λ* = argmin_{λ >= 0}  log Z(λ) − λᵀb,   Z(λ) = E_ref[exp(λᵀ r(x))]   (the negated concave dual D(λ)).

Z is estimated by importance weights on many reference samples (`dualign sample` of the reference with the same
sampler as training), so λ* is the answer for the trained reference as sampled, not for the ideal mixture. The
convex problem is solved by projected Newton steps with backtracking (gradient E_λ[r] − b, Hessian Cov_λ[r]).
Rewards: r_i(x) = −scale · ||x − target_i||² (the gmm_target kind).

    python data_tools/constrained_dual_check.py --samples ref.h5 --target 2.5 0 --threshold -4 \
        --target 0 2.5 --threshold -8 [--learned 0.23 0.17] [--equal 0.2] --out check.json

Writes a JSON with λ*, E_{p*}[r], KL(p*||p_ref) = λ*ᵀE*[r] − log Z(λ*), the effective sample size of the weights,
and, for --equal w, the exact E[r] and KL of the fixed-weight tilt λ = (w, ..., w) (what the equal-weight baseline
converges to at best).
"""
import argparse
import json

import h5py
import numpy as np


def tilt(R, lam):
    a = R @ lam
    m = a.max()
    w = np.exp(a - m)
    log_z = np.log(w.mean()) + m
    p = w / w.sum()
    er = p @ R
    cov = (R - er).T @ ((R - er) * p[:, None])
    return log_z, er, cov, 1.0 / (p ** 2).sum()


def solve(R, b, iters=200):
    lam = np.zeros(R.shape[1])
    for _ in range(iters):
        log_z, er, cov, _ = tilt(R, lam)
        g = er - b
        free = (lam > 1e-12) | (g < 0)  # at the bound λ_i = 0 with g_i ≥ 0 the projection keeps λ_i = 0
        d = np.zeros_like(lam)
        if free.any():
            d[free] = -np.linalg.solve(cov[np.ix_(free, free)] + 1e-9 * np.eye(free.sum()), g[free])
        f0, t = log_z - lam @ b, 1.0
        while True:
            new = np.maximum(lam + t * d, 0.0)
            if tilt(R, new)[0] - new @ b <= f0 + 1e-12 or t < 1e-10:
                break
            t /= 2
        step = np.abs(new - lam).max()
        lam = new
        if step < 1e-10:
            break
    return lam


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", required=True, help="samples HDF5 of the reference (dualign sample)")
    ap.add_argument("--target", nargs="+", type=float, action="append", required=True, help="target point of r_i")
    ap.add_argument("--threshold", type=float, action="append", required=True, help="b_i (one per --target)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--learned", nargs="+", type=float, help="learned λ to compare with λ*")
    ap.add_argument("--equal", type=float, action="append", default=[], help="fixed equal weight to evaluate")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if len(a.target) != len(a.threshold):
        ap.error(f"{len(a.target)} --target but {len(a.threshold)} --threshold")
    with h5py.File(a.samples, "r") as f:
        x = f["samples"][()].astype(np.float64)
    targets = np.array(a.target)
    if targets.shape[1] != x.shape[1]:
        ap.error(f"targets have {targets.shape[1]} coordinates, samples have {x.shape[1]}")
    R = -a.scale * ((x[:, None, :] - targets[None]) ** 2).sum(-1)
    b = np.array(a.threshold)

    lam = solve(R, b)
    log_z, er, _, ess = tilt(R, lam)
    out = {"n_reference": int(x.shape[0]), "thresholds": b.tolist(), "reference_reward_mean": R.mean(0).tolist(),
           "lambda_star": lam.tolist(), "reward_mean_at_optimum": er.tolist(), "kl_optimum": float(lam @ er - log_z),
           "ess": float(ess)}
    # Standard error of λ* from the Monte Carlo error of Z: rerun on two halves.
    halves = [solve(R[i::2], b) for i in range(2)]
    out["lambda_star_half_sample_spread"] = (np.abs(halves[0] - halves[1]) / 2).tolist()
    if a.learned:
        learned = np.array(a.learned)
        out["lambda_learned"] = learned.tolist()
        out["lambda_abs_error"] = np.abs(learned - lam).tolist()
        _, er_l, _, _ = tilt(R, learned)
        out["reward_mean_of_tilt_at_learned_lambda"] = er_l.tolist()
    for w in a.equal:
        lam_w = np.full_like(lam, w)
        lz, er_w, _, ess_w = tilt(R, lam_w)
        out[f"equal_{w:g}"] = {"reward_mean": er_w.tolist(), "kl": float(lam_w @ er_w - lz),
                               "meets": bool((er_w >= b).all()), "ess": float(ess_w)}
    print(json.dumps(out, indent=1))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
