"""open_clip models for HPSv2: the ViT-H-14 architecture with HPS weights, or a tiny random config for tests.

The hpsv2 package (1.2.0) ships its own fork of open_clip; its CLIP class has the same state-dict layout and
forward pass as open-clip-torch's, and its ViT-H-14 config is the same, so the HPS checkpoints load into
open-clip-torch's model. Its evaluation transform (create_model_and_transforms(..., light_augmentation=True))
is: RGB -> ToTensor -> ResizeMaxSize(224, bicubic; pad the short side with 0) -> Normalize(OpenAI mean/std),
reproduced in `preprocess` on batched tensors."""
import torch
import torch.nn.functional as nnf

from .clip_models import CLIP_MEAN, CLIP_STD
from .state_dicts import load_into

# A 2-layer CLIP with the real text vocabulary (so open_clip's bundled BPE tokenizer works), 32 px images.
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}


def _build(config):
    import open_clip
    return open_clip.CLIP(**config, output_dict=True).eval()


def hps_model(checkpoint):
    """ViT-H-14 (open_clip's config) with the HPS checkpoint (HPS_v2_compressed.pt or HPS_v2.1_compressed.pt)."""
    import open_clip
    model = _build(open_clip.get_model_config("ViT-H-14"))
    return load_into(model, checkpoint, "open_clip ViT-H-14 (HPSv2)")


def tiny_random_model(seed):
    torch.manual_seed(seed)
    return _build(TINY_CONFIG)


def tokenizer(model):
    """open_clip's SimpleTokenizer (BPE vocabulary bundled with the package, no download), the model's length."""
    import open_clip
    return open_clip.tokenizer.SimpleTokenizer(context_length=model.context_length)


def image_size(model):
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


def preprocess(images, size, device):
    """uint8 images [B, H, W, 3] -> normalised float [B, 3, size, size] as hpsv2's evaluation transform."""
    import torchvision.transforms.functional as tvf
    from torchvision.transforms import InterpolationMode
    x = images.to(device).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    scale = size / float(max(h, w))
    if scale != 1.0:
        new_h, new_w = round(h * scale), round(w * scale)
        x = tvf.resize(x, [new_h, new_w], InterpolationMode.BICUBIC, antialias=True)
        pad_h, pad_w = size - new_h, size - new_w
        x = nnf.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std
