#!/usr/bin/env python3
"""Summarise dualign runs: curves, reward-vs-KL frontier, sample mosaic and a Markdown table.

Each RUN_DIR is a `dualign train` run directory: config.yaml (resolved config), metrics.jsonl (one JSON record per
logging step), and, when the pipeline evaluated it, eval.json (`dualign eval`: reward/mean, reward/se,
reward_ref/mean, win_rate, kl, implicit_acc, ...) and samples.png. Runs are grouped by config keys
(default method.name,method.beta); the seeds of a group are averaged.

Writes into --out:
  loss.png            train/loss per run (one colour per group)
  implicit_acc.png    train/implicit_acc per run (preference methods)
  frontier.png        eval reward/mean vs eval kl, one line per method across beta
  samples.png         mosaic of the runs' samples.png (and samples/<run>.png copies)
  report.md           the table: method, beta, seeds, reward mean +- std over seeds, win rate, KL, implicit acc
                      (+ held-out reward and class columns when evaluated, + training wall time when
                      metrics.jsonl records carry `time`)
  report.json         the same numbers, machine-readable

Error bars of the frontier: the standard error over seeds when a group has >= 2 seeds, else the run's own
standard errors from eval.json (reward/se, kl_se).

  python data_tools/report.py outputs/sweep/* --out outputs/report --group-by method.name,method.beta

--summary FILE.json (repeatable) appends the summary JSON of a DDO / constrained / composition / fairness launch
script (launch/experiments/ddo_vs_dpo.sh, constrained_gmm.sh, compose_*.sh, mixture_gmm2d.sh, fairness_fmnist.sh) as
tables (data_tools/summary_tables.py); with only summaries, no RUN_DIR is needed.
"""
import argparse
import json
import math
import os
import shutil
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from summary_tables import summaries_markdown  # noqa: E402

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


# ---- reading runs ----------------------------------------------------------------------------------------------
def read_metrics(path):
    records = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:  # a run killed mid-write leaves a partial last line
                print(f"warning: {path}:{i}: skipped unparsable line ({e})", file=sys.stderr)
    return records


def lookup(config, dotted, default=None):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def read_run(run_dir):
    cfg_path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(cfg_path):
        raise SystemExit(f"error: {run_dir} is not a dualign run directory (no config.yaml)")
    with open(cfg_path) as f:
        config = yaml.safe_load(f) or {}
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    metrics = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    eval_path = os.path.join(run_dir, "eval.json")
    evaluation = {}
    if os.path.exists(eval_path):
        with open(eval_path) as f:
            evaluation = json.load(f)
    samples = os.path.join(run_dir, "samples.png")
    return {"dir": run_dir, "name": os.path.basename(os.path.normpath(run_dir)), "config": config,
            "metrics": metrics, "eval": evaluation, "samples": samples if os.path.exists(samples) else None}


