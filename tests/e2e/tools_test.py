"""data_tools and bench helpers: report.py on synthetic run dirs (table numbers, valid PNGs), encode_prompts.py and
pickscore.py on tiny random models (no downloads), and the Python DPO peer of the step benchmark."""
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SRC / "data_tools"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
        p = subprocess.run([sys.executable, str(SRC / "data_tools" / "report.py"), *runs, "--out", out,
                            "--group-by", "method.name,method.beta"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

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

    def test_not_a_run_dir_fails(self):
        tmp = temp_dir(self, "report-test-")
        p = subprocess.run([sys.executable, str(SRC / "data_tools" / "report.py"), tmp, "--out", tmp + "/r"],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("config.yaml", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
