"""The Stable Diffusion XL preference path end to end with tiny random models (no downloads):
Pick-a-Pic-style parquet -> pickapic_to_h5.py --tiny-random --tiny-shape sdxl-tiny (both text encoders' hidden
states, pooled embeddings, float16 posteriors, flipped images) -> a tiny random SDXL pipeline in diffusers layout
(its VAE and text encoders are the converter's; a UNet with text_time added conditioning) ->
`mpirun -np 2 dualign train experiment=sdxl_dpo_pickapic` (the real recipe: Adafactor, no clipping, the recipe's
time ids, the official data path; shrunk by overrides; model and data through SDXL_DIR / PICKAPIC_DIR as on a
cluster) -> `dualign export --base` -> encode_prompts.py --tiny-random --tiny-shape sdxl-tiny -> `mpirun -np 2
dualign sample` of the base and the tuned pipeline (guided, SDXL's Euler scheduler), each equal to diffusers'
StableDiffusionXLPipeline on the same embeddings and seeds; plus 2 steps of experiment=sdxl_dmpo_pickapic.
Asserts the first DPO loss is log 2 and the first DMPO loss KL((1/2, 1/2) || softmax(0, -10)) (policy = reference
at step 0), and that losses are finite."""
import json
import math
import shutil
import sys

import numpy as np

from diffusers_reference import max_abs_diff, pipeline_latents, save_tiny_sdxl_pipeline
from e2e_util import BIN, SRC, mpirun, run, temp_dir
from sd15_smoke_test import tiny_shards


def main():
    tmp = temp_dir("sdxl-smoke-")
    try:
        smoke(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def train_records(run_dir):
    records = [json.loads(line) for line in open(run_dir / "metrics.jsonl") if line.strip()]
    return [r for r in records if "train/loss" in r]


def smoke(tmp):
    import h5py
    import yaml
    # 1. Pick-a-Pic parquet -> SDXL preference_pairs shards (tiny random SDXL-style VAE + text encoders, seed 0).
    shards = tmp / "pickapic"
    paths, stats = tiny_shards(tmp, shards, shape="sdxl-tiny")
    assert stats["pairs"] == 11 and len(paths) == 2, stats
    with h5py.File(paths[0], "r") as f:
        assert f["winner"].shape[1:] == (4, 16, 16) and f["prompt_embedding"].shape[1:] == (16, 64)
        assert f["prompt_pooled"].shape[1:] == (16,) and "empty_prompt_pooled" in f

    # 2. A tiny random SDXL pipeline in diffusers layout stands in for stable-diffusion-xl-base-1.0.
    sdxl_dir = tmp / "tiny-sdxl"
    save_tiny_sdxl_pipeline(str(sdxl_dir))

    # 3. The real recipe under mpirun -np 2, shrunk: 3 steps, 4 pairs per step, no accumulation.
    run_dir = tmp / "run"
    env = {"SDXL_DIR": sdxl_dir, "PICKAPIC_DIR": shards}
    run(mpirun(2, BIN, "train", "experiment=sdxl_dpo_pickapic", "train.steps=3", "train.global_batch=4",
               "train.grad_accum=1", "train.warmup_steps=2", "train.checkpoint_every=0", "threads=1",
               f"run.dir={run_dir}", "run.progress=false"), env_changes=env)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["train"]["optimizer"] == "adafactor" and cfg["train"]["grad_clip"] == 0.0, cfg["train"]
    assert cfg["data"]["sample_posterior"] and cfg["data"]["proportion_empty_prompts"] == 0.2, cfg["data"]
    train = train_records(run_dir)
    assert [r["step"] for r in train] == [1, 2, 3], train
    for r in train:
        for key in ("train/loss", "train/grad_norm", "train/implicit_acc", "train/reward_margin"):
            assert math.isfinite(r[key]), (key, r)
    assert abs(train[0]["train/loss"] - math.log(2)) < 1e-4, train[0]  # policy = fp32 reference at step 0
    lrs = [r["train/lr"] for r in train]  # linear warm-up over 2 steps, then constant at the recipe's 2.048e-5
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs, [1.024e-5, 2.048e-5, 2.048e-5])), lrs

    # 3b. The DMPO recipe, 2 steps at np=1: at step 0 the loss is KL((1/2, 1/2) || softmax(0, -10)).
    dmpo_dir = tmp / "run-dmpo"
    run([BIN, "train", "experiment=sdxl_dmpo_pickapic", "train.steps=2", "train.global_batch=2", "train.grad_accum=1",
         "train.warmup_steps=2", "train.checkpoint_every=-1", "threads=1", f"run.dir={dmpo_dir}",
         "run.progress=false"], env_changes=env)
    dmpo = train_records(dmpo_dir)
    log_q = [-math.log1p(math.exp(-10.0)), -10.0 - math.log1p(math.exp(-10.0))]
    expected = math.log(0.5) - 0.5 * (log_q[0] + log_q[1])
    assert len(dmpo) == 2 and all(math.isfinite(r["train/loss"]) for r in dmpo), dmpo
    assert abs(dmpo[0]["train/loss"] - expected) < 1e-4, (dmpo[0], expected)

    # 4. The tuned UNet as a diffusers SDXL pipeline (the base's other components symlinked).
    tuned = tmp / "tuned-sdxl"
    run([BIN, "export", "--model", run_dir, "--out", tuned, "--base", sdxl_dir])
    assert (tuned / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tuned / "text_encoder_2").is_symlink()

    # 5. Prompts (both tiny text encoders, zero negative) -> guided samples of base and tuned on 2 ranks, each equal
    #    to StableDiffusionXLPipeline's latents on the same embeddings and seeds.
    prompts_txt = tmp / "prompts.txt"
    prompts_txt.write_text("a red bicycle\na cat on a mat\n")
    prompts = tmp / "prompts.h5"
    run([sys.executable, SRC / "data_tools" / "encode_prompts.py", "--prompts", prompts_txt, "--out", prompts,
         "--tiny-random", "--tiny-shape", "sdxl-tiny", "--threads", "1"])
    diffs, samples = {}, {}
    for name, model in (("base", sdxl_dir), ("tuned", tuned)):
        samples[name] = tmp / f"{name}.h5"
        run(mpirun(2, BIN, "sample", "--model", model, "--prompts", prompts, "-n", "2", "--steps", "4", "--seed", "3",
                   "--guidance", "5", "--out", samples[name], "--no-progress"))
        with h5py.File(samples[name], "r") as f:
            assert f["samples"].shape == (4, 4, 16, 16) and np.all(np.isfinite(f["samples"][:]))
            assert f.attrs["sampler"] == "euler", f.attrs["sampler"]  # SDXL's scheduler
        diffs[name], scale = max_abs_diff(samples[name], pipeline_latents(
            str(model), samples[name], prompts, steps=4, guidance=5.0, batch=8, sdxl=True))
        assert diffs[name] <= 1e-4 * max(1.0, scale), (name, diffs[name], scale)
    with h5py.File(samples["base"], "r") as b, h5py.File(samples["tuned"], "r") as t:
        tuned_vs_base = float(np.abs(t["samples"][:] - b["samples"][:]).max())
    assert tuned_vs_base > 0, "training changed nothing"
    print("sdxl smoke OK: dpo losses", [round(r["train/loss"], 4) for r in train], "dmpo losses",
          [round(r["train/loss"], 4) for r in dmpo], f"dualign vs diffusers: base {diffs['base']:.1e}, tuned "
          f"{diffs['tuned']:.1e}; tuned vs base {tuned_vs_base:.2e}")


if __name__ == "__main__":
    main()
