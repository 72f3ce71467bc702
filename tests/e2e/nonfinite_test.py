"""train.nonfinite under mpirun -np 2, with the test-only injection DUALIGN_TEST_NAN_AT_STEP /
DUALIGN_TEST_NAN_RANK: a NaN in rank 1's loss at step K.
  skip   every rank skips that step (train/skipped_steps = 1; both ranks log the same weights fingerprint at every
         checkpoint, so no replica updated alone) and the run finishes with finite parameters.
  abort  the run stops with a message naming step K; no checkpoint of step K or later exists, and the last one
         (step < K) loads and resumes."""
import math
import re
import unittest

import numpy as np

from e2e_util import checkpoint_arrays, checkpoint_file, dualign, metrics, temp_dir

K = 7  # the poisoned step (numbered from 1, like metrics and checkpoints)


def train(run_dir, extra=(), nan_at=None, ok=True):
    args = ["train", "experiment=gmm_sft", "train.steps=12", "train.global_batch=64", "train.checkpoint_every=5",
            "train.eval.num_samples=0", "run.progress=false", "run.log_every=1", f"run.dir={run_dir}", *extra]
    env = {"DUALIGN_TEST_NAN_AT_STEP": nan_at, "DUALIGN_TEST_NAN_RANK": 1 if nan_at else None}
    return dualign(args, np_=2, ok=ok, env_changes=env)


def fingerprints(run_dir, rank):
    """{step: fingerprint} from one rank's log."""
    text = (run_dir / "logs" / f"rank{rank}.log").read_text()
    return dict(re.findall(r"step (\d+): weights fingerprint (\S+ / \S+)", text))


class NonFinite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()

    def test_skip_on_every_rank_and_continue(self):
        d = self.tmp / "skip"
        p = train(d, nan_at=K)
        records = {r["step"]: r for r in metrics(d, having="train/skipped_steps")}
        self.assertEqual([records[s]["train/skipped_steps"] for s in (K - 1, K, 12)], [0, 1, 1])
        self.assertIsNone(records[K]["train/loss"])  # the NaN loss is logged (JSON null), not hidden
        self.assertFalse(math.isfinite(records[K].get("train/grad_norm") or math.nan))
        self.assertTrue(all(math.isfinite(records[s]["train/loss"]) for s in records if s != K))
        self.assertIn(f"step {K}: the loss is not finite on 1 rank(s)", p.stdout + p.stderr)
        # Both replicas hold the same weights at every checkpoint, and they are finite.
        f0, f1 = fingerprints(d, 0), fingerprints(d, 1)
        self.assertEqual(sorted(f0), ["10", "12", "5"])
        self.assertEqual(f0, f1)
        for name, value in checkpoint_arrays(d).items():
            self.assertTrue(np.isfinite(value).all(), name)

    def test_abort_stops_naming_the_step_and_keeps_the_last_good_checkpoint(self):
        d = self.tmp / "abort"
        p = train(d, extra=["train.nonfinite=abort"], nan_at=K, ok=False)
        out = p.stdout + p.stderr
        self.assertIn(f"step {K}: the loss is not finite on 1 rank(s)", out)
        self.assertIn("train.nonfinite=abort", out)
        self.assertEqual(checkpoint_file(d).name, "ckpt-00000005.h5")
        self.assertEqual(sorted(x.name for x in (d / "ckpt").glob("ckpt-*.h5")), ["ckpt-00000005.h5"])
        self.assertLess(max(r["step"] for r in metrics(d, having="train/loss")), K)
        # The last good checkpoint loads: inspect it, then resume the run from it without the fault.
        dualign(["inspect", checkpoint_file(d)])
        p = train(d, extra=["train.nonfinite=abort"])
        self.assertIn("at step 5", p.stdout + p.stderr)
        self.assertEqual(max(r["step"] for r in metrics(d, having="train/loss")), 12)


if __name__ == "__main__":
    unittest.main(verbosity=2)
