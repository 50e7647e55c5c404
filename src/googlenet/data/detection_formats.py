"""Readers for detection folders in COCO JSON, Pascal VOC XML and YOLO txt form.

Each reader turns a split into ``DetRecord``s (validated boxes in XYXY pixels) without decoding
images. Every annotation is checked, and a bad one is named in ``skipped`` (or, strict, stops):

    box partly outside the image      clipped to the image (kept, not listed)
    box wholly outside the image      skipped
    zero or negative width/height     skipped
    unknown class                     skipped
    image listed but missing          the image skipped
    file that is not valid JSON/XML/txt   the file (and its image) skipped; a broken COCO
                                      annotation file stops everything (there is nothing else)

Why not pycocotools' ``COCO`` / torchvision's ``CocoDetection``/``VOCDetection`` for reading:
they index and return annotations as given (a zero-width box or an unknown category passes
through, a broken XML file raises mid-epoch), and none names the bad annotation; the files are
plain JSON/XML, so reading them here costs a few lines. torchvision's ``VOCDetection`` is used to
download VOC, and its ``parse_voc_xml`` to read VOC's XML.

Coordinates: COCO ``bbox`` is [x, y, w, h] in continuous pixels; VOC's 1-based inclusive pixel
indices become ``(xmin - 1, ymin - 1, xmax, ymax)`` (as Detectron2 reads them); YOLO's
normalised ``cx cy w h`` are scaled by the image size (read from the file header).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import UserError
from .detection import DetRecord, FileDetectionDataset
from .imaging import IMAGE_EXTENSIONS

__all__ = ["open_folder", "open_voc_download", "VOC_CLASSES", "clean_box"]

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
               "sofa", "train", "tvmonitor")


class _Log:
    """Collects (file, why) for skipped annotations, or raises at the first with strict=True."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped: list[tuple[str, str]] = []

    def bad(self, file: str | os.PathLike, why: str) -> None:
        if self.strict:
            raise UserError(f"{file}: {why}; fix or remove it, or open the dataset without strict "
                            f"to skip it", key="data")
        self.skipped.append((str(file), why))


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


