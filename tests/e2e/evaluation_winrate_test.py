"""data_tools/evaluation/winrate.py against closed forms on synthetic paired scores: ties count 0.5; for independent
per-prompt Bernoulli wins the bootstrap SE is sqrt(p(1-p)/n) and the percentile CI is the normal one; resampling
prompts (not pairs) gives the cluster-level SE; the mean-difference CI matches normal theory; the 95% CI covers
the true win probability about 95% of the time; results are reproducible from the seed."""
import math
import os
import pathlib
import sys
import unittest

import numpy as np

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SRC / "data_tools"))
from evaluation import winrate  # noqa: E402

Z975 = 1.959963984540054  # standard normal 97.5% quantile


def bernoulli_pairs(wins):
    """(base, tuned) scores whose comparison gives exactly `wins` (1 = tuned higher)."""
    base = np.zeros(len(wins))
    return base, np.where(wins, 1.0, -1.0)


class Outcomes(unittest.TestCase):
    def test_ties_count_half(self):
        r = winrate.compare([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0], cluster=[0, 1, 2, 3], n_resamples=200)
        self.assertEqual((r["wins"], r["ties"], r["losses"]), (2, 1, 1))
        self.assertAlmostEqual(r["win_rate"]["estimate"], 2.5 / 4, places=12)
        self.assertAlmostEqual(r["mean_diff"]["estimate"], (1 + 0 - 2 + 1) / 4, places=12)
        self.assertAlmostEqual(r["base"]["estimate"], 2.5, places=12)
        self.assertAlmostEqual(r["tuned"]["estimate"], 2.5, places=12)
        self.assertEqual((r["n_pairs"], r["n_prompts"]), (4, 4))

    def test_rejects_unpaired_inputs(self):
        with self.assertRaises(ValueError):
            winrate.compare([1.0, 2.0], [1.0], cluster=[0, 1])
        with self.assertRaises(ValueError):
            winrate.cluster_bootstrap({"x": [1.0, 2.0]}, cluster=[0])


