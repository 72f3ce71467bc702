"""LoRA end to end on a tiny random SD UNet (no downloads): `mpirun -np 2 dualign train
experiment=sd15_dpo_pickapic_lora` and the same recipe without LoRA, shrunk by overrides. Asserts that the LoRA
policy starts exactly at its reference (margin 0 at step 0), that the checkpoint holds only the adapters, that
`dualign lora export` writes a file diffusers' StableDiffusionPipeline.load_lora_weights loads, and that the UNet
diffusers then runs reproduces dualign's forward of the trained LoRA model (score_model_probe) to 1e-4. Prints
trainable, optimizer and checkpoint bytes against full fine-tuning.

usage: lora_test.py PATH/TO/score_model_probe"""
import json
import math
import shutil
import sys

import h5py
import numpy as np
import torch

from e2e_util import BIN, SRC, checkpoint_file, mpirun, run, temp_dir
from diffusers_reference import save_tiny_pipeline
from sd15_smoke_test import tiny_shards
from pickapic import models as pickapic_models  # noqa: E402  (sd15_smoke_test put data_tools on the path)

STEPS = 3


def group_bytes(path):
    """{top-level group: bytes of its datasets} of a checkpoint file."""
    sizes = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                top = name.split("/")[0]
                sizes[top] = sizes.get(top, 0) + obj.size * obj.dtype.itemsize
        f.visititems(visit)
    return sizes


def train(run_dir, experiment, env, extra=()):
    run(mpirun(2, BIN, "train", f"experiment={experiment}", f"train.steps={STEPS}", "train.global_batch=4",
               "train.grad_accum=1", "train.warmup_steps=0", "train.checkpoint_every=0", "threads=1",
               f"run.dir={run_dir}", "run.progress=false", *extra), env_changes=env)
    records = [json.loads(line) for line in open(run_dir / "metrics.jsonl") if line.strip()]
    return [r for r in records if "train/loss" in r]


def diffusers_output(unet_dir, lora_dir, inputs):
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    vae, text_encoder, tokenizer, _ = pickapic_models.tiny_random_models(0)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=UNet2DConditionModel.from_pretrained(unet_dir), scheduler=DDPMScheduler(clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with torch.no_grad():
        base = pipe.unet(inputs["sample"], inputs["timesteps"], inputs["encoder_hidden_states"]).sample
        pipe.load_lora_weights(str(lora_dir))
        adapted = pipe.unet(inputs["sample"], inputs["timesteps"], inputs["encoder_hidden_states"]).sample
    return base, adapted


def main(probe):
    tmp = temp_dir("lora-")
    try:
        check(tmp, probe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(tmp, probe):
    from safetensors.torch import load_file, save_file
    shards = tmp / "pickapic"
    tiny_shards(tmp, shards)
    sd_dir = tmp / "tiny-sd"
    save_tiny_pipeline(str(sd_dir))  # unet/ latents 4 x 16 x 16, text 16 x 32: the converter's tiny models
    env = {"SD15_DIR": sd_dir, "PICKAPIC_DIR": shards}

    lora_run, full_run = tmp / "lora", tmp / "full"
    # A large learning rate, so that 3 steps move the adapters (lora_B starts at 0) well past float noise; a scale
    # alpha / rank = 1.25 that folding into lora_B does not reproduce bit for bit.
    lora = train(lora_run, "sd15_dpo_pickapic_lora", env, ["model.lora.rank=4", "model.lora.alpha=5", "train.lr=1e-2"])
    full = train(full_run, "sd15_dpo_pickapic", env, ["train.lr=1e-4"])
    assert [r["step"] for r in lora] == list(range(1, STEPS + 1)), lora
    # At step 0 the policy is its frozen base bit for bit: the implicit margin is exactly 0 and the loss log 2.
    assert lora[0]["train/reward_margin"] == 0.0, lora[0]
    assert abs(lora[0]["train/loss"] - math.log(2)) < 1e-6, lora[0]
    assert all(math.isfinite(r["train/loss"]) for r in lora + full)

    lora_ckpt, full_ckpt = checkpoint_file(lora_run), checkpoint_file(full_run)
    with h5py.File(lora_ckpt, "r") as f:
        names = []
        f["model"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    assert names and all(n.endswith(("lora_A/weight", "lora_B/weight", "lora_A.weight", "lora_B.weight"))
                         for n in names), names[:5]

    # Export, load with diffusers, compare with dualign's forward of the same checkpoint.
    export = tmp / "lora-export"
    run([BIN, "lora", "export", lora_run, "--out", export, "--weights", "model"])
    g = torch.Generator().manual_seed(0)
    inputs = {"sample": torch.randn(2, 4, 16, 16, generator=g), "timesteps": torch.tensor([15, 640]),
              "encoder_hidden_states": torch.randn(2, 7, 32, generator=g)}
    save_file(inputs, str(tmp / "probe_in.safetensors"))
    run([probe, lora_run, tmp / "probe_in.safetensors", tmp / "probe_out.safetensors"])
    ours = load_file(str(tmp / "probe_out.safetensors"))["output"]
    base, adapted = diffusers_output(sd_dir / "unet", export, inputs)
    diff = (ours - adapted).abs().max().item()
    moved = (adapted - base).abs().max().item()
    print(f"dualign vs diffusers+LoRA max |diff| = {diff:.3g}; LoRA moved the output by up to {moved:.3g}")
    assert diff <= 1e-4, diff
    assert moved > 1e-3, moved  # the adapters trained, so the comparison is not base vs base

    def optimizer_bytes(ckpt):  # the recipe runs ZeRO-1: AdamW state lives in one shard file per rank
        shards = sorted(ckpt.parent.glob(ckpt.stem + ".rank*-of-2.h5"))
        assert len(shards) == 2, shards
        return sum(group_bytes(p).get("optimizer_shard", 0) for p in shards), sum(p.stat().st_size for p in shards)

    (lora_opt, lora_shards), (full_opt, full_shards) = optimizer_bytes(lora_ckpt), optimizer_bytes(full_ckpt)
    rows = [("trainable parameters (checkpoint model/)", group_bytes(lora_ckpt)["model"], group_bytes(full_ckpt)["model"]),
            ("optimizer state (ZeRO-1 shards, 2 ranks)", lora_opt, full_opt),
            ("checkpoint files (main + shards)", lora_ckpt.stat().st_size + lora_shards,
             full_ckpt.stat().st_size + full_shards)]
    print(f"{'bytes':<44} {'LoRA r=4':>12} {'full':>12} {'ratio':>8}")
    for name, a, b in rows:
        print(f"{name:<44} {a:>12} {b:>12} {a / b:>8.4f}")
        assert a < b, (name, a, b)
    print("lora OK")


if __name__ == "__main__":
    main(sys.argv[1])
