#!/usr/bin/env python3
"""Prompt and weight files for dualign's C++ reward models (src/rewards/clip_rewards.h), which run the CLIP image
tower in C++ and read the text side precomputed here (the tokenizer stays in Python).

  text embeddings   --out FILE.safetensors: `text_embeds` float32 [P, D], the projected (not normalised) text
                    embedding of each prompt, with the prompts as JSON in the metadata `prompts`.
                      --model DIR      a transformers CLIPModel directory (PickScore_v1: pickscore;
                                       clip-vit-large-patch14: clip_score)
                      --hps CKPT       HPSv2: open_clip ViT-H-14 with HPS_v2(.1)_compressed.pt
  HPSv2 image tower --export-visual FILE.safetensors (with --hps): the open_clip `visual.*` tensors and the
                    metadata `open_clip_config` the C++ loader reads (width, layers, heads, patch, image, embed).
  aesthetic head    --convert-head IN.pth OUT.safetensors: the improved-aesthetic-predictor MLP as safetensors.

--tiny-random SEED builds the tiny random models of data_tools/evaluation (tests only; --save-model DIR writes the
tiny CLIPModel with save_pretrained so the C++ side can load it).

  python data_tools/encode_reward_prompts.py --model /models/PickScore_v1 --prompt "a photo of a cat" --out cat.safetensors
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluation import clip_models, open_clip_models  # noqa: E402
from evaluation.state_dicts import read_state_dict  # noqa: E402


def save_text_embeddings(path, embeddings, prompts):
    save_file({"text_embeds": embeddings.float().contiguous()}, path, metadata={"prompts": json.dumps(prompts)})


@torch.no_grad()
def open_clip_text_features(model, prompts):
    """open_clip text features (projected, not normalised), as HPSv2 computes them before its cosine."""
    tokens = open_clip_models.tokenizer(model)(list(prompts))
    return model.encode_text(tokens).float()


def open_clip_visual_config(model):
    visual = model.visual
    width = visual.conv1.out_channels
    blocks = visual.transformer.resblocks
    return {"width": width, "layers": len(blocks), "heads": blocks[0].attn.num_heads,
            "patch_size": visual.conv1.kernel_size[0], "image_size": open_clip_models.image_size(model),
            "embed_dim": visual.proj.shape[1], "mlp_width": blocks[0].mlp.c_fc.out_features,
            "quick_gelu": type(blocks[0].mlp.gelu).__name__ == "QuickGELU"}


def export_visual(model, path):
    tensors = {k: v.float().contiguous() for k, v in model.state_dict().items() if k.startswith("visual.")}
    save_file(tensors, path, metadata={"open_clip_config": json.dumps(open_clip_visual_config(model))})


def convert_head(src, dst):
    save_file({k: v.float().contiguous() for k, v in read_state_dict(src).items()}, dst)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts", help="a text file, one prompt per line")
    p.add_argument("--out", help="text embeddings file (.safetensors)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="transformers CLIPModel directory")
    src.add_argument("--hps", help="HPSv2 checkpoint for open_clip ViT-H-14")
    src.add_argument("--tiny-random", type=int, metavar="SEED", help="tiny random model (tests)")
    p.add_argument("--tiny-kind", choices=["clip", "open_clip"], default="clip")
    p.add_argument("--save-model", help="with --tiny-random clip: save the CLIPModel here (save_pretrained)")
    p.add_argument("--export-visual", help="with --hps or --tiny-random open_clip: write the visual tower here")
    p.add_argument("--convert-head", nargs=2, metavar=("IN", "OUT"), help="aesthetic head .pth -> .safetensors")
    a = p.parse_args()

    if a.convert_head:
        convert_head(*a.convert_head)
    prompts = list(a.prompt)
    if a.prompts:
        with open(a.prompts, encoding="utf-8") as f:
            prompts += [line.strip() for line in f if line.strip()]
    open_clip_model = None
    if a.hps or (a.tiny_random is not None and a.tiny_kind == "open_clip"):
        open_clip_model = (open_clip_models.hps_model(a.hps) if a.hps
                           else open_clip_models.tiny_random_model(a.tiny_random))
        if a.export_visual:
            export_visual(open_clip_model, a.export_visual)
        if prompts and a.out:
            save_text_embeddings(a.out, open_clip_text_features(open_clip_model, prompts), prompts)
    elif a.model or a.tiny_random is not None:
        clip, processor = (clip_models.load_clip(a.model), clip_models.load_processor(a.model)) if a.model \
            else clip_models.tiny_random_clip(a.tiny_random)
        if a.save_model:
            clip.save_pretrained(a.save_model)
        if prompts and a.out:
            save_text_embeddings(a.out, clip_models.text_embeddings(clip, processor, prompts), prompts)
    elif not a.convert_head:
        p.error("give --model, --hps, --tiny-random or --convert-head")
    if a.out and not prompts:
        p.error("--out needs at least one --prompt or --prompts")


if __name__ == "__main__":
    main()
