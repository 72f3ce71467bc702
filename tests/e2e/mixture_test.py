"""Mixture composition (OR) by dual training on the 2-D two-dataset mixture (configs/data/gmm_or.yaml), with tiny
budgets. Checks: np=1 and np=2 (mpirun) give the same losses and the same dual variables for the first steps, λ is
identical on both ranks at every update (dual/rank_spread = 0), λ stays on the simplex and moves toward the
2-mode dataset (the maximum-entropy side), a SIGKILLed run resumes with the same λ and weights as an
uninterrupted one, and a dataset without group ids is refused with a clear message. On Fashion-MNIST with three
minority classes, the fairness constraint on the policy's own samples (constraint class_frequency): under mpirun the
dual values are target − share of whole sample counts all-reduced over ranks, sum to zero, and match np=1."""
import os
import unittest

import h5py
import numpy as np

from e2e_util import FMNIST, checkpoint_arrays, dualign, metrics, temp_dir

STEPS = 120
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def run(args, np_=None, env=None, check=True):
    return dualign(args, np_=np_, ok=True if check else None, env_changes=env, timeout=600)


def lambdas(run_dir):
    return [(r["step"], r["dual/d1/lambda"], r["dual/d2/lambda"]) for r in metrics(run_dir) if "dual/d1/lambda" in r]


def checkpoint(run_dir, step):
    return checkpoint_arrays(run_dir, step, groups=("model", "method"))


