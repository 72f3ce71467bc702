#!/usr/bin/env python3
"""DDO vs Diffusion-DPO on the true DPO objective (launch/experiments/ddo_vs_dpo.sh).

Inputs: DDO runs' ddo.json (records per DA iteration with `heldout_dpo`, the true DPO objective on the held-out
reference pairs) and `dualign ddo --policy ... --all-checkpoints` outputs for Diffusion-DPO runs (true DPO objective
per checkpoint by PF-ODE log-ratios on the same pairs). Checks that every input used the same pairs (checksum) and
beta_d. Writes one JSON (the curves, the final values, whether DDO ends lower than every Diffusion-DPO run) and a plot:
left panel DDO vs DA iteration, right panel Diffusion-DPO vs training step, shared y axis.
"""
import argparse
import json
import math
import pathlib
import re


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ddo", nargs="+", required=True, help="DDO ddo.json files")
    ap.add_argument("--dpo", nargs="+", required=True, help="true_dpo.json files of Diffusion-DPO runs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--png")
    ap.add_argument("--title", default="DDO vs Diffusion-DPO on the 2-D mixture (preference toward [2.5, 0])")
    a = ap.parse_args()

    ddo = [json.loads(pathlib.Path(p).read_text()) for p in a.ddo]
    dpo = [json.loads(pathlib.Path(p).read_text()) for p in a.dpo]
    pairs = {json.dumps(j["eval_pairs"], sort_keys=True) for j in ddo + dpo}
    if len(pairs) != 1:
        raise SystemExit(f"the runs were scored on different held-out pairs or beta_d: {sorted(pairs)}")
    info = json.loads(pairs.pop())

    out = {"beta_d": info["dpo_beta"], "eval_pairs": info["n"], "log2": math.log(2), "ddo": [], "diffusion_dpo": []}
    for path, j in zip(a.ddo, ddo):
        curve = [{"k": r["k"], "true_dpo": r["heldout_dpo"], "insample_dpo": r["objective"], "kl": r["kl"]}
                 for r in j["iterations"]]
        out["ddo"].append({"run": str(pathlib.Path(path).parent), "beta": j["beta"], "beta_prime": j["beta_prime"],
                           "dpo_optimum_insample": j.get("dpo_optimum"), "curve": curve,
                           "final": curve[-1]["true_dpo"]})
    for path, j in zip(a.dpo, dpo):
        by_policy = {}  # one JSON may score several runs (`dualign ddo --policy A --policy B`)
        for r in j["policies"]:
            by_policy.setdefault(r["policy"], []).append(r)
        for policy, rows in by_policy.items():
            rows.sort(key=lambda r: r["step"])
            m = re.search(r"beta([0-9.eE+-]+)", pathlib.Path(policy).name) or \
                re.search(r"beta([0-9.eE+-]+)", pathlib.Path(path).parent.name)
            curve = [{"step": 0, "true_dpo": math.log(2), "pair_accuracy": 0.5}]  # step 0: the reference itself
            curve += [{"step": r["step"], "true_dpo": r["true_dpo"], "pair_accuracy": r["pair_accuracy"],
                       "mean_ref_log_ratio": r["mean_ref_log_ratio"]} for r in rows]
            out["diffusion_dpo"].append({"run": policy, "beta": float(m.group(1).rstrip(".")) if m else None,
                                         "curve": curve, "final": curve[-1]["true_dpo"],
                                         "best": min(c["true_dpo"] for c in curve),
                                         "best_trained": min(c["true_dpo"] for c in curve[1:])})
    best_ddo = min(r["final"] for r in out["ddo"])
    best_dpo_final = min(r["final"] for r in out["diffusion_dpo"])
    best_dpo_any = min(r["best"] for r in out["diffusion_dpo"])
    best_dpo_trained = min(r["best_trained"] for r in out["diffusion_dpo"])
    out["summary"] = {"ddo_final_best": best_ddo, "diffusion_dpo_final_best": best_dpo_final,
                      "diffusion_dpo_best_any_checkpoint": best_dpo_any,
                      "diffusion_dpo_best_trained_checkpoint": best_dpo_trained,
                      "ddo_lower_at_end": best_ddo < best_dpo_final,
                      "ddo_lower_than_every_dpo_checkpoint": best_ddo < best_dpo_any}
    pathlib.Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["summary"], indent=2))

    if a.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (l, r) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for run in out["ddo"]:
            l.plot([c["k"] for c in run["curve"]], [c["true_dpo"] for c in run["curve"]], "o-",
                   label=f"DDO beta={run['beta']:g}")
        for run in out["diffusion_dpo"]:
            name = pathlib.Path(run["run"]).name
            label = f"Diffusion-DPO beta={run['beta']:g}" if run["beta"] is not None else name
            label += " (early)" if name.startswith("early") else ""
            r.plot([c["step"] for c in run["curve"]], [c["true_dpo"] for c in run["curve"]], "s-", label=label)
        for ax in (l, r):
            ax.axhline(math.log(2), color="gray", lw=0.8, ls=":", label="reference (log 2)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        l.set_xlabel("DA iteration k (k = 1: reference)")
        r.set_xlabel("Diffusion-DPO training step")
        l.set_ylabel(f"true DPO objective (beta_d = {out['beta_d']:g}, {out['eval_pairs']} held-out pairs)")
        fig.suptitle(a.title)
        fig.tight_layout()
        fig.savefig(a.png, dpi=120)


if __name__ == "__main__":
    main()
