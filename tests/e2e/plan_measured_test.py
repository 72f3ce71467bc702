"""`dualign plan` against the memory a run really allocates, for a tiny SDXL-style model on the CPU.

A 31M-parameter SDXL-style UNet (three blocks 64/128/256, transformer depths 1 and 2, text_time added conditioning)
in a tiny random SDXL pipeline, and SDXL shards with 32x32 latents (pickapic_to_h5.py --tiny-shape sdxl-tiny).
For each run configuration: `dualign plan experiment=sdxl_dpo_pickapic ... --measure` (activations measured on the
CPU, no workspace) predicts the per-rank peak; `mpirun -np 2 dualign train` with the same overrides logs the
allocator's peak of tensor memory (train/peak_tensor_mb, the CPU allocator metered, worst rank). They must agree
within 15 %:
  - the SDXL recipe: DDP, Adafactor, bf16 autocast, fp32 frozen reference, gradient checkpointing;
  - ZeRO-2 with AdamW, gradient clipping and no checkpointing (the sharded branch of the planner);
  - DDP with AdamW and no checkpointing.
Also: the SDXL recipe planned from its config (`dualign plan experiment=sdxl_dpo_pickapic --world 16`) gives the
row of the flag form (`--model sdxl ... --optimizer adafactor`)."""
import json
import re
import shutil

from diffusers_reference import save_tiny_sdxl_pipeline
from e2e_util import BIN, mpirun, run, temp_dir
from sd15_smoke_test import tiny_shards

UNET = dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(64, 128, 256),
            layers_per_block=2, norm_num_groups=32, transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8))
RUNS = {
    "recipe (ddp, adafactor, checkpointing)": [],
    "zero2, adamw, no checkpointing": ["dist=zero2", "train.optimizer=adamw", "train.grad_clip=1.0",
                                       "model.gradient_checkpointing=false"],
    "ddp, adamw, no checkpointing": ["train.optimizer=adamw", "model.gradient_checkpointing=false"],
}
TOLERANCE = 0.15


def check_recipe_rows():
    """The SDXL recipe planned from its config equals the flag form's row (named anchors, exact Adafactor count)."""
    env = {"SDXL_DIR": "", "PICKAPIC_DIR": "/nonexistent"}
    from_config = run([BIN, "plan", "experiment=sdxl_dpo_pickapic", "--world", "16"], env_changes=env).stdout
    total = float(re.search(r"this run: ([0-9.]+) GB per GPU", from_config).group(1))
    flags = run([BIN, "plan", "--model", "sdxl", "--method", "dpo", "--world", "16", "--optimizer", "adafactor",
                 "--precision", "bf16", "--zero", "0"]).stdout
    row = next(line for line in flags.splitlines() if line.split()[:2] == ["0", "bf16"])
    assert abs(total - float(row.split()[-2].rstrip("!"))) < 0.05, (total, row)
    assert "Adafactor (244330500 state elements)" in from_config, from_config


def main():
    check_recipe_rows()
    tmp = temp_dir("plan-measured-")
    try:
        check(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(tmp):
    shards = tmp / "shards"
    tiny_shards(tmp, shards, resolution=64, shape="sdxl-tiny")
    sdxl_dir = tmp / "sdxl"
    save_tiny_sdxl_pipeline(str(sdxl_dir), unet=UNET)
    env = {"SDXL_DIR": sdxl_dir, "PICKAPIC_DIR": shards}
    base = ["experiment=sdxl_dpo_pickapic", "train.global_batch=8", "train.grad_accum=1"]  # 4 pairs per rank

    failures = []
    for name, extra in RUNS.items():
        out = run([BIN, "plan", *base, *extra, "--world", "2", "--measure", "--latent-size", "32", "--text-tokens",
                   "16", "--workspace-gb", "0"], env_changes=env).stdout
        planned = float(re.search(r"this run: ([0-9.e+-]+) GB per GPU", out).group(1)) * 1e9
        run_dir = tmp / re.sub(r"\W+", "_", name)
        run(mpirun(2, BIN, "train", *base, *extra, "train.steps=3", "train.warmup_steps=2",
                   "train.checkpoint_every=-1", "threads=1", f"run.dir={run_dir}", "run.progress=false"),
            env_changes=env)
        records = [json.loads(line) for line in open(run_dir / "metrics.jsonl") if line.strip()]
        measured = max(r["train/peak_tensor_mb"] for r in records if "train/peak_tensor_mb" in r) * 2**20
        error = planned / measured - 1
        print(f"{name}: plan {planned / 1e6:.1f} MB, measured peak {measured / 1e6:.1f} MB ({error:+.1%})")
        if abs(error) > TOLERANCE:
            failures.append(f"{name}: plan {planned / 1e6:.1f} MB vs measured {measured / 1e6:.1f} MB ({error:+.1%})")
    assert not failures, "planner off by more than 15 %:\n" + "\n".join(failures)


if __name__ == "__main__":
    main()
