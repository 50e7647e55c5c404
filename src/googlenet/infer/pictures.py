"""Pictures of predictions, for a reader who would rather look than read: detections drawn on an
image (upscaled to a readable size, one colour per class, each label on a background of its
box's colour) and a contact sheet of many images with what was predicted for each, the grid
``googlenet predict`` writes (as ultralytics' predict saves its pictures)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

from ..fileio import atomic_write

__all__ = ["PALETTE", "class_colour", "upscale", "draw_detections", "contact_sheet",
           "sheet_path", "SHEET_MAX", "SHEET_NAME"]

# Sasha Trubetskoy's distinct colours (the first ten, then repeated): saturated, none grey, so
# a box stands out on a photo or a grey canvas; each box is also edged in black
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))
MIN_SIDE = 512  # drawings: images smaller than this (digits-detect: 128 px) are upscaled
SHEET_MAX = 48  # images on a contact sheet (the first ones; the title says how many in all)
SHEET_NAME = "contact-sheet.png"


def class_colour(i: int) -> tuple[int, int, int]:
    return PALETTE[i % len(PALETTE)]


def upscale(img: Image.Image, min_side: int) -> tuple[Image.Image, int]:
    """``img`` enlarged by a whole factor until its shorter side is at least ``min_side``
    (nearest neighbour for tiny images, whose pixels a reader should see, bicubic otherwise);
    the factor."""
    k = max(1, math.ceil(min_side / max(1, min(img.size))))
    if k == 1:
        return img, 1
    how = Image.NEAREST if min(img.size) <= 64 else Image.BICUBIC
    return img.resize((img.width * k, img.height * k), how), k


def _text_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def draw_detections(img: Image.Image, boxes: Sequence[Sequence[float]], labels: Sequence[int],
                    scores: Sequence[float], class_names: Optional[Sequence[str]], *,
                    min_side: int = MIN_SIDE) -> Image.Image:
    """``img`` (upscaled, ``upscale``) with each box (x1, y1, x2, y2 in ``img``'s pixels) in its
    class's colour and a "name score" label on that colour above it (inside, at the top edge)."""
    out, k = upscale(img.convert("RGB"), min_side)
    d = ImageDraw.Draw(out)
    side = min(out.size)
    width = max(2, side // 170)
    font = ImageFont.load_default(size=max(12, side // 28))
    for box, label, score in zip(boxes, labels, scores):
        x1, y1, x2, y2 = (float(v) * k for v in box)
        colour = class_colour(int(label))
        d.rectangle((x1 - 1, y1 - 1, x2 + 1, y2 + 1), outline=(0, 0, 0), width=width + 2)
        d.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        name = class_names[label] if class_names and 0 <= label < len(class_names) else f"class {label}"
        text = f"{name} {float(score):.2f}"
        l, t, r, b = d.textbbox((0, 0), text, font=font)
        tw, th = r - l + 2 * width, b - t + 2 * width
        ty = y1 - th if y1 - th >= 0 else y1  # above the box, or inside it at the image's edge
        tx = min(max(0.0, x1), out.width - tw)
        d.rectangle((tx, ty, tx + tw, ty + th), fill=colour, outline=(0, 0, 0))
        d.text((tx + width - l, ty + width - t), text, fill=_text_colour(colour), font=font)
    return out


def sheet_path(out: str | os.PathLike, taken: Sequence[str | os.PathLike] = ()) -> Path:
    """``out/contact-sheet.png``, or ``contact-sheet-2.png``, ... when that is one of ``taken``
    (the inputs, the drawings): a picture never replaces an input or another picture."""
    def key(p: str | os.PathLike) -> str:
        return os.path.normcase(os.path.realpath(p))

    busy = {key(p) for p in taken}
    stem, suffix = Path(SHEET_NAME).stem, Path(SHEET_NAME).suffix
    path, n = Path(out) / SHEET_NAME, 1
    while key(path) in busy:
        n += 1
        path = Path(out) / f"{stem}-{n}{suffix}"
    return path


def contact_sheet(cells: Sequence[tuple[Image.Image, str, str]], path: str | os.PathLike,
                  title: str, total: Optional[int] = None) -> Path:
    """A grid of images, each captioned (``(image, caption, small print)``: e.g. the predicted
    class and its probability, then the file name), written atomically as a PNG. ``total``: how
    many images there were, when ``cells`` holds only the first ``SHEET_MAX``."""
    from matplotlib.figure import Figure

    n = len(cells)
    cols = max(1, min(8, n, math.ceil(math.sqrt(n * 1.6))))
    rows = max(1, math.ceil(n / cols))
    cell = 2.4  # inches per cell, at 100 dpi: 240 px
    fig = Figure(figsize=(max(6.0, cols * cell), rows * cell * 1.2 + 0.8), dpi=100,
                 layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (img, caption, small) in zip(axes, cells):
        ax.imshow(img, interpolation="nearest" if min(img.size) <= 64 else "antialiased")
        ax.set_title(caption, fontsize=12, fontweight="bold")
        ax.text(0.5, -0.04, small if len(small) <= 34 else "..." + small[-31:], fontsize=8,
                ha="center", va="top", transform=ax.transAxes, color="0.3")
    if total is not None and total > n:
        title += f" (the first {n} of {total} images)"
    fig.suptitle(title, fontsize=14)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
