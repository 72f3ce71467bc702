#!/usr/bin/env python3
"""Python peer of dualign's Diffusion-DPO training step (PyTorch + diffusers), for bench/dpo_step_bench.py.

The same computation as `dualign train method=dpo`: per pair (winner w, loser l) one t ~ U{0..T-1} and one eps
shared by both images; the policy runs w and l in ONE forward of batch 2B, the frozen reference (a copy of the
initial weights, no_grad) likewise; m = per-image mean of (eps_pred - eps)^2; rho = -beta (m_policy - m_ref);
loss = -log sigmoid(rho_w - rho_l) = softplus(-(rho_w - rho_l)). AdamW, global-norm clipping.

Model: diffusers UNet2DConditionModel built from a dualign model YAML (configs/model/unet_*.yaml: diffusers keys;
the dualign-only keys kind/init_from/init_weights/pretrained/gradient_checkpointing are dropped). Data: a
`preference_pairs` HDF5 file read with h5py; the condition follows the model (cross-attention -> text_embedding,
num_class_embeds -> class_id, else unconditional). Every rank reads its contiguous slice of each global batch.

Distributed: DDP over gloo when launched with several processes (mpirun: OMPI_COMM_WORLD_RANK/SIZE; torchrun:
RANK/WORLD_SIZE), MASTER_ADDR/PORT default to 127.0.0.1:29517.

Precision: --precision bf16 (or fp16) runs both forwards (policy and reference) and the loss under
torch.autocast("cpu", dtype), as diffusers' training scripts do with accelerate's mixed precision; the weights, the
gradients and AdamW stay fp32 (fp16: with torch.amp.GradScaler).

Prints one JSON line (rank 0): pairs/s over the timed steps (after --warmup untimed steps; a barrier brackets the
timed span), seconds per step, peak RSS in MiB (max over ranks, getrusage), losses of the first and last step.
--count-flops instead prints the FLOPs of one DPO step on the global batch (torch.utils.flop_counter: matmuls,
convolutions and attention of the policy's forward and backward and the reference's forward) and exits.

  mpirun -np 2 python bench/dpo_step_peer.py --model configs/model/unet_tiny.yaml --data pairs.h5 --global-batch 8
"""
import argparse
import copy
import json
import os
import resource
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml

DUALIGN_ONLY_KEYS = ("kind", "init_from", "init_weights", "pretrained", "gradient_checkpointing")


def init_distributed():
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("RANK", 0)))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
    local_world = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", world)))
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    return rank, world, local_world


def build_unet(path):
    from diffusers import UNet2DConditionModel
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k not in DUALIGN_ONLY_KEYS}
    return UNet2DConditionModel(**cfg), cfg


def alphas_cumprod(schedule, beta_start, beta_end, steps):
    if schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    else:
        raise SystemExit(f"error: schedule {schedule!r} not implemented in the peer (linear, scaled_linear)")
    return torch.cumprod(1.0 - betas, 0).float()


class PairReader:
    """This rank's slice of every global batch of a preference_pairs file, in a seeded shuffled order."""

    def __init__(self, path, condition, global_batch, rank, world, seed):
        self.f = h5py.File(path, "r")
        if self.f.attrs.get("format") not in ("preference_pairs", b"preference_pairs"):
            raise SystemExit(f"error: {path}: expected format preference_pairs")
        self.n = self.f["winner"].shape[0]
        self.condition = condition
        self.cond_field = {"text": "text_embedding", "class": "class_id"}.get(condition)
        if self.cond_field and self.cond_field not in self.f:
            raise SystemExit(f"error: {path}: the model needs dataset {self.cond_field!r}")
        self.global_batch, self.rank, self.world = global_batch, rank, world
        self.local = global_batch // world
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(self.n), 0

    def next(self):
        if self.pos + self.global_batch > self.n:  # next epoch
            self.order, self.pos = self.rng.permutation(self.n), 0
        rows = self.order[self.pos + self.rank * self.local: self.pos + (self.rank + 1) * self.local]
        self.pos += self.global_batch
        idx = np.sort(rows)  # h5py reads increasing indices
        batch = {"w": torch.from_numpy(self.f["winner"][idx].astype(np.float32)),
                 "l": torch.from_numpy(self.f["loser"][idx].astype(np.float32))}
        if self.condition == "text":
            batch["text"] = torch.from_numpy(self.f["text_embedding"][idx].astype(np.float32))
        elif self.condition == "class":
            batch["class"] = torch.from_numpy(self.f["class_id"][idx].astype(np.int64))
        return batch


def per_image_mse(pred, target):
    return (pred.float() - target).pow(2).flatten(1).mean(1)


