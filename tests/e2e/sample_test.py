"""`dualign sample` end to end with tiny random models (no downloads).

Text-conditional, from a diffusers directory (a tiny SD pipeline with SD-1.5's PNDM scheduler config):
  - np=1 and mpirun -np 2 write the same file: latents within 1e-6, and the same seed / image_index /
    prompt_index / prompt datasets;
  - StableDiffusionPipeline.from_pretrained of the same directory, given the same embeddings and one generator
    per row seeded with the file's `seed`, reproduces the latents within 1e-4 (PNDM as shipped, and Euler ancestral,
    whose step noise comes from those generators);
  - guidance needs the prompts file's negative (empty-prompt) embedding, and says so.
Class-conditional: an MLP trained on labelled 2-D mixture points with data.label_dropout (the null class is the
unconditional branch), sampled with --classes all --guidance 3 at np=1 and np=2 (identical), is more clearly of
its own class than without guidance (a higher log p(class | x) under the data's mixture); a class-conditional image UNet writes one PNG per sample, and its
export without --base (fp32 and fp16) loads in diffusers and samples like the run.
"""
import json
import shutil
import sys
import unittest

import h5py
import numpy as np

from diffusers_reference import max_abs_diff, pipeline_latents, save_tiny_pipeline
from e2e_util import BIN, SRC, dualign, run, temp_dir


def read(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][:] for k in f}
        out["attrs"] = dict(f.attrs)
    return out


