"""train.precision reaches every method that trains a network: sft, dpo, hinge, dmpo, kto, mixture and constrained on
the 2-D mixture, two steps each in fp32 and in bf16 (and fp16 for dpo) from the same start. Checks: every logged
statistic is finite; some statistic differs from fp32 at step 1 (the forwards really ran in bf16) but by at most
10 %; and the pair methods still start at their closed form exactly: their frozen fp32 reference runs under the same
autocast as the policy, so policy and reference compute the same bf16 values at step 1 (margin 0, loss log 2)."""
import math
import unittest

from e2e_util import dualign, metrics, temp_dir

METHODS = {  # experiment, extra overrides
    "sft": ("gmm_sft", []),
    "dpo": ("gmm_dpo", ["method.beta=300"]),
    "hinge": ("gmm_dpo", ["method=hinge", "method.beta=300"]),
    "dmpo": ("gmm_dmpo", ["method.beta=300"]),
    "kto": ("gmm_kto", ["method.beta=300"]),
    "mixture": ("gmm_mixture", []),
    "constrained": ("gmm_constrained", ["method.sampler.steps=10", "method.grad_steps=3"]),
}


class PrecisionReachesEveryMethod(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()
        cls.root, cls.data = cls.tmp / "runs", cls.tmp / "data"
        (cls.data / "gmm").mkdir(parents=True)
        dualign(["train", "experiment=gmm_sft", "train.steps=100", f"run.root={cls.root}", "run.progress=false",
                 "train.eval.num_samples=0", "threads=1"])
        dualign(["data", "pairs", "--model", cls.root / "gmm/sft", "-n", "512", "--reward",
                 "configs/reward/gmm_target.yaml", "--bt-beta", "1", "--steps", "20", "--batch", "1024",
                 "--out", cls.data / "gmm/pairs.h5", "--labelled-out", cls.data / "gmm/labelled.h5"])

    def first_record(self, method, precision):
        experiment, extra = METHODS[method]
        run_dir = self.tmp / f"{method}-{precision}"
        dualign(["train", f"experiment={experiment}", f"run.root={self.root}", f"data_dir={self.data}",
                 "train.steps=2", "train.global_batch=64", "train.checkpoint_every=-1", "train.eval.num_samples=0",
                 f"train.precision={precision}", "run.log_every=1", "run.progress=false", "threads=1",
                 f"run.dir={run_dir}", *extra])
        records = metrics(run_dir, having="train/loss")
        self.assertEqual([r["step"] for r in records], [1, 2])
        for r in records:
            for k, v in r.items():
                self.assertTrue(v is not None and math.isfinite(v), f"{method} {precision}: {k} = {v}")
        # The training statistics, not speed and memory (bf16 adds the weights' casts to the tensor memory).
        return {k: v for k, v in records[0].items()
                if k.startswith("train/") and k not in ("train/samples_per_s", "train/peak_rss_mb", "train/peak_tensor_mb")}

    def test_every_method_runs_its_forwards_in_bf16(self):
        for method in METHODS:
            with self.subTest(method=method):
                fp32, bf16 = self.first_record(method, "fp32"), self.first_record(method, "bf16")
                rel = {k: abs(bf16[k] - v) / max(abs(v), 1e-3) for k, v in fp32.items() if k in bf16}
                self.assertGreater(max(rel.values()), 0, f"{method}: bf16 changed nothing: was autocast on?")
                self.assertLess(max(rel.values()), 0.1, f"{method}: {rel}")
                if method in ("dpo", "dmpo"):
                    self.assertEqual(bf16["train/reward_margin"], 0.0)
                if method == "dpo":
                    self.assertAlmostEqual(bf16["train/loss"], math.log(2), places=6)

    def test_fp16_dpo(self):
        # DPO's gradient here is large (norm ~600 at beta of gmm_dpo), so with the default first scale 2^16 the
        # scaled fp16 gradient overflows: dynamic loss scaling skips those steps and halves the scale until the
        # gradient fits, as torch's GradScaler does; then the steps apply.
        experiment, extra = METHODS["dpo"]
        run_dir = self.tmp / "dpo-fp16-scaling"
        dualign(["train", f"experiment={experiment}", f"run.root={self.root}", f"data_dir={self.data}",
                 "train.steps=12", "train.global_batch=64", "train.checkpoint_every=-1", "train.eval.num_samples=0",
                 "train.precision=fp16", "run.log_every=1", "run.progress=false", "threads=1", f"run.dir={run_dir}",
                 *extra])
        records = metrics(run_dir, having="train/loss")
        self.assertEqual([r["step"] for r in records], list(range(1, 13)))
        self.assertAlmostEqual(records[0]["train/loss"], math.log(2), places=6)
        self.assertEqual(records[0]["train/reward_margin"], 0.0)
        skipped, scale = 0, 65536.0
        for r in records:
            self.assertEqual(r["train/loss_scale"], scale, r)  # the scale the step ran with
            finite = r["train/grad_norm"] is not None and math.isfinite(r["train/grad_norm"])
            skipped += not finite
            scale = scale if finite else scale / 2
            self.assertEqual(r["train/skipped_steps"], skipped, r)
            self.assertTrue(math.isfinite(r["train/loss"]), r)
        self.assertLess(skipped, 12)  # the scale came down far enough for steps to apply
        self.assertIsNotNone(records[-1]["train/grad_norm"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