class Bootstrap(unittest.TestCase):
    def test_independent_bernoulli_wins_match_the_binomial_standard_error(self):
        n, p = 400, 0.6
        wins = np.random.default_rng(1).random(n) < p
        r = winrate.compare(*bernoulli_pairs(wins), cluster=np.arange(n), n_resamples=10000, seed=3)["win_rate"]
        p_hat = wins.mean()
        se = math.sqrt(p_hat * (1 - p_hat) / n)  # the bootstrap SE of a mean of iid Bernoulli draws
        self.assertAlmostEqual(r["estimate"], p_hat, places=12)
        # Monte Carlo error of a bootstrap SD from 10000 resamples is ~0.7%: a 3% tolerance.
        self.assertLess(abs(r["se"] / se - 1), 0.03, (r, se))
        # Percentile CI vs normal CI: quantile noise ~0.03 SE, lattice step 1/n = 0.1 SE.
        self.assertLess(abs(r["ci"][0] - (p_hat - Z975 * se)), 0.25 * se, (r, se))
        self.assertLess(abs(r["ci"][1] - (p_hat + Z975 * se)), 0.25 * se, (r, se))

    def test_resampling_prompts_keeps_each_prompt_whole(self):
        # 100 prompts x 4 images whose outcomes agree within a prompt: the information is 100 draws, not 400.
        rng = np.random.default_rng(2)
        per_prompt = rng.random(100) < 0.5
        wins = np.repeat(per_prompt, 4)
        cluster = np.repeat(np.arange(100), 4)
        r = winrate.compare(*bernoulli_pairs(wins), cluster=cluster, n_resamples=10000, seed=4)["win_rate"]
        p_hat = wins.mean()
        clustered = math.sqrt(p_hat * (1 - p_hat) / 100)
        self.assertLess(abs(r["se"] / clustered - 1), 0.03, (r, clustered))
        self.assertGreater(r["se"], 1.8 * math.sqrt(p_hat * (1 - p_hat) / 400))  # naive pair-level SE is half

        # Random prompt effects: the SE is that of the mean of prompt means, sqrt(var(prompt means) / prompts).
        prompt_p = rng.beta(2, 2, size=150)
        wins = rng.random((150, 4)) < prompt_p[:, None]
        cluster = np.repeat(np.arange(150), 4)
        r = winrate.compare(*bernoulli_pairs(wins.ravel()), cluster=cluster, n_resamples=10000, seed=5)["win_rate"]
        means = wins.mean(axis=1)
        self.assertLess(abs(r["se"] / math.sqrt(means.var() / 150) - 1), 0.03, r)

    def test_mean_difference_ci_matches_normal_theory(self):
        rng = np.random.default_rng(6)
        n = 500
        base = rng.normal(20.0, 1.0, n)
        tuned = base + rng.normal(0.3, 1.0, n)
        r = winrate.compare(base, tuned, cluster=np.arange(n), n_resamples=10000, seed=7)["mean_diff"]
        d = tuned - base
        se = d.std(ddof=1) / math.sqrt(n)
        self.assertAlmostEqual(r["estimate"], d.mean(), places=12)
        self.assertLess(abs(r["se"] / se - 1), 0.03, (r, se))
        self.assertLess(abs(r["ci"][0] - (d.mean() - Z975 * se)), 0.15 * se, (r, se))
        self.assertLess(abs(r["ci"][1] - (d.mean() + Z975 * se)), 0.15 * se, (r, se))

        # Clustered: 120 prompts x 3 seeds with a prompt effect on the difference.
        effect = rng.normal(0.0, 1.0, 120)
        d = (0.2 + effect[:, None] + rng.normal(0.0, 0.5, (120, 3)))
        base = rng.normal(0.0, 1.0, 360)
        r = winrate.compare(base, base + d.ravel(), cluster=np.repeat(np.arange(120), 3), n_resamples=10000,
                            seed=8)["mean_diff"]
        se = d.mean(axis=1).std(ddof=1) / math.sqrt(120)
        self.assertLess(abs(r["se"] / se - 1), 0.04, (r, se))
        self.assertLess(abs(r["ci"][0] - (d.mean() - Z975 * se)), 0.2 * se, (r, se))

    def test_confidence_interval_covers_the_true_win_probability(self):
        # 400 synthetic evaluations of 200 prompts with win probability 0.6: the 95% CI should miss ~5% of the time
        # (binomial SD of the coverage over 400 runs: 1.1 points).
        rng = np.random.default_rng(9)
        covered = 0
        for run in range(400):
            wins = rng.random(200) < 0.6
            lo, hi = winrate.compare(*bernoulli_pairs(wins), cluster=np.arange(200), n_resamples=1000,
                                     seed=run)["win_rate"]["ci"]
            covered += lo <= 0.6 <= hi
        self.assertGreaterEqual(covered / 400, 0.91)
        self.assertLessEqual(covered / 400, 0.985)

    def test_seeded_and_confidence_level(self):
        rng = np.random.default_rng(10)
        base, tuned = rng.normal(size=60), rng.normal(size=60)
        cluster = np.repeat(np.arange(20), 3)
        a = winrate.compare(base, tuned, cluster, n_resamples=2000, seed=11)
        b = winrate.compare(base, tuned, cluster, n_resamples=2000, seed=11)
        c = winrate.compare(base, tuned, cluster, n_resamples=2000, seed=12)
        self.assertEqual(a, b)
        self.assertNotEqual(a["mean_diff"]["ci"], c["mean_diff"]["ci"])
        narrow = winrate.compare(base, tuned, cluster, n_resamples=2000, seed=11, confidence=0.5)
        self.assertLess(narrow["mean_diff"]["ci"][1] - narrow["mean_diff"]["ci"][0],
                        a["mean_diff"]["ci"][1] - a["mean_diff"]["ci"][0])
        self.assertEqual(winrate.bootstrap_settings()["resamples"], 10000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
