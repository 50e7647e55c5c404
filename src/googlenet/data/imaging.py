"""Reading images from disk, safely: every failure becomes an ``ImageError`` naming the file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


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


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and convert one image to RGB.

    Raises ImageError (never a bare PIL/OSError) for a missing or unreadable file, a file that is
    not an image, a truncated or corrupt image, and an image over Pillow's decompression-bomb
    limit (``PIL.Image.MAX_IMAGE_PIXELS``), which is refused rather than decoded.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image")
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                img.load()  # decode now: truncated files fail here, not later in a worker
                return to_rgb_image(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{p}: refused, image is larger than Pillow's decompression-bomb limit of "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file (or a format Pillow cannot read)") from None
    except PermissionError:
        raise ImageError(f"{p}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{p}: corrupt or truncated image ({e})") from None


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files (by extension) under ``root``, sorted, recursively."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
