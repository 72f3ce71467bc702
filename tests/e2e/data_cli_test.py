"""`dualign data` end to end: the GMM writers and Fashion-MNIST import produce files h5py reads and
`dualign data validate` accepts; the Bradley-Terry labels follow the reward; bad files fail with exit code 1 and
a message naming the file and dataset (and no HDF5 error-stack dump)."""
import os
import shutil

import h5py
import numpy as np

from e2e_util import FMNIST, dualign, temp_dir


def run(*args, ok=True):
    r = dualign(args, ok=ok)
    assert "HDF5-DIAG" not in r.stderr, r.stderr
    return r.stdout + r.stderr


def main():
    tmp = str(temp_dir("data-cli-"))
    pts, pairs, kto = (os.path.join(tmp, n) for n in ("points.h5", "pairs.h5", "kto.h5"))
    run("data", "gmm", "--out", pts, "-n", "2000", "--components", "4", "--seed", "1")
    run("data", "gmm-pairs", "--out", pairs, "-n", "4000", "--target", "2", "0", "--beta", "2", "--seed", "2")
    run("data", "gmm-labelled", "--out", kto, "-n", "3000", "--target", "2", "0", "--beta", "2", "--seed", "3")
    for path, fmt in ((pts, "points"), (pairs, "preference_pairs"), (kto, "labelled_samples")):
        assert "OK" in run("data", "validate", path, "--format", fmt)

    with h5py.File(pts) as f:
        assert f.attrs["format"] == "points" and f["points"].shape == (2000, 2)
        assert set(np.unique(f["labels"][:])) == {0, 1, 2, 3}
    with h5py.File(pairs) as f:
        w, l = f["winner"][:], f["loser"][:]
        sw, sl = f["score_w"][:], f["score_l"][:]
        np.testing.assert_allclose(sw, -((w - [2, 0]) ** 2).sum(1), rtol=1e-5, atol=1e-5)
        # Bradley-Terry: the empirical win rate of the higher-reward sample matches the model's expectation.
        d = np.abs(sw - sl)
        expected = np.mean(1 / (1 + np.exp(-2 * d)))
        observed = np.mean(sw > sl)
        print(f"BT oracle: higher reward wins {observed:.3f}, expected {expected:.3f}")
        assert abs(observed - expected) < 0.03
    with h5py.File(kto) as f:
        frac = f["desirable"][:].mean()
        assert 0.3 < frac < 0.7, frac

    if os.path.isdir(FMNIST):
        out = run("data", "fmnist", "--out", os.path.join(tmp, "fm"))
        assert "60000 rows" in out and "10000 rows" in out, out
        with h5py.File(os.path.join(tmp, "fm", "fmnist-test.h5")) as f:
            assert f["images"].shape == (10000, 1, 28, 28) and f["images"].dtype == np.uint8
            assert np.bincount(f["labels"][:]).tolist() == [1000] * 10
        # Class subsets (train split only): minority classes for fairness, class subsets for composition.
        run("data", "fmnist", "--out", os.path.join(tmp, "fm_min"), "--downsample", "2",
            "--class-fraction", "2=0.1", "4=0.1", "6=0.1")
        with h5py.File(os.path.join(tmp, "fm_min", "fmnist-train.h5")) as f:
            assert np.bincount(f["labels"][:]).tolist() == [6000, 6000, 600, 6000, 600, 6000, 600, 6000, 6000, 6000]
        with h5py.File(os.path.join(tmp, "fm_min", "fmnist-test.h5")) as f:
            assert np.bincount(f["labels"][:]).tolist() == [1000] * 10
        run("data", "fmnist", "--out", os.path.join(tmp, "fm_sub"), "--downsample", "2", "--classes", "7", "9")
        with h5py.File(os.path.join(tmp, "fm_sub", "fmnist-train.h5")) as f:
            assert np.bincount(f["labels"][:], minlength=10)[[7, 9]].tolist() == [6000, 6000]
            assert f["images"].shape == (12000, 1, 14, 14)
        assert "CLASS=FRACTION" in run("data", "fmnist", "--out", os.path.join(tmp, "x"), "--class-fraction", "2:0.1", ok=False)
    else:
        print("SKIP fmnist import: dataset-fashion-mnist is not installed")

    # Bad files: exit code 1, the message names the file (and the dataset where there is one).
    cut = os.path.join(tmp, "cut.h5")
    shutil.copy(pairs, cut)
    os.truncate(cut, os.path.getsize(cut) // 2)
    assert cut in run("data", "validate", cut, ok=False)
    with h5py.File(os.path.join(tmp, "bad.h5"), "w") as f:
        f.attrs["format"] = "preference_pairs"
        f.attrs["version"] = np.int64(1)
        f["winner"] = np.zeros((5, 2), np.float32)
        f["loser"] = np.zeros((5, 3), np.float32)
    msg = run("data", "validate", os.path.join(tmp, "bad.h5"), ok=False)
    assert "bad.h5" in msg and "/loser" in msg, msg
    assert "format is 'points'" in run("data", "validate", pts, "--format", "images", ok=False)
    shutil.rmtree(tmp)
    print("data CLI OK")


if __name__ == "__main__":
    main()
