"""Malformed inputs, one row each: configs, overrides, data and model files, checkpoints, launch environments and
sweeps. Every row must exit non-zero (not killed by a signal, within its timeout) with a message that contains the
expected pieces, which name the culprit (file and line, key, override, tensor or variable). The table with the
message each input got is printed at the end (and written to <tmp>/malformed_inputs.md)."""
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

from e2e_util import BIN, SRC, env, temp_dir

TRAIN = ["train", "train.steps=2", "train.eval.num_samples=0", "run.progress=false"]


class Case:
    def __init__(self, name, args, expect, files=None, env_changes=None, config_edits=None, runner="dualign"):
        self.name, self.args, self.expect = name, args, expect
        self.files = files or {}                # relative path -> str | bytes | callable(path)
        self.env_changes = env_changes or {}
        self.config_edits = config_edits or {}  # path relative to the copied configs/ -> new text (appended if +)
        self.runner = runner                    # dualign | sweep


def safetensors_bytes(header, data=b""):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def unet_dir(weights):
    """A diffusers UNet directory (config.json of configs/model/unet_tiny.yaml) with the given weights file bytes."""
    import yaml

    cfg = yaml.safe_load((SRC / "configs" / "model" / "unet_tiny.yaml").read_text())
    cfg = {k: v for k, v in cfg.items() if k != "kind"}
    return {"unet/config.json": json.dumps(cfg), "unet/diffusion_pytorch_model.safetensors": weights}


