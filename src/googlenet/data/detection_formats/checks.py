"""What every detection reader shares: ``Log`` (skip-and-name or strict, paths kept inside the
dataset, image files checked before they are opened), the value checks and ``clean_box``; the
policy they apply is the table in ``detection_formats``' docstring."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import UserError
from ...fileio import not_regular
from ..detection_dataset import DetRecord
from ..imaging import ImageError, read_image_size

__all__ = ["MAX_SIDE", "Log", "reason", "read_text", "class_list", "whole", "number", "show",
           "usable_id", "clean_box", "make_record"]

# Image sides an annotation may state (COCO width/height, VOC <size>): Pillow's decompression-bomb
# limit refuses far less than this in pixels; the bound only keeps absurd numbers out.
MAX_SIDE = 1 << 20


class Log:
    """Collects (file, why) for skipped annotations, or raises at the first with strict=True.
    ``root`` is the dataset folder: image and annotation paths must stay inside it."""

    def __init__(self, strict: bool, root: Path) -> None:
        self.strict = strict
        self.root = root
        self.skipped: list[tuple[str, str]] = []

    def bad(self, file: str | os.PathLike, why: str) -> None:
        if self.strict:
            raise UserError(f"{file}: {why}; fix or remove it, or open the dataset without strict "
                            f"to skip it", key="data")
        self.skipped.append((str(file), why))

    def inside(self, base: Path, name: Any, listed_in: str | os.PathLike,
               what: str) -> Optional[Path]:
        """``base / name`` if ``name`` is a non-empty string naming a path inside the dataset
        folder, else None (logged against ``listed_in``). Checked on the path as written
        (``..`` and absolute paths), so a folder of the dataset that is a symlink still works."""
        if not isinstance(name, str) or not name.strip() or "\0" in name:
            self.bad(listed_in, f"{what}: {show(name)} is not a file name")
            return None
        root = os.path.abspath(self.root)
        full = os.path.normpath(os.path.join(os.path.abspath(base), name))
        if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
            self.bad(listed_in, f"{what}: {show(name, 300)} resolves outside the dataset folder {self.root} "
                                f"({full}); not read")
            return None
        return base / name

    def image_file(self, file: Path, listed: str) -> bool:
        """Whether ``file`` is a regular file (a FIFO is refused before it is opened); else it
        is logged as "{listed} but the file is missing" (or what it is instead)."""
        why = not_regular(file)
        if why is None:
            return True
        self.bad(file, f"{listed} but the file is missing" if why == "no such file"
                 else f"{listed} but the file is unusable: {why}")
        return False

    def image_size(self, file: Path) -> Optional[tuple[int, int]]:
        """(height, width) from the header, or None with the reason logged (not an image, a
        FIFO, over the decompression-bomb limit, ...)."""
        try:
            w, h = read_image_size(file)
        except ImageError as e:
            self.bad(file, reason(e, file))
            return None
        return h, w


def reason(e: Exception, file: Path) -> str:
    """An ImageError's message without the path it starts with (``Log.bad`` adds it)."""
    msg = str(e)
    return msg[len(str(file)) + 2:] if msg.startswith(f"{file}: ") else msg


def read_text(file: Path, what: str) -> str:
    """A whole text file that the dataset cannot do without (a class list, a split list): UTF-8,
    else a UserError naming it."""
    why = not_regular(file)
    if why is not None:
        raise UserError(f"{file}: {why}; the {what} must be a text file", key="data")
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: the {what} is not UTF-8 text ({e}); save it as UTF-8",
                        key="data") from None


def whole(v: Any, lo: int = 1, hi: int = MAX_SIDE) -> Optional[int]:
    """``v`` as an int in [lo, hi] (an int, or an integral float), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    return v if isinstance(v, int) and lo <= v <= hi else None


def number(v: Any) -> Optional[float]:
    """A JSON number as a float (inf for one too large), else None (a string, null, a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v)
    except OverflowError:  # an integer of hundreds of digits
        return math.inf


def show(v: Any, most: int = 60) -> str:
    """``repr(v)``, cut to ``most`` characters (a value from a hostile file can be megabytes)."""
    r = repr(v)
    return r if len(r) <= most else r[:most - 4] + " ..."


def usable_id(v: Any) -> bool:
    """A usable id: a whole number or a string (not a bool, list, dict or null)."""
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, str)


def clean_box(x0: float, y0: float, x1: float, y1: float, width: int,
              height: int) -> tuple[Optional[list[float]], str]:
    """Validate an XYXY box on a width x height image: (clipped box, "") or (None, why)."""
    vals = (x0, y0, x1, y1)
    if not all(np.isfinite(v) for v in vals):
        return None, f"box {list(vals)} has a non-finite coordinate"
    for lo, hi, what in ((x0, x1, "width"), (y0, y1, "height")):
        if hi - lo == 0:
            return None, f"box has zero {what}"
        if hi - lo < 0:
            return None, f"box has negative {what} ({hi - lo:g})"
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return None, f"box {[round(v, 2) for v in vals]} lies wholly outside the {width}x{height} image"
    return [max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)], ""


def make_record(file: Path, hw: tuple[int, int], boxes: list, labels: list, image_id: int,
                difficult: Optional[list] = None) -> DetRecord:
    return DetRecord(file=str(file), height=int(hw[0]), width=int(hw[1]),
                     boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                     labels=np.asarray(labels, dtype=np.int64).reshape(-1), image_id=int(image_id),
                     difficult=None if difficult is None else np.asarray(difficult, dtype=bool))


def class_list(file: Path) -> list[str]:
    return [ln.strip() for ln in read_text(file, "class list").splitlines() if ln.strip()]
