#!/usr/bin/env python3
"""Parity fixtures for dualign's Adafactor (src/dist/adafactor.h): transformers.optimization.Adafactor trains a tiny
model (two Linear layers and a 3x3 conv: 2-D and 4-D weights are factored, biases are not) for 20 steps on random
batches. Saved per case: the initial parameters, the gradient of every step and the parameters after every step, so
the C++ test (adafactor_parity_test.cpp) can apply the same gradients and compare.

usage: make_adafactor_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers.optimization import Adafactor

torch.set_num_threads(int(os.environ.get("DUALIGN_THREADS", "1")))
STEPS = 20

# The Diffusion-DPO SDXL recipe's settings (lr scaled up so 20 steps move the weights), then weight decay with a
# first moment, then scale_parameter.
CASES = {
    "official": dict(lr=1e-2, weight_decay=0.0, clip_threshold=1.0, scale_parameter=False, relative_step=False),
    "decay_beta1": dict(lr=1e-2, weight_decay=1e-1, beta1=0.9, clip_threshold=1.0, scale_parameter=False,
                        relative_step=False),
    "scale_parameter": dict(lr=1e-1, weight_decay=1e-2, clip_threshold=0.5, decay_rate=-0.5, eps=(1e-30, 1e-2),
                            scale_parameter=True, relative_step=False),
}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.fc1 = torch.nn.Linear(3 * 4 * 4, 10)
        self.fc2 = torch.nn.Linear(10, 5)

    def forward(self, x):
        h = torch.tanh(self.conv(x)).flatten(1)
        return self.fc2(torch.tanh(self.fc1(h)))


def make_case(out, name, options):
    torch.manual_seed(0)
    model = Tiny()
    opt = Adafactor(model.parameters(), **options)
    tensors = {f"init.{n}": p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        x, y = torch.randn(8, 2, 4, 4, generator=g), torch.randn(8, 5, generator=g)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        for n, p in model.named_parameters():
            tensors[f"grad.{step}.{n}"] = p.grad.detach().clone()
        opt.step()
        for n, p in model.named_parameters():
            tensors[f"param.{step}.{n}"] = p.detach().clone()
    save_file(tensors, os.path.join(out, f"adafactor_{name}.safetensors"))
    config = {k: v for k, v in options.items()}
    config.setdefault("beta1", None)
    config.setdefault("decay_rate", -0.8)
    config["eps"] = list(config.get("eps", (1e-30, 1e-3)))
    config["names"] = [n for n, _ in model.named_parameters()]
    config["steps"] = STEPS
    with open(os.path.join(out, f"adafactor_{name}.json"), "w") as f:
        json.dump(config, f, indent=1)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, options in CASES.items():
        make_case(out, name, options)
    print(f"wrote {len(CASES)} Adafactor cases to {out}")


if __name__ == "__main__":
    main()
