"""Reward scorers behind one registry: name -> class with `score(images, prompts) -> tensor [B]`.

images: uint8 [B, H, W, 3] (as decode.py returns them); prompts: B strings; the result is float64 on the CPU.
Each class builds from weight files (`from_weights(paths, device)`, paths resolved by `resolve_weights` from a
--weights directory and --weight overrides) or as a tiny random model (`tiny_random(seed, device)`, tests only).
"""
import functools
import os

import torch
from torch import nn

from . import clip_models, open_clip_models
from .state_dicts import load_into


@functools.lru_cache(maxsize=None)
def _clip_from_dir(model_dir, processor_dir):
    """One CLIP in memory per directory (the CLIP score and the aesthetic predictor share CLIP ViT-L/14)."""
    return clip_models.load_clip(model_dir), clip_models.load_processor(processor_dir)


@functools.lru_cache(maxsize=None)
def _tiny_clip(seed):
    return clip_models.tiny_random_clip(seed)


class Scorer:
    name = ""
    summary = ""
    # (part, default path under --weights DIR, what it is, part to fall back to when the default is absent)
    weights = ()

    def score(self, images, prompts):
        raise NotImplementedError


class PickScore(Scorer):
    """PickScore (Kirstain et al. 2023) as DiffusionDPO's utils/pickscore_utils.py: logit_scale.exp() * cos."""
    name = "pickscore"
    summary = "PickScore_v1 CLIP-H: logit_scale.exp() × cos(text, image)"
    weights = (("model", "PickScore_v1", "transformers CLIPModel directory (yuvalkirstain/PickScore_v1)", None),
               ("processor", "CLIP-ViT-H-14-laion2B-s32B-b79K",
                "CLIP processor directory (laion/CLIP-ViT-H-14-laion2B-s32B-b79K)", "model"))

    def __init__(self, clip, processor, device):
        self.clip, self.processor = clip.to(device), processor

    @classmethod
    def from_weights(cls, paths, device):
        return cls(clip_models.load_clip(paths["model"]), clip_models.load_processor(paths["processor"]), device)

    @classmethod
    def tiny_random(cls, seed, device):
        return cls(*_tiny_clip(seed + 1), device)  # seed + 1: the CLIP of pickscore.py --tiny-random

    @torch.no_grad()
    def score(self, images, prompts):
        image = clip_models.image_embeddings(self.clip, self.processor, images)
        text = clip_models.text_embeddings(self.clip, self.processor, prompts)
        return (self.clip.logit_scale.exp().float() * clip_models.cosine(text, image)).double().cpu()


class ClipScore(Scorer):
    """CLIP score as torchmetrics documents it: 100 * max(cos(text, image), 0) per image, CLIP ViT-L/14.

    torchmetrics clamps the mean instead of each image; the two agree whenever every cosine is >= 0, as it is for
    real CLIP on generated images (cos ~ 0.2-0.35)."""
    name = "clip"
    summary = "CLIP ViT-L/14: 100 × max(cos(text, image), 0)"
    weights = (("model", "clip-vit-large-patch14", "transformers CLIPModel directory (openai/clip-vit-large-patch14)",
                None),)

    def __init__(self, clip, processor, device):
        self.clip, self.processor = clip.to(device), processor

    @classmethod
    def from_weights(cls, paths, device):
        return cls(*_clip_from_dir(paths["model"], paths["model"]), device)

    @classmethod
    def tiny_random(cls, seed, device):
        return cls(*_tiny_clip(seed + 2), device)

    @torch.no_grad()
    def score(self, images, prompts):
        image = clip_models.image_embeddings(self.clip, self.processor, images)
        text = clip_models.text_embeddings(self.clip, self.processor, prompts)
        return (100.0 * clip_models.cosine(text, image).clamp(min=0)).double().cpu()


class AestheticHead(nn.Module):
    """The improved-aesthetic-predictor MLP (christophschuhmann/improved-aesthetic-predictor): linear layers
    without activations; the dropouts keep the published state-dict indices (layers.0, .2, .4, .6, .7)."""

    def __init__(self, input_size=768):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_size, 1024), nn.Dropout(0.2), nn.Linear(1024, 128),
                                    nn.Dropout(0.2), nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16),
                                    nn.Linear(16, 1))

    def forward(self, x):
        return self.layers(x)


def load_aesthetic_head(path, input_size=768):
    return load_into(AestheticHead(input_size), path, "aesthetic MLP head (768→1024→128→64→16→1)").eval()


class Aesthetic(Scorer):
    """LAION aesthetic predictor v2: MLP head on the L2-normalised CLIP ViT-L/14 image embedding (prompt unused)."""
    name = "aesthetic"
    summary = "LAION aesthetic predictor: MLP(normalised CLIP ViT-L/14 image embedding)"
    weights = (("model", "clip-vit-large-patch14", "transformers CLIPModel directory (openai/clip-vit-large-patch14)",
                None),
               ("head", "sac+logos+ava1-l14-linearMSE.pth",
                "improved-aesthetic-predictor head state dict (.pth or .safetensors)", None))

    def __init__(self, clip, processor, head, device):
        self.clip, self.processor, self.head = clip.to(device), processor, head.to(device).eval()

    @classmethod
    def from_weights(cls, paths, device):
        return cls(*_clip_from_dir(paths["model"], paths["model"]), load_aesthetic_head(paths["head"]), device)

    @classmethod
    def tiny_random(cls, seed, device):
        clip, processor = _tiny_clip(seed + 2)  # the CLIP of the tiny CLIP score, as the real ones share ViT-L/14
        torch.manual_seed(seed + 3)
        return cls(clip, processor, AestheticHead(clip.config.projection_dim), device)

    @torch.no_grad()
    def score(self, images, prompts):
        image = clip_models.image_embeddings(self.clip, self.processor, images)
        return self.head(image / image.norm(dim=-1, keepdim=True)).squeeze(-1).double().cpu()


