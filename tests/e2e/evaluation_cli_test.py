"""data_tools/evaluate_samples.py end to end on two synthetic `samples` files (base, tuned; the tuned rows shuffled)
with tiny random models: report.json fields and numbers (pairs matched on (prompt, image_index), per-pair PickScores
equal to pickscore.py's on each file, win rates equal to the pair outcomes), report.md tables, the grid PNG,
per-category tables from a PartiPrompts TSV, and the pairing errors (seeds or prompts that differ)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
TOOL = str(SRC / "data_tools" / "evaluate_samples.py")
PROMPTS = ["a cat", "a dog", "a red car", "blue sky", "a tree"]
SCORERS = ["pickscore", "clip", "aesthetic", "hpsv2"]


def write_samples(path, latents, prompts=None, **int_datasets):
    """A `dualign sample` file (src/eval/samples_io.h): latents, optional prompt strings and int64 datasets."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "samples"
        f.attrs["version"] = np.int64(1)
        f.create_dataset("samples", data=latents.astype(np.float32))
        if prompts is not None:
            f.create_dataset("prompt", data=prompts, dtype=h5py.string_dtype())
        for name, values in int_datasets.items():
            f.create_dataset(name, data=np.asarray(values, dtype=np.int64))


def run(args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True)


class EvaluateSamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="evaluation-cli-test-")
        rng = np.random.default_rng(0)
        n = 2 * len(PROMPTS)  # 2 images per prompt
        cls.prompt_of = [PROMPTS[i // 2] for i in range(n)]
        cls.image_index = np.arange(n) % 2
        cls.seed = 1000 + np.arange(n)
        base = rng.standard_normal((n, 4, 16, 16))
        tuned = base + 0.5 * rng.standard_normal((n, 4, 16, 16))  # same seed, nearby latents
        cls.order = rng.permutation(n)  # the tuned file lists its samples in another order
        cls.base = os.path.join(cls.tmp, "base.h5")
        cls.tuned = os.path.join(cls.tmp, "tuned.h5")
        write_samples(cls.base, base, cls.prompt_of, seed=cls.seed, image_index=cls.image_index)
        write_samples(cls.tuned, tuned[cls.order], [cls.prompt_of[i] for i in cls.order], seed=cls.seed[cls.order],
                      image_index=cls.image_index[cls.order])
        cls.parti = os.path.join(cls.tmp, "parti.tsv")
        with open(cls.parti, "w") as f:
            f.write("Prompt\tCategory\tChallenge\tNote\n")
            for p, c in zip(PROMPTS, ["Animals", "Animals", "Vehicles", "Outdoor", "Outdoor"]):
                f.write(f"{p}\t{c}\tBasic\t\n")
        cls.out = os.path.join(cls.tmp, "report")
        cls.proc = run([TOOL, "--base", cls.base, "--tuned", cls.tuned, "--base-name", "sd15", "--tuned-name", "dpo",
                        "--out", cls.out, "--tiny-random", "--threads", "1", "--batch-size", "4", "--resamples",
                        "2000", "--prompt-set", cls.parti])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def report(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stdout + self.proc.stderr)
        with open(os.path.join(self.out, "report.json")) as f:
            return json.load(f)

    def test_report_fields_and_pairing(self):
        r = self.report()
        self.assertEqual(r["pairing"], {"key": "(prompt, image_index)", "n_pairs": 10, "n_prompts": 5,
                                        "seeds": "matched"})
        self.assertEqual(r["bootstrap"]["resamples"], 2000)
        self.assertEqual((r["base"]["name"], r["tuned"]["name"]), ("sd15", "dpo"))
        self.assertEqual(sorted(r["results"]), sorted(SCORERS))
        for name, res in r["results"].items():
            self.assertEqual((res["n_pairs"], res["n_prompts"]), (10, 5), name)
            self.assertEqual(res["wins"] + res["ties"] + res["losses"], 10, name)
            for stat in ("win_rate", "mean_diff", "base", "tuned"):
                lo, hi = res[stat]["ci"]
                self.assertTrue(lo <= res[stat]["estimate"] <= hi, (name, stat, res[stat]))
                self.assertGreaterEqual(res[stat]["se"], 0.0)
            base = np.array([p["base"][name] for p in r["pairs"]])
            tuned = np.array([p["tuned"][name] for p in r["pairs"]])
            outcome = (tuned > base) + 0.5 * (tuned == base)
            self.assertAlmostEqual(res["win_rate"]["estimate"], outcome.mean(), places=12)
            self.assertAlmostEqual(res["mean_diff"]["estimate"], (tuned - base).mean(), places=9)
        for p in r["pairs"]:  # each pair joins the same prompt, image and seed across the shuffled files
            j = int(self.order[p["tuned_row"]])
            self.assertEqual(j, p["base_row"])
            self.assertEqual((p["prompt"], p["seed"], p["image_index"]),
                             (self.prompt_of[j], int(self.seed[j]), int(self.image_index[j])))

    def test_pair_scores_equal_single_file_pickscores(self):
        r = self.report()
        single = {}
        for side, path in (("base", self.base), ("tuned", self.tuned)):
            out = os.path.join(self.tmp, f"pickscore-{side}.json")
            p = run([SRC / "data_tools" / "pickscore.py", "--samples", path, "--out", out, "--tiny-random",
                     "--threads", "1"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(out) as f:
                single[side] = json.load(f)["scores"]
        for p in r["pairs"]:
            self.assertLessEqual(abs(p["base"]["pickscore"] - single["base"][p["base_row"]]), 1e-5)
            self.assertLessEqual(abs(p["tuned"]["pickscore"] - single["tuned"][p["tuned_row"]]), 1e-5)

    def test_categories_from_the_prompt_set(self):
        r = self.report()
        for name in SCORERS:
            cats = r["categories"][name]
            self.assertEqual(list(cats), ["Animals", "Vehicles", "Outdoor"])
            self.assertEqual([c["n_pairs"] for c in cats.values()], [4, 2, 4])
            self.assertEqual([c["n_prompts"] for c in cats.values()], [2, 1, 2])
        animals = [p for p in r["pairs"] if p["prompt"] in ("a cat", "a dog")]
        diff = np.mean([p["tuned"]["hpsv2"] - p["base"]["hpsv2"] for p in animals])
        self.assertAlmostEqual(r["categories"]["hpsv2"]["Animals"]["mean_diff"]["estimate"], diff, places=9)

    def test_markdown_and_grid(self):
        from PIL import Image
        r = self.report()
        with open(os.path.join(self.out, "report.md")) as f:
            md = f.read()
        self.assertIn("# dpo vs sd15", md)
        self.assertIn("| scorer | pairs | prompts | sd15 mean ± SE | dpo mean ± SE | mean diff (dpo − sd15) [CI] | "
                      "win rate of dpo [CI] | W / T / L |", md)
        for name in SCORERS:
            res = r["results"][name]
            self.assertIn(f"| {name} | 10 | 5 |", md)
            self.assertIn(f"| {res['wins']} / {res['ties']} / {res['losses']} |", md)
        self.assertIn("### pickscore by category", md)
        self.assertIn("Tiny random models", md)
        self.assertIn("2000 resamples of prompts", md)
        self.assertEqual(r["grids"], ["grid-000.png"])
        self.assertIn("![grid-000.png](grid-000.png)", md)
        with Image.open(os.path.join(self.out, "grid-000.png")) as img:
            self.assertEqual(img.format, "PNG")
            self.assertGreaterEqual(img.width, 2 * 256)  # 32 px samples upscaled to 256 px, side by side
            self.assertGreaterEqual(img.height, 5 * 256)  # one row per prompt
            pixels = np.asarray(img.convert("RGB"))
        self.assertGreater(pixels.std(), 20)  # images drawn, not a blank page


class PairingErrors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="evaluation-pairing-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.latents = np.random.default_rng(1).standard_normal((4, 4, 16, 16))

    def evaluate(self, base, tuned, *extra):
        return run([TOOL, "--base", base, "--tuned", tuned, "--out", os.path.join(self.tmp, "out"), "--tiny-random",
                    "--threads", "1", "--resamples", "200", "--scorers", "pickscore", *extra])

    def test_seeds_must_match(self):
        base, tuned = os.path.join(self.tmp, "b.h5"), os.path.join(self.tmp, "t.h5")
        prompts = ["a", "a", "b", "b"]
        write_samples(base, self.latents, prompts, seed=[1, 2, 3, 4], image_index=[0, 1, 0, 1])
        write_samples(tuned, self.latents, prompts, seed=[1, 2, 3, 5], image_index=[0, 1, 0, 1])
        p = self.evaluate(base, tuned)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("1 pairs have different seeds", p.stderr)
        p = self.evaluate(base, tuned, "--allow-seed-mismatch")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_row_order_needs_the_same_prompts(self):
        base, tuned = os.path.join(self.tmp, "b.h5"), os.path.join(self.tmp, "t.h5")
        write_samples(base, self.latents, ["a", "a", "b", "b"])
        write_samples(tuned, self.latents, ["a", "b", "a", "b"])
        p = self.evaluate(base, tuned)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("paired by row order, 2 pairs show different prompts", p.stderr)

    def test_prompt_index_files_pair_through_the_prompts_file(self):
        prompts_h5 = os.path.join(self.tmp, "prompts.h5")
        with h5py.File(prompts_h5, "w") as f:
            f.create_dataset("prompt", data=["a cat", "a dog"], dtype=h5py.string_dtype())
        base, tuned = os.path.join(self.tmp, "b.h5"), os.path.join(self.tmp, "t.h5")
        write_samples(base, self.latents, prompt_index=[0, 0, 1, 1], image_index=[0, 1, 0, 1])
        write_samples(tuned, self.latents[::-1], prompt_index=[1, 1, 0, 0], image_index=[1, 0, 1, 0])
        p = self.evaluate(base, tuned, "--prompts", prompts_h5, "--batch-size", "1")  # batch-independent numbers
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(os.path.join(self.tmp, "out", "report.json")) as f:
            r = json.load(f)
        self.assertEqual(r["pairing"]["key"], "(prompt_index, image_index)")
        self.assertEqual([(q["base_row"], q["tuned_row"]) for q in r["pairs"]], [(0, 3), (1, 2), (2, 1), (3, 0)])
        # Same latents on both sides: every pair ties, win rate exactly 0.5.
        self.assertEqual(r["results"]["pickscore"]["ties"], 4)
        self.assertEqual(r["results"]["pickscore"]["win_rate"]["estimate"], 0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
