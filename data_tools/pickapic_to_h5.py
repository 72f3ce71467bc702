#!/usr/bin/env python3
"""Pick-a-Pic-style parquet -> dualign `preference_pairs` HDF5 shards with VAE latents and CLIP text embeddings.

Input rows: caption (str), jpg_0, jpg_1 (JPEG/PNG bytes), label_0 (1 = image 0 preferred, 0 = image 1, 0.5 = tie).
Ties are dropped; undecodable images are dropped and counted. Output: <out>/pickapic-00000.h5, ... each with
  winner, loser     float32 [N, C, h, w]   VAE latent means * scaling_factor (deterministic caching)
  prompt            string  [N]
  text_embedding    float32 [N, L, D]      last hidden state of the CLIP text encoder (padded to L tokens)
and root attributes format=preference_pairs, version=1, plus provenance (models, resolution, source files).

Models: --pretrained PATH takes a Stable Diffusion directory in diffusers layout (vae/, text_encoder/, tokenizer/);
--tiny-random builds a tiny random AutoencoderKL + CLIPTextModel from configs and a tiny byte-level CLIP tokenizer
written locally (no downloads; for tests only: the embeddings are meaningless).

  python data_tools/pickapic_to_h5.py --parquet train-0000.parquet --out data/pickapic --pretrained /models/sd15
"""
import argparse
import io
import json
import os
import sys
import tempfile

import h5py
import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

FORMAT_VERSION = 1


def progress(iterable, total, desc):
    try:
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, file=sys.stdout, mininterval=1.0)
    except ImportError:  # plain progress lines
        def gen():
            for i, x in enumerate(iterable):
                if i % 100 == 0:
                    print(f"{desc}: {i}/{total}", flush=True)
                yield x
        return gen()


# ---- models -------------------------------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2/CLIP byte -> printable character table (so every byte sequence has a token spelling)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tiny_clip_tokenizer(directory, max_length=16):
    """A byte-level CLIP BPE tokenizer without merges: every character is a token (`char</w>` ends a word)."""
    from transformers import CLIPTokenizer
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    vocab_file, merges_file = os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
    with open(vocab_file, "w") as f:
        json.dump(vocab, f)
    with open(merges_file, "w") as f:
        f.write("#version: 0.2\n")
    try:  # transformers >= 5: vocab dict + merges list
        return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)
    except TypeError:  # transformers 4: file paths
        return CLIPTokenizer(vocab_file, merges_file, model_max_length=max_length)


def tiny_random_models(seed=0, workdir=None):
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel
    tokenizer = tiny_clip_tokenizer(workdir or tempfile.mkdtemp(prefix="tiny-clip-tokenizer-"))
    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    return vae.eval(), text_encoder.eval(), tokenizer, "tiny-random"


def pretrained_models(path):
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    return vae.eval(), text_encoder.eval(), tokenizer, os.path.abspath(path)