class HPSv2(Scorer):
    """HPSv2 as hpsv2.score(): cos(image, text) of the HPS-tuned open_clip ViT-H-14 (the hpsv2 benchmark tables
    print 100 × this)."""
    name = "hpsv2"
    summary = "HPSv2 open_clip ViT-H-14: cos(text, image)"
    weights = (("model", "HPS_v2_compressed.pt", "HPS checkpoint (xswu/HPSv2: HPS_v2_compressed.pt or "
                "HPS_v2.1_compressed.pt)", None),)

    def __init__(self, model, device):
        self.model, self.device = model.to(device), device
        self.tokenizer = open_clip_models.tokenizer(model)

    @classmethod
    def from_weights(cls, paths, device):
        return cls(open_clip_models.hps_model(paths["model"]), device)

    @classmethod
    def tiny_random(cls, seed, device):
        return cls(open_clip_models.tiny_random_model(seed + 4), device)

    @torch.no_grad()
    def score(self, images, prompts):
        pixels = open_clip_models.preprocess(images, open_clip_models.image_size(self.model), self.device)
        out = self.model(pixels, self.tokenizer(list(prompts)).to(self.device))
        return (out["image_features"] * out["text_features"]).sum(-1).double().cpu()


class ImageReward(Scorer):
    """Not available: see UNAVAILABLE."""
    name = "imagereward"
    summary = "ImageReward (BLIP): not available in this environment"
    weights = ()
    UNAVAILABLE = (
        "ImageReward is not available: its only PyPI release (image-reward 1.5) cannot be used here. It pins "
        "timm==0.6.13, which conflicts with open-clip-torch 3.3 (timm>=1.0.17, needed for HPSv2); its BLIP text "
        "encoder (ImageReward/models/BLIP/med.py) imports apply_chunking_to_forward from transformers.modeling_utils, "
        "which transformers 5 removed; `import ImageReward` also imports the OpenAI `clip` package, which it does not "
        "declare; and its model constructor always downloads the bert-base-uncased tokenizer "
        "(BertTokenizer.from_pretrained in BLIP/blip.py init_tokenizer) and builds a full ViT-L, so no tiny random "
        "model can be built offline. Score ImageReward in a separate environment with transformers<5 and timm 0.6.")

    @classmethod
    def from_weights(cls, paths, device):
        raise SystemExit(f"error: {cls.UNAVAILABLE}")

    tiny_random = from_weights


SCORERS = {cls.name: cls for cls in (PickScore, ClipScore, Aesthetic, HPSv2, ImageReward)}


def parse_overrides(items):
    """['pickscore=/m/PickScore_v1', 'aesthetic.head=/m/head.pth'] -> {('pickscore', 'model'): ..., ...}."""
    overrides = {}
    for item in items or ():
        key, sep, path = item.partition("=")
        name, _, part = key.partition(".")
        if not sep or name not in SCORERS:
            raise SystemExit(f"error: --weight {item!r}: expected SCORER[.PART]=PATH with SCORER in {sorted(SCORERS)}")
        parts = [p[0] for p in SCORERS[name].weights]
        part = part or (parts[0] if parts else "")
        if part not in parts:
            raise SystemExit(f"error: --weight {item!r}: {name} has weight parts {parts}")
        overrides[(name, part)] = path
    return overrides


def resolve_weights(cls, weights_dir, overrides):
    """{part: path} for one scorer: an override, else DIR/default, else the fallback part's path."""
    paths = {}
    for part, default, what, fallback in cls.weights:
        path = overrides.get((cls.name, part))
        if path is None and weights_dir and os.path.exists(os.path.join(weights_dir, default)):
            path = os.path.join(weights_dir, default)
        if path is None and fallback:
            path = paths[fallback]
        if path is None or not os.path.exists(path):
            where = os.path.join(weights_dir, default) if weights_dir else f"--weights DIR/{default}"
            raise SystemExit(f"error: {cls.name}: no {part} weights at {path or where} ({what}); put them there or "
                             f"pass --weight {cls.name}.{part}=PATH")
        paths[part] = path
    return paths


def build_scorers(names, device, weights_dir=None, overrides=None, tiny_random_seed=None):
    """{name: scorer}; tiny_random_seed (an int) builds tiny random models instead of loading weights."""
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise SystemExit(f"error: unknown scorer(s) {unknown}; available: {sorted(SCORERS)}")
    scorers = {}
    for name in names:
        cls = SCORERS[name]
        if tiny_random_seed is not None:
            scorers[name] = cls.tiny_random(tiny_random_seed, device)
        else:
            scorers[name] = cls.from_weights(resolve_weights(cls, weights_dir, overrides or {}), device)
    return scorers
