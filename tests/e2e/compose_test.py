"""`dualign compose` end to end with tiny budgets: three score MLPs trained on different 2-D mixtures
(gmm_and_q1..3), then the dual-only loop (Algorithm 3) under mpirun -np 2 and the primal distillation
loop (Algorithm 2). Checks: λ stays on the simplex and moves toward the model with the larger KL estimate, the
KLs of the final λ's samples are more balanced than at equal weights and the minimum per-model log-likelihood
rises, a run stopped after 2 rounds resumes to the same trajectory as a straight
run, and bad input fails with a message naming it. Concept composition (`--classes`): one class-conditional
Fashion-MNIST UNet (experiment=fmnist_class_pretrain, a few steps) composed under three classes with guidance,
under mpirun -np 2; bad class lists are named."""
import json
import unittest

from e2e_util import dualign, temp_dir


def run(args, np_=None, check=True):
    return dualign(args, np_=np_, ok=True if check else None, timeout=500)


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()
        for q in ("q1", "q2", "q3"):
            run(["train", f"experiment=gmm_and_{q}", "train.steps=300", f"run.root={cls.tmp}", "run.progress=false",
                 "threads=1"])
        cls.models = [str(cls.tmp / f"compose/gmm/{q}") for q in ("q1", "q2", "q3")]
        cls.common = ["--models", *cls.models, "-n", "256", "--strata", "6", "--steps", "20", "--dual-lr", "0.5",
                      "--eval-n", "1024", "--threads", "1", "--seed", "3"]

    def compose(self, name, extra, np_=None):
        out = self.tmp / name
        run(["compose", "--out", str(out), *self.common, *extra], np_=np_)
        return json.loads((out / "compose.json").read_text())

    def test_dual_only_balances_the_kls(self):
        j = self.compose("dual", ["--mode", "dual", "--rounds", "6"], np_=2)
        self.assertEqual(j["world_size"], 2)
        self.assertEqual(len(j["history"]), 6)
        for h in j["history"]:
            self.assertAlmostEqual(sum(h["lambda_next"]), 1.0, places=9)
            self.assertTrue(all(l >= 0 for l in h["lambda_next"]))
        first = j["history"][0]
        big = max(range(3), key=lambda i: first["kl"][i])
        self.assertGreater(first["lambda_next"][big], 1 / 3)  # the first step goes toward the larger KL
        eq, fin = j["evaluation"]["equal"], j["evaluation"]["final"]
        # Algorithm 3 balances the KL of what it samples (DDIM on Σ λ_i ε_i, not q_AND itself): its own estimate
        # and the drawn samples' KL against the exact mixtures (k-NN entropy) both move toward 1, and the
        # minimum per-model log-likelihood rises.
        self.assertLess(fin["kl_estimate_ratio"], eq["kl_estimate_ratio"])
        self.assertLess(fin["kl_samples_ratio"], eq["kl_samples_ratio"])
        self.assertGreater(fin["loglik_min"], eq["loglik_min"])
        self.assertEqual(len(j["exact"]["minimax_lambda"]), 3)
        self.assertTrue((self.tmp / "dual" / "samples_final.png").stat().st_size > 1000)

    def test_resume_continues_the_trajectory(self):
        straight = self.compose("straight", ["--rounds", "4"])
        self.compose("resumed", ["--rounds", "2"])
        resumed = self.compose("resumed", ["--rounds", "4"])
        self.assertEqual(len(resumed["history"]), 4)
        for a, b in zip(straight["history"], resumed["history"]):
            for x, y in zip(a["lambda_next"], b["lambda_next"]):
                self.assertAlmostEqual(x, y, places=12)

    def test_primal_distillation_runs_and_learns(self):
        j = self.compose("primal", ["--mode", "primal", "--rounds", "2", "--mcmc-n", "512", "--levels", "10",
                                    "--corrector-steps", "3", "--distill-steps", "60", "--distill-batch", "256"])
        self.assertEqual(len(j["history"]), 2)
        for h in j["history"]:
            self.assertGreater(h["dsm_loss"], 0.0)
            self.assertLess(h["dsm_loss"], 1.0)  # the student fits the product's samples (ε-MSE of noise ≈ 1 at init)
        self.assertIn("student", j["evaluation"])
        self.assertEqual(len(j["evaluation"]["student"]["kl_estimate"]), 3)

    def test_bad_input_is_named(self):
        p = run(["compose", "--out", str(self.tmp / "bad"), "--models", self.models[0]], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at least 2 models", p.stderr + p.stdout)
        p = run(["compose", "--out", str(self.tmp / "bad2"), "--models", *self.models, "--init", "0.5", "0.5"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--init", p.stderr + p.stdout)


class ComposeConcepts(unittest.TestCase):
    """One class-conditional model under several classes (dualign compose --classes)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()
        run(["data", "fmnist", "--out", str(cls.tmp / "fm"), "--downsample", "2"])
        run(["train", "experiment=fmnist_class_pretrain", "train.steps=20", "train.checkpoint_every=0",
             f"data.path={cls.tmp / 'fm' / 'fmnist-train.h5'}", f"run.dir={cls.tmp / 'class'}", "run.sample_every=0",
             "run.progress=false", "threads=1"])
        cls.model = str(cls.tmp / "class")

    def test_three_classes_under_mpirun(self):
        out = self.tmp / "concepts"
        run(["compose", "--models", self.model, "--classes", "5", "7", "9", "--guidance", "2", "--out", str(out),
             "--rounds", "2", "-n", "32", "--strata", "4", "--steps", "10", "--dual-lr", "0.05", "--eval-n", "32",
             "--threads", "1"], np_=2)
        j = json.loads((out / "compose.json").read_text())
        self.assertEqual(j["classes"], [5, 7, 9])
        self.assertEqual(j["guidance"], 2.0)
        lam = j["final_lambda"]
        self.assertEqual(len(lam), 3)
        self.assertAlmostEqual(sum(lam), 1.0, places=9)
        self.assertTrue(all(x >= 0 for x in lam), lam)
        self.assertNotEqual(lam, [1 / 3] * 3)  # two dual steps moved the weights
        self.assertTrue((out / "samples_final.png").is_file())

    def test_bad_class_lists_are_named(self):
        p = run(["compose", "--models", self.model, "--classes", "5", "12", "--out", str(self.tmp / "bad")], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("class 12", p.stderr + p.stdout)
        p = run(["compose", "--models", self.model, "--classes", "5", "5", "--out", str(self.tmp / "bad")], check=False)
        self.assertIn("given twice", p.stderr + p.stdout)
        p = run(["compose", "--models", self.model, self.model, "--classes", "5", "7", "--out", str(self.tmp / "bad")],
                check=False)
        self.assertIn("one class-conditional model", p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main()
