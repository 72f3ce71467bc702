"""The Stable Diffusion preference path end to end with tiny random models (no downloads):
Pick-a-Pic-style parquet -> pickapic_to_h5.py --tiny-random (float16 posteriors, flipped images, a prompt table)
-> a tiny random SD pipeline in diffusers layout (its VAE and text encoder are the converter's) ->
`mpirun -np 2 dualign train experiment=sd15_dpo_pickapic` (the real recipe with its data path on: posterior draws,
flips, empty prompts; shrunk by overrides; the model and data paths come through SD15_DIR / PICKAPIC_DIR as on a
cluster) -> `dualign export --base` (StableDiffusionPipeline.from_pretrained loads it and reproduces dualign's
latents) -> encode_prompts.py --tiny-random -> `mpirun -np 2 dualign sample` of the base pipeline and of the tuned
model (same prompts and seeds) -> pickscore.py -> evaluate_samples.py (base vs tuned report); plus 2 steps of
experiment=sd15_dmpo_pickapic. Asserts the files exist, the first DPO loss is log 2 and the first DMPO loss
KL((1/2, 1/2) || softmax(0, -10)) (policy = reference at step 0), losses and scores are finite."""
import io
import json
import math
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from diffusers_reference import max_abs_diff, pipeline_latents, save_tiny_pipeline
from e2e_util import BIN, SRC, mpirun, run, temp_dir

sys.path.insert(0, str(SRC / "data_tools"))
from pickapic import convert as pickapic  # noqa: E402


