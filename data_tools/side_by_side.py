#!/usr/bin/env python3
"""Reference and aligned samples side by side, from the same starting noise, upscaled so a person can judge them.

Inputs are two `samples` HDF5 files written by `dualign sample` with the same --seed (so row i of both starts from
the same x_T); images in [-1, 1], [N, C, H, W] with C = 1 or 3. The output PNG shows the first ROWS x COLS samples of
each file as two grids, left and right, each image upscaled SCALE times with nearest-neighbour pixels, with a title
over each grid.

  python data_tools/side_by_side.py --left ref.h5 --right dmpo.h5 --left-title reference --right-title DMPO \\
      --out side_by_side.png

PNG inputs (e.g. the grids `dualign compose` writes, samples_equal.png / samples_final.png) are shown whole,
upscaled the same way, with the same titles.
"""
import argparse

import h5py
import numpy as np
from PIL import Image, ImageDraw


def read_images(path, count):
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") not in ("samples", b"samples"):
            raise SystemExit(f"error: {path}: expected a `samples` file (dualign sample), got format "
                             f"{f.attrs.get('format')!r}")
        x = f["samples"][:count]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise SystemExit(f"error: {path}: /samples has shape {x.shape}, expected images [N, 1 or 3, H, W]")
    if x.shape[0] < count:
        raise SystemExit(f"error: {path}: {x.shape[0]} samples, the grid needs {count}")
    pixels = np.clip((x + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return pixels.transpose(0, 2, 3, 1)  # [N, H, W, C]


def read_png(path):
    """A picture shown whole (a sample grid another tool wrote) as one RGB image [1, H, W, 3]."""
    try:
        return np.asarray(Image.open(path).convert("RGB"))[None]
    except OSError as e:
        raise SystemExit(f"error: {path}: not a readable PNG ({e})")


def grid(images, rows, cols, scale, gap):
    n, h, w, c = images.shape
    h, w = h * scale, w * scale
    canvas = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, c), 40, dtype=np.uint8)
    for i in range(rows * cols):
        r, k = divmod(i, cols)
        tile = images[i].repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = tile
    return canvas


def title_font(size):
    """DejaVu Sans from matplotlib's own fonts (in the venv everywhere); PIL's bitmap default squeezes spaces to
    one pixel, so a title like "dmpo toward footwear" read as one word."""
    from PIL import ImageFont
    try:
        from matplotlib import font_manager
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--left", required=True, help="samples HDF5 (or a PNG) shown on the left (e.g. the reference)")
    p.add_argument("--right", required=True, help="samples HDF5 (or a PNG) shown on the right (e.g. the aligned model)")
    p.add_argument("--left-title", default="reference")
    p.add_argument("--right-title", default="aligned")
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--scale", type=int, default=4, help="pixels per source pixel")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    pngs = [path.lower().endswith(".png") for path in (a.left, a.right)]
    if pngs[0] != pngs[1]:
        raise SystemExit("error: --left and --right must both be samples HDF5 files or both PNG pictures")
    if pngs[0]:
        a.rows = a.cols = 1
    n = a.rows * a.cols
    read = read_png if pngs[0] else (lambda path: read_images(path, n))
    left, right = read(a.left), read(a.right)
    if left.shape[1:] != right.shape[1:]:
        raise SystemExit(f"error: {a.left} holds {left.shape[1:]} images but {a.right} holds {right.shape[1:]}")
    gap, margin, title = 2, 16, 22
    panels = [grid(x, a.rows, a.cols, a.scale, gap) for x in (left, right)]
    ph, pw, c = panels[0].shape
    canvas = np.full((title + ph + margin, 2 * pw + 3 * margin, c), 255, dtype=np.uint8)
    for k, panel in enumerate(panels):
        x0 = margin + k * (pw + margin)
        canvas[title:title + ph, x0:x0 + pw] = panel
    image = Image.fromarray(canvas.squeeze(-1) if c == 1 else canvas).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = title_font(14)
    for k, text in enumerate((a.left_title, a.right_title)):
        draw.text((margin + k * (pw + margin), 3), text, fill=(0, 0, 0), font=font)
    image.save(a.out)
    print(f"wrote {a.out} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
