"""What the e2e scripts share: where things are, running dualign (directly or under mpirun), temporary
directories, and reading run directories (metrics.jsonl, checkpoints).

Paths come from the environment cmake/DualignTesting.cmake (dualign_add_py_test) sets: DUALIGN_BIN is the build's
bin directory, DUALIGN_SOURCE_DIR the repository. Run by hand, they default to build/bin of this checkout and this
checkout. Commands run from the repository (so configs/ resolves) with OMP_NUM_THREADS=1, as under ctest."""
import json
import os
import pathlib
import subprocess
import tempfile
import time

SRC = pathlib.Path(os.environ.get("DUALIGN_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
BIN_DIR = pathlib.Path(os.environ.get("DUALIGN_BIN") or SRC / "build" / "bin")
BIN = BIN_DIR / "dualign"
# Ranks share the test machine's cores with other tests: no binding, more ranks than cores allowed, root allowed
# (CI runs as root).
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]
FMNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def env(**changes):
    """The environment of a command: this one with OMP_NUM_THREADS=1, plus `changes` (a None value removes)."""
    out = dict(os.environ, OMP_NUM_THREADS="1")
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def mpirun(np_, *cmd):
    """`cmd` under mpirun with np_ ranks (the environment, OMP_NUM_THREADS included, reaches every rank)."""
    return [*MPIRUN, "-np", str(np_), *cmd]


def run(cmd, ok=True, env_changes=None, timeout=600, cwd=SRC):
    """Runs cmd (items may be paths or numbers), prints it with its duration, and returns the CompletedProcess
    (text stdout/stderr). ok=True: it must exit 0; ok=False: it must fail; ok=None: no check."""
    cmd = [str(c) for c in cmd]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env(**(env_changes or {})), timeout=timeout)
    line = " ".join(cmd).replace(str(BIN), "dualign")
    print(f"[{time.time() - t0:6.1f} s] rc={p.returncode} {line[:200]}", flush=True)
    if ok is not None and (p.returncode == 0) != ok:
        expected = "0" if ok else "non-zero"
        raise AssertionError(f"{line}: exit code {p.returncode}, expected {expected}\n"
                             f"--- stdout (end) ---\n{p.stdout[-4000:]}\n--- stderr (end) ---\n{p.stderr[-4000:]}")
    return p


def dualign(args, np_=None, **kw):
    """`dualign ARGS`, under mpirun -np np_ when np_ is given; keyword arguments as for run()."""
    cmd = [BIN, *args]
    return run(mpirun(np_, *cmd) if np_ else cmd, **kw)


def temp_dir(prefix="dualign-e2e-"):
    """A new temporary directory (left in place for inspection, like the runs in it)."""
    return pathlib.Path(tempfile.mkdtemp(prefix=prefix))


def metrics(run_dir, having=None):
    """The records of RUN_DIR/metrics.jsonl, only those whose line contains `having` when given."""
    lines = (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(l) for l in lines if having is None or having in l]


def checkpoint_file(run_dir, step=None):
    """RUN_DIR/ckpt/ckpt-<step>.h5, or the one ckpt/latest names."""
    ckpt = pathlib.Path(run_dir) / "ckpt"
    return ckpt / ((ckpt / "latest").read_text().strip() if step is None else f"ckpt-{step:08d}.h5")


def checkpoint_arrays(run_dir, step=None, groups=("model",)):
    """Every dataset under `groups` of a checkpoint as {"group/path": array}."""
    import h5py
    out = {}
    with h5py.File(checkpoint_file(run_dir, step), "r") as f:
        for group in groups:
            f[group].visititems(
                lambda k, v, g=group: out.__setitem__(f"{g}/{k}", v[()]) if isinstance(v, h5py.Dataset) else None)
    return out
