"""`dualign train train.optimizer=adafactor` under mpirun -np 2 (gmm_sft, tiny): DDP and ZeRO-2 runs finish, move
the weights, and resume across a SIGKILL bitwise (per-step losses and final parameters equal to an uninterrupted
run). A checkpoint of one optimizer does not resume under the other, a ZeRO Adafactor checkpoint does not resume at
another world size, and a bad train.optimizer value is an error naming the key."""
import unittest

import numpy as np

from e2e_util import checkpoint_arrays, dualign, metrics, temp_dir

N = 20


def train(run_dir, np_=2, steps=2 * N, kill_after=None, extra=(), ok=None):
    args = ["train", "experiment=gmm_sft", "train.optimizer=adafactor", f"train.steps={steps}",
            f"train.checkpoint_every={N}", "train.eval.num_samples=0", "run.progress=false", "run.log_every=1",
            f"run.dir={run_dir}", *extra]
    return dualign(args, np_=np_, ok=ok, env_changes={"DUALIGN_SIGKILL_AFTER_CHECKPOINT": kill_after})


def losses(run_dir):
    return [r["train/loss"] for r in metrics(run_dir, having="train/loss")]


class Adafactor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()

    def check_resume_is_exact(self, name, extra):
        straight = self.tmp / f"{name}_straight"
        train(straight, extra=extra, ok=True)
        first = checkpoint_arrays(straight, N)
        last = checkpoint_arrays(straight, 2 * N)
        moved = max(np.abs(last[k] - first[k]).max() for k in last)
        self.assertGreater(moved, 1e-3, "Adafactor barely moved the weights")
        resumed = self.tmp / f"{name}_resumed"
        p = train(resumed, kill_after=N, extra=extra)
        self.assertNotEqual(p.returncode, 0, "the injected SIGKILL should end the first run")
        p = train(resumed, extra=extra, ok=True)
        self.assertIn(f"at step {N}", p.stdout + p.stderr)
        self.assertEqual(losses(straight), losses(resumed))  # exact float equality, every step
        got = checkpoint_arrays(resumed, 2 * N)
        self.assertEqual(sorted(got), sorted(last))
        for k in last:
            self.assertTrue(np.array_equal(got[k], last[k]), k)
        return resumed

    def test_ddp_resumes_bitwise(self):
        d = self.check_resume_is_exact("ddp", [])
        # ... and its checkpoint does not resume under AdamW.
        p = train(d, steps=2 * N + 1, extra=["train.optimizer=adamw"], ok=False)
        self.assertIn("holds adafactor optimizer state but this run has train.optimizer=adamw", p.stdout + p.stderr)

    def test_zero2_resumes_bitwise_and_only_at_its_world_size(self):
        d = self.check_resume_is_exact("zero2", ["dist=zero2"])
        p = train(d, np_=1, steps=2 * N + 1, extra=["dist=zero2"], ok=False)
        self.assertIn("resumes only at that world size", p.stdout + p.stderr)

    def test_bad_optimizer_names_the_key(self):
        p = train(self.tmp / "bad", np_=None, extra=["train.optimizer=sgd"], ok=False)
        self.assertIn("train.optimizer", p.stdout + p.stderr)
        self.assertIn("expected adamw or adafactor", p.stdout + p.stderr)
        p = train(self.tmp / "bad2", np_=None, extra=["train.adafactor.relative_step=true"], ok=False)
        self.assertIn("train.adafactor.relative_step", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
