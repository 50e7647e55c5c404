"""Test-time crops (crops.py): counts and geometry of the 1, 10 and 144 crops of §7, for
landscape, portrait and square images, checked against independent references (torchvision's
TenCrop, Preprocess.eval_transform, and images whose colours say where a crop came from)."""

from collections import Counter

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from googlenet.data.crops import CROP_CHOICES, PAPER_SCALES, crop_boxes, multi_crop
from googlenet.data.preprocess import Preprocess

SHAPES = {"landscape": (90, 40), "portrait": (40, 90), "square": (48, 48)}  # (width, height)
PRE32 = Preprocess.for_size(32)  # crop 32, resize 37
PRE224 = Preprocess()  # crop 224, resize 256


def _noise_image(w: int, h: int, seed: int = 0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g)
    return Image.fromarray(a.numpy())


def _resized(w: int, h: int, s: int) -> tuple[int, int]:
    """Actual (width, height) torchvision gives when resizing the shorter side to ``s``."""
    y = TF.resize(torch.zeros(1, h, w, dtype=torch.uint8), [s], antialias=True)
    return y.shape[-1], y.shape[-2]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", CROP_CHOICES)
@pytest.mark.parametrize("pre", [PRE32, PRE224], ids=["crop32", "crop224"])
def test_counts_and_boxes_inside_image(shape, n, pre):
    w, h = SHAPES[shape]
    boxes = crop_boxes(w, h, pre, n)
    assert len(boxes) == n
    for b in boxes:
        rw, rh = _resized(w, h, b.scale)
        left, top, bw, bh = b.box
        assert 0 <= left and 0 <= top and left + bw <= rw and top + bh <= rh, b
        assert (bw, bh) == (pre.crop, pre.crop) or (b.kind == "square" and bw == bh == b.scale)
    # every crop comes mirrored and unmirrored (the 1-crop is the plain center crop only)
    if n > 1:
        plain = Counter((b.scale, b.box, b.kind, b.square) for b in boxes if not b.flip)
        flipped = Counter((b.scale, b.box, b.kind, b.square) for b in boxes if b.flip)
        assert plain == flipped and sum(plain.values()) == n // 2
    else:
        assert boxes[0].kind == "center" and not boxes[0].flip and boxes[0].scale == pre.resize