def _image_size(file: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    from PIL import Image

    with Image.open(file) as im:
        return im.height, im.width


def _record(file: Path, hw: tuple[int, int], boxes: list, labels: list, image_id: int) -> DetRecord:
    return DetRecord(file=str(file), height=int(hw[0]), width=int(hw[1]),
                     boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                     labels=np.asarray(labels, dtype=np.int64).reshape(-1), image_id=int(image_id))


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------

def _coco_paths(path: Path, split: str) -> Optional[tuple[Path, Path]]:
    for ann in (path / "annotations" / f"instances_{split}.json",
                path / "annotations" / f"instances_{split}2017.json", path / f"{split}.json"):
        if ann.is_file():
            for d in (path / split, path / f"{split}2017", path / "images" / split, path / "images"):
                if d.is_dir():
                    return ann, d
            return ann, path
    return None


def _coco_load(ann: Path) -> dict:
    try:
        with open(ann, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{ann}: not valid JSON ({e}); fix or replace the annotation file",
                        key="data") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise UserError(f"{ann}: not a COCO annotation file (needs 'images' and 'categories' "
                        f"lists)", key="data")
    return data


def _coco(ann: Path, img_dir: Path, log: _Log) -> tuple[list[DetRecord], list[str]]:
    data = _coco_load(ann)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[Any, list[dict]] = {}
    images = {im.get("id"): im for im in data["images"]}
    for a in data.get("annotations", []):
        aid = a.get("id", "?")
        if a.get("image_id") not in images:
            log.bad(ann, f"annotation id {aid}: image_id {a.get('image_id')!r} is not in 'images'")
        elif a.get("category_id") not in cat_index:
            log.bad(ann, f"annotation id {aid}: category_id {a.get('category_id')!r} is not in "
                         f"'categories'")
        elif not (isinstance(a.get("bbox"), list) and len(a["bbox"]) == 4):
            log.bad(ann, f"annotation id {aid}: bbox must be [x, y, width, height]")
        elif not a.get("iscrowd", 0):  # crowd regions are not objects to detect (as torchvision)
            per_image.setdefault(a["image_id"], []).append(a)
    records = []
    for iid, im in images.items():
        file = img_dir / str(im.get("file_name", ""))
        if not file.is_file():
            log.bad(file, f"image id {iid} is listed in {ann.name} but the file is missing")
            continue
        hw = (im["height"], im["width"]) if "height" in im and "width" in im else _image_size(file)
        boxes, labels = [], []
        for a in per_image.get(iid, []):
            x, y, w, h = (float(v) for v in a["bbox"])
            box, why = clean_box(x, y, x + w, y + h, hw[1], hw[0])
            if box is None:
                log.bad(ann, f"annotation id {a.get('id', '?')}: {why}")
            else:
                boxes.append(box)
                labels.append(cat_index[a["category_id"]])
        records.append(_record(file, hw, boxes, labels, iid if isinstance(iid, int) else len(records)))
    return records, [str(c.get("name", c["id"])) for c in cats]


# ---------------------------------------------------------------------------------------------
# Pascal VOC
# ---------------------------------------------------------------------------------------------

def _voc_root(path: Path) -> Optional[Path]:
    for r in (path, path / "VOCdevkit" / "VOC2007", path / "VOCdevkit" / "VOC2012", path / "VOC2007"):
        if (r / "Annotations").is_dir() and (r / "ImageSets" / "Main").is_dir():
            return r
    return None


def _voc_parse(xml: Path, log: _Log) -> Optional[dict]:
    from torchvision.datasets import VOCDetection

    try:
        ann = VOCDetection.parse_voc_xml(ET.parse(xml).getroot()).get("annotation", {})
    except (ET.ParseError, OSError) as e:
        log.bad(xml, f"not valid XML ({e})")
        return None
    objs = ann.get("object", [])
    ann["object"] = objs if isinstance(objs, list) else [objs]
    return ann


def _voc_classes(root: Path, anns: list[dict]) -> list[str]:
    """classes.txt if given; else VOC's 20 if every name is a VOC class; else the sorted names."""
    if (root / "classes.txt").is_file():
        return [ln.strip() for ln in (root / "classes.txt").read_text().splitlines() if ln.strip()]
    names = {str(o.get("name", "")).strip() for a in anns for o in a["object"]}
    return list(VOC_CLASSES) if names <= set(VOC_CLASSES) else sorted(names)


def _voc_object(o: dict, hw: tuple[int, int], classes: dict[str, int]) -> tuple[Optional[list], str]:
    name = str(o.get("name", "")).strip()
    if name not in classes:
        return None, f"object {name!r} is not a known class"
    try:
        b = o["bndbox"]
        x0, y0, x1, y1 = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, TypeError, ValueError):
        return None, f"object {name!r}: bndbox needs numeric xmin, ymin, xmax, ymax"
    return clean_box(x0 - 1, y0 - 1, x1, y1, hw[1], hw[0])


