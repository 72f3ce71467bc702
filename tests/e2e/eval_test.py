"""`dualign sample` / `dualign eval` end to end on two tiny 2-D GMM models (150 SFT steps each): model A on the
default mixture (third component at (0, 2.5)), model B with another seed and that component moved to (0, -2.5).
Checks the samples HDF5 format, PNG files, that a model evaluated against itself has KL exactly 0 and win rate
1/2, that A vs B has a clearly positive KL and that a held-out reward toward (0, 2.5) prefers A, and that bad
inputs fail naming the file."""
import json
import pathlib
import tempfile
import unittest

import h5py
import numpy as np

from e2e_util import dualign

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(args, ok=True, mpi_np=None):
    p = dualign(args, np_=mpi_np, ok=ok, timeout=240)
    return p.stdout + p.stderr


def png_size(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class SampleAndEval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="dualign-eval-")
        t = pathlib.Path(cls.tmp.name)
        cls.a, cls.b = t / "a", t / "b"
        common = ["train", "experiment=gmm_sft", "train.steps=150", "run.progress=false", "train.eval.num_samples=0"]
        run([*common, f"run.dir={cls.a}"])
        run([*common, f"run.dir={cls.b}", "seed=1", "data.means=[[-2.5,0.0],[2.5,0.0],[0.0,-2.5]]"])
        cls.reward = t / "reward.yaml"
        cls.reward.write_text("kind: gmm_target\ntarget: [2.5, 0.0]\n")
        cls.heldout = t / "heldout.yaml"
        cls.heldout.write_text("kind: gmm_target\ntarget: [0.0, 2.5]\n")
        cls.pairs = t / "pairs.h5"
        run(["data", "gmm-pairs", "--out", cls.pairs, "-n", "200", "--target", "2.5", "0", "--beta", "1"])
        cls.t = t

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def eval(self, name, *args, mpi_np=None):
        out = self.t / f"{name}.json"
        run(["eval", "--out", out, "-n", "256", "--seed", "5", *args], mpi_np=mpi_np)
        return json.loads(out.read_text())

    def test_sample_file_format_and_determinism(self):
        s1, s2, png = self.t / "s1.h5", self.t / "s2.h5", self.t / "s.png"
        run(["sample", "--model", self.a, "-n", "300", "--out", s1, "--png", png, "--seed", "9", "--steps", "40"])
        run(["sample", "--model", self.a / "ckpt", "-n", "300", "--out", s2, "--seed", "9", "--steps", "40",
             "--batch", "64"])
        with h5py.File(s1) as f, h5py.File(s2) as g:
            self.assertEqual(f.attrs["format"], "samples")
            self.assertEqual(f.attrs["version"], 1)
            self.assertTrue(f.attrs["model"].endswith("ckpt-00000150.h5"))
            self.assertEqual(f.attrs["sampler"], "ddim")
            self.assertEqual((f.attrs["steps"], f.attrs["seed"]), (40, 9))
            x = f["samples"][:]
            self.assertEqual((x.shape, x.dtype), ((300, 2), np.float32))
            # The batch size does not change the samples (x_T is drawn for all rows first).
            np.testing.assert_array_equal(x, g["samples"][:])
        # Roughly the mixture: most samples near one of the three means.
        means = np.array([[-2.5, 0.0], [2.5, 0.0], [0.0, 2.5]])
        near = (np.linalg.norm(x[:, None] - means[None], axis=2).min(1) < 1.0).mean()
        self.assertGreater(near, 0.8)
        self.assertEqual(png_size(png), (400, 400))

    def test_model_against_itself(self):
        j = self.eval("self", "--model", self.a, "--reference", self.a, "--reward", self.reward, "--kl", "pfode",
                      "--pairs", self.pairs, "--png", self.t / "self.png")
        for key in ("reward/mean", "reward/se", "reward_ref/mean", "reward_ref/se", "win_rate", "win_rate_se", "kl",
                    "kl_se", "kl_method", "implicit_acc", "implicit_acc_se", "n"):
            self.assertIn(key, j)
        self.assertEqual(j["n"], 256)
        self.assertLess(abs(j["kl"]), 0.02)
        self.assertEqual(j["kl_method"], "pfode")
        self.assertEqual(j["win_rate"], 0.5)
        self.assertEqual(j["reward/mean"], j["reward_ref/mean"])
        self.assertEqual(j["implicit_acc"], 0.5)  # every logit is exactly 0
        png_size(self.t / "self.png")
        path = self.eval("self_path", "--model", self.a, "--reference", self.a, "--kl", "path")
        self.assertEqual((path["kl"], path["kl_method"], path["kl_sampler"]), (0.0, "path", "ddpm"))

    def test_two_different_models(self):
        j = self.eval("ab", "--model", self.a, "--reference", self.b, "--reward", self.reward,
                      "--heldout-reward", self.heldout, "--pairs", self.pairs)
        print(json.dumps(j, indent=1))
        self.assertEqual(j["kl_method"], "pfode")  # auto for 2-D points
        self.assertGreater(j["kl"], 0.5)
        self.assertGreater(j["kl"], 4 * j["kl_se"])
        # B has no mass near (0, 2.5): the held-out reward prefers A on nearly every shared x_T.
        self.assertGreater(j["heldout_win_rate"], 0.8)
        self.assertGreater(j["heldout_reward/mean"], j["heldout_reward_ref/mean"] + 3 * j["heldout_reward/se"])
        self.assertTrue(0 <= j["win_rate"] <= 1 and j["win_rate_se"] > 0)
        self.assertEqual(j["implicit_n"], 200)
        path = self.eval("ab_path", "--model", self.a, "--reference", self.b, "--kl", "path", "--kl-n", "64")
        self.assertGreater(path["kl"], 4 * path["kl_se"])
        self.assertEqual(path["kl_n"], 64)

    def test_bad_inputs_name_the_file(self):
        missing = self.t / "no_such_reward.yaml"
        out = run(["eval", "--model", self.a, "--reference", self.b, "--reward", missing, "--out", self.t / "x.json",
                   "-n", "8", "--kl", "none"], ok=False)
        self.assertIn("no_such_reward.yaml", out)
        bad = self.t / "bad.yaml"
        bad.write_text("kind: gmm_target\ntarget: [1, 0]\nscale: 1\ntypo: 3\n")
        out = run(["eval", "--model", self.a, "--reference", self.b, "--reward", bad, "--out", self.t / "x.json",
                   "-n", "8", "--kl", "none"], ok=False)
        self.assertIn("bad.yaml", out)
        self.assertIn("typo", out)
        out = run(["eval", "--model", self.a, "--reference", self.b, "--pairs", self.reward, "--out",
                   self.t / "x.json", "-n", "8", "--kl", "none"], ok=False)
        self.assertIn("reward.yaml", out)
        out = run(["sample", "--model", self.t / "nowhere", "-n", "4", "--out", self.t / "x.h5"], ok=False)
        self.assertIn("nowhere", out)
        self.assertFalse((self.t / "x.json").exists())

    def test_under_mpirun_only_rank0_writes(self):
        j = self.eval("mpi", "--model", self.a, "--reference", self.a, "--kl", "none", mpi_np=2)
        self.assertEqual(j["kl_method"], "none")
        self.assertFalse((self.t / "mpi.json.tmp").exists())


if __name__ == "__main__":
    unittest.main(verbosity=2)
