"""Concept composition by prompt on a Stable-Diffusion-style pipeline (tiny random models, no downloads):
encode_prompts.py --tiny-random (3 prompts and the empty prompt) -> `mpirun -np 2 dualign compose --models
<tiny SD pipeline> --prompts P --guidance 3` (Algorithm 3 over one text-conditional UNet, guided per prompt).
Asserts: λ stays on the simplex and moves toward the component with the largest KL estimate each round, the
components are the prompts, the composed latents are written as `samples` files, and a malformed call is refused
with a message naming the flag."""
import json
import shutil
import sys

import h5py
import numpy as np

from diffusers_reference import save_tiny_pipeline
from e2e_util import BIN, SRC, mpirun, run, temp_dir

PROMPTS = ["a red bicycle", "a cat on a mat", "a blue house"]


def main():
    tmp = temp_dir("sd15-concepts-")
    try:
        sd_dir = tmp / "tiny-sd"
        save_tiny_pipeline(str(sd_dir))
        (tmp / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
        prompts = tmp / "prompts.h5"
        run([sys.executable, SRC / "data_tools" / "encode_prompts.py", "--prompts", tmp / "prompts.txt", "--out",
             prompts, "--tiny-random", "--threads", "1"])
        out = tmp / "compose"
        run(mpirun(2, BIN, "compose", "--models", sd_dir, "--prompts", prompts, "--guidance", "3", "--rounds", "2",
                   "-n", "8", "--steps", "4", "--strata", "2", "--eval-n", "8", "--batch", "8", "--dual-lr", "0.5",
                   "--threads", "1", "--out", out))
        j = json.loads((out / "compose.json").read_text())
        assert j["components"] == [f"prompt {i}: {p}" for i, p in enumerate(PROMPTS)], j["components"]
        assert j["guidance"] == 3.0 and j["world_size"] == 2, j
        lam = np.array(j["final_lambda"])
        assert abs(lam.sum() - 1) < 1e-9 and (lam >= 0).all(), lam
        for h in j["history"]:  # λ_next = proj_simplex(λ + η KL̂): the largest KL gains weight (or stays at a vertex)
            kl, before, after = map(np.array, (h["kl"], h["lambda"], h["lambda_next"]))
            assert np.isfinite(kl).all(), h
            assert after[np.argmax(kl)] >= before[np.argmax(kl)] - 1e-12, h
        for name in ("equal", "final"):
            with h5py.File(out / f"samples_{name}.h5", "r") as f:
                assert f["samples"].shape == (8, 4, 16, 16), f["samples"].shape
                assert np.isfinite(f["samples"][:]).all()
        bad = run([BIN, "compose", "--models", sd_dir, "--prompts", prompts, "--classes", "0", "1", "--out",
                   tmp / "bad"], ok=False)
        assert "--classes or --prompts, not both" in bad.stderr, bad.stderr
        print("sd15 concepts (tiny): final λ", np.round(lam, 4).tolist())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
