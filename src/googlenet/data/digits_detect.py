"""The built-in detection set "digits-detect": real handwritten digits on cluttered canvases.

Each 128 px RGB canvas holds 1-4 of scikit-learn's 1,797 real 8x8 handwritten digits (shipped
with scikit-learn, no download), upscaled (bilinear) to 12-56 px with a little aspect jitter, at
random positions and ink contrasts, on a background of noise, random strokes and blobs (clutter
that looks like ink, so "bright pixels" is not a detector). Digits may overlap, but no two digit
boxes have IoU above ``MAX_IOU`` and no digit box is covered by more than ``MAX_COVER`` of its
area by a digit drawn over it (a small digit on a large one has a small IoU yet hides it), so
each stays recognisable; one canvas in five is inverted
(dark ink on a light background). Boxes are tight around the digit's ink (upscaled intensity
above ``INK`` of its maximum), XYXY in pixels, x1/y1 exclusive.

Splits are fixed and the same on every machine (numpy's PCG64 with fixed seeds): the digits are
split first, exactly as the classification "digits" set does (1,257 train / 180 val / 360 test
digits), and each split's canvases draw only from its own digits, so no test digit is seen in
training. 2,000 train / 250 val / 500 test canvases build in memory in a few seconds, once per
process.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import UserError
from .datasets import DIGITS_SPLIT_SEED, DIGITS_TEST, DIGITS_VAL
from .detection_dataset import ArrayDetectionDataset, DetRecord

__all__ = ["digits_detect", "digits_detect_arrays", "CANVAS", "SPLIT_SIZES",
           "DIGITS_DETECT_MEAN", "DIGITS_DETECT_STD"]

CANVAS = 128
SPLIT_SIZES = {"train": 2000, "val": 250, "test": 500}
DIGIT_SIZE = (12, 56)  # side of the upscaled 8x8 digit, pixels
MAX_DIGITS = 4
MAX_IOU = 0.5  # overlap cap between any two digit boxes on a canvas
MAX_COVER = 0.3  # most of a digit box's area that a later digit's box may cover
INK = 0.25  # fraction of a digit's peak intensity that counts as ink for its tight box
_SEED = 20140917  # the paper's arXiv date; fixed, not --seed: the test set never changes
# Per-channel mean/std of the training canvases (measured once with digits_detect_arrays).
DIGITS_DETECT_MEAN = (0.337, 0.337, 0.337)
DIGITS_DETECT_STD = (0.275, 0.275, 0.275)


def _digit_pools() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 8x8 digits (float in [0, 1]) and labels of each split, split as the "digits" set is."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()  # (1797, 8, 8) in [0, 16], labels 0-9
    idx = np.arange(len(d.target))
    rest, test = train_test_split(idx, test_size=DIGITS_TEST, stratify=d.target,
                                  random_state=DIGITS_SPLIT_SEED)
    train, val = train_test_split(rest, test_size=DIGITS_VAL, stratify=d.target[rest],
                                  random_state=DIGITS_SPLIT_SEED)
    return {s: ((d.images[i] / 16.0).astype(np.float32), d.target[i].astype(np.int64))
            for s, i in (("train", train), ("val", val), ("test", test))}


def _background(rng: np.random.Generator) -> np.ndarray:
    """Noise + strokes + blobs, float (H, W, 3) in [0, 255]."""
    level = rng.uniform(0, 90)
    layer = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(2, 9)):  # strokes: lines and arcs like pen marks
        x0, y0, x1, y1 = rng.uniform(-20, CANVAS + 20, 4)
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=int(rng.uniform(40, 170)), width=int(rng.integers(1, 4)))
        else:
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            draw.arc(box, *rng.uniform(0, 360, 2), fill=int(rng.uniform(40, 170)),
                     width=int(rng.integers(1, 4)))
    for _ in range(rng.integers(0, 4)):  # blobs
        cx, cy, r = rng.uniform(0, CANVAS), rng.uniform(0, CANVAS), rng.uniform(3, 20)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=int(rng.uniform(20, 110)))
    clutter = np.asarray(layer, dtype=np.float32)[..., None]  # (H, W, 1)
    tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)  # (3,)
    noise = rng.standard_normal((CANVAS, CANVAS, 1), dtype=np.float32) * np.float32(rng.uniform(3, 20))
    return np.maximum(np.float32(level) + noise, clutter) * tint


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of box ``a``'s area inside box ``b``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(iw * ih / max((a[2] - a[0]) * (a[3] - a[1]), 1e-6))


def _place(rng: np.random.Generator, digit: np.ndarray,
           boxes: list[np.ndarray]) -> Optional[tuple[np.ndarray, int, int, np.ndarray]]:
    """A scaled digit's alpha (h, w), its top-left corner and tight ink box, or None if every
    try overlaps an earlier digit by more than MAX_IOU or covers more than MAX_COVER of one."""
    for _ in range(20):
        h = int(rng.integers(DIGIT_SIZE[0], DIGIT_SIZE[1] + 1))
        w = int(np.clip(round(h * rng.uniform(0.7, 1.1)), DIGIT_SIZE[0], DIGIT_SIZE[1]))
        alpha = np.asarray(Image.fromarray(digit).resize((w, h), Image.Resampling.BILINEAR))
        alpha = np.clip(alpha, 0.0, 1.0)
        ys, xs = np.nonzero(alpha > INK * alpha.max())
        x, y = int(rng.integers(0, CANVAS - w + 1)), int(rng.integers(0, CANVAS - h + 1))
        box = np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1], np.float32)
        if all(_iou(box, b) <= MAX_IOU and _cover(b, box) <= MAX_COVER for b in boxes):
            return alpha, x, y, box
    return None


def _canvas(rng: np.random.Generator, digits: np.ndarray,
            labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One canvas: uint8 (H, W, 3), boxes (N, 4) float32, labels (N,) int64."""
    img = _background(rng)
    boxes: list[np.ndarray] = []
    cls: list[int] = []
    for j in rng.integers(0, len(digits), rng.integers(1, MAX_DIGITS + 1)):
        placed = _place(rng, digits[j], boxes)
        if placed is None:
            continue
        alpha, x, y, box = placed
        h, w = alpha.shape
        ink = rng.uniform(max(140.0, img.mean() + 90), 255) * rng.uniform(0.85, 1.0, 3)  # (3,)
        a = alpha[..., None]
        img[y:y + h, x:x + w] = img[y:y + h, x:x + w] * (1 - a) + ink * a
        boxes.append(box)
        cls.append(int(labels[j]))
    img = np.clip(img, 0, 255)
    if rng.random() < 0.2:
        img = 255 - img
    return (np.round(img).astype(np.uint8), np.stack(boxes).astype(np.float32),
            np.asarray(cls, dtype=np.int64))