def _voc(root: Path, split: str, log: _Log) -> tuple[list[DetRecord], list[str]]:
    ids = [ln.split()[0] for ln in (root / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
           if ln.strip()]
    parsed = []
    for i in ids:
        xml = root / "Annotations" / f"{i}.xml"
        if not xml.is_file():
            log.bad(xml, f"image {i} is listed in ImageSets/Main/{split}.txt but has no annotation")
            continue
        ann = _voc_parse(xml, log)
        if ann is not None:
            parsed.append((i, xml, ann))
    classes = _voc_classes(root, [a for _, _, a in parsed])
    index = {c: k for k, c in enumerate(classes)}
    records = []
    for i, xml, ann in parsed:
        file = root / "JPEGImages" / str(ann.get("filename") or f"{i}.jpg")
        if not file.is_file():
            log.bad(file, f"image {i} is listed in ImageSets/Main/{split}.txt but the file is missing")
            continue
        size = ann.get("size") or {}
        try:
            hw = (int(size["height"]), int(size["width"]))
        except (KeyError, TypeError, ValueError):
            hw = _image_size(file)
        boxes, labels = [], []
        for k, o in enumerate(ann["object"]):
            box, why = _voc_object(o, hw, index)
            if box is None:
                log.bad(xml, f"object {k}: {why}")
            else:
                boxes.append(box)
                labels.append(index[str(o["name"]).strip()])
        records.append(_record(file, hw, boxes, labels, len(records)))
    return records, classes


def open_voc_download(kind: str, split: str, *, transforms: Optional[Callable], strict: bool,
                      root: Optional[str | os.PathLike], download: bool) -> FileDetectionDataset:
    """Pascal VOC 2007/2012 through torchvision (downloaded into ``root`` when ``download``)."""
    from torchvision.datasets import VOCDetection

    from .datasets import default_data_root

    year = kind[3:]
    base = Path(root) if root is not None else default_data_root()
    try:
        VOCDetection(str(base), year=year, image_set=split, download=download)
    except (RuntimeError, ValueError, OSError) as e:
        hint = "" if download else " (pass download=True to fetch it)"
        raise UserError(f"{kind} {split} not found under {base}{hint}: {e}", key="data_root") from None
    return open_folder(base / "VOCdevkit" / f"VOC{year}", split, transforms=transforms,
                       strict=strict, seed=0, val_fraction=0.0, name=kind)


# ---------------------------------------------------------------------------------------------
# YOLO
# ---------------------------------------------------------------------------------------------

def _yolo_classes(path: Path) -> list[str]:
    if (path / "classes.txt").is_file():
        return [ln.strip() for ln in (path / "classes.txt").read_text().splitlines() if ln.strip()]
    for y in (path / "data.yaml", path / "dataset.yaml"):
        if y.is_file():
            import yaml

            try:
                names = (yaml.safe_load(y.read_text()) or {}).get("names")
            except yaml.YAMLError as e:
                raise UserError(f"{y}: not valid YAML ({e})", key="data") from None
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names)]
            if isinstance(names, list):
                return [str(n) for n in names]
            raise UserError(f"{y}: needs a 'names:' list of class names", key="data")
    raise UserError(f"{path}: a YOLO folder needs classes.txt or data.yaml with 'names:'", key="data")


def _yolo_lines(txt: Path, hw: tuple[int, int], n_cls: int,
                log: _Log) -> Optional[tuple[list, list]]:
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
            log.bad(txt, f"line {n}: expected 'class cx cy w h' (5 numbers), got {ln.strip()[:60]!r}")
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


def _yolo(path: Path, split: str, log: _Log) -> tuple[list[DetRecord], list[str]]:
    classes = _yolo_classes(path)
    img_dir, lbl_dir = path / "images" / split, path / "labels" / split
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    stems = {p.stem for p in files}
    if lbl_dir.is_dir():
        for t in sorted(lbl_dir.glob("*.txt")):
            if t.stem not in stems:
                log.bad(t, "label file has no image in " + str(img_dir))
    records = []
    for f in files:
        try:
            hw = _image_size(f)
        except OSError as e:
            log.bad(f, f"not a readable image ({e})")
            continue
        txt = lbl_dir / f"{f.stem}.txt"
        got = _yolo_lines(txt, hw, len(classes), log) if txt.is_file() else ([], [])  # no file: no objects
        if got is not None:
            records.append(_record(f, hw, got[0], got[1], len(records)))
    return records, classes


# ---------------------------------------------------------------------------------------------
# Folder entry point
# ---------------------------------------------------------------------------------------------

def _reader(path: Path, split: str) -> Optional[Callable[[_Log], tuple[list[DetRecord], list[str]]]]:
    coco = _coco_paths(path, split)
    if coco is not None:
        return lambda log: _coco(coco[0], coco[1], log)
    voc = _voc_root(path)
    if voc is not None:
        if (voc / "ImageSets" / "Main" / f"{split}.txt").is_file():
            return lambda log: _voc(voc, split, log)
        return None
    if (path / "images" / split).is_dir():
        return lambda log: _yolo(path, split, log)
    return None


def open_folder(path: Path, split: str, *, transforms: Optional[Callable], strict: bool, seed: int,
                val_fraction: float, name: str = "") -> FileDetectionDataset:
    """A COCO, VOC or YOLO folder's split; a missing val split is a seeded part of train."""
    log = _Log(strict)
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
    if holdout:
        order = np.random.default_rng(seed).permutation(len(records))
        n_val = max(1, round(len(records) * val_fraction))
        keep = sorted(order[:n_val]) if split == "val" else sorted(order[n_val:])
        records = [records[i] for i in keep]
    return FileDetectionDataset(records, classes, transforms=transforms, name=name or path.name,
                                split=split, skipped=log.skipped)
