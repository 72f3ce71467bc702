"""Base-vs-tuned image grids: one row per pair (same prompt and seed), base left, tuned right, the prompt above
and each image's scores below. Images are shown at least `cell` pixels wide (nearest-neighbour upscaling keeps
tiny images judgeable; larger images are never shrunk)."""
import os
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD = 8
LINE = 18
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GREY = (90, 90, 90)


def _font(size=14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _upscale(image, cell):
    img = Image.fromarray(np.asarray(image))
    w, h = img.size
    factor = max(1.0, cell / max(w, h))
    if factor == 1.0:
        return img
    size = (round(w * factor), round(h * factor))
    return img.resize(size, Image.NEAREST if factor >= 2 else Image.LANCZOS)


def _score_lines(scores, chars):
    """'name value' entries packed into lines of at most `chars` characters, never split inside an entry."""
    lines = [""]
    for entry in (f"{name} {value:.4g}" for name, value in scores.items()):
        if lines[-1] and len(lines[-1]) + 2 + len(entry) > chars:
            lines.append("")
        lines[-1] += ("  " if lines[-1] else "") + entry
    return lines


def pair_grid(rows, path, cell=256, names=("base", "tuned")):
    """rows: dicts with prompt, seed (or None), base_image, tuned_image (uint8 [H, W, 3]) and base_scores,
    tuned_scores ({scorer: value}). Writes one PNG to `path`."""
    font, small = _font(14), _font(12)
    tiles = [(_upscale(r["base_image"], cell), _upscale(r["tuned_image"], cell)) for r in rows]
    width = max(a.width + b.width for a, b in tiles) + 3 * PAD
    chars = max(20, int(width / 7.5))  # about 7.5 px per character at size 14
    captions = [textwrap.wrap(r["prompt"], chars)[:4] or [""] for r in rows]
    score_lines = [max(len(_score_lines(r[f"{k}_scores"], chars // 2)) for k in ("base", "tuned")) for r in rows]
    header = LINE + PAD
    heights = [len(c) * LINE + PAD + max(a.height, b.height) + PAD + s * LINE + 2 * PAD
               for c, (a, b), s in zip(captions, tiles, score_lines)]
    canvas = Image.new("RGB", (width, header + sum(heights)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    half = (width - PAD) // 2
    draw.text((PAD, PAD // 2), names[0], fill=INK, font=font)
    draw.text((PAD + half, PAD // 2), names[1], fill=INK, font=font)
    y = header
    for r, caption, (a, b), s, h in zip(rows, captions, tiles, score_lines, heights):
        draw.line([(0, y), (width, y)], fill=(200, 200, 200))
        seed = "" if r.get("seed") is None else f"  [seed {r['seed']}]"
        for i, line in enumerate(caption):
            draw.text((PAD, y + PAD // 2 + i * LINE), line + (seed if i == len(caption) - 1 else ""), fill=INK,
                      font=font)
        top = y + len(caption) * LINE + PAD
        canvas.paste(a, (PAD, top))
        canvas.paste(b, (PAD + half, top))
        below = top + max(a.height, b.height) + PAD // 2
        for x, key in ((PAD, "base"), (PAD + half, "tuned")):
            for i, line in enumerate(_score_lines(r[f"{key}_scores"], chars // 2)):
                draw.text((x, below + i * LINE), line, fill=GREY, font=small)
        y += h
    canvas.save(path)
    return path


def write_grids(rows, out_dir, per_page=8, cell=256, names=("base", "tuned")):
    """Pages of `per_page` rows: grid-000.png, grid-001.png, ...; returns the file names."""
    files = []
    for page, start in enumerate(range(0, len(rows), per_page)):
        name = f"grid-{page:03d}.png"
        pair_grid(rows[start:start + per_page], os.path.join(out_dir, name), cell, names)
        files.append(name)
    return files
