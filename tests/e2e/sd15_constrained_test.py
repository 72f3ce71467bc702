"""experiment=sd15_constrained_aesthetic (the seed's Experiment I with LoRA on SD-1.5) end to end on tiny random
models under mpirun -np 2: Pick-a-Pic-style shards (prompts and the empty prompt's embedding) -> a tiny random SD
pipeline -> a tiny random CLIP with an aesthetic head -> `dualign train` with guided rollouts (CFG 5 on policy and
reference), LoRA, bf16, three z-scored constraints decoded through the VAE. Asserts: the first step's KL is 0
(LoRA starts at the base, which is the reference), λ moves by the warmed-up dual step on each constraint's slack
and is the same on every rank (rank_spread 0), guidance changes the rollouts (first-step rewards differ from an
unguided run with the same draws), and the equal-weight baseline keeps λ at 0.2."""
import math
import shutil

import numpy as np

from diffusers_reference import save_tiny_pipeline
from e2e_util import BIN, SRC, metrics, mpirun, run, temp_dir
from sd15_smoke_test import tiny_shards

NAMES = ("aesthetic", "local_contrast", "saturation")


def tiny_reward_models(out):
    """REWARD_DIR: a tiny random CLIPModel as clip-vit-large-patch14/ and an aesthetic head on its projection."""
    import sys
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, str(SRC / "data_tools"))
    from evaluation import clip_models, scorers
    clip, _ = clip_models.tiny_random_clip(0)
    clip.save_pretrained(out / "clip-vit-large-patch14")
    torch.manual_seed(3)
    head = scorers.AestheticHead(clip.config.projection_dim)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "aesthetic_head.safetensors"))


def train(run_dir, env, *overrides):
    run(mpirun(2, BIN, "train", "experiment=sd15_constrained_aesthetic", "train.steps=2", "train.global_batch=4",
               "method.sampler.steps=4", "method.grad_steps=2", "method.grad_steps_std=0", "model.lora.rank=2",
               "threads=1", f"run.dir={run_dir}", "run.progress=false", *overrides), env_changes=env)
    return metrics(run_dir, having="train/kl")


def main():
    tmp = temp_dir("sd15-constrained-")
    try:
        shards = tmp / "shards"
        tiny_shards(tmp, shards)
        sd_dir, reward_dir = tmp / "tiny-sd", tmp / "rewards"
        save_tiny_pipeline(str(sd_dir))
        reward_dir.mkdir()
        tiny_reward_models(reward_dir)
        env = {"SD15_DIR": sd_dir, "PICKAPIC_DIR": shards, "REWARD_DIR": reward_dir}

        guided = train(tmp / "dual", env)
        assert len(guided) == 2, guided
        first = guided[0]
        assert first["train/kl"] == 0.0, first  # policy = reference at step 1 (LoRA B = 0)
        for name in NAMES:
            for key in (f"train/{name}_reward", f"train/{name}_slack", f"dual/{name}/lambda"):
                assert math.isfinite(first[key]), (key, first)
            # one warmed-up dual step (warm-up 10: η = 0.05 / 10) on the step's global mean slack, projected at 0
            expected = max(0.0, 0.2 + 0.005 * first[f"dual/{name}/value"])
            assert abs(first[f"dual/{name}/lambda"] - expected) < 1e-9, (name, first)
        assert all(r["dual/rank_spread"] == 0.0 for r in guided), guided
        assert guided[1]["train/kl"] > 0.0, guided[1]  # the LoRA moved

        unguided = train(tmp / "unguided", env, "method.guidance.scale=1")
        diffs = [abs(unguided[0][f"train/{n}_reward"] - first[f"train/{n}_reward"]) for n in NAMES]
        assert max(diffs) > 1e-6, diffs  # the same draws without guidance give other samples

        equal = train(tmp / "equal", env, "method.dual.lr=0")
        assert all(r[f"dual/{n}/lambda"] == 0.2 for r in equal for n in NAMES), equal
        np.testing.assert_allclose([equal[0][f"train/{n}_reward"] for n in NAMES],
                                   [first[f"train/{n}_reward"] for n in NAMES], rtol=1e-6)  # same step-1 rollouts
        print("sd15 constrained (tiny): step-1 rewards", {n: round(first[f"train/{n}_reward"], 5) for n in NAMES},
              "lambda after 2 steps", {n: round(guided[-1][f"dual/{n}/lambda"], 6) for n in NAMES})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
