"""Summary of launch/experiments/fairness_fmnist.sh: class frequencies of generated samples (held-out classifier),
their total variation to uniform, sample quality (Fréchet distance of the held-out classifier's logits to the balanced
test set; mean classifier confidence) and the final dual variables, for
  sft            the unconstrained model (plain SFT on the imbalanced data)
  sft_continued  the same, fine-tuned by plain SFT for as many steps as the constrained model
  constrained    fine-tuned by dual training, one share constraint per class on its own samples (method=mixture,
                 constraint=class_frequency)
  uniform, kl    the ablations, when their evaluations exist: λ fixed at uniform (no dual), and the KL form
                 (constraint=kl, per-class ELBO against the reference)
Writes one JSON and a Markdown table next to it."""
import argparse
import json
import pathlib

ABLATIONS = {"uniform": "mixture_uniform", "kl": "mixture_kl"}  # evaluation name -> run directory
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def model_stats(ev, prefix):
    return {"class_share": ev[f"{prefix}/hist"], "tv_uniform": ev[f"{prefix}/tv_uniform"],
            "entropy": ev[f"{prefix}/entropy"], "coverage": ev[f"{prefix}/coverage"],
            "mean_max_prob": ev[f"{prefix}/mean_max_prob"], "frechet_logits": ev.get(f"{prefix}/frechet")}


def final_duals(run_dir):
    last = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if any(k.endswith("/lambda") for k in r):
            last = r
    return {k.split("/")[1]: v for k, v in last.items() if k.startswith("dual/") and k.endswith("/lambda")}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, type=pathlib.Path, help="<run.root>/fair")
    ap.add_argument("--minority", nargs="+", type=int, default=[1, 5, 8], help="classes kept at 10%% in training")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    a = ap.parse_args()
    ev_c = json.loads((a.root / "eval_constrained.json").read_text())
    models = {}
    if (a.root / "eval_sft.json").exists():  # the model before fine-tuning (optional)
        models["sft"] = model_stats(json.loads((a.root / "eval_sft.json").read_text()), "classes")
    models["sft_continued"] = model_stats(ev_c, "classes_ref")
    models["constrained"] = model_stats(ev_c, "classes")
    for name in ABLATIONS:
        if (a.root / f"eval_{name}.json").exists():
            models[name] = model_stats(json.loads((a.root / f"eval_{name}.json").read_text()), "classes")
    base = models["sft_continued"]["tv_uniform"]
    out = {"n_samples": ev_c["n"], "sampler": f'{ev_c["sampler"]} {ev_c["steps"]} steps', "classifier": ev_c["classes/classifier"],
           "frechet_data": ev_c.get("classes/frechet_data"), "minority_classes": a.minority, "models": models,
           "tv_ratio_constrained_vs_sft_continued": models["constrained"]["tv_uniform"] / base,
           "tv_at_least_halved": models["constrained"]["tv_uniform"] <= 0.5 * base,
           "final_lambda": final_duals(a.root / "mixture"),
           "final_lambda_kl": final_duals(a.root / "mixture_kl") if "kl" in models else None}
    a.out.write_text(json.dumps(out, indent=2) + "\n")

    rows = ["| model | " + " | ".join(CLASSES) + " | TV to uniform | FD (logits) | confidence |",
            "|---|" + "---|" * (len(CLASSES) + 3)]
    for name, m in models.items():
        fd = "–" if m["frechet_logits"] is None else f'{m["frechet_logits"]:.2f}'
        rows.append(f"| {name} | " + " | ".join(f"{s:.3f}" for s in m["class_share"]) +
                    f' | **{m["tv_uniform"]:.3f}** | {fd} | {m["mean_max_prob"]:.3f} |')
    lam = out["final_lambda"]
    for label, lam in (("constrained", lam), ("kl", out["final_lambda_kl"])):
        if lam:
            rows.append(f"| final λ ({label}) | " + " | ".join(f"{lam.get(c, float('nan')):.3f}" for c in CLASSES) +
                        " | | | |")
    md = (f"Generated class shares ({out['n_samples']} samples per model, {out['sampler']}, held-out classifier); "
          f"minority classes {', '.join(map(str, a.minority))} at 10% in the training data.\n\n" + "\n".join(rows) +
          f"\n\nTV(constrained) / TV(sft_continued) = {out['tv_ratio_constrained_vs_sft_continued']:.3f} "
          f"(at least halved: {out['tv_at_least_halved']})\n")
    a.out.with_suffix(".md").write_text(md)


if __name__ == "__main__":
    main()
