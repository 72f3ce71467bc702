"""experiment=sd15_ddo_light (DDO on SD-1.5 latents for one guided prompt: the seed's light-coloured butterflies)
end to end on tiny random models under mpirun -np 2: encode_prompts.py --tiny-random (2 prompts and the empty
prompt) -> a tiny random SD pipeline -> `dualign ddo` with the reference tilted at prompt 0 under CFG, the
convolutional potential on the 4x16x16 latents, brightness of the VAE-decoded images as the reward.
Asserts: the DA records (KL 0 at the reference, > 0 after), the exact tilt's reward rises above the reference's, the
condition is used (guidance 1 and another prompt give other reference samples), and bad conditions are refused
with messages naming the key."""
import json
import shutil
import sys

from diffusers_reference import save_tiny_pipeline
from e2e_util import BIN, SRC, mpirun, run, temp_dir

SMALL = ["ddo.device=cpu", "ddo.n_ref=64", "ddo.block=16", "ddo.iterations=2", "ddo.fit.steps=60", "ddo.fit.batch=32",
         "ddo.potential.channels=4", "ddo.potential.hidden=16", "ddo.sampler.steps=4", "ddo.sampler.batch=16",
         "ddo.sampling.n=8", "ddo.sampling.pool=32", "threads=1",
         # the tiny random VAE decodes to brightness 0.500 ± 0.003: a small β makes the tilt measurable
         "ddo.beta=0.001", "ddo.beta_prime=0.001"]


def ddo(tmp, env, name, *overrides, np_=2, ok=True):
    run_dir = tmp / name
    cmd = [BIN, "ddo", "experiment=sd15_ddo_light", f"run.dir={run_dir}", *SMALL, *overrides]
    p = run(mpirun(np_, *cmd) if np_ > 1 else cmd, ok=ok, env_changes=env)
    return (json.loads((run_dir / "ddo.json").read_text()) if ok else p), run_dir


def main():
    tmp = temp_dir("sd15-ddo-")
    try:
        sd_dir = tmp / "tiny-sd"
        save_tiny_pipeline(str(sd_dir))
        (tmp / "prompts.txt").write_text("a butterfly\na red bicycle\n")
        prompts = tmp / "prompts.h5"
        run([sys.executable, SRC / "data_tools" / "encode_prompts.py", "--prompts", tmp / "prompts.txt", "--out",
             prompts, "--tiny-random", "--threads", "1"])
        env = {"SD15_DIR": sd_dir, "PROMPTS_FILE": prompts}

        j, d = ddo(tmp, env, "guided")
        recs = j["iterations"]
        assert [r["k"] for r in recs] == [1, 2, 3], recs
        assert recs[0]["kl"] == 0.0 and all(r["kl"] > 0 for r in recs[1:]), recs
        s = j["sampling"]
        assert s["exact_reward"] > s["reference_reward"], s  # brighter decoded images under the tilt
        assert [r["k"] for r in s["iterates"]] == [1, 2, 3], s["iterates"]
        assert (d / "ckpt").is_dir()

        # The condition is what gets tilted: unguided, or another prompt, draws other reference samples.
        unguided, _ = ddo(tmp, env, "unguided", "ddo.condition.guidance=1")
        other, _ = ddo(tmp, env, "prompt1", "ddo.condition.prompt=1")
        r0 = recs[0]["reward"]
        assert abs(unguided["iterations"][0]["reward"] - r0) > 1e-7, (r0, unguided["iterations"][0])
        assert abs(other["iterations"][0]["reward"] - r0) > 1e-7, (r0, other["iterations"][0])

        # Bad conditions are named.
        p, _ = ddo(tmp, env, "bad1", "~ddo.condition", np_=1, ok=False)
        assert "set ddo.condition" in p.stderr, p.stderr
        p, _ = ddo(tmp, env, "bad2", "+ddo.condition.class=3", np_=1, ok=False)
        assert "exactly one of 'class' and 'prompts'" in p.stderr, p.stderr
        p, _ = ddo(tmp, env, "bad3", "ddo.condition.prompt=5", np_=1, ok=False)
        assert "prompt 5 of" in p.stderr and "has 2 prompts" in p.stderr, p.stderr
        print("sd15 ddo (tiny): E_q[r] per k", [round(r["reward"], 6) for r in recs], "exact tilt",
              round(s["exact_reward"], 6), "reference", round(s["reference_reward"], 6))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
