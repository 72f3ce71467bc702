"""Rewards end to end (about a minute on 2 cores):
- `dualign reward train-classifier` on 6000 rows of 14x14 Fashion-MNIST: held-out accuracy > 0.7, stored in the file;
- `dualign data pairs` from a 200-step GMM model with the gmm_target reward: the file validates, stored scores are
  -||x - target||^2 of the stored points, winners outscore losers, labels agree with Bradley-Terry's expectation;
- the same from a 20-step Fashion-MNIST UNet with the classifier reward (images, KTO file too);
- a reward file with a misspelt key fails naming the file and the key."""
import os
import shutil

import h5py
import numpy as np

from e2e_util import FMNIST, SRC, dualign, temp_dir


def run(*args, ok=True):
    p = dualign(args, ok=ok, timeout=300)
    return p.stdout + p.stderr


def numbers(text):
    """`key value` lines of a command's summary -> dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def check_pairs(path, beta):
    assert "OK" in run("data", "validate", path, "--format", "preference_pairs")
    with h5py.File(path) as f:
        sw, sl = f["score_w"][:], f["score_l"][:]
        assert f.attrs["generator"] == "dualign data pairs" and f.attrs["bradley_terry_beta"] == beta
        assert "reward" in f.attrs and "model" in f.attrs and "seed" in f.attrs
        w = f["winner"][:]
    assert sw.mean() > sl.mean(), (sw.mean(), sl.mean())
    observed = np.mean(sw > sl)
    if np.isinf(beta):  # deterministic labels: the winner never has the lower reward
        assert np.all(sw >= sl)
        return w, sw
    expected = np.mean(1 / (1 + np.exp(-beta * np.abs(sw - sl))))
    se = np.sqrt(expected * (1 - expected) / len(sw))
    print(f"{path}: mean score winners {sw.mean():.3f} losers {sl.mean():.3f}; reward order agreement "
          f"{observed:.3f} (Bradley-Terry expectation {expected:.3f})")
    assert abs(observed - expected) < 4 * se + 0.01
    return w, sw


def main():
    tmp = temp_dir("rewards-e2e-")
    try:
        # GMM: points, analytic reward.
        gmm_run = tmp / "gmm"
        run("train", "experiment=gmm_sft", "train.steps=200", f"run.dir={gmm_run}")
        pairs, kto = tmp / "gmm_pairs.h5", tmp / "gmm_kto.h5"
        out = run("data", "pairs", "--model", gmm_run, "-n", 1000, "--reward", "configs/reward/gmm_target.yaml",
                  "--bt-beta", 1.0, "--seed", 4, "--steps", 20, "--out", pairs, "--labelled-out", kto)
        s = numbers(out)
        assert s["mean_score_winner"] > s["mean_score_loser"], s
        w, sw = check_pairs(pairs, 1.0)
        np.testing.assert_allclose(sw, -((w - [2.5, 0.0]) ** 2).sum(1), rtol=1e-5, atol=1e-5)
        assert "OK" in run("data", "validate", kto, "--format", "labelled_samples")
        with h5py.File(kto) as f:
            d, score = f["desirable"][:].astype(bool), f["score"][:]
            assert f["samples"].shape == (2000, 2)
        assert 0.4 < d.mean() < 0.6 and score[d].mean() > score[~d].mean()

        # A misspelt key in the reward file: exit 1, the message names the file and the key.
        bad = tmp / "bad_reward.yaml"
        bad.write_text("kind: gmm_target\ntarget: [2.5, 0]\nscael: 2\n")
        err = run("data", "pairs", "--model", gmm_run, "-n", 10, "--reward", bad, "--out", tmp / "x.h5", ok=False)
        assert "scael" in err and "bad_reward.yaml" in err, err

        if not os.path.isdir(FMNIST):
            print("SKIP Fashion-MNIST part: dataset-fashion-mnist is not installed")
            return
        # Fashion-MNIST: classifier reward on images.
        data = tmp / "data"
        run("data", "fmnist", "--out", data / "fmnist14", "--downsample", 2)
        train, test = data / "fmnist14" / "fmnist-train.h5", data / "fmnist14" / "fmnist-test.h5"
        clf = tmp / "clf.h5"
        out = run("reward", "train-classifier", "--data", train, "--test", test, "--out", clf, "--split", "even",
                  "--seed", 1, "--epochs", 2, "--width", 16, "--limit", 6000)
        acc = numbers(out)["test_accuracy"]
        print(f"classifier (6000 rows, 2 epochs, width 16): test accuracy {acc:.4f}")
        assert acc > 0.7, out
        with h5py.File(clf) as f:
            assert f.attrs["kind"] == "image_classifier" and f.attrs["split"] == "even"
            assert abs(f.attrs["test_accuracy"] - acc) < 1e-4 and f.attrs["image_size"] == 14

        fm_run = tmp / "fm_pre"
        run("train", "experiment=fmnist_pretrain", f"data_dir={data}", "train.steps=20", f"run.dir={fm_run}")
        reward = tmp / "footwear.yaml"
        reward.write_text((SRC / "configs/reward/fmnist_footwear.yaml").read_text()
                          .replace("data/fmnist14/reward_classifier.h5", str(clf)))
        fm_pairs, fm_kto = tmp / "fm_pairs.h5", tmp / "fm_kto.h5"
        run("data", "pairs", "--model", fm_run, "-n", 128, "--reward", reward, "--bt-beta", "inf", "--seed", 0,
            "--steps", 10, "--out", fm_pairs, "--labelled-out", fm_kto, "--batch", 128)
        w, _ = check_pairs(fm_pairs, np.inf)
        assert w.shape == (128, 1, 14, 14) and w.dtype == np.float32 and np.abs(w).max() <= 1.0
        assert "OK" in run("data", "validate", fm_kto, "--format", "labelled_samples")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    print("OK")
