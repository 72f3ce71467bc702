"""transformers CLIPModel + processor: loading from local directories, tiny random models, and embeddings.

The image processor is the PIL one (CLIPImageProcessorPil in transformers 5, CLIPImageProcessor in 4): the
published PickScore and CLIP-score numbers were computed with it, and transformers 5 otherwise picks the
torchvision one whenever torchvision is installed (slightly different resizing)."""
import os
import sys
import tempfile

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pickapic.models import tiny_clip_tokenizer  # noqa: E402  (tiny byte-level CLIP tokenizer)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _pil_image_processor_class():
    try:  # transformers 5
        from transformers import CLIPImageProcessorPil
        return CLIPImageProcessorPil
    except ImportError:  # transformers 4: the default class is the PIL one
        from transformers import CLIPImageProcessor
        return CLIPImageProcessor


def _require_dir(path, what):
    if not os.path.isfile(os.path.join(path, "config.json")) and not os.path.isfile(
            os.path.join(path, "preprocessor_config.json")):
        raise SystemExit(f"error: {path}: not a {what} directory (no config.json / preprocessor_config.json)")


def load_clip(model_dir):
    from transformers import CLIPModel
    _require_dir(model_dir, "transformers CLIPModel")
    return CLIPModel.from_pretrained(model_dir).eval()


def load_processor(processor_dir):
    """CLIPProcessor(PIL image processor, tokenizer) from a model directory holding both."""
    from transformers import AutoTokenizer, CLIPProcessor
    _require_dir(processor_dir, "CLIP processor")
    images = _pil_image_processor_class().from_pretrained(processor_dir)
    return CLIPProcessor(image_processor=images, tokenizer=AutoTokenizer.from_pretrained(processor_dir))


def tiny_random_clip(seed, image_size=32, projection_dim=16):
    """(CLIPModel, CLIPProcessor): a 2-layer random CLIP with the byte-level tokenizer (no downloads; tests only)."""
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    tokenizer = tiny_clip_tokenizer(tempfile.mkdtemp(prefix="tiny-clip-tokenizer-"))
    torch.manual_seed(seed)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                  image_size=image_size, patch_size=8)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)).eval()
    images = _pil_image_processor_class()(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return clip, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def features(out):
    """get_*_features returns a tensor (transformers 4) or an output whose pooler_output is projected (5)."""
    return out if torch.is_tensor(out) else out.pooler_output


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def image_embeddings(clip, processor, images):
    """uint8 images [B, H, W, 3] -> projected CLIP image embeddings [B, D] (not normalised)."""
    pil = [Image.fromarray(img.numpy() if torch.is_tensor(img) else img) for img in images]
    pixels = processor(images=pil, return_tensors="pt")["pixel_values"].to(_device(clip))
    return features(clip.get_image_features(pixel_values=pixels)).float()


@torch.no_grad()
def text_embeddings(clip, processor, prompts):
    """Prompts -> projected CLIP text embeddings [B, D] (not normalised); long prompts are truncated."""
    tokens = processor(text=list(prompts), padding=True, truncation=True,
                       max_length=processor.tokenizer.model_max_length, return_tensors="pt").to(_device(clip))
    return features(clip.get_text_features(**tokens)).float()


def cosine(a, b):
    """Row-wise cosine similarity of two [B, D] embeddings."""
    return (a / a.norm(dim=-1, keepdim=True) * (b / b.norm(dim=-1, keepdim=True))).sum(-1)
