"""Exact resume of `dualign train` across a SIGKILL: 2N steps straight vs N steps, kill, resume N. Same world
size: identical per-step losses and bitwise-identical final parameters. Across world sizes (np=2 checkpoint
resumed at np=1, np=1 at np=2): same global sample order, parameters equal within float tolerance."""
import unittest

import numpy as np

from e2e_util import checkpoint_arrays, dualign, metrics, temp_dir

N = 60


def train(run_dir, np_, steps=2 * N, kill_after=None, extra=()):
    """Always under mpirun (np=1 too); the SIGKILL switch only when asked. Unchecked: callers look at the exit."""
    args = ["train", "experiment=gmm_sft", f"train.steps={steps}", f"train.checkpoint_every={N}",
            "train.eval.num_samples=0", "run.progress=false", "run.log_every=10", f"run.dir={run_dir}", *extra]
    return dualign(args, np_=np_, ok=None, env_changes={"DUALIGN_SIGKILL_AFTER_CHECKPOINT": kill_after})


def losses(run_dir):
    return [r["train/loss"] for r in metrics(run_dir, having="train/loss")]


def final_model(run_dir):
    return checkpoint_arrays(run_dir, 2 * N)


class Resume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()

    def run_ok(self, *args, **kw):
        p = train(*args, **kw)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def killed_then_resumed(self, name, np_first, np_second, extra=()):
        d = self.tmp / name
        p = train(d, np_first, kill_after=N, extra=extra)
        self.assertNotEqual(p.returncode, 0, "the injected SIGKILL should end the first run")
        self.assertEqual((d / "ckpt" / "latest").read_text().strip(), f"ckpt-{N:08d}.h5")
        p = self.run_ok(d, np_second, extra=extra)
        self.assertIn(f"at step {N}", p.stdout + p.stderr)
        return d

    def test_same_world_size_is_bitwise_exact(self):
        straight = self.tmp / "straight"
        self.run_ok(straight, 2)
        resumed = self.killed_then_resumed("resumed_2_2", 2, 2)
        self.assertEqual(losses(straight), losses(resumed))  # exact float equality, every logged step
        a, b = final_model(straight), final_model(resumed)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(np.array_equal(a[k], b[k]), k)

    def test_zero2_sharded_state_resumes_bitwise(self):
        straight = self.tmp / "straight_zero2"
        self.run_ok(straight, 2, extra=["dist=zero2"])
        resumed = self.killed_then_resumed("resumed_zero2", 2, 2, extra=["dist=zero2"])
        self.assertEqual(losses(straight), losses(resumed))
        a, b = final_model(straight), final_model(resumed)
        for k in a:
            self.assertTrue(np.array_equal(a[k], b[k]), k)

    def test_other_world_size_continues_the_same_run(self):
        straight = self.tmp / "straight_np1"
        self.run_ok(straight, 1)
        ref = final_model(straight)
        for name, first, second in (("resumed_2_1", 2, 1), ("resumed_1_2", 1, 2)):
            got = final_model(self.killed_then_resumed(name, first, second))
            for k in ref:
                rel = np.abs(got[k] - ref[k]).max() / max(1e-12, np.abs(ref[k]).max())
                self.assertLess(rel, 1e-4, f"{name}: {k}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
