#!/usr/bin/env python3
"""Benchmark one Diffusion-DPO training step: `dualign train method=dpo` vs the PyTorch/diffusers peer
(bench/dpo_step_peer.py), same UNet config, same pairs file, same global batch, same threads per rank, at np=1
and np=2 (mpirun; DDP over MPI for dualign, over gloo for the peer), in each --precisions (fp32: everything fp32;
bf16: dualign train.precision=bf16 vs the peer under torch.autocast("cpu", torch.bfloat16)).

1. Writes a random `preference_pairs` HDF5 file shaped for the model: latents [N, C, S, S] (C, S from the model
   YAML) plus text_embedding [N, 77, cross_attention_dim] for cross-attention UNets or class_id for
   class-conditional ones.
2. Runs dualign with run.log_every = --warmup and train.steps = --warmup + --steps: the first metrics record's
   window holds the warm-up; train/samples_per_s of the later records are combined into pairs/s over the timed
   steps (total pairs / total time); train/peak_rss_mb is the max over ranks.
3. Runs the peer with --warmup untimed and --steps timed steps (barriers around the timed span).
4. Measures this machine's matmul peak (torch.mm of 2048^2 in fp32 and bf16, all --cores threads, best of 5, before
   and after the runs: the higher counts) and the FLOPs of one DPO step on the global batch (torch's flop counter
   on the peer: matmuls, convolutions, attention; the policy's forward + backward and the reference's forward), so
   each throughput is also a fraction of the peak of its precision.
Rounds interleave implementations and precisions so that load from other processes hits all alike; the best
round counts (the median is printed too). Prints one JSON line per measurement, the machine load (uptime) before
and after, and Markdown tables: dualign/peer per precision, bf16/fp32 per implementation, achieved FLOP/s.

  python bench/dpo_step_bench.py --model configs/model/unet_sdlike.yaml --precisions fp32,bf16 --global-batch 4 \
      --steps 4 --warmup 2 --rounds 3
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import yaml

SRC = pathlib.Path(__file__).resolve().parents[1]
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def write_pairs(path, model_cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    c, s = model_cfg.get("in_channels", 4), model_cfg.get("sample_size", 16)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "preference_pairs"
        f.attrs["version"] = np.int64(1)
        f.create_dataset("winner", data=rng.standard_normal((n, c, s, s)).astype(np.float32))
        f.create_dataset("loser", data=rng.standard_normal((n, c, s, s)).astype(np.float32))
        condition = condition_of(model_cfg)
        if condition == "text":
            dim = model_cfg.get("cross_attention_dim", 1280)
            f.create_dataset("text_embedding", data=rng.standard_normal((n, 77, dim)).astype(np.float32))
        elif condition == "class":
            f.create_dataset("class_id", data=rng.integers(0, model_cfg["num_class_embeds"], n).astype(np.int64))
    return condition


def condition_of(model_cfg):
    blocks = list(model_cfg.get("down_block_types", [])) + [model_cfg.get("mid_block_type", "")]
    if any("CrossAttn" in b for b in blocks):
        return "text"
    return "class" if model_cfg.get("num_class_embeds") else "none"


def launch(cmd, np_, env_vars):
    exports = [x for k in env_vars for x in ("-x", k)]
    full = ([*MPIRUN, *exports, "-np", str(np_)] if np_ > 1 else []) + cmd
    start = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True, cwd=SRC, env={**os.environ, **env_vars})
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(full)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout, wall


def run_dualign(args, model_cfg, condition, pairs, np_, threads, run_dir, precision):
    steps = args.warmup + args.steps
    cmd = [args.bin, "train", "method=dpo", f"method.beta={args.beta}", f"model={pathlib.Path(args.model).stem}",
           f"train.precision={precision}",
           "data=gmm_pairs", f"data.path={pairs}", f"data.condition={condition}", f"train.steps={steps}",
           f"train.global_batch={args.global_batch}", "train.lr=1e-5", "train.weight_decay=0.01",
           "train.warmup_steps=0", "train.lr_schedule=constant", "train.grad_clip=1.0", "train.checkpoint_every=-1",
           f"threads={threads}", f"run.dir={run_dir}", f"run.log_every={args.warmup}", "run.progress=false",
           "run.per_rank_logs=false"]
    if "kind" not in model_cfg:
        cmd.append("+model.kind=unet")
    _, wall = launch(cmd, np_, args.env_vars)
    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl")) if line.strip()]
    train = [r for r in records if "train/loss" in r]
    timed = [r for r in train if r["step"] > args.warmup]
    out = {"impl": "dualign", "precision": precision, "np": np_, "threads": threads, "global_batch": args.global_batch,
           "timed_steps": args.steps, "wall_s": wall, "first_loss": train[0]["train/loss"],
           "last_loss": train[-1]["train/loss"]}
    if timed and all("train/samples_per_s" in r for r in timed):
        prev, seconds = args.warmup, 0.0
        for r in timed:  # each record's rate covers the steps since the previous record
            seconds += (r["step"] - prev) * args.global_batch / r["train/samples_per_s"]
            prev = r["step"]
        out["samples_per_s"] = (prev - args.warmup) * args.global_batch / seconds
        out["s_per_step"] = seconds / (prev - args.warmup)
        out["peak_rss_mb"] = max(r.get("train/peak_rss_mb", 0.0) for r in train)
    else:  # an older binary without throughput metrics: whole-run wall time (includes start-up)
        out["samples_per_s"] = steps * args.global_batch / wall
        out["s_per_step"] = wall / steps
        out["peak_rss_mb"] = None
        out["note"] = "wall-clock fallback (no train/samples_per_s in metrics.jsonl)"
    return out


def run_peer(args, pairs, np_, threads, precision):
    cmd = [sys.executable, str(SRC / "bench" / "dpo_step_peer.py"), "--model", args.model, "--data", pairs,
           "--global-batch", str(args.global_batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--beta", str(args.beta), "--threads", str(threads), "--precision", precision]
    stdout, wall = launch(cmd, np_, args.env_vars)
    out = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    out["wall_s"] = wall
    return out


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def matmul_peak(threads, n=2048, reps=5):
    """Best torch.mm FLOP/s at `threads` threads, fp32 and bf16."""
    import torch
    torch.set_num_threads(threads)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        best = min(timed(lambda: torch.mm(a, b)) for _ in range(reps))
        out[name] = 2 * n ** 3 / best
    return out


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops(args, pairs):
    cmd = [sys.executable, str(SRC / "bench" / "dpo_step_peer.py"), "--model", args.model, "--data", pairs,
           "--global-batch", str(args.global_batch), "--beta", str(args.beta), "--threads", str(args.cores),
           "--count-flops"]
    stdout, _ = launch(cmd, 1, args.env_vars)
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])["flops_per_step"]


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("DUALIGN_BIN", str(SRC / "build" / "bin")), "dualign"))
    ap.add_argument("--model", default=str(SRC / "configs" / "model" / "unet_tiny.yaml"))
    ap.add_argument("--global-batch", type=int, default=8, help="pairs per optimizer step over all ranks")
    ap.add_argument("--steps", type=int, default=6, help="timed steps (a multiple of --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--beta", type=float, default=1000.0)
    ap.add_argument("--nps", default="1,2", help="world sizes")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads per rank = cores / np")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--precisions", default="fp32", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--pairs", type=int, default=256, help="pairs in the generated file")
    ap.add_argument("--workdir", help="keep files here (default: a temporary directory)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for both implementations, e.g. OMP_WAIT_POLICY=PASSIVE on a loaded machine")
    args = ap.parse_args()
    args.env_vars = dict(e.split("=", 1) for e in args.env)
    if args.steps % args.warmup:
        raise SystemExit("--steps must be a multiple of --warmup (dualign's metric windows are --warmup steps)")
    args.model = str(pathlib.Path(args.model).resolve())
    with open(args.model) as f:
        model_cfg = yaml.safe_load(f)

    workdir = args.workdir or tempfile.mkdtemp(prefix="dpo-bench-")
    os.makedirs(workdir, exist_ok=True)
    pairs = os.path.join(workdir, "pairs.h5")
    condition = write_pairs(pairs, model_cfg, args.pairs)

    precisions = args.precisions.split(",")
    load_before = uptime()
    peak = matmul_peak(args.cores)
    flops = step_flops(args, pairs)
    results = []
    for np_ in [int(x) for x in args.nps.split(",")]:
        threads = max(1, args.cores // np_)
        runs = {}  # (precision, impl) -> measurements
        for rnd in range(args.rounds):
            for precision in precisions:
                for impl in ("dualign", "peer"):
                    if impl == "dualign":
                        r = run_dualign(args, model_cfg, condition, pairs, np_, threads,
                                        os.path.join(workdir, f"dualign-{precision}-np{np_}-r{rnd}"), precision)
                    else:
                        r = run_peer(args, pairs, np_, threads, precision)
                    print(json.dumps(r), flush=True)
                    runs.setdefault((precision, impl), []).append(r)
        results.append((np_, threads, runs))
    peak_after = matmul_peak(args.cores)
    peak = {k: max(peak[k], peak_after[k]) for k in peak}
    load_after = uptime()

    def best(rs):
        return max(rs, key=lambda r: r["samples_per_s"])

    def median(rs):
        return statistics.median(r["samples_per_s"] for r in rs)

    env_note = " ".join(args.env) or "default environment"
    print(f"\nDPO step, model {pathlib.Path(args.model).stem} (condition {condition}), global batch "
          f"{args.global_batch} pairs, {args.steps} timed steps after {args.warmup} warm-up, best (median) of "
          f"{args.rounds} interleaved rounds, {env_note}\nload before: {load_before}\nload after:  {load_after}\n"
          f"torch.mm {2048}^2 peak at {args.cores} threads: fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, bf16 "
          f"{peak['bf16'] / 1e9:.0f} GFLOP/s; one step = {flops / 1e9:.2f} GFLOP (torch flop counter)\n")
    print("| np | threads/rank | precision | dualign pairs/s | peer pairs/s | dualign/peer (best) | dualign/peer "
          "(median) | dualign peak RSS MiB | peer peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for np_, threads, runs in results:
        for precision in precisions:
            d, p = best(runs[(precision, "dualign")]), best(runs[(precision, "peer")])
            dm, pm = median(runs[(precision, "dualign")]), median(runs[(precision, "peer")])
            print(f"| {np_} | {threads} | {precision} | {fmt(d['samples_per_s'])} ({fmt(dm)}) | "
                  f"{fmt(p['samples_per_s'])} ({fmt(pm)}) | {fmt(d['samples_per_s'] / p['samples_per_s'])} | "
                  f"{fmt(dm / pm)} | {fmt(d['peak_rss_mb'], 4)} | {fmt(p['peak_rss_mb'], 4)} |")
            for impl, r in (("dualign", d), ("peer", p)):
                summary.append({"np": np_, "threads": threads, "precision": precision, "impl": impl,
                                "pairs_per_s_best": r["samples_per_s"], "pairs_per_s_median": median(runs[(precision, impl)]),
                                "peak_rss_mb": r["peak_rss_mb"],
                                "flop_per_s": flops * r["samples_per_s"] / args.global_batch,
                                "fraction_of_mm_peak": flops * r["samples_per_s"] / args.global_batch / peak[
                                    "bf16" if precision == "bf16" else "fp32"]})
    if len(precisions) > 1 and "fp32" in precisions:
        print("\n| np | impl | " + " | ".join(f"{q}/fp32 (best)" for q in precisions if q != "fp32") + " |")
        print("|---|---|" + "---|" * (len(precisions) - 1))
        for np_, _, runs in results:
            for impl in ("dualign", "peer"):
                base = best(runs[("fp32", impl)])["samples_per_s"]
                cells = [fmt(best(runs[(q, impl)])["samples_per_s"] / base) for q in precisions if q != "fp32"]
                print(f"| {np_} | {impl} | " + " | ".join(cells) + " |")
    print("\n| np | precision | impl | GFLOP/s (best) | fraction of the torch.mm peak of its dtype |")
    print("|---|---|---|---|---|")
    for row in summary:
        print(f"| {row['np']} | {row['precision']} | {row['impl']} | {row['flop_per_s'] / 1e9:.1f} | "
              f"{100 * row['fraction_of_mm_peak']:.1f}% |")
    print(json.dumps({"benchmark": "dpo_step", "model": pathlib.Path(args.model).stem, "env": args.env_vars,
                      "mm_peak_flop_per_s": peak, "flops_per_step": flops, "load_before": load_before,
                      "load_after": load_after, "results": summary}))


if __name__ == "__main__":
    main()
