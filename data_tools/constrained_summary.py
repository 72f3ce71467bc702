"""Summary of a constrained-alignment launch (launch/experiments/constrained_gmm.sh,
launch/experiments/constrained_fmnist.sh): for each run (the dual-trained model and the equal-weight baseline), every
constraint's held-out reward mean ± standard error against its threshold (met within two standard errors?), the path
KL to the reference (and the PF-ODE KL when that evaluation exists), the last training KL estimate and the final dual
variables. Writes ROOT/summary.json and prints a table.

  python data_tools/constrained_summary.py --root outputs/gmm/constrained --constraint right=-4 \\
      --constraint top=-8:gmm_target_top --eval eval_path.json --pfode eval_pfode.json --exact exact.json

A constraint is NAME=THRESHOLD[:EVAL_KEY]: its dual variable is dual/NAME/lambda in the run's metrics.jsonl and its
reward is reward[/EVAL_KEY]/mean in the run's evaluation (no key: the first --reward of `dualign eval`). THRESHOLD
`run` takes the threshold in the reward's own units from the run's metrics (dual/NAME/threshold_raw: a z-scored
constraint's threshold · reference std + reference mean)."""
import argparse
import json
import pathlib


def parse_constraint(text):
    name, _, rest = text.partition("=")
    threshold, _, key = rest.partition(":")
    if not name or not threshold:
        raise argparse.ArgumentTypeError(f"expected NAME=THRESHOLD[:EVAL_KEY], got '{text}'")
    return name, threshold if threshold == "run" else float(threshold), f"/{key}" if key else ""


def last_row(rows, key, path):
    hits = [r for r in rows if key in r]
    if not hits:
        raise SystemExit(f"{path}: no row with '{key}'")
    return hits[-1]


def summarize_run(run_dir, constraints, eval_name, pfode_name):
    ev = json.loads((run_dir / eval_name).read_text())
    metrics = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    lam = last_row(rows, f"dual/{constraints[0][0]}/lambda", metrics)
    r = {"kl_path": ev["kl"], "kl_path_se": ev["kl_se"],
         "kl_train_estimate_last": last_row(rows, "train/kl", metrics)["train/kl"],
         "lambda": {name: lam[f"dual/{name}/lambda"] for name, _, _ in constraints}, "constraints": {}}
    if pfode_name and (run_dir / pfode_name).exists():
        ode = json.loads((run_dir / pfode_name).read_text())
        r["kl_pfode"], r["kl_pfode_se"] = ode["kl"], ode["kl_se"]
    for name, threshold, key in constraints:
        if threshold == "run":
            threshold = last_row(rows, f"dual/{name}/threshold_raw", metrics)[f"dual/{name}/threshold_raw"]
        mean, se = ev[f"reward{key}/mean"], ev[f"reward{key}/se"]
        r["constraints"][name] = {"mean": mean, "se": se, "threshold": threshold,
                                  "met_within_2se": mean + 2 * se >= threshold,
                                  "reference_mean": ev[f"reward_ref{key}/mean"]}
    r["all_met"] = all(c["met_within_2se"] for c in r["constraints"].values())
    return r


def mean_se(values):
    n = len(values)
    m = sum(values) / n
    return m, (sum((v - m) ** 2 for v in values) / (n - 1) / n) ** 0.5 if n > 1 else 0.0


def group_seeds(runs, names):
    """Runs named GROUP-seedN: per group, the mean over seeds of each reward and the path KL with the standard error
    over seeds, and in how many seeds each constraint was met within 2 SE."""
    groups = {}
    for run, r in runs.items():
        group, sep, _ = run.rpartition("-seed")
        if sep:
            groups.setdefault(group, []).append(r)
    out = {}
    for group, rs in groups.items():
        g = {"seeds": len(rs)}
        g["kl_path"], g["kl_path_se_over_seeds"] = mean_se([r["kl_path"] for r in rs])
        for n in names:
            m, se = mean_se([r["constraints"][n]["mean"] for r in rs])
            g[n] = {"mean": m, "se_over_seeds": se, "met": sum(r["constraints"][n]["met_within_2se"] for r in rs)}
        out[group] = g
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=pathlib.Path, help="the launch's output directory")
    ap.add_argument("--runs", nargs="+", default=["dual", "equal"], help="run directories under --root")
    ap.add_argument("--constraint", action="append", required=True, type=parse_constraint,
                    help="NAME=THRESHOLD[:EVAL_KEY], in the order of the rewards; repeatable")
    ap.add_argument("--eval", default="eval.json", help="evaluation JSON in each run directory")
    ap.add_argument("--pfode", help="optional second evaluation with the PF-ODE KL")
    ap.add_argument("--exact", help="optional JSON under --root with the exact optimum (2-D)")
    a = ap.parse_args()

    summary = {"runs": {}}
    if a.exact:
        summary["exact"] = json.loads((a.root / a.exact).read_text())
    for run in a.runs:
        summary["runs"][run] = summarize_run(a.root / run, a.constraint, a.eval, a.pfode)
    first = summary["runs"][a.runs[0]]["constraints"]
    summary["thresholds"] = {name: first[name]["threshold"] for name, _, _ in a.constraint}
    summary["groups"] = group_seeds(summary["runs"], [name for name, _, _ in a.constraint])
    (a.root / "summary.json").write_text(json.dumps(summary, indent=1))

    thresholds = summary["thresholds"]
    print(f"{'run':6} " + " ".join(f"{f'E {n} ± se (b={thresholds[n]:.4g})':>26}" for n, _, _ in a.constraint) +
          f" {'path KL':>14} {'PF-ODE KL':>14}  lambda")
    for run, r in summary["runs"].items():
        c = r["constraints"]
        cell = lambda n: f"{c[n]['mean']:.3f} ± {c[n]['se']:.3f} {'ok' if c[n]['met_within_2se'] else 'MISS'}"
        ode = f"{r['kl_pfode']:8.3f}±{r['kl_pfode_se']:.3f}" if "kl_pfode" in r else f"{'–':>14}"
        print(f"{run:6} " + " ".join(f"{cell(n):>26}" for n, _, _ in a.constraint) +
              f" {r['kl_path']:8.3f}±{r['kl_path_se']:.3f} {ode}  " +
              " ".join(f"{r['lambda'][n]:.3f}" for n, _, _ in a.constraint))
    for group, g in summary["groups"].items():
        print(f"{group} over {g['seeds']} seeds: " + ", ".join(
            f"{n} {g[n]['mean']:.3f} ± {g[n]['se_over_seeds']:.3f} (met in {g[n]['met']}/{g['seeds']})"
            for n, _, _ in a.constraint) + f", path KL {g['kl_path']:.3f} ± {g['kl_path_se_over_seeds']:.3f}")
    print("reference: " + ", ".join(f"{n} {first[n]['reference_mean']:.3f}" for n, _, _ in a.constraint))
    if "exact" in summary:
        e = summary["exact"]
        print(f"exact: lambda* = {e['lambda_star']}, E*[r] = {e['reward_mean_at_optimum']}, KL* = {e['kl_optimum']:.3f}")


if __name__ == "__main__":
    main()
