#!/usr/bin/env python3
"""Forward+backward time of dualign's UNet vs diffusers' PyTorch UNet: same config, weights, input, threads.

Builds a random diffusers UNet2DConditionModel (no download), saves it in diffusers layout, times diffusers,
then runs build/bin/bench_unet on the same files. Prints one JSON line per implementation and a summary line
with the ratio dualign/diffusers (< 1: dualign is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

CONFIGS = {
    # small: the tiny test config
    "small": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8, norm_num_groups=8,
                  batch=4),
    # medium: SD-like layout at reduced width, 32x32 latents
    "medium": dict(sample_size=32, block_out_channels=(64, 128, 256), layers_per_block=2, cross_attention_dim=128,
                   down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8,
                   norm_num_groups=32, batch=2),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.environ.get("DUALIGN_BIN", "build/bin"), "bench_unet"))
    ap.add_argument("--config", default="medium", choices=sorted(CONFIGS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpointing", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dict(CONFIGS[args.config])
    batch = cfg.pop("batch")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**cfg)
    if args.checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    g = torch.Generator().manual_seed(1)
    io = {"sample": torch.randn(batch, 4, cfg["sample_size"], cfg["sample_size"], generator=g),
          "timesteps": torch.randint(0, 1000, (batch,), generator=g),
          "encoder_hidden_states": torch.randn(batch, 77, cfg["cross_attention_dim"], generator=g)}
    with tempfile.TemporaryDirectory() as tmp:
        unet.save_pretrained(os.path.join(tmp, "unet"))
        save_file(io, os.path.join(tmp, "inputs.safetensors"))
        # Alternate the two implementations in rounds so that load from other processes hits both alike;
        # report the minimum (least disturbed) and the median over all timed iterations.
        ref_times, our_times = [], []
        for _ in range(args.rounds):
            for i in range(args.iters + 1):  # 1 warm-up per round
                unet.zero_grad(set_to_none=True)
                start = time.perf_counter()
                out = unet(io["sample"], io["timesteps"], encoder_hidden_states=io["encoder_hidden_states"]).sample
                out.pow(2).mean().backward()
                if i >= 1:
                    ref_times.append(time.perf_counter() - start)
            res = subprocess.run([args.bin, os.path.join(tmp, "unet"), os.path.join(tmp, "inputs.safetensors"),
                                  str(args.threads), str(args.iters), "1" if args.checkpointing else "0"],
                                 capture_output=True, text=True, check=True)
            our_times += json.loads(res.stdout.strip().splitlines()[-1])["times_s"]
    ref = {"impl": "diffusers", "median_s": statistics.median(ref_times), "min_s": min(ref_times),
           "n": len(ref_times), "threads": args.threads, "checkpointing": args.checkpointing}
    ours = {"impl": "dualign", "median_s": statistics.median(our_times), "min_s": min(our_times),
            "n": len(our_times), "threads": args.threads, "checkpointing": args.checkpointing}
    print(json.dumps(ref))
    print(json.dumps(ours))
    params = sum(p.numel() for p in unet.parameters())
    print(json.dumps({"benchmark": "unet_fwd_bwd", "config": args.config, "params": params, "batch": batch,
                      "ratio_dualign_over_diffusers_median": ours["median_s"] / ref["median_s"],
                      "ratio_min": ours["min_s"] / ref["min_s"]}))


if __name__ == "__main__":
    main()
