"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/): valid inputs of each kind and a
few near-misses, encoded the way each harness reads its input (FuzzedDataProvider: strings from the front,
each ended by a backslash and one more byte; integers and booleans from the back). Rerun after changing a
harness's input layout: python tests/fuzz/make_seeds.py"""
import json
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
CONFIGS = HERE.parents[1] / "configs"


def fdp_string(s):
    raw = s.encode() if isinstance(s, str) else s
    return raw.replace(b"\\", b"\\\\") + b"\\\n"


def write(harness, name, data):
    d = HERE / "corpus" / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def config_seed(primary, group, experiment, overrides, multirun=False):
    body = fdp_string(primary) + fdp_string(group) + fdp_string(experiment)
    body += b"".join(fdp_string(o) for o in overrides)
    return body + bytes([1 if multirun else 0, len(overrides)])  # read from the back: count, then the flag


PRIMARY = "defaults:\n  - model: a\n  - _self_\n  - experiment: null\nseed: 1\ntrain:\n  lr: 0.1\n  steps: 5\n" \
          "run:\n  dir: ${train.lr}/x\n"
GROUP = "defaults:\n  - _self_\nwidth: 8\nlist: [1, 2, {a: 3}]\n"
EXPERIMENT = "# @package _global_\ndefaults:\n  - override /model: a\ntrain:\n  steps: 7\n"

write("fuzz_config", "plain", config_seed(PRIMARY, GROUP, EXPERIMENT, []))
write("fuzz_config", "overrides", config_seed(PRIMARY, GROUP, EXPERIMENT,
                                              ["train.lr=3e-4", "+train.warmup=10", "~seed", "experiment=e"]))
write("fuzz_config", "multirun", config_seed(PRIMARY, GROUP, EXPERIMENT,
                                             ["train.lr=1e-3,3e-4", "seed=range(0,3)", "model=choice(a)"], True))
write("fuzz_config", "interpolation", config_seed(PRIMARY + "a: ${env:HOME,/x}\nb: ${now:%Y}\nc: ${a}-${b}\n", GROUP,
                                                  EXPERIMENT, ["++d=${c}"]))
write("fuzz_config", "duplicate", config_seed(PRIMARY + "seed: 2\n", GROUP, EXPERIMENT, []))
write("fuzz_config", "real_config", config_seed((CONFIGS / "config.yaml").read_text().replace("model: mlp2d", "model: a"),
                                                (CONFIGS / "train" / "default.yaml").read_text(),
                                                (CONFIGS / "experiment" / "gmm_dpo.yaml").read_text(),
                                                ["experiment=e", "train.steps=3"]))


def safetensors(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


write("fuzz_safetensors", "f32", safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                                              "__metadata__": {"format": "pt"}}, struct.pack("<4f", 1, 2, 3, 4)))
write("fuzz_safetensors", "mixed", safetensors({"a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                                                "b": {"dtype": "I64", "shape": [], "data_offsets": [6, 14]},
                                                "c": {"dtype": "F16", "shape": [0], "data_offsets": [14, 14]}},
                                               bytes(14)))
write("fuzz_safetensors", "bad_offsets", safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}},
                                                     bytes(16)))
write("fuzz_safetensors", "short", b"\x05\x00")


def idx(dims, payload, gzip=False):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload + bytes([gzip])


write("fuzz_idx", "labels", idx([4], bytes([0, 1, 2, 3])))
write("fuzz_idx", "images_gz", idx([2, 3, 3], bytes(range(18)), gzip=True))
write("fuzz_idx", "truncated", idx([2, 28, 28], bytes(10)))
write("fuzz_idx", "huge_header", idx([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""))

for i, seed in enumerate([b"\x01" * 64, bytes(range(256)), b"images\x00\x01\x02" * 8, b"\xff" * 32]):
    write("fuzz_h5_schema", f"seed{i}", seed)