def idx(magic, dims, payload):
    return bytes(magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def fmnist_dir(images, labels=None):
    labels = labels if labels is not None else idx([0, 0, 8, 1], [2], b"\x00\x01")
    return {"idx/train-images-idx3-ubyte": images, "idx/train-labels-idx1-ubyte": labels,
            "idx/t10k-images-idx3-ubyte": images, "idx/t10k-labels-idx1-ubyte": labels}


def h5_file(build):
    def write(path):
        with h5py.File(path, "w") as f:
            build(f)
    return write


def images_dataset(f, images_dtype="f4", rows=4, labels_rows=4, version=1, fmt="images"):
    f.attrs["format"], f.attrs["version"] = fmt, version
    f.create_dataset("images", data=np.zeros((rows, 1, 4, 4), dtype=images_dtype))
    f.create_dataset("labels", data=np.zeros((labels_rows,), dtype="i8"))


CASES = [
    # ---- config files (a copy of configs/ edited per row) ----
    Case("duplicate top-level key", ["train", "--config-dir", "{cfg}", *TRAIN[1:]],
         ["config.yaml:", "duplicate key 'seed'", "first at line"], config_edits={"config.yaml": "+seed: 3\n"}),
    Case("duplicate nested key in a group file", ["train", "--config-dir", "{cfg}", *TRAIN[1:]],
         ["train/default.yaml:", "duplicate key 'lr'"], config_edits={"train/default.yaml": "+lr: 2.0\n"}),
    Case("YAML syntax error in a group file", ["train", "--config-dir", "{cfg}", *TRAIN[1:]], ["method/sft.yaml:", "YAML syntax error"],
         config_edits={"method/sft.yaml": "+bad: [unclosed\n"}),
    Case("group file selects another group", ["train", "--config-dir", "{cfg}", *TRAIN[1:], "method=nested"],
         ["method/nested.yaml:2", "/data: gmm2d", "override /data: gmm2d"],
         config_edits={"method/nested.yaml": "defaults:\n  - /data: gmm2d\n  - _self_\nname: sft\n"}),
    Case("group listed twice in the primary defaults", ["train", "--config-dir", "{cfg}", *TRAIN[1:]],
         ["config.yaml:", "'model' is listed twice"],
         config_edits={"config.yaml": "defaults:\n  - model: mlp2d\n  - model: mlp2d\n  - method: sft\n  - data: gmm2d\n"
                                      "  - dist: ddp\n  - train: default\nseed: 0\n"}),
    Case("primary defaults name a config, not a group", ["train", "--config-dir", "{cfg}", *TRAIN[1:]],
         ["config.yaml:", "'common'", "names a config"],
         config_edits={"config.yaml": "defaults:\n  - model: mlp2d\n  - common\nseed: 0\n"}),
    Case("defaults is not a list", ["train", "--config-dir", "{cfg}", *TRAIN[1:]], ["config.yaml:", "'defaults' must be a list"],
         config_edits={"config.yaml": "defaults: model\nseed: 0\n"}),
    Case("top level is a list", ["train", "--config-dir", "{cfg}", *TRAIN[1:]], ["train/default.yaml", "mapping at the top level"],
         config_edits={"train/default.yaml": "- 1\n- 2\n"}),
    Case("experiment overrides a group that is not chosen", ["train", "--config-dir", "{cfg}", *TRAIN[1:], "experiment=bad"],
         ["experiment/bad.yaml", "override /reward", "'reward' is not in the defaults list"],
         config_edits={"experiment/bad.yaml": "# @package _global_\ndefaults:\n  - override /reward: gmm_target\n"}),
    Case("unknown group option", [*TRAIN, "method=dpoo"], ["group 'method' has no option 'dpoo'", "did you mean", "dpo"]),
    Case("missing primary config", ["train", "--config-name", "nope", *TRAIN[1:]], ["nope.yaml not found"]),
    Case("interpolation cycle", [*TRAIN, "++a=${b}", "++b=${a}"], ["cycle", "a", "b"]),
    Case("interpolation of a missing key", [*TRAIN, "++a=${train.nope}"], ["train.nope"]),
    Case("unset environment variable", [*TRAIN, "++a=${env:DUALIGN_SURELY_UNSET}"], ["DUALIGN_SURELY_UNSET"]),
    # ---- overrides ----
    Case("comma list without -m", [*TRAIN, "train.lr=1e-3,3e-4"], ["'train.lr=1e-3,3e-4' is a sweep", "add -m"]),
    Case("range() without -m", [*TRAIN, "seed=range(0,3)"], ["'seed=range(0,3)' is a sweep over 3 values", "-m"]),
    Case("choice() without -m", [*TRAIN, "method=choice(sft,dpo)"], ["method=choice(sft,dpo)", "-m"]),
    Case("interval() with -m", ["train", "-m", "--print-runs", "train.lr=interval(0,1)"], ["interval()", "range("]),
    Case("glob() with -m", ["train", "-m", "--print-runs", "method=glob(*)"], ["glob()", "not supported"]),
    Case("range() with step 0", ["train", "-m", "--print-runs", "seed=range(0,3,0)"], ["seed=range(0,3,0)", "step"]),
    Case("empty range()", ["train", "-m", "--print-runs", "seed=range(5,1)"], ["seed=range(5,1)", "empty"]),
    Case("empty value in a comma list", ["train", "-m", "--print-runs", "seed=1,,2"], ["seed=1,,2", "empty value"]),
    Case("unknown key", [*TRAIN, "train.lrr=1"], ["train.lrr", "did you mean", "train.lr"]),
    Case("adding a key that exists", [*TRAIN, "+train.lr=1"], ["+train.lr=1", "already exists", "train/default.yaml"]),
    Case("wrong type", [*TRAIN, "train.steps=abc"], ["train.steps", "abc", "override"]),
    Case("not a key", [*TRAIN, "1abc=2"], ["'1abc'", "not a config key"]),
    Case("missing =value", [*TRAIN, "train.lr"], ["'train.lr'", "missing '=value'"]),
    Case("value is not YAML", [*TRAIN, "train.betas=[1,2"], ["train.betas=[1,2", "not valid YAML"]),
    Case("duplicate key in an override value", [*TRAIN, "++train.x={a: 1, a: 2}"], ["train.x={a: 1, a: 2}", "duplicate key 'a'"]),
    Case("deleting a missing key", [*TRAIN, "~train.nope"], ["~train.nope", "'train.nope' is not in the config"]),
    Case("betas of the wrong length", [*TRAIN, "train.betas=[0.9]"], ["train.betas", "two numbers"]),
    Case("unsupported ZeRO stage", [*TRAIN, "dist.zero_stage=3", "run.dir={d}/run"], ["dist.zero_stage=3"]),
    Case("batch not divisible", [*TRAIN, "train.grad_accum=3", "run.dir={d}/run"], ["train.global_batch=", "grad_accum (3)"]),
    # ---- data files ----
    Case("dataset is not HDF5", ["data", "validate", "{d}/bad.h5"], ["bad.h5"], files={"bad.h5": b"not an hdf5 file"}),
    Case("dataset without format attribute", ["data", "validate", "{d}/noattr.h5"], ["noattr.h5", "missing root attribute 'format'"],
         files={"noattr.h5": h5_file(lambda f: f.create_dataset("x", data=np.zeros(3)))}),
    Case("dataset of unknown format", ["data", "validate", "{d}/fmt.h5"], ["fmt.h5", "unknown format 'pictures'"],
         files={"fmt.h5": h5_file(lambda f: images_dataset(f, fmt="pictures"))}),
    Case("dataset of a future version", ["data", "validate", "{d}/ver.h5"], ["ver.h5", "version 7"],
         files={"ver.h5": h5_file(lambda f: images_dataset(f, version=7))}),
    Case("dataset with a wrong dtype", ["data", "validate", "{d}/dtype.h5"], ["dtype.h5", "/images", "dtype"],
         files={"dtype.h5": h5_file(lambda f: images_dataset(f, images_dtype="i2"))}),
    Case("dataset fields with different row counts", ["data", "validate", "{d}/rows.h5"], ["rows.h5", "rows"],
         files={"rows.h5": h5_file(lambda f: images_dataset(f, labels_rows=3))}),
    Case("IDX file with a bad magic", ["data", "fmnist", "--idx-dir", "{d}/idx", "--out", "{d}/out"],
         ["train-images-idx3-ubyte", "not an unsigned-byte IDX file"], files=fmnist_dir(idx([1, 2, 3, 4], [], b""))),
    Case("truncated IDX file", ["data", "fmnist", "--idx-dir", "{d}/idx", "--out", "{d}/out"],
         ["train-images-idx3-ubyte", "truncated"], files=fmnist_dir(idx([0, 0, 8, 3], [2, 28, 28], b"\x00" * 100))),
    Case("IDX directory without the files", ["data", "fmnist", "--idx-dir", "{d}", "--out", "{d}/out"],
         ["train-images-idx3-ubyte", "dataset-fashion-mnist"]),
    # ---- model files ----
    Case("safetensors shorter than its header length", [*TRAIN, "model=unet_tiny", "+model.pretrained={d}"],
         ["diffusion_pytorch_model.safetensors", "8-byte header length"], files=unet_dir(b"\x01\x02")),
    Case("safetensors header length beyond the file", [*TRAIN, "model=unet_tiny", "+model.pretrained={d}"],
         ["diffusion_pytorch_model.safetensors", "header"], files=unet_dir(struct.pack("<Q", 1 << 40) + b"{}")),
    Case("safetensors header is not JSON", [*TRAIN, "model=unet_tiny", "+model.pretrained={d}"],
         ["diffusion_pytorch_model.safetensors", "not valid JSON"], files=unet_dir(safetensors_bytes(b"{nope"))),
    Case("safetensors tensor outside the data", [*TRAIN, "model=unet_tiny", "+model.pretrained={d}"],
         ["diffusion_pytorch_model.safetensors", "conv_in.weight"],
         files=unet_dir(safetensors_bytes({"conv_in.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                                          b"\x00" * 4))),
    Case("safetensors with an unsupported dtype", [*TRAIN, "model=unet_tiny", "+model.pretrained={d}"],
         ["diffusion_pytorch_model.safetensors", "unsupported dtype 'C64'"],
         files=unet_dir(safetensors_bytes({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\x00" * 8))),
    # ---- checkpoints and resume ----
    Case("inspect a file that is not a checkpoint", ["inspect", "{d}/x.h5"], ["x.h5"], files={"x.h5": b"garbage" * 10}),
    Case("resume from a missing checkpoint", [*TRAIN, "run.dir={d}/run", "run.resume={d}/nope.h5"], ["nope.h5"]),
    Case("latest names a missing checkpoint", [*TRAIN, "run.dir={d}/run"], ["latest", "ckpt-00000009.h5", "does not exist"],
         files={"run/ckpt/latest": "ckpt-00000009.h5\n"}),
    Case("latest is garbage", [*TRAIN, "run.dir={d}/run"], ["latest", "does not name a checkpoint"],
         files={"run/ckpt/latest": "hello\n"}),
    # ---- launch environments ----
    Case("torchrun variables", [*TRAIN, "run.dir={d}/run"], ["torchrun", "WORLD_SIZE=2", "mpirun -np N"],
         env_changes={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}),
    Case("accelerate rank only", [*TRAIN, "run.dir={d}/run"], ["RANK=1", "this is rank 0"],
         env_changes={"RANK": "1", "ACCELERATE_MIXED_PRECISION": "no"}),
    Case("srun without PMIx", [*TRAIN, "run.dir={d}/run"], ["SLURM_NTASKS=4", "plugin 'none'", "--mpi=pmix"],
         env_changes={"SLURM_NTASKS": "4", "SLURM_STEP_ID": "0", "SLURM_MPI_TYPE": "none"}),
    Case("run directly in a Slurm allocation", [*TRAIN, "run.dir={d}/run"], ["SLURM_NTASKS=8", "not by srun"],
         env_changes={"SLURM_NTASKS": "8"}),
    Case("MPICH launcher for an Open MPI binary", [*TRAIN, "run.dir={d}/run"], ["PMI_SIZE", "3 rank(s)"],
         env_changes={"PMI_SIZE": "3", "PMI_RANK": "0"}),
    Case("bad watchdog timeout", [*TRAIN, "run.dir={d}/run"], ["DUALIGN_COMM_TIMEOUT_S='soon'"],
         env_changes={"DUALIGN_COMM_TIMEOUT_S": "soon"}),
    Case("multirun inside an MPI job", ["train", "-m", "seed=0,1"], ["must not run inside an MPI job", "sweep.sh"],
         env_changes={"OMPI_COMM_WORLD_SIZE": "2"}),
    # ---- dualign plan ----
    Case("plan --measure without a training config", ["plan", "--model", "sdxl", "--measure"],
         ["--measure needs a training config"]),
    Case("plan flag that the training config sets", ["plan", "experiment=gmm_sft", "--optimizer", "adafactor"],
         ["--optimizer comes from the training config"]),
    Case("plan of a config without a UNet", ["plan", "experiment=gmm_sft"], ["model.kind", "plans are for UNets"]),
    Case("plan with an unknown precision", ["plan", "--model", "sd15", "--precision", "bf8"], ["--precision 'bf8'"]),
    # ---- sweeps through launch/launchers/sweep.sh ----
    Case("sweep with an unknown key", ["train", "--", "train.lrr=1,2"], ["train.lrr", "no run was started"], runner="sweep"),
    Case("sweep with interval()", ["train", "--", "train.lr=interval(0,1)"], ["interval()", "no run was started"],
         runner="sweep"),
]


def prepare(case, d):
    for rel, content in case.files.items():
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.config_edits:
        shutil.copytree(SRC / "configs", d / "cfg")
        for rel, text in case.config_edits.items():
            path = d / "cfg" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if text.startswith("+"):
                path.write_text(path.read_text() + text[1:])
            else:
                path.write_text(text)


def command(case, d):
    args = [a.replace("{d}", str(d)).replace("{cfg}", str(d / "cfg")) for a in case.args]
    if case.runner == "sweep":
        return ["bash", str(SRC / "launch" / "launchers" / "sweep.sh"), *args]
    return [str(BIN), *args]


class MalformedInputs(unittest.TestCase):
    def test_every_malformed_input_fails_with_a_message(self):
        tmp = temp_dir()
        rows, failures = [], []
        for i, case in enumerate(CASES):
            d = tmp / f"{i:02d}"
            d.mkdir()
            prepare(case, d)
            changes = {"DUALIGN_BIN": BIN, "SWEEP_DIR": d / "sweep", **case.env_changes}
            t0 = time.time()
            try:
                p = subprocess.run(command(case, d), cwd=SRC, env=env(**changes), capture_output=True, text=True,
                                   timeout=120, start_new_session=True)
                rc, out = p.returncode, p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                rc, out = "hang", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
            seconds = time.time() - t0
            message = next((l for l in out.splitlines() if "fatal:" in l or "error" in l.lower()), out.strip()[-300:])
            message = message.split("fatal: ", 1)[-1].strip()
            if message.startswith("[") and "] " in message:  # the log prefix "[hh:mm:ss error r0] "
                message = message.split("] ", 1)[1]
            missing = [n for n in case.expect if n not in out]
            crashed = rc == "hang" or rc < 0 or rc >= 128
            ok = rc != 0 and not crashed and not missing
            rows.append((case.name, rc, f"{seconds:.1f}", message))
            if not ok:
                failures.append(f"{case.name}: rc={rc}, missing {missing}\n{out[-1500:]}")
            print(f"[{'ok' if ok else 'FAIL'}] rc={rc} {seconds:5.1f} s  {case.name}: {message[:160]}", flush=True)

        table = ["| # | input | exit | s | message |", "|---|---|---|---|---|"]
        for i, (name, rc, seconds, message) in enumerate(rows):
            table.append(f"| {i + 1} | {name} | {rc} | {seconds} | {message.replace('|', '/')} |")
        (tmp / "malformed_inputs.md").write_text("\n".join(table) + "\n")
        print("\n".join(table))
        crashes = sum(1 for r in rows if r[1] == "hang" or (isinstance(r[1], int) and (r[1] < 0 or r[1] >= 128)))
        print(f"{len(rows)} malformed inputs, {len(failures)} without the expected message, {crashes} crashes or hangs")
        self.assertGreaterEqual(len(rows), 40)
        self.assertEqual(failures, [], "\n\n".join(failures))


if __name__ == "__main__":
    unittest.main(verbosity=2)