@functools.lru_cache(maxsize=None)
def digits_detect_arrays(split: str) -> tuple[torch.Tensor, tuple[tuple[np.ndarray, np.ndarray], ...]]:
    """Build one split once per process: images uint8 (N, 3, 128, 128), per-image (boxes, labels)."""
    if split not in SPLIT_SIZES:
        raise UserError(f"digits-detect has splits {sorted(SPLIT_SIZES)}, not {split!r}", key="split")
    digits, labels = _digit_pools()[split]
    rng = np.random.default_rng([_SEED, list(SPLIT_SIZES).index(split)])
    n = SPLIT_SIZES[split]
    images = np.empty((n, CANVAS, CANVAS, 3), dtype=np.uint8)
    anns = []
    for i in range(n):
        images[i], b, c = _canvas(rng, digits, labels)
        b.setflags(write=False)
        c.setflags(write=False)
        anns.append((b, c))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), tuple(anns)


def digits_detect(split: str, *, transforms: Optional[Callable] = None) -> ArrayDetectionDataset:
    images, anns = digits_detect_arrays(split)
    records = [DetRecord(file=f"digits-detect/{split}/{i}", height=CANVAS, width=CANVAS,
                         boxes=b, labels=c, image_id=i) for i, (b, c) in enumerate(anns)]
    return ArrayDetectionDataset(images, records, [str(c) for c in range(10)],
                                 transforms=transforms, name="digits-detect", split=split)
