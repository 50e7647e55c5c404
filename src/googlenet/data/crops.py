"""Test-time crops: 1 (center), 10 (corners + center, mirrored) and the paper's 144 (§7).

The geometry is plain data (``crop_boxes``) so it can be printed and tested; ``multi_crop`` cuts
those boxes out of an image and returns a normalised batch ``(n_crops, C, crop, crop)``.

144 crops, as §7 describes them: resize the shorter side to 4 scales (256, 288, 320, 352 at a 224
crop; proportionally at other crop sizes), take 3 squares of that side (left/center/right, or
top/center/bottom for portrait images), and from each square the 4 corner crops, the center crop
and the whole square resized to the crop size (6), each also mirrored: 4 x 3 x 6 x 2 = 144.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the geometry is plain Python; multi_crop imports torchvision when it runs
    import torch
    from PIL import Image

    from .preprocess import Preprocess

CROP_CHOICES = (1, 10, 144)
PAPER_SCALES = (256, 288, 320, 352)  # shorter side, for a 224 crop


@dataclass(frozen=True)
class CropBox:
    """One crop: resize the image so its shorter side is ``scale``, cut ``box`` (left, top, width,
    height) in that resized image, resize the cut to the crop size if it is larger, mirror if
    ``flip``."""

    scale: int
    box: tuple[int, int, int, int]
    flip: bool
    kind: str  # "center", "top-left", ..., "square" (a whole square resized)
    square: int = 0  # which of the 3 squares (144 crops), else 0


def _resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    # Same rounding as torchvision's Resize(int): the longer side is int(shorter * long / short).
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def _five(x0: int, y0: int, side_w: int, side_h: int, c: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    cx = x0 + int(round((side_w - c) / 2.0))
    cy = y0 + int(round((side_h - c) / 2.0))
    return [("top-left", (x0, y0, c, c)), ("top-right", (x0 + side_w - c, y0, c, c)),
            ("bottom-left", (x0, y0 + side_h - c, c, c)),
            ("bottom-right", (x0 + side_w - c, y0 + side_h - c, c, c)), ("center", (cx, cy, c, c))]


def crop_boxes(width: int, height: int, pre: Preprocess, n_crops: int) -> list[CropBox]:
    """The crops taken from a ``width`` x ``height`` image, in a fixed order."""
    if n_crops not in CROP_CHOICES:
        raise ValueError(f"crops must be one of {CROP_CHOICES}, got {n_crops}")
    c = pre.crop
    if n_crops == 1:
        w, h = _resized_size(width, height, pre.resize)
        (kind, box), = _five(0, 0, w, h, c)[4:]
        return [CropBox(pre.resize, box, False, kind)]
    if n_crops == 10:  # torchvision's TenCrop after Resize(resize): corners of the whole image.
        # The mirrored five are the mirror images of the five crops; TenCrop instead cuts the
        # mirrored image, whose center crop sits 1 px over when the margin (w - c) is odd.
        w, h = _resized_size(width, height, pre.resize)
        five = _five(0, 0, w, h, c)
        return [CropBox(pre.resize, box, flip, kind) for flip in (False, True) for kind, box in five]
    out: list[CropBox] = []
    for s224 in PAPER_SCALES:
        s = round(s224 * c / 224)
        w, h = _resized_size(width, height, s)
        if w >= h:  # landscape (or square): left, center, right squares
            origins = [(0, 0), ((w - s) // 2, 0), (w - s, 0)]
        else:  # portrait: top, center, bottom squares
            origins = [(0, 0), (0, (h - s) // 2), (0, h - s)]
        for q, (x0, y0) in enumerate(origins):
            six = _five(x0, y0, s, s, c) + [("square", (x0, y0, s, s))]
            for flip in (False, True):
                out += [CropBox(s, box, flip, kind, q) for kind, box in six]
    return out


def multi_crop(img: Image.Image, pre: Preprocess, n_crops: int,
               boxes: Optional[list[CropBox]] = None) -> torch.Tensor:
    """PIL RGB image -> (n_crops, C, crop, crop) normalised float tensor."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    from .imaging import check_resized_size

    boxes = boxes if boxes is not None else crop_boxes(img.width, img.height, pre, n_crops)
    for scale in sorted({b.scale for b in boxes}):  # ImageError before any resize allocates
        check_resized_size(img.width, img.height, scale)
    x = TF.to_image(img)  # (3, H, W) uint8
    c = pre.crop
    by_scale: dict[int, torch.Tensor] = {}
    crops = []
    for b in boxes:
        if b.scale not in by_scale:
            by_scale[b.scale] = TF.resize(x, [b.scale], interpolation=pre.interp, antialias=True)
        left, top, bw, bh = b.box
        y = TF.crop(by_scale[b.scale], top, left, bh, bw)
        if (bw, bh) != (c, c):
            y = TF.resize(y, [c, c], interpolation=pre.interp, antialias=True)
        if b.flip:
            y = TF.horizontal_flip(y)
        crops.append(y)
    batch = torch.stack(crops)  # (n, 3, c, c) uint8
    if pre.grayscale:
        batch = TF.rgb_to_grayscale(batch, 1)
    batch = batch.float().div_(255.0)
    mean = torch.tensor(pre.mean).view(1, -1, 1, 1)
    std = torch.tensor(pre.std).view(1, -1, 1, 1)
    return (batch - mean) / std
