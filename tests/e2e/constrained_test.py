"""Constrained alignment (method=constrained) end to end on the 2-D mixture with tiny budgets: a short SFT
reference, then experiment=gmm_constrained under mpirun -np 2. Checks: at step 1 the policy is the reference
(path KL exactly 0, loss = Σ λ_i (b_i − E r_i)); λ of the violated constraint rises and the reward it guards goes
up; λ is the same on both ranks (dual/rank_spread = 0, all-reduced max − min) and the checkpoint holds the logged
λ; np=1 and np=2 give the same λ trajectory; a SIGKILLed np=2 run resumes to bitwise the same λ and parameters;
the fixed-weight switch (method.dual.lr=0) keeps λ constant."""
import unittest

import numpy as np

from e2e_util import checkpoint_arrays, dualign, metrics, temp_dir

STEPS = 40
B = {"right": -4.0, "top": -8.0}


def run(args, np_=None, env=None, check=True):
    return dualign(args, np_=np_, ok=True if check else None, env_changes=env, timeout=400)


def records(run_dir):
    return metrics(run_dir, having="dual/right/lambda")


def checkpoint(run_dir, step):
    return checkpoint_arrays(run_dir, step, groups=("model", "method"))


class Constrained(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = temp_dir() / "runs"
        run(["train", "experiment=gmm_sft", "train.steps=300", f"run.root={cls.root}", "run.progress=false", "threads=1"])

    def train(self, name, np_=None, env=None, check=True, extra=()):
        run_dir = self.root / name
        args = ["train", "experiment=gmm_constrained", f"run.root={self.root}", f"train.steps={STEPS}",
                "train.global_batch=64", "train.lr_schedule=constant", "train.checkpoint_every=20", "run.log_every=1", "run.progress=false",
                "threads=1", "method.sampler.steps=10", "method.grad_steps=3", "method.dual.lr=0.01",
                f"run.dir={run_dir}", *extra]
        return run_dir, run(args, np_, env=env, check=check)

    def test_dual_ascent_np2(self):
        d2, _ = self.train("np2", np_=2)
        r = records(d2)
        self.assertEqual(len(r), STEPS)
        first = r[0]
        # Step 1 runs at the reference: no KL, the loss is the λ-weighted slack (λ = init 0.2 during the step).
        self.assertEqual(first["train/kl"], 0.0)
        slack = {c: B[c] - first[f"train/{c}_reward"] for c in B}
        self.assertAlmostEqual(first["train/loss"], 0.2 * (slack["right"] + slack["top"]), delta=1e-3)
        self.assertAlmostEqual(first["train/right_slack"], slack["right"], delta=1e-3)
        # The reference misses E r_right >= -4 by far (E r ≈ -14): λ_right climbs every step.
        self.assertGreater(slack["right"], 5.0)
        lam = [x["dual/right/lambda"] for x in r]
        self.assertAlmostEqual(lam[0], 0.2 + 0.01 * first["dual/right/value"], delta=1e-9)
        self.assertGreater(lam[-1], 0.2 + 0.01 * 5 * STEPS * 0.5)
        self.assertTrue(all(b >= a - 1e-12 for a, b in zip(lam[:10], lam[1:11])), lam[:11])
        # ... and the policy moves toward [2.5, 0] at a positive KL.
        right = [x["train/right_reward"] for x in r]
        self.assertGreater(np.mean(right[-10:]), np.mean(right[:10]) + 1.5)
        self.assertGreater(r[-1]["train/kl"], 0.01)
        # Identical duals on both ranks at every update, and the checkpoint holds the logged values.
        self.assertEqual(max(x["dual/rank_spread"] for x in r), 0.0)
        ck = checkpoint(d2, STEPS)
        np.testing.assert_array_equal(ck["method/lambda"], [r[-1]["dual/right/lambda"], r[-1]["dual/top/lambda"]])
        self.assertEqual(int(ck["method/updates"]), STEPS)

        # np=1 sees the same global batches and draws: the same λ trajectory up to reduction-order rounding.
        d1, _ = self.train("np1")
        r1 = records(d1)
        for c in B:
            np.testing.assert_allclose([x[f"dual/{c}/lambda"] for x in r1[:10]], [x[f"dual/{c}/lambda"] for x in r[:10]],
                                       rtol=1e-4, atol=1e-7)

    def test_resume_after_sigkill_np2(self):
        straight, _ = self.train("straight", np_=2)
        killed, p = self.train("killed", np_=2, env={"DUALIGN_SIGKILL_AFTER_CHECKPOINT": "20"}, check=False)
        self.assertNotEqual(p.returncode, 0, "the injected SIGKILL should end the first run")
        _, p = self.train("killed", np_=2)  # run.resume=auto: continues from step 20
        self.assertIn("at step 20", p.stdout + p.stderr)
        a, b = checkpoint(straight, STEPS), checkpoint(killed, STEPS)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    def test_fixed_weights_switch(self):
        d, _ = self.train("fixed", extra=["method.dual.lr=0", "method.dual.init=0.3", "train.steps=5"])
        r = records(d)
        self.assertTrue(all(x["dual/right/lambda"] == 0.3 and x["dual/top/lambda"] == 0.3 for x in r))


if __name__ == "__main__":
    unittest.main()