# ---- conversion ---------------------------------------------------------------------------------------------
def load_image(data, resolution):
    """Bytes -> float tensor [3, R, R] in [-1, 1]: resize the short side to R, centre crop."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    s = resolution / min(w, h)
    img = img.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)
    return x / 127.5 - 1.0


@torch.no_grad()
def encode_images(vae, images, device):
    latents = vae.encode(torch.stack(images).to(device)).latent_dist.mean
    return (latents * vae.config.scaling_factor).float().cpu().numpy()


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts, device):
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0].float().cpu().numpy()


def read_rows(paths):
    for path in paths:  # streamed in record batches: real Pick-a-Pic files are large
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=["caption", "jpg_0", "jpg_1", "label_0"]):
            yield from batch.to_pylist()


class ShardWriter:
    def __init__(self, out_dir, shard_size, attrs):
        self.out_dir, self.shard_size, self.attrs = out_dir, shard_size, attrs
        self.buffer = {"winner": [], "loser": [], "prompt": [], "text_embedding": []}
        self.paths = []
        os.makedirs(out_dir, exist_ok=True)

    def add(self, winner, loser, prompt, embedding):
        for k, v in zip(self.buffer, (winner, loser, prompt, embedding)):
            self.buffer[k].append(v)
        if len(self.buffer["prompt"]) >= self.shard_size:
            self.flush()

    def flush(self):
        n = len(self.buffer["prompt"])
        if n == 0:
            return
        path = os.path.join(self.out_dir, f"pickapic-{len(self.paths):05d}.h5")
        with h5py.File(path + ".tmp", "w") as f:
            f.attrs["format"] = "preference_pairs"
            f.attrs["version"] = np.int64(FORMAT_VERSION)
            for k, v in self.attrs.items():
                f.attrs[k] = v
            chunk = lambda a: (min(len(a), 64),) + a.shape[1:]
            for k in ("winner", "loser", "text_embedding"):
                a = np.stack(self.buffer[k]).astype(np.float32)
                f.create_dataset(k, data=a, chunks=chunk(a))
            f.create_dataset("prompt", data=self.buffer["prompt"], dtype=h5py.string_dtype())
        os.replace(path + ".tmp", path)  # a shard is either complete or absent
        self.paths.append(path)
        self.buffer = {k: [] for k in self.buffer}


def convert(args):
    torch.set_num_threads(args.threads)
    if args.pretrained:
        vae, text_encoder, tokenizer, model_name = pretrained_models(args.pretrained)
    else:
        vae, text_encoder, tokenizer, model_name = tiny_random_models(args.seed)
        print("WARNING: --tiny-random: random VAE/text encoder and a byte-level tokenizer (tests only)", flush=True)
    vae.to(args.device)
    text_encoder.to(args.device)
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in args.parquet)
    if args.max_rows:
        total = min(total, args.max_rows)
    writer = ShardWriter(args.out, args.shard_size, {
        "source": ",".join(os.path.basename(p) for p in args.parquet), "models": model_name,
        "resolution": np.int64(args.resolution), "vae_scaling_factor": float(vae.config.scaling_factor),
        "latents": "vae latent_dist.mean * scaling_factor", "text_embedding": "text encoder last hidden state"})
    stats = {"rows": 0, "ties": 0, "bad_images": 0, "pairs": 0}
    pending = []

    def run_batch():
        if not pending:
            return
        images = [img for p in pending for img in (p["w"], p["l"])]
        latents = encode_images(vae, images, args.device)
        embeddings = encode_prompts(text_encoder, tokenizer, [p["caption"] for p in pending], args.device)
        for i, p in enumerate(pending):
            writer.add(latents[2 * i], latents[2 * i + 1], p["caption"], embeddings[i])
        stats["pairs"] += len(pending)
        pending.clear()

    rows = read_rows(args.parquet)
    for i, row in progress(zip(range(total), rows), total, "pick-a-pic"):
        stats["rows"] += 1
        label = float(row["label_0"])
        if label == 0.5:
            stats["ties"] += 1
            continue
        try:
            a, b = load_image(row["jpg_0"], args.resolution), load_image(row["jpg_1"], args.resolution)
        except Exception as e:  # a broken image drops its pair, never the run
            stats["bad_images"] += 1
            print(f"row {i}: cannot decode an image ({e}); pair dropped", flush=True)
            continue
        w, l = (a, b) if label > 0.5 else (b, a)
        pending.append({"w": w, "l": l, "caption": row["caption"] or ""})
        if len(pending) >= args.batch_size:
            run_batch()
    run_batch()
    writer.flush()
    print(json.dumps({"shards": writer.paths, **stats}), flush=True)
    return writer.paths, stats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parquet", nargs="+", required=True, help="Pick-a-Pic parquet file(s)")
    p.add_argument("--out", required=True, help="output directory for pickapic-NNNNN.h5 shards")
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument("--pretrained", help="Stable Diffusion directory (diffusers layout: vae/, text_encoder/, tokenizer/)")
    models.add_argument("--tiny-random", action="store_true", help="tiny random models built from configs (tests)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--shard-size", type=int, default=2000, help="pairs per output file")
    p.add_argument("--batch-size", type=int, default=8, help="pairs encoded together")
    p.add_argument("--max-rows", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)))
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny-random models")
    convert(p.parse_args(argv))


if __name__ == "__main__":
    main()