def series(metrics, key):
    """(steps, values) of a metric over the training records (records without the key are skipped)."""
    pts = [(r["step"], r[key]) for r in metrics if key in r and "step" in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def last_value(metrics, key):
    _, values = series(metrics, key)
    return values[-1] if values else None


# eval.json keys shown as extra columns when some run has them: a held-out reward model (`dualign eval
# --heldout-reward`) and class statistics (class-conditional / composition runs).
OPTIONAL_EVAL = {"heldout_reward/mean": "held-out reward", "heldout_win_rate": "held-out win rate",
                 "classes/coverage": "class coverage", "classes/tv_uniform": "class tv_uniform",
                 "classes/frechet": "Fréchet distance to the test set"}


# ---- aggregation ----------------------------------------------------------------------------------------------
def mean_std(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None, 0
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd, len(values)


def train_seconds(run):
    """Wall time of the training loop: the `time` of the last record with train/loss (seconds since the run's
    metrics writer started; a resumed run restarts it, so this is the last attempt's time)."""
    times = [r["time"] for r in run["metrics"] if "train/loss" in r and "time" in r]
    return times[-1] if times else None


def implicit_acc(run):
    """Held-out implicit accuracy from eval.json when evaluated, else the last training value."""
    v = run["eval"].get("implicit_acc")
    return v if v is not None else last_value(run["metrics"], "train/implicit_acc")


def summarise(group_key, runs):
    seeds = sorted({lookup(r["config"], "seed") for r in runs}, key=str)
    row = {"group": dict(group_key), "seeds": seeds, "runs": [r["dir"] for r in runs]}
    for name, getter in (("reward", lambda r: r["eval"].get("reward/mean")),
                         ("reward_ref", lambda r: r["eval"].get("reward_ref/mean")),
                         ("win_rate", lambda r: r["eval"].get("win_rate")),
                         ("kl", lambda r: r["eval"].get("kl")),
                         ("implicit_acc", implicit_acc),
                         ("final_loss", lambda r: last_value(r["metrics"], "train/loss"))):
        m, sd, n = mean_std([getter(r) for r in runs])
        row[name] = {"mean": m, "std": sd, "n": n}
    for name in OPTIONAL_EVAL:
        m, sd, n = mean_std([r["eval"].get(name) for r in runs])
        row[name] = {"mean": m, "std": sd, "n": n}
    m, sd, n = mean_std([train_seconds(r) for r in runs])
    row["train_seconds"] = {"mean": m, "std": sd, "n": n}
    # Error bars of the frontier: across seeds when there are several, else the single run's own se.
    for name, se_key in (("reward", "reward/se"), ("kl", "kl_se")):
        stat = row[name]
        if stat["n"] >= 2:
            stat["err"] = stat["std"] / math.sqrt(stat["n"])
        else:
            ses = [r["eval"].get(se_key) for r in runs if r["eval"].get(se_key) is not None]
            stat["err"] = ses[0] if ses else 0.0
    return row


def group_runs(runs, keys):
    groups = {}
    for r in runs:
        key = tuple((k, lookup(r["config"], k)) for k in keys)
        groups.setdefault(key, []).append(r)
    return groups


def sort_key(group_key):
    out = []
    for _, v in group_key:
        out.append((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v)))
    return out


# ---- formatting -----------------------------------------------------------------------------------------------
def fmt(x, digits=4):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def fmt_pm(stat, digits=4):
    if stat["mean"] is None:
        return "—"
    if stat["n"] < 2:
        return fmt(stat["mean"], digits)
    return f"{fmt(stat['mean'], digits)} ± {fmt(stat['std'], digits)}"


def markdown(rows, keys, reference, heldout_reference=None, frechet_reference=None):
    key_names = [k.split(".")[-1] if k != "method.name" else "method" for k in keys]
    extra = [k for k in OPTIONAL_EVAL if any(row[k]["n"] for row in rows)]
    if any(row["train_seconds"]["n"] for row in rows):
        extra.append("train_seconds")
    head = key_names + ["seeds", "reward (mean ± std over seeds)", "win rate", "KL", "implicit acc", "final loss"]
    head += [OPTIONAL_EVAL.get(k, "train time s") for k in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [fmt(row["group"][k]) for k in keys]
        cells.append(str(len(row["seeds"])))
        cells += [fmt_pm(row[n]) for n in ("reward", "win_rate", "kl", "implicit_acc", "final_loss", *extra)]
        lines.append("| " + " | ".join(cells) + " |")
    out = ["# dualign report", "", "\n".join(lines), ""]
    if reference["mean"] is not None:
        out.append(f"Reference model reward (reward_ref/mean, averaged over {reference['n']} runs): "
                   f"{fmt_pm(reference)}")
        out.append("")
    if heldout_reference and heldout_reference["mean"] is not None:
        out.append(f"Reference model held-out reward (heldout_reward_ref/mean, averaged over {heldout_reference['n']} "
                   f"runs): {fmt_pm(heldout_reference)}")
        out.append("")
    if frechet_reference and frechet_reference["mean"] is not None:
        out.append(f"Reference model Fréchet distance of the held-out classifier's logits to the test set "
                   f"(classes_ref/frechet, averaged over {frechet_reference['n']} runs): {fmt_pm(frechet_reference)}")
        out.append("")
    out.append("Reward, win rate and KL come from each run's eval.json (`dualign eval`); implicit accuracy from "
               "eval.json when present, else the last train/implicit_acc; ± is the standard deviation over seeds.")
    return "\n".join(out) + "\n"


# ---- plots ----------------------------------------------------------------------------------------------------
def group_label(group_key):
    return ", ".join(f"{k.split('.')[-1]}={fmt(v)}" for k, v in group_key)


def plot_curves(groups, metric, ylabel, path):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for i, (key, runs) in enumerate(groups):
        for j, r in enumerate(runs):
            steps, values = series(r["metrics"], metric)
            if steps:
                ax.plot(steps, values, color=colours[i % len(colours)], alpha=0.8, lw=1.2,
                        label=group_label(key) if j == 0 else None)
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_frontier(rows, reference, path):
    """Reward vs KL: one line per method across beta (sorted by KL), error bars = se."""
    by_method = {}
    for row in rows:
        if row["kl"]["mean"] is None or row["reward"]["mean"] is None:
            continue
        by_method.setdefault(row["group"].get("method.name", "runs"), []).append(row)
    if not by_method:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, items in sorted(by_method.items(), key=lambda kv: str(kv[0])):
        items.sort(key=lambda r: r["kl"]["mean"])
        xs = [r["kl"]["mean"] for r in items]
        ys = [r["reward"]["mean"] for r in items]
        ax.errorbar(xs, ys, xerr=[r["kl"]["err"] for r in items], yerr=[r["reward"]["err"] for r in items],
                    marker="o", capsize=3, label=str(method))
        for r, x, y in zip(items, xs, ys):
            beta = r["group"].get("method.beta")
            if beta is not None:
                ax.annotate(f"β={fmt(beta, 6)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if reference["mean"] is not None:
        ax.scatter([0.0], [reference["mean"]], marker="*", s=120, color="k", zorder=5, label="reference")
    ax.set_xlabel("KL(model ‖ reference)")
    ax.set_ylabel("reward (eval reward/mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def samples_mosaic(runs, out_dir):
    with_samples = [r for r in runs if r["samples"]]
    if not with_samples:
        return False
    copies = os.path.join(out_dir, "samples")
    os.makedirs(copies, exist_ok=True)
    cols = min(4, len(with_samples))
    rows = math.ceil(len(with_samples) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r in zip(axes.flat, with_samples):
        label = run_label(r)
        shutil.copyfile(r["samples"], os.path.join(copies, f"{label}.png"))
        ax.imshow(plt.imread(r["samples"]), cmap="gray")
        ax.set_title(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "samples.png"), dpi=110)
    plt.close(fig)
    return True


def run_label(run):
    cfg = run["config"]
    parts = [str(lookup(cfg, "method.name", "run"))]
    if lookup(cfg, "method.beta") is not None:
        parts.append(f"b{fmt(lookup(cfg, 'method.beta'), 4)}")
    parts.append(f"s{lookup(cfg, 'seed', 0)}")
    return "_".join(parts) + f"_{run['name']}"


# ---- main -----------------------------------------------------------------------------------------------------
def report(run_dirs, out_dir, keys, summaries=()):
    os.makedirs(out_dir, exist_ok=True)
    if not run_dirs:  # summaries only
        md = summaries_markdown(summaries)
        with open(os.path.join(out_dir, "report.md"), "w") as f:
            f.write(md)
        return [], None, []
    runs = [read_run(d) for d in run_dirs]
    groups = sorted(group_runs(runs, keys).items(), key=lambda kv: sort_key(kv[0]))
    rows = [summarise(k, rs) for k, rs in groups]
    reference = mean_std([r["eval"].get("reward_ref/mean") for r in runs])
    reference = {"mean": reference[0], "std": reference[1], "n": reference[2]}
    heldout = mean_std([r["eval"].get("heldout_reward_ref/mean") for r in runs])
    heldout = {"mean": heldout[0], "std": heldout[1], "n": heldout[2]}
    frechet = mean_std([r["eval"].get("classes_ref/frechet") for r in runs])
    frechet = {"mean": frechet[0], "std": frechet[1], "n": frechet[2]}

    written = []
    if plot_curves(groups, "train/loss", "train loss", os.path.join(out_dir, "loss.png")):
        written.append("loss.png")
    if plot_curves(groups, "train/implicit_acc", "implicit accuracy (train)", os.path.join(out_dir, "implicit_acc.png")):
        written.append("implicit_acc.png")
    if plot_frontier(rows, reference, os.path.join(out_dir, "frontier.png")):
        written.append("frontier.png")
    if samples_mosaic(runs, out_dir):
        written.append("samples.png")

    md = markdown(rows, keys, reference, heldout, frechet)
    if written:
        md += "\n" + "\n".join(f"![{os.path.splitext(p)[0]}]({p})" for p in written) + "\n"
    if summaries:
        md += "\n" + summaries_markdown(summaries)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump({"group_by": keys, "rows": rows, "reference_reward": reference,
                   "heldout_reference_reward": heldout, "frechet_reference": frechet, "figures": written}, f,
                  indent=1)
    return rows, reference, written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--summary", action="append", default=[], metavar="FILE.json",
                   help="summary JSON of a constrained / composition / DDO launch script (repeatable)")
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--group-by", default="method.name,method.beta",
                   help="comma-separated config keys that define a table row (seeds are averaged)")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.group_by.split(",") if k.strip()]
    if not args.runs and not args.summary:
        p.error("give at least one RUN_DIR or --summary FILE.json")
    rows, _, written = report(args.runs, args.out, keys, args.summary)
    print(f"{len(args.runs)} runs, {len(rows)} groups -> {os.path.join(args.out, 'report.md')} "
          f"(figures: {', '.join(written) or 'none'})")


if __name__ == "__main__":
    main()
