"""COCO JSON folders: ``annotations/instances_{split}.json`` (or ``{split}.json``), ``bbox`` in
[x, y, w, h] continuous pixels; crowd regions left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ...errors import UserError
from ..detection_dataset import DetRecord
from .checks import MAX_SIDE, Log, clean_box, make_record, number, show, usable_id, whole

__all__ = ["coco_paths", "read_coco"]


def coco_paths(path: Path, split: str) -> Optional[tuple[Path, Path]]:
    for ann in (path / "annotations" / f"instances_{split}.json",
                path / "annotations" / f"instances_{split}2017.json", path / f"{split}.json"):
        if ann.is_file():
            for d in (path / split, path / f"{split}2017", path / "images" / split, path / "images"):
                if d.is_dir():
                    return ann, d
            return ann, path
    return None


def _coco_load(ann: Path) -> dict:
    def broken(why: str) -> UserError:
        return UserError(f"{ann}: {why}; fix or replace the annotation file", key="data")

    try:
        with open(ann, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError as e:
        raise broken(f"not UTF-8 text ({e})") from None
    except RecursionError:
        raise broken("not usable JSON (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, or an integer of over 4,300 digits
        raise broken(f"not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list):
        raise UserError(f"{ann}: not a COCO annotation file (needs 'images' and 'categories' "
                        f"lists)", key="data")
    if not isinstance(data.get("annotations", []), list):
        raise broken(f"'annotations' must be a list, got a {type(data['annotations']).__name__}")
    return data


def _coco_categories(ann: Path, cats: list) -> tuple[dict[Any, int], list[str]]:
    """category id -> class index (ids in sorted order) and the class names; a category list
    that cannot be read stops everything (every label depends on it)."""
    def broken(k: int, why: str) -> UserError:
        return UserError(f"{ann}: categories[{k}] {why}; fix the annotation file", key="data")

    for k, c in enumerate(cats):
        if not isinstance(c, dict):
            raise broken(k, f"is a {type(c).__name__}, not an object")
        if not usable_id(c.get("id")):
            raise broken(k, f"needs an 'id' (a whole number or a string), got {show(c.get('id'))}")
        if "name" in c and not isinstance(c["name"], str):
            raise broken(k, f"'name' must be a string, got {type(c['name']).__name__}")
    kinds = {type(c["id"]) for c in cats}
    if len(kinds) > 1:
        raise UserError(f"{ann}: category ids mix numbers and strings; use one kind", key="data")
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UserError(f"{ann}: category ids {dup[:5]} are listed more than once", key="data")
    cats = sorted(cats, key=lambda c: c["id"])
    return {c["id"]: i for i, c in enumerate(cats)}, [str(c.get("name", c["id"])) for c in cats]


def _coco_images(ann: Path, img_dir: Path, images: list, log: Log) -> dict[Any, tuple[Path, dict]]:
    """image id -> (file, entry) of the usable images; the rest named in the log."""
    ids: dict[Any, list[int]] = {}
    for k, im in enumerate(images):
        if not isinstance(im, dict):
            log.bad(ann, f"images[{k}] is a {type(im).__name__}, not an object")
        elif not usable_id(im.get("id")):
            log.bad(ann, f"images[{k}]: 'id' must be a whole number or a string, got "
                         f"{show(im.get('id'))}")
        else:
            ids.setdefault(im["id"], []).append(k)
    out = {}
    for iid, ks in ids.items():
        if len(ks) > 1:  # which image do its annotations belong to? Neither can be trusted
            names = [images[k].get("file_name") for k in ks]
            log.bad(ann, f"image id {show(iid)} is listed {len(ks)} times ({show(names[:4])}); its "
                         f"annotations cannot be told apart, every copy skipped")
            continue
        im = images[ks[0]]
        file = log.inside(img_dir, im.get("file_name"), ann, f"image id {show(iid)}: file_name")
        if file is None or not log.image_file(file, f"image id {show(iid)} is listed in "
                                                    f"{ann.name}"):
            continue
        out[iid] = (file, im)
    return out


def read_coco(ann: Path, img_dir: Path, log: Log) -> tuple[list[DetRecord], list[str]]:
    data = _coco_load(ann)
    cat_index, classes = _coco_categories(ann, data["categories"])
    images = _coco_images(ann, img_dir, data["images"], log)
    listed = {im["id"] for im in data["images"] if isinstance(im, dict) and usable_id(im.get("id"))}
    per_image: dict[Any, list[tuple[Any, list[float], int]]] = {}
    for k, a in enumerate(data.get("annotations", [])):
        if not isinstance(a, dict):
            log.bad(ann, f"annotations[{k}] is a {type(a).__name__}, not an object")
            continue
        aid = a.get("id", f"#{k}")
        aid = aid if usable_id(aid) else f"#{k}"
        iid, cid, bbox, crowd = (a.get("image_id"), a.get("category_id"), a.get("bbox"),
                                 a.get("iscrowd", 0))
        xywh = [number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
        if not usable_id(iid) or iid not in images:
            if not usable_id(iid) or iid not in listed:  # else its image was skipped, and named
                log.bad(ann, f"annotation id {aid}: image_id {show(iid)} is not in 'images'")
        elif not usable_id(cid) or cid not in cat_index:
            log.bad(ann, f"annotation id {aid}: category_id {show(cid)} is not in 'categories'")
        elif xywh is None or any(v is None for v in xywh):
            log.bad(ann, f"annotation id {aid}: bbox must be [x, y, width, height] numbers, got "
                         f"{str(bbox)[:60]}")
        elif crowd not in (0, 1) or isinstance(crowd, float):
            log.bad(ann, f"annotation id {aid}: iscrowd must be 0 or 1, got {show(crowd)}")
        elif not crowd:  # crowd regions are not objects to detect (as torchvision)
            per_image.setdefault(iid, []).append((aid, xywh, cat_index[cid]))
    records = []
    for iid, (file, im) in images.items():
        if "height" in im or "width" in im:
            h, w = whole(im.get("height")), whole(im.get("width"))
            if h is None or w is None:
                log.bad(ann, f"image id {show(iid)}: height {show(im.get('height'))} and width "
                             f"{show(im.get('width'))} must be whole numbers in [1, {MAX_SIDE:,}]; "
                             f"image skipped")
                continue
            hw: Optional[tuple[int, int]] = (h, w)
        else:
            hw = log.image_size(file)
            if hw is None:
                continue
        boxes, labels = [], []
        for aid, (x, y, bw, bh), label in per_image.get(iid, []):
            box, why = clean_box(x, y, x + bw, y + bh, hw[1], hw[0])
            if box is None:
                log.bad(ann, f"annotation id {aid}: {why}")
            else:
                boxes.append(box)
                labels.append(label)
        image_id = iid if isinstance(iid, int) and 0 <= iid < 2 ** 62 else len(records)
        records.append(make_record(file, hw, boxes, labels, image_id))
    return records, classes