def image_bytes(seed):
    from PIL import Image
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(36, 40, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_parquet(path, n=12):
    labels = [1.0 if i % 3 else 0.0 for i in range(n)]
    labels[5] = 0.5  # a tie: dropped
    pq.write_table(pa.table({"caption": [f"a photo of object {i}" for i in range(n)],
                             "jpg_0": [image_bytes(2 * i) for i in range(n)],
                             "jpg_1": [image_bytes(2 * i + 1) for i in range(n)],
                             "label_0": labels}), path)


def tiny_shards(tmp, out, resolution=32, shape=None):
    """make_parquet's 12 rows -> preference_pairs shards in `out` through pickapic_to_h5 with its tiny random models
    (seed 0; `shape`: --tiny-shape, e.g. sdxl-tiny), 6 pairs per shard. Returns (paths, stats)."""
    make_parquet(tmp / "train-0000.parquet")
    return pickapic.convert(pickapic.parse_args(
        ["--parquet", str(tmp / "train-0000.parquet"), "--out", str(out), "--tiny-random",
         *(["--tiny-shape", shape] if shape else []), "--resolution", str(resolution), "--shard-size", "6",
         "--batch-size", "4", "--threads", "1"]))


def main():
    tmp = temp_dir("sd15-smoke-")
    try:
        smoke(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def smoke(tmp):
    import h5py
    # 1. Pick-a-Pic parquet -> preference_pairs shards (tiny random VAE + CLIP text encoder, seed 0).
    shards = tmp / "pickapic"
    paths, stats = tiny_shards(tmp, shards)
    assert stats["pairs"] == 11 and len(paths) == 2, stats
    with h5py.File(paths[0], "r") as f:
        _, c, h, w = f["winner"].shape
        text_len, text_dim = f["prompt_embedding"].shape[1:]
        assert "winner_flip_logvar" in f and f["winner"].dtype == np.float16
    assert (c, h, w) == (4, 16, 16), (c, h, w)

    # 2. A tiny random SD pipeline in diffusers layout stands in for stable-diffusion-v1-5 (PNDM scheduler config
    #    as SD-1.5 ships it; the converter's VAE and text encoder).
    sd_dir = tmp / "tiny-sd"
    save_tiny_pipeline(str(sd_dir))
    with open(sd_dir / "unet" / "config.json") as f:
        unet_cfg = json.load(f)
    assert (unet_cfg["in_channels"], unet_cfg["sample_size"], unet_cfg["cross_attention_dim"]) == (c, h, text_dim)

    # 3. The real recipe under mpirun -np 2, shrunk: 3 steps, 4 pairs per step, no accumulation.
    run_dir = tmp / "run"
    env = {"SD15_DIR": sd_dir, "PICKAPIC_DIR": shards}
    run(mpirun(2, BIN, "train", "experiment=sd15_dpo_pickapic", "train.steps=3", "train.global_batch=4",
         "train.grad_accum=1", "train.warmup_steps=2", "train.checkpoint_every=0", "threads=1",
         f"run.dir={run_dir}", "run.progress=false"), env_changes=env)
    import yaml
    data_cfg = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    assert data_cfg["sample_posterior"] and data_cfg["flip_probability"] == 0.5, data_cfg  # the official data path
    assert data_cfg["proportion_empty_prompts"] == 0.2, data_cfg
    records = [json.loads(line) for line in open(run_dir / "metrics.jsonl") if line.strip()]
    train = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3], records
    for r in train:
        for key in ("train/loss", "train/grad_norm", "train/implicit_acc", "train/reward_margin"):
            assert math.isfinite(r[key]), (key, r)
    # Policy and reference are the same UNet at step 0 (fp32 reference): margin 0, loss log 2.
    assert abs(train[0]["train/loss"] - math.log(2)) < 1e-4, train[0]
    assert abs(train[0]["train/reward_margin"]) < 1e-3, train[0]
    lrs = [r["train/lr"] for r in train]  # linear warm-up over 2 steps, then constant at the recipe's 2.048e-5
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(lrs, [1.024e-5, 2.048e-5, 2.048e-5])), lrs

    # 3b. The DMPO recipe, 2 steps at np=1: at step 0 p_theta = (1/2, 1/2), so the loss is KL((1/2, 1/2) || q)
    #     with the label target q = softmax(0, -10).
    dmpo_dir = tmp / "run-dmpo"
    run([BIN, "train", "experiment=sd15_dmpo_pickapic", "train.steps=2", "train.global_batch=2", "train.grad_accum=1",
         "train.warmup_steps=2", "train.checkpoint_every=-1", "threads=1", f"run.dir={dmpo_dir}",
         "run.progress=false"], env_changes=env)
    dmpo = [json.loads(line) for line in open(dmpo_dir / "metrics.jsonl") if line.strip()]
    dmpo = [r for r in dmpo if "train/loss" in r]
    log_q = [-math.log1p(math.exp(-10.0)), -10.0 - math.log1p(math.exp(-10.0))]
    expected = math.log(0.5) - 0.5 * (log_q[0] + log_q[1])
    assert len(dmpo) == 2 and all(math.isfinite(r["train/loss"]) for r in dmpo), dmpo
    assert abs(dmpo[0]["train/loss"] - expected) < 1e-4, (dmpo[0], expected)

    # 4. The tuned UNet as a diffusers pipeline (the base's other components symlinked): diffusers loads it.
    tuned_sd = tmp / "tuned-sd"
    run([BIN, "export", "--model", run_dir, "--out", tuned_sd, "--base", sd_dir])
    assert (tuned_sd / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tuned_sd / "vae").is_symlink() and (tuned_sd / "model_index.json").is_symlink()

    # 5. Prompts -> text embeddings (the same tiny text encoder as the pairs) -> samples of base and tuned, the same
    #    prompts and seeds, on 2 ranks; the tuned model from the export and from the run directory agree.
    prompts_txt = tmp / "prompts.txt"
    prompts_txt.write_text("a red bicycle\na cat on a mat\n")
    prompts = tmp / "prompts.h5"
    run([sys.executable, SRC / "data_tools" / "encode_prompts.py", "--prompts", prompts_txt, "--out", prompts,
         "--tiny-random", "--threads", "1"])
    with h5py.File(prompts, "r") as f:
        assert f["text_embedding"].shape == (2, text_len, text_dim)
    samples = {}
    for name, model in (("base", sd_dir), ("tuned", tuned_sd)):
        samples[name] = tmp / f"{name}.h5"
        run(mpirun(2, BIN, "sample", "--model", model, "--prompts", prompts, "-n", "2", "--steps", "4", "--seed", "3",
                   "--out", samples[name], "--no-progress"))
    run([BIN, "sample", "--model", run_dir, "--prompts", prompts, "-n", "2", "--steps", "4", "--seed", "3",
         "--out", tmp / "tuned-run.h5", "--no-progress"])
    with h5py.File(samples["tuned"], "r") as f, h5py.File(tmp / "tuned-run.h5", "r") as g, \
            h5py.File(samples["base"], "r") as b:
        assert f["samples"].shape == (4, c, h, w), f["samples"].shape
        assert np.all(np.isfinite(f["samples"][:]))
        export_vs_run = float(np.abs(f["samples"][:] - g["samples"][:]).max())
        assert export_vs_run <= 1e-6, export_vs_run
        assert f.attrs["sampler"] == g.attrs["sampler"] == "pndm"  # SD-1.5's scheduler, also for the run
        np.testing.assert_array_equal(f["seed"][:], b["seed"][:])
        tuned_vs_base = float(np.abs(f["samples"][:] - b["samples"][:]).max())
        sample_prompts = [p.decode() if isinstance(p, bytes) else p for p in f["prompt"][:]]
    assert sorted(set(sample_prompts)) == ["a cat on a mat", "a red bicycle"], sample_prompts
    assert tuned_vs_base > 0, "training changed nothing"
    diff, scale = max_abs_diff(samples["tuned"], pipeline_latents(str(tuned_sd), samples["tuned"], prompts, steps=4,
                                                                   batch=8))
    assert diff <= 1e-4, (diff, scale)

    # 6. PickScore of the tuned samples, and the base-vs-tuned report.
    run([sys.executable, SRC / "data_tools" / "pickscore.py", "--samples", samples["tuned"], "--out",
         run_dir / "pickscore.json", "--tiny-random", "--png", run_dir / "samples.png", "--threads", "1"])
    scores = json.loads((run_dir / "pickscore.json").read_text())
    assert scores["n"] == 4 and all(math.isfinite(s) for s in scores["scores"]), scores
    assert math.isfinite(scores["pickscore/mean"]) and math.isfinite(scores["pickscore/se"]), scores
    assert (run_dir / "samples.png").stat().st_size > 100
    report = tmp / "report"
    run([sys.executable, SRC / "data_tools" / "evaluate_samples.py", "--base", samples["base"], "--tuned",
         samples["tuned"], "--base-name", "sd15", "--tuned-name", "dpo", "--out", report, "--tiny-random",
         "--resamples", "200", "--threads", "1", "--device", "cpu"])
    result = json.loads((report / "report.json").read_text())
    assert result["pairing"]["n_pairs"] == 4 and result["pairing"]["seeds"] == "matched", result["pairing"]
    assert (report / "report.md").is_file()
    print("sd15 smoke OK: dpo losses", [round(r["train/loss"], 4) for r in train], "dmpo losses",
          [round(r["train/loss"], 4) for r in dmpo], "pickscore",
          round(scores["pickscore/mean"], 4), "±", round(scores["pickscore/se"], 4),
          f"export vs run {export_vs_run:.1e}, dualign vs diffusers {diff:.1e}, tuned vs base {tuned_vs_base:.2e}",
          "win rates", {k: round(v["win_rate"]["estimate"], 3) for k, v in result["results"].items()})


if __name__ == "__main__":
    main()
