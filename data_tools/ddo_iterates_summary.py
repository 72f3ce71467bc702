#!/usr/bin/env python3
"""Per-iterate summary of `dualign ddo` runs made with ddo.sampling.iterates (e.g. several seeds of
experiment=fmnist_ddo_bright): for each iterate q_k, the reward under the exact tilt (SIR of the reference pool), under
the Tweedie h-transform, the SNIS estimate on the reference samples, KL(q_k || p_ref) and the ESS, as the mean and
standard error over the runs; whether the exact-tilt reward rises with k in every run. Optionally a figure of the
first run's exact-tilt grids per k side by side (samples_exact_k<k>.png), titled with k and the reward.

  python data_tools/ddo_iterates_summary.py RUN_DIR [RUN_DIR ...] --out summary.json [--figure iterates.png]
"""
import argparse
import json
import pathlib


def mean_se(values):
    n = len(values)
    m = sum(values) / n
    return m, ((sum((v - m) ** 2 for v in values) / (n - 1)) ** 0.5 / n ** 0.5) if n > 1 else 0.0


def load(run):
    j = json.loads((run / "ddo.json").read_text())
    per_k = j["sampling"].get("iterates")
    if not per_k:
        raise SystemExit(f"error: {run}/ddo.json has no sampling.iterates (run with ddo.sampling.iterates=true)")
    records = {r["k"]: r for r in j["iterations"]}
    return [{**r, "snis_reward": records[r["k"]]["reward"], "kl": records[r["k"]]["kl"], "ess": records[r["k"]]["ess"]}
            for r in per_k]


def figure(run, rows, path):
    from PIL import Image, ImageDraw
    grids = [Image.open(run / f"samples_exact_k{r['k']}.png").convert("RGB") for r in rows]
    scale, pad, title = 2, 12, 18
    w, h = grids[0].width * scale, grids[0].height * scale
    out = Image.new("RGB", (len(grids) * (w + pad) - pad, h + title), "white")
    draw = ImageDraw.Draw(out)
    for i, (g, r) in enumerate(zip(grids, rows)):
        out.paste(g.resize((w, h), Image.NEAREST), (i * (w + pad), title))
        label = "reference" if r["k"] == 1 else f"{r['k'] - 1} DA step{'s' if r['k'] > 2 else ''}"
        draw.text((i * (w + pad) + 2, 2), f"{label}: E[r] {r['exact_reward']:.3f}", fill="black")
    out.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--figure", type=pathlib.Path)
    a = ap.parse_args()
    per_run = [load(r) for r in a.runs]
    ks = [r["k"] for r in per_run[0]]
    if any([r["k"] for r in rows] != ks for rows in per_run):
        raise SystemExit("error: the runs sampled different iterates")
    table = []
    for i, k in enumerate(ks):
        row = {"k": k, "da_steps": k - 1}
        for key in ("exact_reward", "tweedie_reward", "snis_reward", "kl", "ess"):
            row[key], row[key + "_se"] = mean_se([rows[i][key] for rows in per_run])
        table.append(row)
    monotone = [all(rows[i + 1]["exact_reward"] > rows[i]["exact_reward"] for i in range(len(rows) - 1))
                for rows in per_run]
    summary = {"runs": [str(r) for r in a.runs], "iterates": table, "exact_reward_rises_in_every_run": all(monotone)}
    a.out.write_text(json.dumps(summary, indent=1))
    print(f"{'DA steps':>8} {'E[r] exact (SIR)':>18} {'E[r] Tweedie':>16} {'KL(q_k||p_ref)':>16} {'ESS':>8}   over {len(a.runs)} runs")
    for r in table:
        print(f"{r['da_steps']:>8} {r['exact_reward']:>10.4f} ± {r['exact_reward_se']:.4f} {r['tweedie_reward']:>8.4f} ± "
              f"{r['tweedie_reward_se']:.4f} {r['kl']:>8.4f} ± {r['kl_se']:.4f} {r['ess']:>8.0f}")
    print(f"exact-tilt reward rises with every DA step in every run: {all(monotone)}")
    if a.figure:
        figure(a.runs[0], per_run[0], a.figure)


if __name__ == "__main__":
    main()
