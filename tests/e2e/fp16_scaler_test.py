"""fp16 dynamic loss scaling under mpirun -np 2: an overflowing gradient on rank 1 only (test-only injection,
DUALIGN_TEST_NAN_IN=grad: the loss stays finite, its gradient becomes inf) makes both ranks skip that step and
halve the scale, and training continues; the scale follows torch.cuda.amp.GradScaler's rule at every step; a run
killed after a checkpoint and resumed restores the scale and its growth counter exactly (bitwise parameters, losses
and scales equal to the uninterrupted run)."""
import re
import unittest

import h5py
import numpy as np

from e2e_util import checkpoint_arrays, checkpoint_file, dualign, metrics, temp_dir

N, K, GROWTH = 10, 3, 4  # checkpoint every N steps, overflow at step K, growth every GROWTH finite steps
INIT = 65536.0


def train(run_dir, kill_after=None):
    args = ["train", "experiment=gmm_sft", f"train.steps={2 * N}", "train.global_batch=64",
            f"train.checkpoint_every={N}", "train.precision=fp16", f"train.loss_scale.growth_interval={GROWTH}",
            "train.eval.num_samples=0", "run.progress=false", "run.log_every=1", f"run.dir={run_dir}"]
    env = {"DUALIGN_TEST_NAN_AT_STEP": K, "DUALIGN_TEST_NAN_RANK": 1, "DUALIGN_TEST_NAN_IN": "grad",
           "DUALIGN_SIGKILL_AFTER_CHECKPOINT": kill_after}
    return dualign(args, np_=2, ok=None, env_changes=env)


def series(run_dir, key):
    return {r["step"]: r[key] for r in metrics(run_dir, having=key)}


def grad_scaler(skipped):
    """The scale each step used, by GradScaler's rule, given which steps were skipped."""
    scale, tracker, out = INIT, 0, {}
    for step in sorted(skipped):
        out[step] = scale
        if skipped[step]:
            scale, tracker = scale / 2, 0
        else:
            tracker += 1
            if tracker == GROWTH:
                scale, tracker = scale * 2, 0
    return out


class Fp16LossScale(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()
        cls.straight = cls.tmp / "straight"
        p = train(cls.straight)
        assert p.returncode == 0, p.stdout + p.stderr

    def test_overflow_on_one_rank_skips_everywhere_and_halves_the_scale(self):
        total = series(self.straight, "train/skipped_steps")
        skipped = {s: total[s] - total.get(s - 1, 0) > 0 for s in total}
        self.assertTrue(skipped[K])
        self.assertEqual(total[K] - total[K - 1], 1)
        scales = series(self.straight, "train/loss_scale")
        self.assertEqual(scales[K + 1], scales[K] / 2)
        self.assertEqual(scales, grad_scaler(skipped))  # every step, growth included
        self.assertGreater(scales[2 * N], scales[K + 1])  # it grew again
        # Both ranks skipped: their weights agree at every checkpoint.
        logs = [(self.straight / "logs" / f"rank{r}.log").read_text() for r in (0, 1)]
        prints = [re.findall(r"step (\d+): weights fingerprint (\S+ / \S+)", text) for text in logs]
        self.assertEqual(len(prints[0]), 2)
        self.assertEqual(prints[0], prints[1])
        self.assertIn(f"step {K}: fp16 gradient overflow", logs[0])

    def test_resume_restores_the_scaler_exactly(self):
        d = self.tmp / "resumed"
        p = train(d, kill_after=N)
        self.assertNotEqual(p.returncode, 0, "the injected SIGKILL should end the first run")
        with h5py.File(checkpoint_file(d, N), "r") as f:
            self.assertEqual(f["loss_scaler/growth_tracker"][()], (N - K) % GROWTH)  # mid-count: must survive
        p = train(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f"at step {N}", p.stdout + p.stderr)
        for key in ("train/loss", "train/loss_scale", "train/skipped_steps"):
            self.assertEqual(series(self.straight, key), series(d, key), key)
        a, b = checkpoint_arrays(self.straight, 2 * N), checkpoint_arrays(d, 2 * N)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(np.array_equal(a[k], b[k]), k)


if __name__ == "__main__":
    unittest.main(verbosity=2)
