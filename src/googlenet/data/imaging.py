"""Reading images from disk, safely: every failure becomes an ``ImageError`` naming the file.

Memory per image is bounded before anything is decoded or resized: Pillow's decompression-bomb
limit bounds the decoded pixels, ``MAX_ASPECT_RATIO`` refuses a 100000x1 strip (whose shorter
side resized to 256 would be 25.6 Gpixel), and ``check_resized_size`` refuses any resize whose
result would exceed ``MAX_RESIZED_PIXELS``. Non-regular files (FIFOs, devices, sockets) are
refused before they are opened, since reading one can block forever. EXIF orientation is applied.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..fileio import not_regular

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Longer side / shorter side. Wider panoramas exist (360-degree ones are ~10:1), but nothing a
# classifier is meant to see comes near 100:1, and the bound keeps "resize the shorter side to S"
# at most 100 * S^2 pixels.
MAX_ASPECT_RATIO = 100
# Pixels of one image after resizing its shorter side (144 crops at 224: 352 x (up to 100 x 352)
# = 12.4 Mpixel, 37 MB as uint8 RGB). 64 Mpixel = 192 MB of uint8 RGB, 768 MB as float32.
MAX_RESIZED_PIXELS = 64_000_000


class ImageError(UserError):
    """A file that cannot be used as an image; the message starts with its path."""


def to_rgb_image(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F, ...) -> 8-bit RGB.

    Transparent pixels are composited on white; 16-bit and 32-bit grey images are scaled by their
    full range (65535 for 16-bit) rather than clipped, so they don't saturate to white.
    """
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and a.max() > 255):
            hi = 65535.0
        elif img.mode == "F" and a.max() <= 1.0:
            hi = 1.0
        else:
            hi = 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def check_regular_file(path: str | os.PathLike) -> Path:
    """``path`` if it names a regular file (symlinks followed), else ImageError with the real
    reason: no such file, permission denied, a name too long, a directory, or a FIFO/device/
    socket (opening one can block forever, so it is refused before any ``open``)."""
    why = not_regular(path)
    if why is not None:
        raise ImageError(f"{path}: {why}{', not an image' if why == 'is a directory' else ''}")
    return Path(path)


def check_aspect_ratio(width: int, height: int, source: str = "") -> None:
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(f"{source + ': ' if source else ''}refused, {width}x{height} pixels has an aspect ratio over "
                         f"{MAX_ASPECT_RATIO}:1 (resizing its shorter side would need too much "
                         f"memory)")


def check_resized_size(width: int, height: int, shorter: int, source: str = "") -> None:
    """ImageError unless resizing a ``width`` x ``height`` image so that its shorter side is
    ``shorter`` stays within ``MAX_RESIZED_PIXELS`` (checked without allocating anything)."""
    check_aspect_ratio(width, height, source)
    short, long_ = min(width, height), max(width, height)
    pixels = shorter * int(shorter * long_ / short)
    if pixels > MAX_RESIZED_PIXELS:
        raise ImageError(f"{source + ': ' if source else ''}refused, {width}x{height} pixels with "
                         f"the shorter side "
                         f"resized to {shorter} would be {pixels / 1e6:,.0f} Mpixel, over the "
                         f"limit of {MAX_RESIZED_PIXELS / 1e6:.0f} Mpixel")


class ResizedSizeCheck:
    """A transform step (PIL image in, unchanged out) that refuses images ``check_resized_size``
    refuses; a class, not a lambda, so DataLoader workers can pickle it."""

    def __init__(self, shorter: int) -> None:
        self.shorter = shorter

    def __call__(self, img: Any) -> Any:
        w, h = img.size if isinstance(img, Image.Image) else (img.shape[-1], img.shape[-2])
        check_resized_size(w, h, self.shorter)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shorter={self.shorter})"


def _exif_transpose(img: Image.Image, p: Path) -> Image.Image:
    """The image as its camera meant it (EXIF orientation applied). A damaged EXIF block is
    ignored with a warning, as browsers do: the pixels themselves are fine."""
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright image
        return img
    except Exception as e:  # noqa: BLE001  Pillow's EXIF parser raises many types on bad data
        warnings.warn(f"{p}: EXIF orientation ignored, unreadable EXIF data ({e})", stacklevel=3)
        return img


@contextlib.contextmanager
def _image_errors(p: Path) -> Iterator[None]:
    """Every way Pillow fails on a file, as one ``ImageError`` naming it."""
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{p}: refused, image is larger than Pillow's decompression-bomb limit of "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file (or a format Pillow cannot read)") from None
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except MemoryError:
        raise ImageError(f"{p}: not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{p}: corrupt or truncated image ({e})") from None


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode, orient (EXIF) and convert one image to RGB.

    Raises ImageError (never a bare PIL/OSError) for a missing or unreadable file, a directory,
    FIFO or device, a file that is not an image, a truncated or corrupt image, an image over
    Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) or over
    ``MAX_ASPECT_RATIO``; those are refused from their header, before decoding.
    """
    p = check_regular_file(path)
    with _image_errors(p), Image.open(p) as img:
        check_aspect_ratio(img.width, img.height, str(p))
        img.load()  # decode now: truncated files fail here, not later in a worker
        return to_rgb_image(_exif_transpose(img, p))


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the image header, nothing decoded, with the refusals of
    ``load_image`` that the header decides (not a regular file, not an image, over the
    decompression-bomb limit or ``MAX_ASPECT_RATIO``), each an ``ImageError`` naming the file.
    The size is as stored (EXIF orientation not applied)."""
    p = check_regular_file(path)
    with _image_errors(p), Image.open(p) as img:
        check_aspect_ratio(img.width, img.height, str(p))
        return img.width, img.height


def is_hidden(path: Path, root: Path) -> bool:
    """A name starting with "." anywhere below ``root``: macOS ``._*`` resource forks,
    ``.DS_Store``, ``.git/``; never images of the dataset."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files (by extension) under ``root``, sorted, recursively; hidden files and folders
    skipped. Entries that are not directories are kept even when not regular files (a FIFO named
    x.jpg): ``load_image`` then refuses them by name instead of their vanishing silently."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                  and not is_hidden(p, root) and not p.is_dir())
