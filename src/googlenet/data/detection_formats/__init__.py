"""Readers for detection folders in COCO JSON, Pascal VOC XML and YOLO txt form.

Each reader turns a split into ``DetRecord``s (validated boxes in XYXY pixels) without decoding
images. Every annotation is checked, and a bad one is named in ``skipped`` (or, strict, stops):

    box partly outside the image      clipped to the image (kept, not listed)
    box wholly outside the image      skipped
    zero or negative width/height     skipped
    unknown class                     skipped
    a field of the wrong type         skipped (a bbox of strings, iscrowd "0", an image_id list)
    image listed twice                every copy skipped (its boxes cannot be told apart); a VOC
                                      id listed twice in ImageSets is used once
    image listed but missing          the image skipped; so is a FIFO, a directory, a file that
                                      is not an image or over the decompression-bomb limit
    image path outside the dataset    the image skipped: a COCO ``file_name``, a VOC
                                      ``<filename>`` or ImageSets line whose ``..`` or absolute
                                      path leads out of the dataset folder is never read
    file that is not valid JSON/XML/txt   the file (and its image) skipped; a broken COCO
                                      annotation file, class list (classes.txt, data.yaml) or
                                      ImageSets list stops everything (there is nothing else)

Structure is checked at this boundary, once: JSON/XML/YAML of the wrong shape, nesting deeper
than the parser's recursion limit, integers of thousands of digits, non-UTF-8 text and class
names that are not strings are a ``UserError`` naming the file, never a crash further in.

Why not pycocotools' ``COCO`` / torchvision's ``CocoDetection``/``VOCDetection`` for reading:
they index and return annotations as given (a zero-width box or an unknown category passes
through, a broken XML file raises mid-epoch), and none names the bad annotation; the files are
plain JSON/XML, so reading them here costs a few lines. torchvision's ``VOCDetection`` is used to
download VOC, and its ``parse_voc_xml`` to read VOC's XML.

Coordinates: COCO ``bbox`` is [x, y, w, h] in continuous pixels; VOC's 1-based inclusive pixel
indices become ``(xmin - 1, ymin - 1, xmax, ymax)`` (as Detectron2 reads them); YOLO's
normalised ``cx cy w h`` are scaled by the image size (read from the file header).

Layout: the policy is applied by one ``checks.Log`` and one set of value checks (``checks``),
used by a reader per format (``coco``, ``voc``, ``yolo``); this module picks the reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ...errors import UserError
from ..datasets import default_data_root
from ..detection_dataset import DetRecord, FileDetectionDataset
from .checks import Log, clean_box
from .coco import coco_paths, read_coco
from .voc import VOC_CLASSES, read_voc, voc_root
from .yolo import read_yolo

__all__ = ["open_folder", "open_voc_download", "VOC_CLASSES", "clean_box"]


def open_voc_download(kind: str, split: str, *, transforms: Optional[Callable], strict: bool,
                      root: Optional[str | os.PathLike], download: bool) -> FileDetectionDataset:
    """Pascal VOC 2007/2012 through torchvision (downloaded into ``root`` when ``download``)."""
    from torchvision.datasets import VOCDetection

    year = kind[3:]
    base = Path(root) if root is not None else default_data_root()
    try:
        VOCDetection(str(base), year=year, image_set=split, download=download)
    except (RuntimeError, ValueError, OSError) as e:
        hint = "" if download else " (pass download=True to fetch it)"
        raise UserError(f"{kind} {split} not found under {base}{hint}: {e}", key="data_root") from None
    return open_folder(base / "VOCdevkit" / f"VOC{year}", split, transforms=transforms,
                       strict=strict, seed=0, val_fraction=0.0, name=kind)


def _reader(path: Path, split: str) -> Optional[Callable[[Log], tuple[list[DetRecord], list[str]]]]:
    coco = coco_paths(path, split)
    if coco is not None:
        return lambda log: read_coco(coco[0], coco[1], log)
    voc = voc_root(path)
    if voc is not None:
        if (voc / "ImageSets" / "Main" / f"{split}.txt").is_file():
            return lambda log: read_voc(voc, split, log)
        return None
    if (path / "images" / split).is_dir():
        return lambda log: read_yolo(path, split, log)
    return None


def open_folder(path: Path, split: str, *, transforms: Optional[Callable], strict: bool, seed: int,
                val_fraction: float, name: str = "") -> FileDetectionDataset:
    """A COCO, VOC or YOLO folder's split; a missing val split is a seeded part of train."""
    log = Log(strict, path)
    read = _reader(path, split)
    holdout = (split in ("train", "val") and val_fraction > 0 and _reader(path, "val") is None
               and _reader(path, "train") is not None)
    if holdout:
        read = _reader(path, "train")
    if read is None:
        raise UserError(f"{path}: no {split!r} split in COCO (annotations/instances_{split}.json or "
                        f"{split}.json), VOC (ImageSets/Main/{split}.txt) or YOLO (images/{split}/) "
                        f"form", key="data")
    records, classes = read(log)
    if not classes:
        raise UserError(f"{path}: the dataset names no classes (an empty classes.txt, data.yaml "
                        f"'names:' or COCO 'categories'); a detector needs at least one",
                        key="data")
    if holdout:
        order = np.random.default_rng(seed).permutation(len(records))
        n_val = max(1, round(len(records) * val_fraction))
        keep = sorted(order[:n_val]) if split == "val" else sorted(order[n_val:])
        records = [records[i] for i in keep]
    return FileDetectionDataset(records, classes, transforms=transforms, name=name or path.name,
                                split=split, skipped=log.skipped, strict=strict)
