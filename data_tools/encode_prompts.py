#!/usr/bin/env python3
"""Text prompts -> dualign `prompts` HDF5 (the input of `dualign sample --prompts` for text-conditional UNets).

Input: a prompt set, read by evaluation/prompts.py (--kind auto picks by extension): a text file with one prompt per
line (blank lines and lines starting with '#' are skipped), a Pick-a-Pic parquet (unique captions), a PartiPrompts
TSV or an HPSv2 benchmark JSON (or a directory of them). --limit N keeps the first N prompts.
Output datasets:
  prompt            string  [P]
  text_embedding    float32 [P, L, D]   last hidden state of the CLIP text encoder, padded to L tokens
                                        (SD-1.5: L = 77, D = 768) — the same encoding as pickapic_to_h5.py
  category          string  [P]         only for sets with categories (PartiPrompts Category, HPSv2 style)
  negative_text_embedding float32 [1, L, D]  the encoding of --negative-prompt (default "": the empty prompt),
                                        the unconditional branch of classifier-free guidance in `dualign sample`
                                        (StableDiffusionPipeline encodes "" the same way when no negative prompt is given)
  pooled_text_embedding float32 [P, D']  SDXL only: the second text encoder's pooled projection (D' = 1280);
                                        text_embedding then holds both encoders' penultimate hidden states
                                        concatenated (L = 77, D = 2048), as pickapic_to_h5.py writes SDXL shards
  negative_pooled_text_embedding float32 [1, D']  SDXL only
and root attributes format=prompts, version=1, models, source, prompt_set (the reader used), negative_prompt.
SDXL's negative branch: with the default empty --negative-prompt it is all zeros (hidden and pooled), as
StableDiffusionXLPipeline does for SDXL base (force_zeros_for_empty_prompt); --encode-empty-negative encodes "".

--pretrained SD_DIR reads text_encoder/ and tokenizer/ of a Stable Diffusion directory (diffusers layout; an SDXL
directory also text_encoder_2/ and tokenizer_2/); --tiny-random (--tiny-shape sdxl-tiny for SDXL) uses pickapic_to_h5.py's tiny random CLIP text encoder and byte-level tokenizer (same --seed gives
the same encoder as the converter, so prompts and tiny training pairs live in the same embedding space; tests only).

  python data_tools/encode_prompts.py --prompts prompts.txt --out prompts.h5 --pretrained /models/sd15
"""
import argparse
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pickapic import encode as pickapic_encode, models as pickapic_models  # noqa: E402  (shared with the converter)
from evaluation.prompts import KINDS, read_prompts  # noqa: E402

FORMAT_VERSION = 1


def text_models(pretrained, seed, tiny_shape="tiny"):
    """(text encoder(s), tokenizer(s), model name) from an SD directory or the converter's tiny random models;
    SDXL gives pairs (CLIPTextModel, CLIPTextModelWithProjection)."""
    if pretrained:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
        encoder = CLIPTextModel.from_pretrained(pretrained, subfolder="text_encoder").eval()
        tokenizer = CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
        name = os.path.abspath(pretrained)
        if not os.path.isdir(os.path.join(pretrained, "text_encoder_2")):
            return encoder, tokenizer, name
        encoder_2 = CLIPTextModelWithProjection.from_pretrained(pretrained, subfolder="text_encoder_2").eval()
        return (encoder, encoder_2), (tokenizer, CLIPTokenizer.from_pretrained(pretrained, subfolder="tokenizer_2")), name
    _, encoder, tokenizer, name = pickapic_models.tiny_random_models(seed, shape=tiny_shape)
    return encoder, tokenizer, name


def encode(prompts, encoder, tokenizer, device, batch_size):
    """-> (hidden float32 [P, L, D], pooled float32 [P, D'] for SDXL's encoder pair, else None)."""
    sdxl = isinstance(encoder, tuple)
    hidden, pooled = [], []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        if sdxl:
            h, p = pickapic_encode.encode_prompts_sdxl(encoder, tokenizer, chunk, device)
            pooled.append(p)
        else:
            h = pickapic_encode.encode_prompts(encoder, tokenizer, chunk, device)
        hidden.append(h)
    return np.concatenate(hidden).astype(np.float32), np.concatenate(pooled).astype(np.float32) if sdxl else None


