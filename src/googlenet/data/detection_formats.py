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

Why one module (over 500 lines): the table above is one policy, applied by three readers
through one ``_Log`` (skip-and-name or strict, paths kept inside the dataset, image files
checked before they are opened) and one set of value checks; a module per format would split
the policy from the code that applies it, and the layout detection that picks a reader needs
all three.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import UserError
from ..fileio import not_regular
from .detection import DetRecord, FileDetectionDataset
from .imaging import IMAGE_EXTENSIONS, ImageError, read_image_size

__all__ = ["open_folder", "open_voc_download", "VOC_CLASSES", "clean_box"]

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
               "sofa", "train", "tvmonitor")
# Image sides an annotation may state (COCO width/height, VOC <size>): Pillow's decompression-bomb
# limit refuses far less than this in pixels; the bound only keeps absurd numbers out.
MAX_SIDE = 1 << 20


class _Log:
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
            self.bad(listed_in, f"{what}: {_show(name)} is not a file name")
            return None
        root = os.path.abspath(self.root)
        full = os.path.normpath(os.path.join(os.path.abspath(base), name))
        if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
            self.bad(listed_in, f"{what}: {_show(name, 300)} resolves outside the dataset folder {self.root} "
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
            self.bad(file, _reason(e, file))
            return None
        return h, w


def _reason(e: Exception, file: Path) -> str:
    """An ImageError's message without the path it starts with (``_Log.bad`` adds it)."""
    msg = str(e)
    return msg[len(str(file)) + 2:] if msg.startswith(f"{file}: ") else msg


def _read_text(file: Path, what: str) -> str:
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


def _whole(v: Any, lo: int = 1, hi: int = MAX_SIDE) -> Optional[int]:
    """``v`` as an int in [lo, hi] (an int, or an integral float), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    return v if isinstance(v, int) and lo <= v <= hi else None


def _number(v: Any) -> Optional[float]:
    """A JSON number as a float (inf for one too large), else None (a string, null, a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v)
    except OverflowError:  # an integer of hundreds of digits
        return math.inf


def _show(v: Any, most: int = 60) -> str:
    """``repr(v)``, cut to ``most`` characters (a value from a hostile file can be megabytes)."""
    r = repr(v)
    return r if len(r) <= most else r[:most - 4] + " ..."


def _key(v: Any) -> bool:
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


def _record(file: Path, hw: tuple[int, int], boxes: list, labels: list, image_id: int,
            difficult: Optional[list] = None) -> DetRecord:
    return DetRecord(file=str(file), height=int(hw[0]), width=int(hw[1]),
                     boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                     labels=np.asarray(labels, dtype=np.int64).reshape(-1), image_id=int(image_id),
                     difficult=None if difficult is None else np.asarray(difficult, dtype=bool))


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
        if not _key(c.get("id")):
            raise broken(k, f"needs an 'id' (a whole number or a string), got {_show(c.get('id'))}")
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


def _coco_images(ann: Path, img_dir: Path, images: list, log: _Log) -> dict[Any, tuple[Path, dict]]:
    """image id -> (file, entry) of the usable images; the rest named in the log."""
    ids: dict[Any, list[int]] = {}
    for k, im in enumerate(images):
        if not isinstance(im, dict):
            log.bad(ann, f"images[{k}] is a {type(im).__name__}, not an object")
        elif not _key(im.get("id")):
            log.bad(ann, f"images[{k}]: 'id' must be a whole number or a string, got "
                         f"{_show(im.get('id'))}")
        else:
            ids.setdefault(im["id"], []).append(k)
    out = {}
    for iid, ks in ids.items():
        if len(ks) > 1:  # which image do its annotations belong to? Neither can be trusted
            names = [images[k].get("file_name") for k in ks]
            log.bad(ann, f"image id {_show(iid)} is listed {len(ks)} times ({_show(names[:4])}); its "
                         f"annotations cannot be told apart, every copy skipped")
            continue
        im = images[ks[0]]
        file = log.inside(img_dir, im.get("file_name"), ann, f"image id {_show(iid)}: file_name")
        if file is None or not log.image_file(file, f"image id {_show(iid)} is listed in "
                                                    f"{ann.name}"):
            continue
        out[iid] = (file, im)
    return out


def _coco(ann: Path, img_dir: Path, log: _Log) -> tuple[list[DetRecord], list[str]]:
    data = _coco_load(ann)
    cat_index, classes = _coco_categories(ann, data["categories"])
    images = _coco_images(ann, img_dir, data["images"], log)
    listed = {im["id"] for im in data["images"] if isinstance(im, dict) and _key(im.get("id"))}
    per_image: dict[Any, list[tuple[Any, list[float], int]]] = {}
    for k, a in enumerate(data.get("annotations", [])):
        if not isinstance(a, dict):
            log.bad(ann, f"annotations[{k}] is a {type(a).__name__}, not an object")
            continue
        aid = a.get("id", f"#{k}")
        aid = aid if _key(aid) else f"#{k}"
        iid, cid, bbox, crowd = (a.get("image_id"), a.get("category_id"), a.get("bbox"),
                                 a.get("iscrowd", 0))
        xywh = [_number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
        if not _key(iid) or iid not in images:
            if not _key(iid) or iid not in listed:  # else its image was skipped, and named
                log.bad(ann, f"annotation id {aid}: image_id {_show(iid)} is not in 'images'")
        elif not _key(cid) or cid not in cat_index:
            log.bad(ann, f"annotation id {aid}: category_id {_show(cid)} is not in 'categories'")
        elif xywh is None or any(v is None for v in xywh):
            log.bad(ann, f"annotation id {aid}: bbox must be [x, y, width, height] numbers, got "
                         f"{str(bbox)[:60]}")
        elif crowd not in (0, 1) or isinstance(crowd, float):
            log.bad(ann, f"annotation id {aid}: iscrowd must be 0 or 1, got {_show(crowd)}")
        elif not crowd:  # crowd regions are not objects to detect (as torchvision)
            per_image.setdefault(iid, []).append((aid, xywh, cat_index[cid]))
    records = []
    for iid, (file, im) in images.items():
        if "height" in im or "width" in im:
            h, w = _whole(im.get("height")), _whole(im.get("width"))
            if h is None or w is None:
                log.bad(ann, f"image id {_show(iid)}: height {_show(im.get('height'))} and width "
                             f"{_show(im.get('width'))} must be whole numbers in [1, {MAX_SIDE:,}]; "
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
        records.append(_record(file, hw, boxes, labels, image_id))
    return records, classes


# ---------------------------------------------------------------------------------------------
# Pascal VOC
# ---------------------------------------------------------------------------------------------

def _voc_root(path: Path) -> Optional[Path]:
    for r in (path, path / "VOCdevkit" / "VOC2007", path / "VOCdevkit" / "VOC2012", path / "VOC2007"):
        if (r / "Annotations").is_dir() and (r / "ImageSets" / "Main").is_dir():
            return r
    return None


def _voc_parse(xml: Path, log: _Log) -> Optional[dict]:
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


def _class_list(file: Path) -> list[str]:
    return [ln.strip() for ln in _read_text(file, "class list").splitlines() if ln.strip()]


def _voc_classes(root: Path, anns: list[dict]) -> list[str]:
    """classes.txt if given; else VOC's 20 if every name is a VOC class; else the sorted names."""
    if os.path.lexists(root / "classes.txt"):
        return _class_list(root / "classes.txt")
    names = {str(o.get("name", "")).strip() for a in anns for o in a["object"]}
    return list(VOC_CLASSES) if names <= set(VOC_CLASSES) else sorted(names)


def _voc_object(o: dict, hw: tuple[int, int], classes: dict[str, int]) -> tuple[Optional[list], str]:
    name = str(o.get("name", "")).strip()
    if name not in classes:
        return None, f"object {_show(name)} is not a known class"
    try:
        b = o["bndbox"]
        x0, y0, x1, y1 = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, TypeError, ValueError):
        return None, f"object {_show(name)}: bndbox needs numeric xmin, ymin, xmax, ymax"
    return clean_box(x0 - 1, y0 - 1, x1, y1, hw[1], hw[0])


def _voc(root: Path, split: str, log: _Log) -> tuple[list[DetRecord], list[str]]:
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    ids: list[str] = []
    for n, ln in enumerate(_read_text(listing, "split list").splitlines(), 1):
        if not ln.strip():
            continue
        i = ln.split()[0]
        if i in ids:
            log.bad(listing, f"line {n}: image {_show(i)} is listed again; used once")
        else:
            ids.append(i)
    parsed = []
    for i in ids:
        xml = log.inside(root / "Annotations", f"{i}.xml", listing, f"image {_show(i)}")
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
            if _whole(hw[0]) is None or _whole(hw[1]) is None:
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
        records.append(_record(file, hw, boxes, labels, len(records), difficult))
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
                      f"{_show(keys[:8])}")
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
        return _class_list(path / "classes.txt")
    for y in (path / "data.yaml", path / "dataset.yaml"):
        if y.is_file():
            try:
                import yaml
            except ImportError:
                raise UserError(f"{y}: reading data.yaml needs PyYAML: pip install 'googlenet[detect]'", key="data") from None

            try:
                # safe_load: plain data only. Aliases are shared references, so an alias bomb
                # loads small; only strings are accepted as names, so nothing expands it.
                doc = yaml.safe_load(_read_text(y, "dataset description"))
            except yaml.YAMLError as e:
                raise UserError(f"{y}: not valid YAML ({e})", key="data") from None
            except (RecursionError, ValueError) as e:  # deep nesting; an int of 5,000 digits
                raise UserError(f"{y}: not usable YAML ({type(e).__name__}: "
                                f"{str(e)[:100]})", key="data") from None
            return _yolo_names(y, doc)
    raise UserError(f"{path}: a YOLO folder needs classes.txt or data.yaml with 'names:'", key="data")


def _yolo_lines(txt: Path, hw: tuple[int, int], n_cls: int,
                log: _Log) -> Optional[tuple[list, list]]:
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
            log.bad(txt, f"line {n}: expected 'class cx cy w h' (5 numbers), got {_show(ln.strip()[:60])}")
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
    log = _Log(strict, path)
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
