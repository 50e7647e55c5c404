"""YOLO txt folders: ``images/{split}/*`` + ``labels/{split}/*.txt`` of normalised
``class cx cy w h``, class names in ``classes.txt`` or ``data.yaml`` ``names:``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ...errors import UserError
from ...fileio import not_regular
from ..detection_dataset import DetRecord
from ..imaging import IMAGE_EXTENSIONS
from .checks import Log, class_list, clean_box, make_record, read_text, show

__all__ = ["read_yolo"]


def _yolo_names(y: Path, doc: Any) -> list[str]:
    """data.yaml's ``names``: a list of strings, or a mapping {0: name, 1: name, ...} whose keys
    are exactly the class indices 0..N-1 (the numbers in the label files)."""
    def bad(why: str) -> UserError:
        return UserError(f"{y}: {why}", key="data")

    if not isinstance(doc, dict):
        raise bad(f"must be a mapping with a 'names:' entry, got a {type(doc).__name__}")
    names = doc.get("names")
    if isinstance(names, dict):
        keys = list(names)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) \
                or sorted(keys) != list(range(len(keys))):
            raise bad(f"'names:' keys must be the class indices 0..{len(keys) - 1}, got "
                      f"{show(keys[:8])}")
        names = [names[k] for k in range(len(keys))]
    if not isinstance(names, list):
        raise bad("needs a 'names:' list (or 0: name mapping) of class names")
    for k, n in enumerate(names):
        if not isinstance(n, str):
            raise bad(f"class name {k} is a {type(n).__name__}, not a string (quote it: "
                      f"'{k}': \"...\"); class names must be strings")
    return [n.strip() for n in names]


def _yolo_classes(path: Path) -> list[str]:
    if os.path.lexists(path / "classes.txt"):
        return class_list(path / "classes.txt")
    for y in (path / "data.yaml", path / "dataset.yaml"):
        if y.is_file():
            try:
                import yaml
            except ImportError:
                raise UserError(f"{y}: reading data.yaml needs PyYAML: pip install 'googlenet[detect]'", key="data") from None

            try:
                # safe_load: plain data only. Aliases are shared references, so an alias bomb
                # loads small; only strings are accepted as names, so nothing expands it.
                doc = yaml.safe_load(read_text(y, "dataset description"))
            except yaml.YAMLError as e:
                raise UserError(f"{y}: not valid YAML ({e})", key="data") from None
            except (RecursionError, ValueError) as e:  # deep nesting; an int of 5,000 digits
                raise UserError(f"{y}: not usable YAML ({type(e).__name__}: "
                                f"{str(e)[:100]})", key="data") from None
            return _yolo_names(y, doc)
    raise UserError(f"{path}: a YOLO folder needs classes.txt or data.yaml with 'names:'", key="data")


def _yolo_lines(txt: Path, hw: tuple[int, int], n_cls: int,
                log: Log) -> Optional[tuple[list, list]]:
    why = not_regular(txt)
    if why is not None:
        log.bad(txt, f"{why}; its image is skipped")
        return None
    try:
        lines = txt.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        log.bad(txt, f"not a valid text file ({e}); its image is skipped")
        return None
    boxes, labels = [], []
    for n, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        parts = ln.split()
        try:
            c, cx, cy, w, h = int(parts[0]), *(float(p) for p in parts[1:])
            assert len(parts) == 5
        except (ValueError, TypeError, AssertionError):
            log.bad(txt, f"line {n}: expected 'class cx cy w h' (5 numbers), got {show(ln.strip()[:60])}")
            continue
        if not 0 <= c < n_cls:
            log.bad(txt, f"line {n}: class {c} is not one of the {n_cls} classes (0..{n_cls - 1})")
            continue
        H, W = hw
        box, why = clean_box((cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H, W, H)
        if box is None:
            log.bad(txt, f"line {n}: {why}")
        else:
            boxes.append(box)
            labels.append(c)
    return boxes, labels


def read_yolo(path: Path, split: str, log: Log) -> tuple[list[DetRecord], list[str]]:
    classes = _yolo_classes(path)
    img_dir, lbl_dir = path / "images" / split, path / "labels" / split
    # Hidden files (macOS ._x.jpg resource forks, .DS_Store) are not images of the dataset;
    # non-regular files named like images (a FIFO zz.jpg) are kept, to be refused by name.
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith(".") and not p.is_dir())
    stems = {p.stem for p in files}
    if lbl_dir.is_dir():
        for t in sorted(lbl_dir.glob("*.txt")):
            if t.stem not in stems and not t.name.startswith("."):
                log.bad(t, "label file has no image in " + str(img_dir))
    records = []
    for f in files:
        hw = log.image_size(f)
        if hw is None:
            continue
        txt = lbl_dir / f"{f.stem}.txt"
        got = _yolo_lines(txt, hw, len(classes), log) if os.path.lexists(txt) else ([], [])  # no file: no objects
        if got is not None:
            records.append(make_record(f, hw, got[0], got[1], len(records)))
    return records, classes