class TextConditional(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir("sample-test-")
        cls.sd = save_tiny_pipeline(str(cls.tmp / "tiny-sd"))
        (cls.tmp / "prompts.txt").write_text("a red bicycle\na cat on a mat\nan astronaut riding a horse\n")
        cls.prompts = cls.tmp / "prompts.h5"
        run([sys.executable, SRC / "data_tools" / "encode_prompts.py", "--prompts", cls.tmp / "prompts.txt",
             "--out", cls.prompts, "--tiny-random", "--threads", "1"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sample(self, name, *args, n=3, np_=None):
        out = self.tmp / f"{name}.h5"
        dualign(["sample", "--model", self.sd, "--prompts", self.prompts, "-n", n, "--steps", "8", "--seed", "4",
                 "--batch", "2", "--out", out, "--no-progress", *args], np_=np_)
        return out

    def test_world_size_does_not_change_the_samples(self):
        one, two = read(self.sample("np1")), read(self.sample("np2", np_=2))
        self.assertEqual(one["samples"].shape, (9, 4, 16, 16))
        diff = float(np.abs(one["samples"] - two["samples"]).max())
        print(f"np=1 vs np=2: max abs latent difference {diff:.1e}")
        self.assertLessEqual(diff, 1e-6)
        for key in ("seed", "image_index", "prompt_index", "prompt"):
            np.testing.assert_array_equal(one[key], two[key], err_msg=key)
        np.testing.assert_array_equal(one["prompt_index"], np.repeat([0, 1, 2], 3))
        np.testing.assert_array_equal(one["image_index"], np.tile([0, 1, 2], 3))
        self.assertEqual(len(set(one["seed"].tolist())), 9)
        self.assertEqual(one["attrs"]["sampler"], "pndm")  # the pipeline's scheduler_config.json
        self.assertEqual(float(one["attrs"]["guidance_scale"]), 7.5)
        self.assertFalse(list(self.tmp.glob("np2.h5.rank*")), "part files left behind")

    def test_diffusers_pipeline_reproduces_the_samples(self):
        for sampler in ("pndm", "euler_ancestral"):
            out = self.sample(f"ref-{sampler}", "--sampler", sampler)
            ref = pipeline_latents(self.sd, out, self.prompts, steps=8, sampler=sampler, batch=2)
            diff, scale = max_abs_diff(out, ref)
            print(f"{sampler}: dualign vs StableDiffusionPipeline max abs latent difference {diff:.1e} "
                  f"(|latents| max {scale:.1f})")
            self.assertLessEqual(diff, 1e-4, sampler)

    def test_the_same_seed_per_prompt_and_image_whatever_else_is_sampled(self):
        # -n 3 vs -n 2: image j of prompt p has the same seed and x_T, so the same latents
        three = read(self.sample("three"))
        two = read(self.sample("two", n=2))
        rows = [i for i in range(9) if three["image_index"][i] < 2]
        np.testing.assert_array_equal(three["seed"][rows], two["seed"])
        self.assertLessEqual(float(np.abs(three["samples"][rows] - two["samples"]).max()), 1e-6)

    def test_guidance_needs_the_unconditional_embedding(self):
        bare = self.tmp / "bare.h5"
        with h5py.File(self.prompts, "r") as f, h5py.File(bare, "w") as g:
            for key in ("prompt", "text_embedding"):
                g.create_dataset(key, data=f[key][:])
            g.attrs["format"] = "prompts"
        p = dualign(["sample", "--model", self.sd, "--prompts", bare, "-n", "1", "--steps", "2", "--out",
                     self.tmp / "x.h5"], ok=False)
        self.assertIn("negative_text_embedding", p.stderr + p.stdout)
        dualign(["sample", "--model", self.sd, "--prompts", bare, "-n", "1", "--steps", "2", "--out",
                 self.tmp / "x.h5", "--negative-prompts", self.prompts, "--no-progress"])  # 3 rows: one per prompt
        dualign(["sample", "--model", self.sd, "--prompts", bare, "-n", "1", "--steps", "2", "--out",
                 self.tmp / "x.h5", "--guidance", "1", "--no-progress"])


class ClassConditional(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir("sample-class-test-")
        cls.points = cls.tmp / "points.h5"
        dualign(["data", "gmm", "--out", cls.points, "-n", "8000", "--components", "3", "--radius", "2",
                 "--stddev", "0.9"])
        cls.run_dir = cls.tmp / "run"
        dualign(["train", "experiment=gmm_sft", "data.kind=h5", f"+data.path={cls.points}", "~data.means",
                 "~data.weights", "~data.std", "+data.condition=class", "+data.label_dropout=0.2",
                 "+data.null_class=3", "model.num_classes=3", "train.steps=600", "train.global_batch=256",
                 "threads=1", f"run.dir={cls.run_dir}", "run.progress=false"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def sample(self, name, guidance, np_=None):
        out = self.tmp / f"{name}.h5"
        dualign(["sample", "--model", self.run_dir, "--classes", "all", "-n", "600", "--steps", "30", "--seed", "1",
                 "--batch", "64", "--guidance", str(guidance), "--sampler", "dpmsolver++", "--out", out,
                 "--no-progress"], np_=np_)
        return read(out)

    def test_guided_class_samples(self):
        guided, guided2, plain = self.sample("g", 3.0), self.sample("g2", 3.0, np_=2), self.sample("p", 1.0)
        self.assertLessEqual(float(np.abs(guided["samples"] - guided2["samples"]).max()), 1e-6)
        np.testing.assert_array_equal(guided["class_id"], guided2["class_id"])
        np.testing.assert_array_equal(guided["seed"], plain["seed"])  # the same x_T with and without guidance
        with h5py.File(self.points, "r") as f:
            x, labels = f["points"][:], f["labels"][:]
        means = np.stack([x[labels == k].mean(0) for k in range(3)])

        def own_class_log_posterior(s):  # mean log p(class | x) under the data's own mixture (std 0.9, equal weights)
            logits = -((s["samples"][:, None, :] - means[None]) ** 2).sum(-1) / (2 * 0.9 ** 2)
            log_post = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            return float(log_post[np.arange(len(s["samples"])), s["class_id"]].mean())

        lp_guided, lp_plain = own_class_log_posterior(guided), own_class_log_posterior(plain)
        print(f"mean log p(own class | x): guidance 3 {lp_guided:.4f}, none {lp_plain:.4f}; exact data "
              f"{own_class_log_posterior({'samples': x, 'class_id': labels}):.4f}")
        # guidance sharpens p(class | x): the guided samples are more clearly their own class
        self.assertGreater(lp_guided, lp_plain + 0.01)
        self.assertEqual(guided["attrs"]["sampler"], "dpmsolver++")

    def test_unconditional_guidance_is_refused(self):
        p = dualign(["sample", "--model", self.run_dir, "--class-id", "5", "-n", "2", "--out", self.tmp / "x.h5"],
                    ok=False)
        self.assertIn("--class-id 5", p.stderr + p.stdout)


class ImageModel(unittest.TestCase):
    """A class-conditional image UNet trained for 2 steps with label dropout: PNGs, and export without --base."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir("sample-image-test-")
        images = cls.tmp / "images.h5"
        rng = np.random.default_rng(0)
        with h5py.File(images, "w") as f:
            f.attrs["format"] = "images"
            f.attrs["version"] = np.int64(1)
            f.create_dataset("images", data=rng.integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8))
            f.create_dataset("labels", data=np.arange(64, dtype=np.int64) % 2)
        cls.run_dir = cls.tmp / "run"
        model = ("model=unet_class_cond", "model.sample_size=8", "model.in_channels=1", "model.out_channels=1",
                 "model.down_block_types=[DownBlock2D,DownBlock2D]", "model.up_block_types=[UpBlock2D,UpBlock2D]",
                 "model.block_out_channels=[8,16]", "model.layers_per_block=1", "model.norm_num_groups=4",
                 "model.num_class_embeds=3")
        dualign(["train", "method=sft", "data.kind=h5", f"+data.path={images}", "~data.means", "~data.weights",
                 "~data.std", "+data.condition=class", "+data.label_dropout=0.5", "+data.null_class=2", *model,
                 "train.steps=2", "train.global_batch=8", "threads=1", f"run.dir={cls.run_dir}", "run.progress=false"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_one_png_per_class_conditional_image(self):
        pngs = self.tmp / "pngs"
        dualign(["sample", "--model", self.run_dir, "--classes", "all", "-n", "4", "--steps", "3", "--guidance", "2",
                 "--out", self.tmp / "s.h5", "--png-dir", pngs, "--png", self.tmp / "grid.png", "--no-progress"],
                np_=2)
        names = sorted(p.name for p in pngs.glob("*.png"))
        self.assertEqual(names, ["000000-class0-image0.png", "000001-class0-image1.png", "000002-class1-image0.png",
                                 "000003-class1-image1.png"])
        self.assertTrue(all((pngs / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names))

    def test_export_without_base(self):
        import torch
        from diffusers import UNet2DConditionModel
        for dtype in ("fp32", "fp16"):
            out = self.tmp / f"export-{dtype}"
            dualign(["export", "--model", self.run_dir, "--out", out, "--dtype", dtype])
            unet = UNet2DConditionModel.from_pretrained(out / "unet")  # diffusers loads it
            self.assertEqual(unet.config.num_class_embeds, 3)
            info = json.loads((out / "dualign_export.json").read_text())
            self.assertEqual((info["dtype"], info["step"]), (dtype, 2))
            self.assertTrue((out / "scheduler" / "scheduler_config.json").is_file())
            # the exported directory samples like the run (fp16: within fp16 weight rounding)
            args = ["--classes", "all", "-n", "4", "--steps", "5", "--guidance", "2", "--no-progress"]
            dualign(["sample", "--model", self.run_dir, "--out", self.tmp / "from-run.h5", *args])
            dualign(["sample", "--model", out, "--out", self.tmp / f"from-{dtype}.h5", *args])
            a, b = read(self.tmp / "from-run.h5"), read(self.tmp / f"from-{dtype}.h5")
            diff = float(np.abs(a["samples"] - b["samples"]).max())
            print(f"export {dtype}: samples vs the run's, max abs difference {diff:.1e}")
            self.assertLessEqual(diff, 1e-6 if dtype == "fp32" else 5e-2)
            self.assertEqual(b["attrs"]["sampler"], "ddim")
            if dtype == "fp16":
                self.assertEqual(next(unet.parameters()).dtype, torch.float32)  # diffusers upcasts on load
        p = dualign(["export", "--model", self.run_dir, "--out", self.tmp / "export-fp32"], ok=False)
        self.assertIn("not empty", p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
