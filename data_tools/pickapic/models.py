"""The models a conversion encodes with: a Stable Diffusion directory in diffusers layout (vae/, text_encoder/,
tokenizer/; SDXL adds text_encoder_2/, tokenizer_2/), or tiny random ones built from configs (tests; no downloads,
the embeddings are meaningless)."""
import json
import os
import tempfile

import torch


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


# Tiny random model shapes. "tiny": 32 px images -> 4x16x16 latents, 16x32 text (fast tests).
# "sd15-shaped": SD-1.5's tensor shapes (512 px -> 4x64x64 latents through 3 downsamplings, 77x768 text) with
# narrow random layers: what the bytes-per-pair measurement needs, since storage depends on shapes.
# SDXL shapes add the second text encoder (hidden_2, its pooled projection) and SDXL's VAE scaling factor:
# "sdxl-tiny" gives 4x16x16 latents, 16x64 text and 16 pooled features; "sdxl-shaped" SDXL's 1024 px -> 4x128x128
# latents, 77x2048 text and 1280 pooled features.
TINY_SHAPES = {
    "tiny": dict(blocks=(8, 16), max_length=16, hidden=32, resolution=32),
    "sd15-shaped": dict(blocks=(8, 8, 8, 8), max_length=77, hidden=768, resolution=512),
    "sdxl-tiny": dict(blocks=(8, 16), max_length=16, hidden=32, hidden_2=32, projection=16, resolution=32),
    "sdxl-shaped": dict(blocks=(8, 8, 8, 8), max_length=77, hidden=768, hidden_2=1280, projection=1280,
                        resolution=1024),
}
SDXL_VAE_SCALING_FACTOR = 0.13025


def is_sdxl_shape(shape):
    return "hidden_2" in TINY_SHAPES[shape]


def _tiny_text_config(tokenizer, hidden, layers, **extra):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=64, num_attention_heads=4,
                          num_hidden_layers=layers, max_position_embeddings=tokenizer.model_max_length,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, **extra)


def tiny_random_models(seed=0, workdir=None, shape="tiny"):
    """(vae, text_encoder, tokenizer, name): random AutoencoderKL + CLIPTextModel, seeded (same seed, same models).
    SDXL shapes: text_encoder and tokenizer are pairs (CLIPTextModel, CLIPTextModelWithProjection), as in SDXL."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    s = TINY_SHAPES[shape]
    tokenizer = tiny_clip_tokenizer(workdir or tempfile.mkdtemp(prefix="tiny-clip-tokenizer-"), s["max_length"])
    torch.manual_seed(seed)
    n = len(s["blocks"])
    sdxl = is_sdxl_shape(shape)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                        block_out_channels=s["blocks"], layers_per_block=1, norm_num_groups=8,
                        sample_size=s["resolution"], **({"scaling_factor": SDXL_VAE_SCALING_FACTOR} if sdxl else {}))
    layers = 2 if shape in ("tiny", "sdxl-tiny") else 1
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer, s["hidden"], layers))
    name = "tiny-random" if shape == "tiny" else f"tiny-random-{shape}"
    if not sdxl:
        return vae.eval(), text_encoder.eval(), tokenizer, name
    text_encoder_2 = CLIPTextModelWithProjection(
        _tiny_text_config(tokenizer, s["hidden_2"], layers, projection_dim=s["projection"]))
    return vae.eval(), (text_encoder.eval(), text_encoder_2.eval()), (tokenizer, tokenizer), name


def pretrained_models(path):
    """A diffusers pipeline directory; an SDXL one (with text_encoder_2/) gives pairs as tiny_random_models does."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder").eval()
    tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
    if not os.path.isdir(os.path.join(path, "text_encoder_2")):
        return vae.eval(), text_encoder, tokenizer, os.path.abspath(path)
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(path, subfolder="text_encoder_2").eval()
    tokenizer_2 = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2")
    return vae.eval(), (text_encoder, text_encoder_2), (tokenizer, tokenizer_2), os.path.abspath(path)