class Mixture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = temp_dir() / "runs"

    def train(self, name, np_=None, env=None, check=True, extra=()):
        run_dir = self.root / name
        args = ["train", "experiment=gmm_mixture", f"run.root={self.root}", f"run.dir={run_dir}",
                f"train.steps={STEPS}", "train.global_batch=256", "train.warmup_steps=10", "train.checkpoint_every=40",
                "run.log_every=1", "run.progress=false", "threads=1", "method.dual.every=5", "method.dual.lr=0.02",
                "method.dual.warmup_updates=0", *extra]
        return run_dir, run(args, np_, env=env, check=check)

    def test_np1_equals_np2_and_lambda_is_identical_on_every_rank(self):
        d1, _ = self.train("np1")
        d2, _ = self.train("np2", np_=2)
        loss1 = [r["train/loss"] for r in metrics(d1) if "train/loss" in r]
        loss2 = [r["train/loss"] for r in metrics(d2) if "train/loss" in r]
        self.assertEqual(len(loss1), STEPS)
        # Same global batches and draws at any world size; only the gradient reduction order differs.
        np.testing.assert_allclose(loss1[:10], loss2[:10], rtol=1e-4)
        l1, l2 = lambdas(d1), lambdas(d2)
        self.assertEqual([s for s, *_ in l1], list(range(5, STEPS + 1, 5)))
        np.testing.assert_allclose(np.array(l1)[:4, 1:], np.array(l2)[:4, 1:], atol=1e-4)
        spreads = [r["dual/rank_spread"] for r in metrics(d2) if "dual/rank_spread" in r]
        self.assertEqual(len(spreads), STEPS // 5)
        self.assertEqual(max(spreads), 0.0)
        for _, a, b in l1 + l2:
            self.assertAlmostEqual(a + b, 1.0, places=12)  # simplex
        # The 2-mode dataset d2 has the larger cross-entropy under the equal-weight model: its λ rises.
        self.assertGreater(np.mean([b for _, _, b in l1[-5:]]), 0.55)
        shares = [r["train/d2_share"] for r in metrics(d1) if "train/d2_share" in r]
        self.assertAlmostEqual(np.mean(shares), 0.5, delta=0.02)  # the data stream itself is 50/50

    def test_sigkill_and_resume_restores_lambda(self):
        straight, _ = self.train("straight")
        killed, p = self.train("killed", env={"DUALIGN_SIGKILL_AFTER_CHECKPOINT": "40"}, check=False)
        self.assertNotEqual(p.returncode, 0, "the injected SIGKILL should end the first run")
        _, p = self.train("killed")  # run.resume=auto: continues from step 40
        self.assertIn("at step 40", p.stdout + p.stderr)
        a, b = checkpoint(straight, STEPS), checkpoint(killed, STEPS)
        self.assertIn("method/lambda", a)
        self.assertNotAlmostEqual(float(a["method/lambda"][1]), 0.5, places=3)  # λ did move
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        self.assertEqual(lambdas(straight)[-1], lambdas(killed)[-1])

    def test_classes_of_an_h5_dataset_are_the_groups(self):
        # An imbalanced labelled points file (4 components, label 3 kept at ~1/8 of the others' rate).
        pts = self.root.parent / "points.h5"
        run(["data", "gmm", "--out", str(pts), "-n", "4000", "--components", "4", "--seed", "1"])
        with h5py.File(pts, "r") as f:
            labels, points = f["labels"][()], f["points"][()]
        keep = (labels != 3) | (np.arange(len(labels)) % 8 == 0)
        with h5py.File(pts, "r+") as f:
            del f["labels"], f["points"]
            f["labels"], f["points"] = labels[keep], points[keep]
        counts = np.bincount(labels[keep], minlength=4)
        run_dir = self.root / "h5groups"
        run(["train", "method=mixture", "data=gmm_pairs", f"data.path={pts}", "+data.group=class", "method.groups=4",
             "method.group_names=[a,b,c,d]", f"method.group_frequency=[{','.join(map(str, counts))}]",
             "method.dual.every=5", "method.dual.lr=0.01", f"run.dir={run_dir}", "train.steps=40",
             "train.global_batch=128", "train.warmup_steps=5", "run.log_every=1", "run.progress=false", "threads=1"], 2)
        rs = metrics(run_dir)
        share = np.array([np.mean([r[f"train/{g}_share"] for r in rs if "train/loss" in r]) for g in "abcd"])
        np.testing.assert_allclose(share, counts / counts.sum(), atol=0.02)
        last = [r for r in rs if "dual/a/lambda" in r][-1]
        lam = np.array([last[f"dual/{g}/lambda"] for g in "abcd"])
        self.assertAlmostEqual(lam.sum(), 1.0, places=12)
        self.assertEqual(last["dual/rank_spread"], 0.0)

    def test_class_frequency_constraint_on_fmnist(self):
        if not os.path.isdir(FMNIST):
            self.skipTest("dataset-fashion-mnist is not installed")
        data = self.root.parent / "fm"
        run(["data", "fmnist", "--out", str(data), "--downsample", "2", "--class-fraction", "1=0.1", "5=0.1", "8=0.1"])
        clf = data / "train_classifier.h5"
        run(["reward", "train-classifier", "--data", str(data / "fmnist-train.h5"), "--test", str(data / "fmnist-test.h5"),
             "--split", "even", "--seed", "1", "--width", "8", "--epochs", "1", "--limit", "2000", "--out", str(clf)])
        samples = 16

        def fair(name, np_):
            run_dir = self.root / name
            run(["train", "experiment=fmnist_fair", "~model.init_from", f"data.path={data / 'fmnist-train.h5'}",
                 f"method.class_frequency.classifier={clf}", f"method.class_frequency.samples={samples}",
                 "method.class_frequency.steps=2", "method.dual.every=5", "method.dual.lr=0.5", f"run.root={self.root}",
                 f"run.dir={run_dir}", "train.steps=20", "train.global_batch=32", "train.warmup_steps=2",
                 "train.checkpoint_every=20", "run.log_every=1", "run.progress=false", "threads=1"], np_)
            return [r for r in metrics(run_dir) if "dual/tshirt/lambda" in r]

        one, two = fair("fair_np1", None), fair("fair_np2", 2)
        for updates in (one, two):
            self.assertEqual([r["step"] for r in updates], [5, 10, 15, 20])
            for r in updates:
                values = np.array([r[f"dual/{c}/value"] for c in CLASSES])
                counts = (0.1 - values) * samples  # value = 1/10 − count/samples: whole counts of all ranks' samples
                np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
                self.assertEqual(np.round(counts).sum(), samples)
                self.assertAlmostEqual(values.sum(), 0.0, places=12)
                self.assertAlmostEqual(sum(r[f"dual/{c}/lambda"] for c in CLASSES), 1.0, places=12)
        self.assertEqual(max(r["dual/rank_spread"] for r in two), 0.0)
        # The first probe sees the same samples (same x_T, weights equal up to the reduction order).
        for c in CLASSES:
            self.assertAlmostEqual(one[0][f"dual/{c}/value"], two[0][f"dual/{c}/value"], places=12)

    def test_data_without_groups_is_refused(self):
        _, p = self.train("nogroups", check=False, extra=["~data.groups"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("needs group ids", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
