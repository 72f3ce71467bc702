"""ZeRO-2 checkpoint written by 2 ranks, resumed by 1 and by 4 (oversubscribed): the optimizer state is re-sharded
from the saved shards. At the resume step the re-sharded master weights and Adam moments (the shards the resumed run
writes for its own world size) equal the saved ones exactly; at the end the parameters match the uninterrupted
np=2 run within 1e-4 relative, the tolerance of the DDP cross-world-size resume test (resume_test.py)."""
import shutil
import unittest

import h5py
import numpy as np

from e2e_util import checkpoint_arrays, dualign, temp_dir

N = 40
EXTRA = ["dist=zero2"]


def train(run_dir, np_, kill_after=None):
    args = ["train", "experiment=gmm_sft", f"train.steps={2 * N}", f"train.checkpoint_every={N}",
            "train.eval.num_samples=0", "run.progress=false", "run.log_every=10", f"run.dir={run_dir}", *EXTRA]
    return dualign(args, np_=np_, ok=None, env_changes={"DUALIGN_SIGKILL_AFTER_CHECKPOINT": kill_after})


def flat_state(run_dir, step, world):
    """master, exp_avg, exp_avg_sq concatenated over the shards of `world` ranks, and each shard's step count."""
    parts, steps = {"master": [], "exp_avg": [], "exp_avg_sq": []}, set()
    for rank in range(world):
        with h5py.File(run_dir / "ckpt" / f"ckpt-{step:08d}.rank{rank}-of-{world}.h5", "r") as f:
            for key in parts:
                parts[key].append(f["optimizer_shard"][key][()].reshape(-1))
            steps.add(int(f["optimizer_shard"]["step"][()]))
    return {k: np.concatenate(v) for k, v in parts.items()}, steps


class ZeroReshard(unittest.TestCase):
    def test_resume_at_other_world_sizes(self):
        tmp = temp_dir()
        straight, saved = tmp / "straight_np2", tmp / "saved_np2"
        self.assertEqual(train(straight, 2).returncode, 0)
        self.assertNotEqual(train(saved, 2, kill_after=N).returncode, 0, "the injected SIGKILL should end the run")
        ref_state, ref_steps = flat_state(saved, N, 2)
        num_params = sum(a.size for a in checkpoint_arrays(saved, N).values())  # for the report
        self.assertEqual(ref_steps, {N})
        final_ref = checkpoint_arrays(straight, 2 * N)

        for world in (1, 4):
            with self.subTest(world=world):
                d = tmp / f"resumed_np{world}"
                shutil.copytree(saved, d)
                p = train(d, world)
                self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
                self.assertIn(f"re-sharded from 2 to {world} ranks", p.stdout + p.stderr)
                state, steps = flat_state(d, N, world)
                self.assertEqual(steps, {N})
                for key in ref_state:  # the flat vectors differ only in their zero padding at the end
                    a, b = ref_state[key], state[key]
                    common = min(a.size, b.size)
                    self.assertTrue(np.array_equal(a[:common], b[:common]), f"np={world} {key} differs")
                    self.assertFalse(np.any(a[common:]) or np.any(b[common:]), f"np={world} {key}: padding not zero")
                final = checkpoint_arrays(d, 2 * N)
                worst = 0.0
                for k in final_ref:
                    rel = np.abs(final[k] - final_ref[k]).max() / max(1e-12, np.abs(final_ref[k]).max())
                    worst = max(worst, rel)
                    self.assertLess(rel, 1e-4, f"np={world}: {k}")
                print(f"np=2 -> np={world}: re-sharded state exact over {num_params} parameters; final parameters "
                      f"max relative difference {worst:.2e}", flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