def write_prompts(path, prompts, embeddings, attrs, categories=None, negative=None, pooled=None,
                  negative_pooled=None):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "prompts"
        f.attrs["version"] = np.int64(FORMAT_VERSION)
        for k, v in attrs.items():
            f.attrs[k] = v
        f.create_dataset("prompt", data=prompts, dtype=h5py.string_dtype())
        f.create_dataset("text_embedding", data=embeddings)
        if categories is not None:
            f.create_dataset("category", data=categories, dtype=h5py.string_dtype())
        if negative is not None:
            f.create_dataset("negative_text_embedding", data=negative)
        if pooled is not None:
            f.create_dataset("pooled_text_embedding", data=pooled)
        if negative_pooled is not None:
            f.create_dataset("negative_pooled_text_embedding", data=negative_pooled)
    os.replace(tmp, path)  # complete or absent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", required=True, help="prompt set: text (one per line), .parquet, .tsv, .json or a dir")
    p.add_argument("--kind", default="auto", choices=KINDS, help="prompt set format (default: by extension)")
    p.add_argument("--limit", type=int, help="keep the first N prompts")
    p.add_argument("--out", required=True, help="output HDF5 file (format prompts)")
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument("--pretrained", help="Stable Diffusion directory (text_encoder/, tokenizer/; SDXL: also "
                        "text_encoder_2/, tokenizer_2/)")
    models.add_argument("--tiny-random", action="store_true", help="tiny random CLIP text encoder (tests)")
    p.add_argument("--tiny-shape", default="tiny", choices=["tiny", "sdxl-tiny"],
                   help="--tiny-random models: the converter's tiny SD or tiny SDXL-style text encoders")
    p.add_argument("--encode-empty-negative", action="store_true",
                   help="SDXL: encode the empty negative prompt instead of zeros (force_zeros_for_empty_prompt off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --tiny-random models")
    p.add_argument("--negative-prompt", default="", help="the prompt of the unconditional guidance branch (default: "
                   "the empty prompt, as StableDiffusionPipeline)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    prompt_set = read_prompts(args.prompts, args.kind)
    prompts, categories = prompt_set.prompts[:args.limit], prompt_set.categories
    categories = categories[:args.limit] if categories is not None else None
    encoder, tokenizer, name = text_models(args.pretrained, args.seed, args.tiny_shape)
    if args.tiny_random:
        print("WARNING: --tiny-random: random text encoder and a byte-level tokenizer (tests only)", flush=True)
    sdxl = isinstance(encoder, tuple)
    for e in encoder if sdxl else (encoder,):
        e.to(args.device)
    embeddings, pooled = encode(prompts, encoder, tokenizer, args.device, args.batch_size)
    negative, negative_pooled = encode([args.negative_prompt], encoder, tokenizer, args.device, 1)
    zero_negative = sdxl and args.negative_prompt == "" and not args.encode_empty_negative
    if zero_negative:
        negative, negative_pooled = np.zeros_like(negative), np.zeros_like(negative_pooled)
    write_prompts(args.out, prompts, embeddings, {
        "models": name, "source": os.path.basename(os.path.normpath(args.prompts)), "prompt_set": prompt_set.kind,
        "text_embedding": "SDXL: both text encoders' penultimate hidden states, concatenated" if sdxl
                          else "text encoder last hidden state",
        "negative_prompt": args.negative_prompt, "negative_embedding": "zeros" if zero_negative else "encoded"},
        categories, negative, pooled, negative_pooled)
    print(json.dumps({"out": args.out, "prompts": len(prompts), "text_embedding": list(embeddings.shape)}), flush=True)


if __name__ == "__main__":
    main()
