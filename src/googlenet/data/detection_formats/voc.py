"""Pascal VOC XML folders: ``Annotations/*.xml`` + ``ImageSets/Main/{split}.txt`` +
``JPEGImages/``; VOC's 1-based inclusive pixel indices become ``(xmin - 1, ymin - 1, xmax,
ymax)`` (as Detectron2 reads them)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from ..detection_dataset import DetRecord
from .checks import Log, class_list, clean_box, make_record, read_text, show, whole

__all__ = ["VOC_CLASSES", "voc_root", "read_voc"]

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
               "sofa", "train", "tvmonitor")


def voc_root(path: Path) -> Optional[Path]:
    for r in (path, path / "VOCdevkit" / "VOC2007", path / "VOCdevkit" / "VOC2012", path / "VOC2007"):
        if (r / "Annotations").is_dir() and (r / "ImageSets" / "Main").is_dir():
            return r
    return None


def _voc_parse(xml: Path, log: Log) -> Optional[dict]:
    """The <annotation> element as torchvision's dict, its objects a list of dicts; None (logged)
    when the file is not usable VOC XML."""
    from torchvision.datasets import VOCDetection

    try:
        root = ET.parse(xml).getroot()
        ann = VOCDetection.parse_voc_xml(root).get("annotation")
    except (ET.ParseError, OSError) as e:
        log.bad(xml, f"not valid XML ({e})")
        return None
    except RecursionError:
        log.bad(xml, "not usable VOC XML (nested too deeply)")
        return None
    if not isinstance(ann, dict):
        log.bad(xml, "not a VOC annotation (no <annotation> element with <object>/<size> "
                     "elements inside)")
        return None
    objs = ann.get("object", [])
    objs = objs if isinstance(objs, list) else [objs]
    ann["object"] = []
    for k, o in enumerate(objs):
        if isinstance(o, dict):
            ann["object"].append(o)
        else:
            log.bad(xml, f"object {k}: <object> without <name>/<bndbox> elements; skipped")
    return ann


def _voc_classes(root: Path, anns: list[dict]) -> list[str]:
    """classes.txt if given; else VOC's 20 if every name is a VOC class; else the sorted names."""
    if os.path.lexists(root / "classes.txt"):
        return class_list(root / "classes.txt")
    names = {str(o.get("name", "")).strip() for a in anns for o in a["object"]}
    return list(VOC_CLASSES) if names <= set(VOC_CLASSES) else sorted(names)


def _voc_object(o: dict, hw: tuple[int, int], classes: dict[str, int]) -> tuple[Optional[list], str]:
    name = str(o.get("name", "")).strip()
    if name not in classes:
        return None, f"object {show(name)} is not a known class"
    try:
        b = o["bndbox"]
        x0, y0, x1, y1 = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, TypeError, ValueError):
        return None, f"object {show(name)}: bndbox needs numeric xmin, ymin, xmax, ymax"
    return clean_box(x0 - 1, y0 - 1, x1, y1, hw[1], hw[0])


def read_voc(root: Path, split: str, log: Log) -> tuple[list[DetRecord], list[str]]:
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    ids: list[str] = []
    for n, ln in enumerate(read_text(listing, "split list").splitlines(), 1):
        if not ln.strip():
            continue
        i = ln.split()[0]
        if i in ids:
            log.bad(listing, f"line {n}: image {show(i)} is listed again; used once")
        else:
            ids.append(i)
    parsed = []
    for i in ids:
        xml = log.inside(root / "Annotations", f"{i}.xml", listing, f"image {show(i)}")
        if xml is None or not log.image_file(
                xml, f"image {i} is listed in ImageSets/Main/{split}.txt"):
            continue
        ann = _voc_parse(xml, log)
        if ann is not None:
            parsed.append((i, xml, ann))
    classes = _voc_classes(root, [a for _, _, a in parsed])
    index = {c: k for k, c in enumerate(classes)}
    records = []
    for i, xml, ann in parsed:
        file = log.inside(root / "JPEGImages", ann.get("filename") or f"{i}.jpg", xml,
                          "<filename>")
        if file is None or not log.image_file(
                file, f"image {i} is listed in ImageSets/Main/{split}.txt"):
            continue
        size = ann.get("size") if isinstance(ann.get("size"), dict) else {}
        try:
            hw: Optional[tuple[int, int]] = (int(size["height"]), int(size["width"]))
            if whole(hw[0]) is None or whole(hw[1]) is None:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            hw = log.image_size(file)
            if hw is None:
                continue
        boxes, labels, difficult = [], [], []
        for k, o in enumerate(ann["object"]):
            box, why = _voc_object(o, hw, index)
            if box is None:
                log.bad(xml, f"object {k}: {why}")
            else:
                boxes.append(box)
                labels.append(index[str(o["name"]).strip()])
                difficult.append(str(o.get("difficult", "0")).strip() == "1")
        records.append(make_record(file, hw, boxes, labels, len(records), difficult))
    return records, classes
