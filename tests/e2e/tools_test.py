"""data_tools and bench helpers: report.py on synthetic run dirs (table numbers, valid PNGs), encode_prompts.py and
pickscore.py on tiny random models (no downloads), and the Python DPO peer of the step benchmark (one step)."""
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import unittest

import numpy as np

import e2e_util
from e2e_util import SRC

sys.path.insert(0, str(SRC / "data_tools"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tool(script, *args, ok=True):
    """python SRC/script ARGS (a data_tools/ or bench/ script) with this interpreter."""
    return e2e_util.run([sys.executable, SRC / script, *args], ok=ok)


def read_text(path):
    with open(path) as f:
        return f.read()


def temp_dir(test, prefix):
    """A temporary directory removed when the test ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, d, ignore_errors=True)
    return d


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC and os.path.getsize(path) > 100


def make_run(root, name, method, beta, seed, reward, kl, win, reward_ref=1.0, acc=None, samples=True):
    """A run dir as `dualign train` + `dualign eval` leave it (only the files report.py reads)."""
    import yaml
    from PIL import Image
    d = os.path.join(root, name)
    os.makedirs(d)
    method_cfg = {"name": method} if beta is None else {"name": method, "beta": beta}
    with open(os.path.join(d, "config.yaml"), "w") as f:
        yaml.safe_dump({"seed": seed, "method": method_cfg, "train": {"steps": 30}}, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for step in (10, 20, 30):
            rec = {"step": step, "train/loss": 0.7 - 0.01 * step, "train/lr": 1e-3}
            if acc is not None:
                rec["train/implicit_acc"] = acc - 0.001 * (30 - step)
            f.write(json.dumps(rec) + "\n")
        f.write(json.dumps({"step": 30, "eval/energy_distance": 0.1}) + "\n")  # a record without train/ keys
    with open(os.path.join(d, "eval.json"), "w") as f:
        json.dump({"reward/mean": reward, "reward/se": 0.05, "reward_ref/mean": reward_ref, "win_rate": win,
                   "win_rate_se": 0.02, "kl": kl, "kl_se": 0.01, "kl_method": "pf_ode", "n": 500}, f)
    if samples:
        rng = np.random.default_rng(seed)
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(os.path.join(d, "samples.png"))
    return d


class Report(unittest.TestCase):
    def test_table_numbers_and_figures(self):
        import report
        tmp = temp_dir(self, "report-test-")
        runs = [
            make_run(tmp, "dpo_b1000_s0", "dpo", 1000.0, 0, reward=2.0, kl=0.5, win=0.60, acc=0.62),
            make_run(tmp, "dpo_b1000_s1", "dpo", 1000.0, 1, reward=2.4, kl=0.7, win=0.64, acc=0.66),
            make_run(tmp, "dpo_b5000_s0", "dpo", 5000.0, 0, reward=1.5, kl=0.2, win=0.55, acc=0.58),
            make_run(tmp, "dmpo_b1000_s0", "dmpo", 1000.0, 0, reward=2.6, kl=0.4, win=0.70, acc=0.70),
            make_run(tmp, "sft_s0", "sft", None, 0, reward=1.0, kl=0.0, win=0.5, samples=False),
        ]
        out = os.path.join(tmp, "report")
        tool("data_tools/report.py", *runs, "--out", out, "--group-by", "method.name,method.beta")

        data = json.loads(read_text(os.path.join(out, "report.json")))
        rows = {(r["group"]["method.name"], r["group"]["method.beta"]): r for r in data["rows"]}
        self.assertEqual(set(rows), {("dpo", 1000.0), ("dpo", 5000.0), ("dmpo", 1000.0), ("sft", None)})
        dpo = rows[("dpo", 1000.0)]
        self.assertEqual(dpo["seeds"], [0, 1])
        self.assertAlmostEqual(dpo["reward"]["mean"], 2.2)
        self.assertAlmostEqual(dpo["reward"]["std"], math.sqrt(0.08))  # sample std of (2.0, 2.4)
        self.assertAlmostEqual(dpo["reward"]["err"], math.sqrt(0.08) / math.sqrt(2))
        self.assertAlmostEqual(dpo["win_rate"]["mean"], 0.62)
        self.assertAlmostEqual(dpo["kl"]["mean"], 0.6)
        self.assertAlmostEqual(dpo["implicit_acc"]["mean"], 0.64)  # last train/implicit_acc, averaged
        self.assertAlmostEqual(rows[("dpo", 5000.0)]["reward"]["err"], 0.05)  # one seed: eval's own se
        self.assertIsNone(rows[("sft", None)]["implicit_acc"]["mean"])
        self.assertAlmostEqual(data["reference_reward"]["mean"], 1.0)

        md = read_text(os.path.join(out, "report.md"))
        self.assertIn("| dpo | 1000 | 2 | 2.2 ± 0.2828 | 0.62 ± 0.02828 | 0.6 ± 0.1414 | 0.64 ± 0.02828 |", md)
        self.assertIn("| dmpo | 1000 | 1 | 2.6 | 0.7 | 0.4 | 0.7 |", md)
        self.assertIn("| sft | — | 1 | 1 | 0.5 | 0 | — |", md)
        self.assertIn("Reference model reward", md)
        for name in ("loss.png", "implicit_acc.png", "frontier.png", "samples.png"):
            self.assertTrue(is_png(os.path.join(out, name)), name)
            self.assertIn(f"({name})", md)
        self.assertEqual(len(os.listdir(os.path.join(out, "samples"))), 4)  # the sft run has no samples.png

    def test_train_time_column_from_metrics_time(self):
        import report
        tmp = temp_dir(self, "report-test-")
        runs = [make_run(tmp, f"s{seed}", "dpo", 100.0, seed, reward=1.0, kl=0.1, win=0.5, samples=False)
                for seed in (0, 1)]
        for d, seconds in zip(runs, (30.0, 50.0)):
            path = os.path.join(d, "metrics.jsonl")
            recs = [json.loads(line) for line in read_text(path).splitlines()]
            for r in recs:
                r["time"] = seconds * r["step"] / 30 + (5 if "train/loss" not in r else 0)  # eval record: later
            with open(path, "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in recs))
        rows, _, _ = report.report(runs, os.path.join(tmp, "out"), ["method.name", "method.beta"])
        self.assertAlmostEqual(rows[0]["train_seconds"]["mean"], 40.0)  # the last train record, not the eval one
        md = read_text(os.path.join(tmp, "out", "report.md"))
        self.assertIn("train time s", md)
        self.assertIn("| 40 ± 14.14 |", md)

    def test_heldout_and_class_columns_appear_when_evaluated(self):
        import report
        tmp = temp_dir(self, "report-test-")
        a = make_run(tmp, "a", "dpo", 100.0, 0, reward=1.0, kl=0.1, win=0.5, samples=False)
        b = make_run(tmp, "b", "dpo", 100.0, 1, reward=1.0, kl=0.1, win=0.5, samples=False)
        for d, tv in ((a, 0.2), (b, 0.4)):
            path = os.path.join(d, "eval.json")
            e = json.loads(read_text(path))
            e.update({"classes/coverage": 1.0, "classes/tv_uniform": tv, "heldout_reward/mean": 3.0 + tv,
                      "heldout_reward_ref/mean": 2.5, "heldout_win_rate": 0.75})
            with open(path, "w") as f:
                json.dump(e, f)
        report.report([a, b], os.path.join(tmp, "out"), ["method.name", "method.beta"])
        md = read_text(os.path.join(tmp, "out", "report.md"))
        self.assertIn("| held-out reward | held-out win rate | class coverage | class tv_uniform |", md)
        self.assertIn("| 3.3 ± 0.1414 | 0.75 ± 0 | 1 ± 0 | 0.3 ± 0.1414 |", md)
        self.assertIn("held-out reward (heldout_reward_ref/mean, averaged over 2 runs): 2.5 ± 0", md)

    def test_summary_files_become_tables(self):
        tmp = temp_dir(self, "report-test-")
        path = os.path.join(tmp, "fairness", "summary.json")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            json.dump({"classes": 10, "runs": {"unconstrained": {"tv": 0.21, "fd": 3.5},
                                               "constrained": {"tv": 0.05, "fd": 3.75}},
                       "lambda": [0.1] * 40, "per_iteration": [{"k": 1, "F": 0.693}, {"k": 2, "F": 0.5}]}, f)
        out = os.path.join(tmp, "r")
        tool("data_tools/report.py", "--summary", path, "--out", out)
        md = read_text(os.path.join(out, "report.md"))
        self.assertIn("### fairness/summary.json", md)
        self.assertIn("| classes | 10 |", md)
        self.assertIn("| lambda | 0.1 → 0.1 (40 values) |", md)
        self.assertIn("|  | tv | fd |", md)
        self.assertIn("| constrained | 0.05 | 3.75 |", md)
        self.assertIn("| 2 | 0.5 |", md)

    def test_not_a_run_dir_fails(self):
        tmp = temp_dir(self, "report-test-")
        p = tool("data_tools/report.py", tmp, "--out", tmp + "/r", ok=False)
        self.assertIn("config.yaml", p.stderr)


class ConstrainedSummary(unittest.TestCase):
    def test_constraints_met_within_two_standard_errors(self):
        root = pathlib.Path(temp_dir(self, "constrained-summary-"))
        for run, (m1, m2, lam) in {"dual": (-4.1, -7.9, 0.3), "equal": (-6.0, -5.0, 0.2)}.items():
            (root / run).mkdir()
            ev = {"kl": 0.6, "kl_se": 0.02, "reward/mean": m1, "reward/se": 0.06, "reward_ref/mean": -13.0,
                  "reward/top/mean": m2, "reward/top/se": 0.05, "reward_ref/top/mean": -8.3}
            (root / run / "eval.json").write_text(json.dumps(ev))
            rows = [{"step": 1, "train/kl": 0.5}, {"step": 1, "dual/right/lambda": lam, "dual/top/lambda": 0.1}]
            (root / run / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
        p = tool("data_tools/constrained_summary.py", "--root", root, "--constraint", "right=-4",
                 "--constraint", "top=-8:top")
        runs = json.loads((root / "summary.json").read_text())["runs"]
        self.assertTrue(runs["dual"]["all_met"])  # -4.1 + 2 x 0.06 >= -4
        self.assertFalse(runs["equal"]["constraints"]["right"]["met_within_2se"])
        self.assertEqual(runs["dual"]["lambda"], {"right": 0.3, "top": 0.1})
        self.assertIn("MISS", p.stdout)
        p = tool("data_tools/constrained_summary.py", "--root", root, "--constraint", "right", ok=False)
        self.assertIn("NAME=THRESHOLD", p.stderr)


def write_samples(path, latents, prompts):
    """A `dualign sample` output file (src/eval/samples_io.h) holding latents and their prompts."""
    import h5py
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "samples"
        f.attrs["version"] = np.int64(1)
        f.create_dataset("samples", data=latents.astype(np.float32))
        f.create_dataset("prompt", data=prompts, dtype=h5py.string_dtype())


class Prompts(unittest.TestCase):
    def test_encode_prompts_tiny_random(self):
        import h5py
        from pickapic import encode as pickapic_encode, models as pickapic_models
        tmp = temp_dir(self, "prompts-test-")
        with open(os.path.join(tmp, "prompts.txt"), "w") as f:
            f.write("a cat on a mat\n\n# a comment\na red bicycle\nan astronaut riding a horse\n")
        out = os.path.join(tmp, "prompts.h5")
        tool("data_tools/encode_prompts.py", "--prompts", os.path.join(tmp, "prompts.txt"), "--out", out,
             "--tiny-random", "--batch-size", "2", "--threads", "1")
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["format"], "prompts")
            self.assertEqual(f.attrs["version"], 1)
            prompts = [s.decode() if isinstance(s, bytes) else s for s in f["prompt"][:]]
            emb = f["text_embedding"][:]
            negative = f["negative_text_embedding"][:]
            self.assertEqual(f.attrs["negative_prompt"], "")
        self.assertEqual(prompts, ["a cat on a mat", "a red bicycle", "an astronaut riding a horse"])
        self.assertEqual(emb.shape, (3, 16, 32))
        self.assertEqual(emb.dtype, np.float32)
        # The converter's encoder with the same seed: prompts and tiny training pairs share the embedding space.
        _, encoder, tokenizer, _ = pickapic_models.tiny_random_models(seed=0)
        ref = pickapic_encode.encode_prompts(encoder, tokenizer, prompts, "cpu")
        np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-5)
        self.assertFalse(np.allclose(emb[0], emb[1]))
        # The unconditional branch of guidance: the empty prompt, encoded as StableDiffusionPipeline encodes it
        self.assertEqual(negative.shape, (1, 16, 32))
        np.testing.assert_allclose(negative, pickapic_encode.encode_prompts(encoder, tokenizer, [""], "cpu"), rtol=1e-5,
                                   atol=1e-5)


class PickScore(unittest.TestCase):
    def test_tiny_random_scores_match_a_direct_computation(self):
        import torch
        import pickscore
        tmp = temp_dir(self, "pickscore-test-")
        rng = np.random.default_rng(0)
        latents = rng.standard_normal((5, 4, 16, 16)).astype(np.float32)
        latents[4] = latents[0]  # same latent, other prompt
        prompts = ["a cat", "a dog", "a red bicycle", "a blue sky", "a dog"]
        samples = os.path.join(tmp, "samples.h5")
        write_samples(samples, latents, prompts)
        out, png = os.path.join(tmp, "scores.json"), os.path.join(tmp, "grid.png")
        tool("data_tools/pickscore.py", "--samples", samples, "--out", out, "--tiny-random", "--png", png,
             "--batch-size", "2", "--threads", "1")
        result = json.loads(read_text(out))
        scores = np.array(result["scores"])
        self.assertEqual(result["n"], 5)
        self.assertEqual(result["prompts"], prompts)
        self.assertTrue(np.all(np.isfinite(scores)))
        self.assertAlmostEqual(result["pickscore/mean"], scores.mean(), places=9)
        self.assertAlmostEqual(result["pickscore/se"], scores.std(ddof=1) / math.sqrt(5), places=9)

        # Direct computation for sample 1: decode, CLIP-normalise, cosine times logit_scale.
        vae, clip, processor = pickscore.tiny_random_scorer(0)
        with torch.no_grad():
            x = vae.decode(torch.from_numpy(latents[1:2]) / vae.config.scaling_factor).sample
            img = ((x.clamp(-1, 1) + 1) * 127.5).round() / 255.0  # [1, 3, 32, 32]; the crop is the whole image
            mean = torch.tensor(pickscore.CLIP_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(pickscore.CLIP_STD).view(1, 3, 1, 1)
            image_emb = pickscore.features(clip.get_image_features(pixel_values=(img - mean) / std))
            ids = processor.tokenizer([prompts[1]], padding=True, return_tensors="pt")
            text_emb = pickscore.features(clip.get_text_features(**ids))
            cos = torch.nn.functional.cosine_similarity(image_emb, text_emb).item()
        self.assertAlmostEqual(scores[1], clip.logit_scale.exp().item() * cos, delta=1e-3)
        self.assertLessEqual(abs(scores).max(), clip.logit_scale.exp().item() + 1e-4)
        self.assertNotAlmostEqual(scores[0], scores[4], places=6)  # the prompt matters
        self.assertTrue(is_png(png))

    def test_rejects_files_that_are_not_samples(self):
        import h5py
        tmp = temp_dir(self, "pickscore-test-")
        bad = os.path.join(tmp, "pairs.h5")
        with h5py.File(bad, "w") as f:
            f.attrs["format"] = "preference_pairs"
        p = tool("data_tools/pickscore.py", "--samples", bad, "--out", os.path.join(tmp, "s.json"), "--tiny-random",
                 ok=False)
        self.assertIn("format samples", p.stderr)


class SideBySide(unittest.TestCase):
    def test_two_grids_of_upscaled_images_from_the_same_rows(self):
        import h5py
        from PIL import Image
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="sbs-"))
        for name, value in (("left", -1.0), ("right", 1.0)):  # black vs white images: the halves are told apart
            with h5py.File(tmp / f"{name}.h5", "w") as f:
                f.attrs["format"] = "samples"
                f["samples"] = np.full((12, 1, 14, 14), value, np.float32)
        tool("data_tools/side_by_side.py", "--left", tmp / "left.h5", "--right", tmp / "right.h5", "--rows", "2", "--cols", "3",
             "--scale", "4", "--out", tmp / "out.png")
        img = np.asarray(Image.open(tmp / "out.png").convert("L"))
        # 2 rows x 3 cols of 56-px tiles with 2-px gaps, margins of 16 px and a 22-px title band
        self.assertEqual(img.shape, (22 + 2 * 56 + 2 + 16, 3 * 16 + 2 * (3 * 56 + 2 * 2)))
        self.assertEqual(img[22 + 10, 16 + 10], 0)                       # a left tile: black
        self.assertEqual(img[22 + 10, 16 + (3 * 56 + 4) + 16 + 10], 255)  # a right tile: white
        with h5py.File(tmp / "few.h5", "w") as f:
            f.attrs["format"] = "samples"
            f["samples"] = np.zeros((3, 1, 14, 14), np.float32)
        tool("data_tools/side_by_side.py", "--left", tmp / "few.h5", "--right", tmp / "right.h5", "--out", tmp / "x.png", ok=False)
        # PNG pictures (dualign compose's grids) are shown whole, upscaled: 10x8 px at scale 3 -> 30x24 panels.
        for name, value in (("left", 0), ("right", 255)):
            Image.fromarray(np.full((8, 10), value, np.uint8)).save(tmp / f"{name}.png")
        tool("data_tools/side_by_side.py", "--left", tmp / "left.png", "--right", tmp / "right.png", "--scale", "3",
             "--out", tmp / "pngs.png")
        img = np.asarray(Image.open(tmp / "pngs.png").convert("L"))
        self.assertEqual(img.shape, (22 + 24 + 16, 3 * 16 + 2 * 30))
        self.assertEqual((img[22 + 5, 16 + 5], img[22 + 5, 16 + 30 + 16 + 5]), (0, 255))
        tool("data_tools/side_by_side.py", "--left", tmp / "left.png", "--right", tmp / "right.h5", "--out",
             tmp / "x.png", ok=False)  # one of each
        shutil.rmtree(tmp)


class DpoPeer(unittest.TestCase):
    def test_peer_step_starts_at_log2_and_reports_throughput(self):
        import h5py
        tmp = temp_dir(self, "dpo-peer-test-")
        pairs = os.path.join(tmp, "pairs.h5")
        rng = np.random.default_rng(0)
        with h5py.File(pairs, "w") as f:
            f.attrs["format"] = "preference_pairs"
            f.attrs["version"] = np.int64(1)
            for k in ("winner", "loser"):
                f.create_dataset(k, data=rng.standard_normal((8, 4, 16, 16)).astype(np.float32))
            f.create_dataset("text_embedding", data=rng.standard_normal((8, 77, 32)).astype(np.float32))
        p = tool("bench/dpo_step_peer.py", "--model", SRC / "configs" / "model" / "unet_tiny.yaml", "--data", pairs,
                 "--global-batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(out["condition"], "text")
        self.assertAlmostEqual(out["first_loss"], math.log(2), places=6)  # policy = reference at step 0
        self.assertTrue(math.isfinite(out["last_loss"]))
        self.assertGreater(out["samples_per_s"], 0)
        self.assertGreater(out["peak_rss_mb"], 50)


if __name__ == "__main__":
    unittest.main(verbosity=2)
