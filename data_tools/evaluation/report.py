"""The evaluation report: report.json (every number, per-pair scores) and report.md (tables + grid images)."""
import json
import os


def _fmt(x, digits=4):
    return "—" if x is None else f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.3e}"


def _ci(stat, digits=4):
    lo, hi = stat["ci"]
    return f"{_fmt(stat['estimate'], digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _pm(stat):
    return f"{_fmt(stat['estimate'])} ± {_fmt(stat['se'], 2)}"


def _table(results, names, first_column):
    base, tuned = names
    lines = [f"| {first_column} | pairs | prompts | {base} mean ± SE | {tuned} mean ± SE | mean diff ({tuned} − {base}) "
             f"[CI] | win rate of {tuned} [CI] | W / T / L |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in results.items():
        lines.append(f"| {key} | {r['n_pairs']} | {r['n_prompts']} | {_pm(r['base'])} | {_pm(r['tuned'])} | "
                     f"{_ci(r['mean_diff'])} | {_ci(r['win_rate'], 3)} | {r['wins']} / {r['ties']} / {r['losses']} |")
    return lines


def markdown(report):
    names = (report["base"]["name"], report["tuned"]["name"])
    boot = report["bootstrap"]
    pct = f"{100 * boot['confidence']:g}%"
    lines = [f"# {names[1]} vs {names[0]}", "",
             f"- {names[0]}: `{report['base']['path']}` ({report['base']['n_samples']} samples)",
             f"- {names[1]}: `{report['tuned']['path']}` ({report['tuned']['n_samples']} samples)",
             f"- pairs: {report['pairing']['n_pairs']} over {report['pairing']['n_prompts']} prompts, matched by "
             f"{report['pairing']['key']}; seeds: {report['pairing']['seeds']}",
             f"- models: {report['models']}", ""]
    if report["models"] == "tiny-random":
        lines += ["**Tiny random models (tests only): the scores are meaningless.**", ""]
    lines += [f"## Scores ({pct} CIs)", ""] + _table(report["results"], names, "scorer") + [""]
    for scorer, by_category in report.get("categories", {}).items():
        lines += [f"### {scorer} by category", ""] + _table(by_category, names, "category") + [""]
    lines += ["Scorers:", ""] + [f"- `{k}`: {v}" for k, v in report["scorers"].items()] + [""]
    lines += [f"Win rate: share of pairs (same prompt and seed) where {names[1]} scores higher, ties counted 0.5. "
              f"Mean diff: mean of per-pair score differences. CIs: {boot['interval']} bootstrap, "
              f"{boot['resamples']} resamples of prompts (all pairs of a drawn prompt kept; seed {boot['seed']}); "
              f"SE: standard deviation of the resampled means.", ""]
    if report.get("grids"):
        lines += ["## Samples", "", f"Same prompt and seed: {names[0]} left, {names[1]} right.", ""]
        lines += [f"![{name}]({name})" for name in report["grids"]] + [""]
    return "\n".join(lines)


def _atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_report(report, out_dir):
    """report.json and report.md in out_dir; returns their paths."""
    json_path, md_path = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    _atomic_write(json_path, json.dumps(report, indent=1))
    _atomic_write(md_path, markdown(report))
    return json_path, md_path