@pytest.mark.parametrize("shape", SHAPES)
def test_144_geometry(shape):
    """4 scales (256..352 scaled to the crop) x 3 squares x (4 corners, center, square) x 2."""
    w, h = SHAPES[shape]
    c = PRE32.crop
    boxes = crop_boxes(w, h, PRE32, 144)
    scales = [round(s * c / 224) for s in PAPER_SCALES]
    assert scales == [37, 41, 46, 50]
    assert Counter(b.scale for b in boxes) == {s: 36 for s in scales}
    for s in scales:
        rw, rh = _resized(w, h, s)
        assert min(rw, rh) == s
        squares = sorted({b.box[:2] for b in boxes if b.scale == s and b.kind == "square"})
        if shape == "landscape":  # left / center / right, full height
            assert squares == [(0, 0), ((rw - s) // 2, 0), (rw - s, 0)]
        elif shape == "portrait":  # top / center / bottom, full width
            assert squares == [(0, 0), (0, (rh - s) // 2), (0, rh - s)]
        else:  # a square image is its own square, three times
            assert squares == [(0, 0)]
        for q in range(3):
            six = [b for b in boxes if b.scale == s and b.square == q and not b.flip]
            assert sorted(b.kind for b in six) == sorted(
                ["top-left", "top-right", "bottom-left", "bottom-right", "center", "square"])
            box = {b.kind: b.box for b in six}
            x0, y0, sw, sh = box["square"]
            assert (sw, sh) == (s, s)
            assert box["top-left"] == (x0, y0, c, c)
            assert box["top-right"] == (x0 + s - c, y0, c, c)
            assert box["bottom-left"] == (x0, y0 + s - c, c, c)
            assert box["bottom-right"] == (x0 + s - c, y0 + s - c, c, c)
            cx, cy = box["center"][:2]
            assert abs(2 * (cx - x0) - (s - c)) <= 1 and abs(2 * (cy - y0) - (s - c)) <= 1


def test_144_scales_at_224_are_the_papers():
    boxes = crop_boxes(500, 375, PRE224, 144)
    assert sorted({b.scale for b in boxes}) == [256, 288, 320, 352]


def test_1_crop_is_the_center_of_the_10():
    for w, h in [*SHAPES.values(), (97, 33), (33, 97), (57, 61)]:
        one = crop_boxes(w, h, PRE32, 1)[0]
        assert one in crop_boxes(w, h, PRE32, 10)


@pytest.mark.parametrize("shape", SHAPES)
def test_center_crop_equals_eval_transform(shape):
    img = _noise_image(*SHAPES[shape])
    for pre in (PRE32, Preprocess.for_size(40, interpolation="bicubic"),
                Preprocess.for_size(32, grayscale=True, mean=(0.5,), std=(0.25,))):
        x = multi_crop(img, pre, 1)
        assert x.shape == (1, pre.channels(), pre.crop, pre.crop)
        torch.testing.assert_close(x[0], pre.eval_transform()(img), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_10_crops_are_torchvision_fivecrop_and_mirrors(shape):
    img = _noise_image(*SHAPES[shape], seed=1)
    pre = PRE32
    ours = multi_crop(img, pre, 10)
    assert ours.shape == (10, 3, 32, 32)
    resized = TF.resize(TF.to_image(img), [pre.resize], antialias=True)
    ref = torch.stack([pre.normalize()(t) for t in T.FiveCrop(pre.crop)(resized)])
    torch.testing.assert_close(ours[:5], ref, rtol=0, atol=1e-5)  # tl, tr, bl, br, center
    # Crop i+5 is crop i mirrored. (torchvision's TenCrop instead crops the mirrored image; its
    # mirrored center then sits one pixel off ours when the margin is odd, as for 90x40 here.)
    torch.testing.assert_close(ours[5:], ours[:5].flip(-1))


def _striped(w: int, h: int, vertical: bool) -> Image.Image:
    """Three equal stripes red | green | blue, along the long side."""
    a = torch.zeros(h, w, 3, dtype=torch.uint8)
    n = w if vertical else h
    for k in range(3):
        sl = slice(k * n // 3, (k + 1) * n // 3)
        if vertical:
            a[:, sl, k] = 255
        else:
            a[sl, :, k] = 255
    return Image.fromarray(a.numpy())


@pytest.mark.parametrize("shape", ["landscape", "portrait"])
def test_144_squares_see_the_right_third(shape):
    """A 3:1 image of three coloured squares: square q of the 144 crops sees colour q."""
    w, h = (108, 36) if shape == "landscape" else (36, 108)
    img = _striped(w, h, vertical=shape == "landscape")
    pre = Preprocess.for_size(32, mean=(0, 0, 0), std=(1, 1, 1))  # keep raw [0, 1] pixels
    boxes = crop_boxes(w, h, pre, 144)
    x = multi_crop(img, pre, 144, boxes)
    assert x.shape == (144, 3, 32, 32)
    for b, crop in zip(boxes, x):
        colour = crop.mean(dim=(1, 2))  # (3,)
        assert colour.argmax().item() == b.square, b
        if b.kind == "square":  # the whole square resized: one pure colour, no neighbours
            assert colour[b.square] > 0.95 and colour.sum() < 1.1


def test_mirrored_crops_are_flipped():
    img = _noise_image(70, 50, seed=2)
    boxes = crop_boxes(70, 50, PRE32, 144)
    x = multi_crop(img, PRE32, 144, boxes)
    index = {(b.scale, b.box, b.flip): i for i, b in enumerate(boxes)}
    for i, b in enumerate(boxes):
        if b.flip:
            torch.testing.assert_close(x[i], x[index[(b.scale, b.box, False)]].flip(-1))


def test_bad_crop_count():
    with pytest.raises(ValueError, match="crops must be one of"):
        crop_boxes(64, 64, PRE32, 5)