def dpo_step(policy, reference, optimizer, batch, acp, beta, grad_clip, gen, autocast_dtype=None, scaler=None):
    """One optimizer step of Diffusion-DPO on this rank's micro-batch; returns the local mean loss."""
    w, l = batch["w"], batch["l"]
    n = w.shape[0]
    eps = torch.randn(w.shape, generator=gen)
    t = torch.randint(0, acp.numel(), (n,), generator=gen)
    x0, eps2, t2 = torch.cat([w, l]), torch.cat([eps, eps]), torch.cat([t, t])
    a = acp[t2].view(-1, *([1] * (x0.dim() - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps2
    kwargs = {"encoder_hidden_states": torch.cat([batch["text"]] * 2) if "text" in batch else None}
    if "class" in batch:
        kwargs["class_labels"] = torch.cat([batch["class"]] * 2)

    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        m_policy = per_image_mse(policy(x_t, t2, **kwargs).sample, eps2)
        with torch.no_grad():
            m_ref = per_image_mse(reference(x_t, t2, **kwargs).sample, eps2)
        rho = -beta * (m_policy - m_ref)
        margin = rho[:n] - rho[n:]
        loss = F.softplus(-margin).mean()

    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()  # DDP all-reduces the gradients (bucketed, overlapped) here
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return loss.item()


def count_flops(policy, reference, optimizer, batch, acp, beta, gen):
    """FLOPs of one DPO step (fp32; autocast changes the dtype, not the count)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        dpo_step(policy, reference, optimizer, batch, acp, beta, 0.0, gen)
    return counter.get_total_flops()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="dualign model YAML (diffusers keys)")
    p.add_argument("--data", required=True, help="preference_pairs HDF5 file")
    p.add_argument("--global-batch", type=int, default=8, help="pairs per step over all ranks")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--beta", type=float, default=1000.0)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads per rank; 0: cores / local ranks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default="linear")
    p.add_argument("--beta-start", type=float, default=1e-4)
    p.add_argument("--beta-end", type=float, default=0.02)
    p.add_argument("--num-train-timesteps", type=int, default=1000)
    p.add_argument("--bucket-mb", type=float, default=25.0)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--count-flops", action="store_true", help="print the FLOPs of one step on the global batch, exit")
    args = p.parse_args(argv)
    autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    rank, world, local_world = init_distributed()
    threads = args.threads or max(1, (os.cpu_count() or 1) // local_world)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    if args.global_batch % world:
        raise SystemExit(f"error: --global-batch {args.global_batch} not divisible by {world} ranks")

    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    policy, cfg = build_unet(args.model)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    policy.train()
    condition = ("text" if any("CrossAttn" in b for b in cfg.get("down_block_types", ())) else
                 "class" if cfg.get("num_class_embeds") else "none")
    if world > 1:
        policy = torch.nn.parallel.DistributedDataParallel(policy, bucket_cap_mb=args.bucket_mb)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=args.weight_decay)
    acp = alphas_cumprod(args.schedule, args.beta_start, args.beta_end, args.num_train_timesteps)
    reader = PairReader(args.data, condition, args.global_batch, rank, world, args.seed)
    gen = torch.Generator().manual_seed(args.seed * 1000 + rank)
    if args.count_flops:
        if world > 1:
            raise SystemExit("error: --count-flops runs in one process (the count is for the global batch)")
        print(json.dumps({"flops_per_step": count_flops(policy, reference, optimizer, reader.next(), acp, args.beta,
                                                        gen), "global_batch": args.global_batch}), flush=True)
        return
    scaler = torch.amp.GradScaler("cpu") if args.precision == "fp16" else None

    def step():
        return dpo_step(policy, reference, optimizer, reader.next(), acp, args.beta, args.grad_clip, gen,
                        autocast_dtype, scaler)

    losses = []
    for _ in range(args.warmup):
        losses.append(step())
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    if world > 1:
        dist.barrier()
    elapsed = time.perf_counter() - start

    rss_mb = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(rss_mb, op=dist.ReduceOp.MAX)
    if rank == 0:
        params = sum(q.numel() for q in reference.parameters())
        print(json.dumps({"impl": "peer", "precision": args.precision, "np": world, "threads": threads,
                          "condition": condition, "params": params,
                          "global_batch": args.global_batch, "timed_steps": args.steps,
                          "samples_per_s": args.steps * args.global_batch / elapsed, "s_per_step": elapsed / args.steps,
                          "peak_rss_mb": rss_mb.item(), "first_loss": losses[0], "last_loss": losses[-1]}), flush=True)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
