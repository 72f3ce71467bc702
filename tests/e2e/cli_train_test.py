"""End-to-end checks of the dualign binary: --version, --cfg job, config errors, multirun, and a small real
training job on the 2-D Gaussian mixture at np=1 and np=2 (mpirun) whose results must agree and beat an
untrained baseline. Metrics are read back from metrics.jsonl and from the TensorBoard event files with the
tensorboard package itself."""
import pathlib
import tempfile
import unittest

from e2e_util import dualign, metrics


def run(args, mpi_np=None, check=True):
    return dualign(args, np_=mpi_np, ok=True if check else None)


def read_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


class Cli(unittest.TestCase):
    def test_version_names_libtorch_cuda_nccl(self):
        out = run(["--version"]).stdout
        self.assertRegex(out, r"LibTorch 2\.\d+")
        self.assertRegex(out, r"CUDA: (compiled in|not compiled in)")
        self.assertRegex(out, r"NCCL: (compiled in|not compiled in)")

    def test_cfg_job_prints_composed_yaml(self):
        import yaml
        cfg = yaml.safe_load(run(["train", "--cfg", "job", "method=sft", "train.steps=7"]).stdout)
        self.assertEqual(cfg["method"]["name"], "sft")
        self.assertEqual(cfg["train"]["steps"], 7)
        self.assertIn("${now:", cfg["run"]["dir"])  # unresolved by default, like Hydra
        resolved = yaml.safe_load(run(["train", "--cfg", "job", "--resolve"]).stdout)
        self.assertNotIn("${", resolved["run"]["dir"])

    def test_unknown_key_fails_and_names_it(self):
        p = run(["train", "--cfg", "job", "no_such.key=1"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no_such", p.stderr + p.stdout)

    def test_multirun_expands_cartesian_product(self):
        p = run(["train", "-m", "--print-runs", "train.steps=1,2", "seed=3,4,5"])
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 6)
        self.assertEqual(lines[0], "train.steps=1 seed=3")
        self.assertEqual(lines[5], "train.steps=2 seed=5")

    def test_multirun_refuses_inside_mpi(self):
        p = run(["train", "-m", "seed=1,2"], mpi_np=1, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("must not run inside an MPI job", p.stderr + p.stdout)


class TrainGmm(unittest.TestCase):
    """300 SFT steps on the 3-component 2-D GMM: samples must be close to the exact law."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.runs = {}
        # The np=2 run also writes validation samples: it must still train the same model as np=1.
        for name, np_, extra in ((1, 1, []), (2, 2, ["run.sample_every=100"]), ("zero2", 2, ["dist=zero2"])):
            d = pathlib.Path(cls.tmp.name) / f"run_{name}"
            run(["train", "experiment=gmm_sft", "train.steps=300", "train.eval.num_samples=1500",
                 f"run.dir={d}", "run.progress=false", "run.log_every=20", *extra], mpi_np=np_)
            cls.runs[name] = d

    def metrics(self, np_):
        return metrics(self.runs[np_])

    def test_run_dir_holds_config_overrides_and_git_sha(self):
        d = self.runs[2]
        for name in ("config.yaml", "config.raw.yaml", "overrides.yaml", "meta.yaml", "logs/rank0.log",
                     "logs/rank1.log"):
            self.assertTrue((d / name).exists(), name)
        import yaml
        meta = yaml.safe_load((d / "meta.yaml").read_text())
        self.assertEqual(meta["world_size"], 2)
        self.assertRegex(meta["git_sha"], r"^([0-9a-f]{40}(-dirty)?|unknown)$")
        self.assertIn("train.steps=300", (d / "overrides.yaml").read_text())
        self.assertIn("experiment=gmm_sft", meta["argv"])  # the command as typed
        self.assertEqual(pathlib.Path(meta["argv"][0]).name, "dualign")

    def test_loss_decreases_and_samples_match_the_mixture(self):
        m = self.metrics(1)
        losses = [r["train/loss"] for r in m if "train/loss" in r]
        self.assertLess(losses[-1], 0.5 * losses[0])
        final = m[-1]
        # An untrained model (standard normal output) is ~0.8 away; exact samples ~0.001.
        self.assertLess(final["eval/energy_distance"], 0.05)
        self.assertLess(final["eval/energy_distance"], 0.1 * final["eval/energy_distance_standard_normal"])

    def assert_same_training(self, a, b):
        la = [r["train/loss"] for r in a if "train/loss" in r]
        lb = [r["train/loss"] for r in b if "train/loss" in r]
        self.assertEqual(len(la), len(lb))
        for x, y in zip(la, lb):
            self.assertAlmostEqual(x, y, delta=1e-4 * max(1.0, abs(x)))
        self.assertAlmostEqual(a[-1]["eval/energy_distance"], b[-1]["eval/energy_distance"], delta=1e-3)

    def test_two_ranks_train_the_same_model_as_one(self):
        self.assert_same_training(self.metrics(1), self.metrics(2))

    def test_zero2_trains_the_same_model_as_ddp(self):
        self.assert_same_training(self.metrics(2), self.metrics("zero2"))

    def test_tensorboard_events_match_jsonl(self):
        tb = read_tensorboard(self.runs[2])
        jsonl = {r["step"]: r["train/loss"] for r in self.metrics(2) if "train/loss" in r}
        self.assertEqual(sorted(s for s, _ in tb["train/loss"]), sorted(jsonl))
        for step, value in tb["train/loss"]:
            self.assertAlmostEqual(value, jsonl[step], places=4)
        self.assertIn("eval/energy_distance", tb)

    def test_validation_samples_as_png_files_and_tensorboard_images(self):
        import io
        from PIL import Image
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        d = self.runs[2]
        files = sorted(p.name for p in (d / "samples").glob("*.png"))
        self.assertEqual(files, ["step-00000100.png", "step-00000200.png", "step-00000300.png"])
        acc = EventAccumulator(str(d / "tb"), size_guidance={"images": 0})
        acc.Reload()
        images = acc.Images("samples")
        self.assertEqual([e.step for e in images], [100, 200, 300])
        last = Image.open(io.BytesIO(images[-1].encoded_image_string))
        self.assertEqual(last.size, (400, 400))  # the 2-D scatter plot
        self.assertEqual(last.tobytes(), Image.open(d / "samples" / files[-1]).tobytes())
        self.assertFalse((self.runs[1] / "samples").exists())  # off by default


if __name__ == "__main__":
    unittest.main(verbosity=2)
