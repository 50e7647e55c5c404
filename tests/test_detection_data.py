"""Detection data, proposals and metrics: box transforms, the three annotation formats, bad
annotations, digits-detect, Selective Search, R-CNN labelling, COCO mAP and VOC07 AP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from googlenet.data.detection import (
    detection_collate, detection_eval_transforms, detection_train_transforms,
    default_detection_preprocess, default_detection_size, default_train_transforms,
    open_detection_dataset,
)
from googlenet.errors import UserError

# ---------------------------------------------------------------------------------------------
# Box transforms
# ---------------------------------------------------------------------------------------------


def _bright_rect(h=96, w=128, box=(30, 20, 70, 60)):
    img = torch.full((3, h, w), 10, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    img[:, y0:y1, x0:x1] = 250
    target = {"boxes": tv_tensors.BoundingBoxes([list(box)], format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor([3]), "image_id": 0}
    return tv_tensors.Image(img), target


def _ink_box(img: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(img.float().mean(0) > 0.5 * img.float().max(), as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


@pytest.mark.parametrize("hflip", [0.0, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_train_transforms_keep_boxes_on_objects(hflip, seed):
    torch.manual_seed(seed)
    img, target = _bright_rect()
    out, t = detection_train_transforms(64, hflip=hflip, scale=(0.5, 1.5))(img, target)
    assert out.dtype == torch.float32 and out.shape == (3, 64, 64) and out.max() <= 1
    if len(t["boxes"]) == 0:  # the crop missed the rectangle: then no bright pixel is left
        assert (out.mean(0) > 0.5).sum() < 4
        return
    assert t["labels"].tolist() == [3]
    # the box still covers the bright pixels, to within a pixel of resampling blur
    assert np.allclose(t["boxes"][0].tolist(), _ink_box(out), atol=1.5)


def test_flip_mirrors_box_and_eval_resizes():
    img, target = _bright_rect(h=128)
    _, t = detection_train_transforms(128, hflip=1.0, scale=(1.0, 1.0))(img, target)
    assert t["boxes"][0].tolist() == [128 - 70, 20, 128 - 30, 60]
    img, target = _bright_rect()
    out, t = detection_eval_transforms(64)(img, target)
    assert out.shape == (3, 48, 64)  # longer side to 64, aspect kept
    assert np.allclose(t["boxes"][0].tolist(), [15, 10, 35, 30])
    assert np.allclose(t["boxes"][0].tolist(), _ink_box(out), atol=1.0)


def test_sanitize_drops_degenerate_boxes():
    img, _ = _bright_rect()
    target = {"boxes": tv_tensors.BoundingBoxes([[30, 20, 70, 60], [5, 5, 5, 30], [10, 10, 40, 10.5],
                                                 [140, 10, 150, 20]], format="XYXY", canvas_size=(96, 128)),
              "labels": torch.tensor([1, 2, 3, 4]), "image_id": 0,
              "difficult": torch.tensor([True, False, False, False])}
    _, t = detection_eval_transforms(128)(img, target)
    assert t["labels"].tolist() == [1]  # zero width, sub-pixel height and off-image boxes gone
    assert t["difficult"].tolist() == [True]  # every per-box field follows its box
    assert t["boxes"].shape == (1, 4)


def test_default_transforms_and_preprocess():
    assert default_detection_size(None) == 128
    flips = [t for t in default_train_transforms("digits-detect").transforms
             if isinstance(t, T.RandomHorizontalFlip)]
    assert flips == []  # digits are not mirror-symmetric
    assert any(isinstance(t, T.RandomHorizontalFlip)
               for t in default_train_transforms("some/folder", 256).transforms)
    p = default_detection_preprocess(None)
    assert p.crop == 128 and len(p.mean) == 3


def test_collate_keeps_lists():
    img, target = _bright_rect()
    images, targets = detection_collate([(img, target), (img[:, :50], target)])
    assert len(images) == 2 and images[1].shape == (3, 50, 128) and targets[0] is target


# ---------------------------------------------------------------------------------------------
# Annotation formats: one set of boxes written as COCO, VOC and YOLO
# ---------------------------------------------------------------------------------------------

CLASSES = ["cat", "dog"]
# image name -> (width, height, [(x0, y0, x1, y1, label)])
IMAGES = {"a": (64, 48, [(4, 6, 30, 40, 0), (32, 8, 60, 44, 1)]),
          "b": (40, 40, [(10, 10, 30, 35, 1)]),
          "c": (50, 30, [])}


def _write_images(d: Path, ext=".png"):
    d.mkdir(parents=True, exist_ok=True)
    for name, (w, h, _) in IMAGES.items():
        Image.fromarray(np.full((h, w, 3), 80, np.uint8)).save(d / f"{name}{ext}")


def _coco_json(images=IMAGES, extra_anns=(), drop_files=()):
    imgs, anns = [], []
    for i, (name, (w, h, boxes)) in enumerate(images.items(), 1):
        imgs.append({"id": i, "file_name": f"{name}.png", "width": w, "height": h})
        for x0, y0, x1, y1, c in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 10 + c,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0, "area": 1})
    anns += [dict(a, iscrowd=a.get("iscrowd", 0)) for a in extra_anns]
    return {"images": imgs, "annotations": anns,
            "categories": [{"id": 10 + k, "name": n} for k, n in enumerate(CLASSES)]}


def write_coco(root: Path, **kw) -> Path:
    _write_images(root / "train")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(_coco_json(**kw)))
    return root


def _voc_xml(name, w, h, boxes, classes=CLASSES, difficult=()):
    objs = "".join(f"<object><name>{classes[c] if isinstance(c, int) else c}</name><difficult>"
                   f"{int(k in difficult)}</difficult><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax>"
                   f"<ymax>{y1}</ymax></bndbox></object>" for k, (x0, y0, x1, y1, c) in enumerate(boxes))
    return (f"<annotation><filename>{name}.png</filename><size><width>{w}</width><height>{h}"
            f"</height><depth>3</depth></size>{objs}</annotation>")


def write_voc(root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2007"
    _write_images(voc / "JPEGImages")
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for name, (w, h, boxes) in IMAGES.items():
        (voc / "Annotations" / f"{name}.xml").write_text(_voc_xml(name, w, h, boxes))
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(IMAGES) + "\n")
    (voc / "classes.txt").write_text("\n".join(CLASSES))
    return root


def write_yolo(root: Path, names="txt") -> Path:
    _write_images(root / "images" / "train", ".png")
    (root / "labels" / "train").mkdir(parents=True)
    for name, (w, h, boxes) in IMAGES.items():
        if boxes:
            (root / "labels" / "train" / f"{name}.txt").write_text("".join(
                f"{c} {(x0 + x1) / 2 / w:.8f} {(y0 + y1) / 2 / h:.8f} {(x1 - x0) / w:.8f} "
                f"{(y1 - y0) / h:.8f}\n" for x0, y0, x1, y1, c in boxes))
    if names == "txt":
        (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    else:
        (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    return root


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "yolo-yaml"])
def test_formats_load_the_same_boxes(tmp_path, fmt):
    root = {"coco": lambda p: write_coco(p), "voc": write_voc, "yolo": write_yolo,
            "yolo-yaml": lambda p: write_yolo(p, names="yaml")}[fmt](tmp_path / fmt)
    ds = open_detection_dataset(root, "train", strict=True, val_fraction=0)
    assert ds.classes == CLASSES and len(ds) == 3 and ds.skipped == []
    by_name = {Path(r.file).stem: i for i, r in enumerate(ds.records)}
    for name, (w, h, boxes) in IMAGES.items():
        img, t = ds.load(by_name[name])
        assert isinstance(img, tv_tensors.Image) and img.shape == (3, h, w) and img.dtype == torch.uint8
        assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and t["boxes"].canvas_size == (h, w)
        assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
        want = torch.tensor([b[:4] for b in boxes], dtype=torch.float32).reshape(-1, 4)
        torch.testing.assert_close(t["boxes"].as_subclass(torch.Tensor), want, atol=1e-4, rtol=0)
        assert t["labels"].tolist() == [b[4] for b in boxes]
    ds.transforms = detection_eval_transforms(32)
    img, t = ds[0]
    assert img.dtype == torch.float32 and max(img.shape[1:]) == 32


def test_voc_difficult_flag(tmp_path):
    root = write_voc(tmp_path / "v")
    w, h, boxes = IMAGES["a"]
    (root / "VOCdevkit" / "VOC2007" / "Annotations" / "a.xml").write_text(
        _voc_xml("a", w, h, boxes, difficult=(1,)))
    ds = open_detection_dataset(root, "train", val_fraction=0)
    _, t = ds.load([Path(r.file).stem for r in ds.records].index("a"))
    assert t["difficult"].tolist() == [False, True] and t["labels"].tolist() == [0, 1]


def test_image_size_mismatch_and_broken_image(tmp_path):
    root = write_coco(tmp_path / "c")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "train" / "a.png")
    (root / "train" / "b.png").write_bytes(b"not an image")
    ds = open_detection_dataset(root, "train", val_fraction=0)
    with pytest.raises(UserError, match=r"a\.png: the annotation says 64x48 pixels but the image is 10x10"):
        ds.load(0)
    with pytest.raises(UserError, match=r"b\.png"):
        ds.load(1)


def test_folder_without_val_split_holds_out_a_seeded_part(tmp_path):
    root = write_coco(tmp_path / "c")
    tr = open_detection_dataset(root, "train", val_fraction=0.34, seed=1)
    va = open_detection_dataset(root, "val", val_fraction=0.34, seed=1)
    assert len(tr) == 2 and len(va) == 1
    assert {r.file for r in tr.records}.isdisjoint(r.file for r in va.records)


# ---------------------------------------------------------------------------------------------
# Bad annotations: skipped and named, or strict stops
# ---------------------------------------------------------------------------------------------

def _bad(image_id, bbox, cat=10, aid=7):
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": bbox}


@pytest.mark.parametrize("ann, why", [
    (_bad(1, [5, 5, 0, 10]), "annotation id 7: box has zero width"),
    (_bad(1, [5, 5, 10, -3]), "annotation id 7: box has negative height"),
    (_bad(1, [100, 5, 10, 10]), "annotation id 7: box [100.0, 5.0, 110.0, 15.0] lies wholly outside"),
    (_bad(1, [5, 5, 10, 10], cat=99), "annotation id 7: category_id 99 is not in 'categories'"),
    (_bad(42, [5, 5, 10, 10]), "annotation id 7: image_id 42 is not in 'images'"),
])
def test_coco_bad_annotation_skipped_or_strict(tmp_path, ann, why):
    root = write_coco(tmp_path / "c", extra_anns=[ann])
    ds = open_detection_dataset(root, "train", val_fraction=0)
    assert len(ds.skipped) == 1
    file, msg = ds.skipped[0]
    assert file.endswith("instances_train.json") and msg.startswith(why)
    assert ds.num_boxes() == 3  # the good boxes all stay
    with pytest.raises(UserError, match="instances_train.json: " + why.split(":")[0]):
        open_detection_dataset(root, "train", strict=True)


def test_coco_partly_outside_is_clipped_and_missing_image_skipped(tmp_path):
    root = write_coco(tmp_path / "c", extra_anns=[_bad(2, [30, 30, 20, 20])])  # b is 40x40
    (root / "train" / "c.png").unlink()
    ds = open_detection_dataset(root, "train", val_fraction=0)
    assert [Path(f).name for f, _ in ds.skipped] == ["c.png"]
    assert "listed in instances_train.json but the file is missing" in ds.skipped[0][1]
    b = [r for r in ds.records if r.file.endswith("b.png")][0]
    assert b.boxes[-1].tolist() == [30, 30, 40, 40]
    with pytest.raises(UserError, match="c.png: image id 3"):
        open_detection_dataset(root, "train", strict=True)


def test_coco_invalid_json_stops(tmp_path):
    root = write_coco(tmp_path / "c")
    (root / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(UserError, match="instances_train.json: not valid JSON"):
        open_detection_dataset(root, "train")


def test_voc_bad_xml_and_unknown_class(tmp_path):
    root = write_voc(tmp_path / "v")
    ann = root / "VOCdevkit" / "VOC2007" / "Annotations"
    (ann / "b.xml").write_text("<annotation><size>")
    (ann / "a.xml").write_text(_voc_xml("a", 64, 48, [(4, 6, 30, 40, "zebra"), (32, 8, 60, 44, 1)]))
    ds = open_detection_dataset(root, "train", val_fraction=0)
    assert len(ds) == 2  # b dropped entirely: its annotation is unreadable
    msgs = {Path(f).name: m for f, m in ds.skipped}
    assert msgs["b.xml"].startswith("not valid XML")
    assert msgs["a.xml"] == "object 0: object 'zebra' is not a known class"
    with pytest.raises(UserError, match=r"a\.xml: object 0: object 'zebra'|b\.xml: not valid XML"):
        open_detection_dataset(root, "train", strict=True)


def test_yolo_bad_lines(tmp_path):
    root = write_yolo(tmp_path / "y")
    lbl = root / "labels" / "train"
    (lbl / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n1 0.5 oops 0.1 0.1\n0 0.5 0.5 0 0.3\n")
    (lbl / "b.txt").write_bytes(b"\xff\xfe\x00bad")
    (lbl / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    ds = open_detection_dataset(root, "train", val_fraction=0)
    got = sorted((Path(f).name, m.split(":")[0]) for f, m in ds.skipped)
    assert got == [("a.txt", "line 2"), ("a.txt", "line 3"), ("a.txt", "line 4"),
                   ("b.txt", "not a valid text file (\'utf-8\' codec can\'t decode byte 0xff in position 0"),
                   ("orphan.txt", "label file has no image in " + str(root / "images" / "train"))]
    assert "class 7 is not one of the 2 classes" in dict((m.split(":")[0], m) for _, m in ds.skipped)["line 2"]
    assert len(ds) == 2 and ds.num_boxes() == 1  # a keeps its one good box; c has none; b dropped
    with pytest.raises(UserError, match=r"a\.txt: line 2: class 7|label file has no image"):
        open_detection_dataset(root, "train", strict=True)


def test_unknown_spec_and_split(tmp_path):
    with pytest.raises(UserError, match="neither"):
        open_detection_dataset(tmp_path / "nope", "train")
    with pytest.raises(UserError, match="no 'test' split"):
        open_detection_dataset(write_coco(tmp_path / "c"), "test")
    with pytest.raises(UserError, match="splits"):
        open_detection_dataset("digits-detect", "bogus")


# ---------------------------------------------------------------------------------------------
# digits-detect
# ---------------------------------------------------------------------------------------------

def _digest(images: torch.Tensor, anns) -> str:
    h = hashlib.sha256(images[:20].numpy().tobytes())
    for b, c in anns[:20]:
        h.update(b.tobytes() + c.tobytes())
    return h.hexdigest()


def _check_split(ds, n):
    assert len(ds) == n and ds.classes == [str(d) for d in range(10)] and ds.name == "digits-detect"
    for i in range(0, n, max(1, n // 50)):
        img, t = ds.load(i)
        assert img.shape == (3, 128, 128) and img.dtype == torch.uint8 and t["image_id"] == i
        b = t["boxes"]
        assert 1 <= len(b) <= 4 and t["labels"].min() >= 0 and t["labels"].max() <= 9
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 128).all() and (b[:, 2:] > b[:, :2]).all()
        side = (b[:, 2:] - b[:, :2]).max(dim=1).values
        assert (side >= 4).all() and (side <= 56).all()
        if len(b) > 1:
            from torchvision.ops import box_iou
            iou = box_iou(b, b).fill_diagonal_(0)
            assert iou.max() <= 0.5 + 1e-6
            # a digit drawn later (higher index) covers at most 30% of an earlier one's box
            for j in range(len(b)):
                for k in range(j + 1, len(b)):
                    wh = (torch.minimum(b[j, 2:], b[k, 2:]) - torch.maximum(b[j, :2], b[k, :2])).clamp(min=0)
                    assert wh.prod() <= 0.3 * (b[j, 2:] - b[j, :2]).prod() + 1e-3


def test_digits_detect_deterministic_and_valid():
    from googlenet.data.digits_detect import digits_detect_arrays

    a = digits_detect_arrays("val")  # the process cache's build
    b = digits_detect_arrays.__wrapped__("val")  # an independent second build
    assert _digest(*a) == _digest(*b)
    assert open_detection_dataset(None, "val").images is open_detection_dataset("digits-detect", "val").images
    _check_split(open_detection_dataset(None, "val"), 250)


@pytest.mark.slow
def test_digits_detect_train_and_test_sizes():
    _check_split(open_detection_dataset(None, "test"), 500)
    tr = open_detection_dataset(None, "train", transforms=default_train_transforms(None))
    _check_split(tr, 2000)
    img, t = tr[0]
    assert img.shape == (3, 128, 128) and img.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# Proposals
# ---------------------------------------------------------------------------------------------

GT = torch.tensor([[10, 10, 40, 50], [60, 20, 110, 40], [30, 60, 90, 90]], dtype=torch.float32)


def _rects_image():
    img = torch.full((3, 96, 128), 30, dtype=torch.uint8)
    for c, (x0, y0, x1, y1) in zip([200, 120, 250], GT.int().tolist()):
        img[:, y0:y1, x0:x1] = c
    return img


def test_selective_search_finds_the_rectangles_and_caches(tmp_path):
    pytest.importorskip("cv2")
    from googlenet.data import proposals as P

    img = _rects_image()
    p = P.selective_search(img, cache_dir=tmp_path)
    assert p.dtype == torch.float32 and p.shape[1] == 4 and len(p) >= 3
    assert len(torch.unique(p, dim=0)) == len(p)  # deduplicated
    assert P.proposal_recall(p, GT) == 1.0
    assert list(tmp_path.glob("ss-*.npy"))
    again = P.selective_search(img, cache_dir=tmp_path)
    assert torch.equal(again, p)
    assert len(P.selective_search(img, max_proposals=2)) == 2
    stats = P.proposal_stats([p, p[:0]], [GT, GT[:1]])
    assert stats["recall@0.5"] == 0.75 and stats["per_image_min"] == 0
    with pytest.raises(UserError, match="mode"):
        P.selective_search(img, mode="slow")


def test_label_proposals_by_iou():
    from googlenet.data.proposals import label_proposals

    gt = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40.]])
    props = torch.tensor([[0, 0, 10, 10],      # IoU 1 with gt 0 -> class 0 + 1
                          [0, 0, 10, 20],      # IoU 0.5 with gt 0 -> foreground
                          [0, 0, 10, 25],      # IoU 0.4 -> ignored
                          [20, 20, 30, 30],    # IoU 0.25 with gt 1 -> background
                          [50, 50, 60, 60.]])  # no overlap -> background
    r = label_proposals(props, gt, [4, 7])
    assert r.labels.tolist() == [5, 5, 0, 0, 0]
    assert r.ignore.tolist() == [False, False, True, False, False]
    assert r.gt_index[:4].tolist() == [0, 0, 0, 1]
    torch.testing.assert_close(r.max_iou, torch.tensor([1, 0.5, 0.4, 0.25, 0]))
    none = label_proposals(props, torch.zeros(0, 4), [])
    assert none.labels.tolist() == [0] * 5 and not none.ignore.any()
    assert label_proposals(props, gt, [4, 7], bg_iou=0.5).ignore.sum() == 0


def test_warp_regions_context_padding():
    from googlenet.data.proposals import warp_regions

    img = torch.zeros(3, 100, 100, dtype=torch.uint8)
    img[:, 20:60, 30:50] = 255  # a 20 x 40 object
    out = warp_regions(img, torch.tensor([[30, 20, 50, 60.]]), 48, context=8)
    assert out.shape == (1, 3, 48, 48)
    inner, ring = out[0, 0, 9:39, 9:39], out[0, 0].clone()
    ring[7:41, 7:41] = 0
    assert inner.min() > 0.99 and ring.max() < 0.01  # the box fills the centre 32 px, context around
    assert warp_regions(img, torch.zeros(0, 4), 40).shape == (0, 3, 40, 40)


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

def _targets():
    return [{"boxes": torch.tensor([[10, 10, 50, 50], [60, 60, 100, 120.]]), "labels": torch.tensor([0, 1])},
            {"boxes": torch.tensor([[0, 0, 30, 20.]]), "labels": torch.tensor([1])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]


def _perfect():
    return [{"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]}
            for t in _targets()]


def test_coco_map_perfect_is_one():
    from googlenet.metrics.detection import coco_map

    m = coco_map(_perfect(), _targets(), ["a", "b"])
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)
    assert m["per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    assert np.isnan(m["map_large"])  # no ground truth that large: pycocotools' -1 -> NaN


def _cocoeval_directly(preds, targets, tmp_path):
    """The reference: pycocotools' documented path, files + loadRes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [{"id": i} for i in range(len(targets))],
          "categories": [{"id": 1}, {"id": 2}], "annotations": []}
    dts = []
    for i, (p, t) in enumerate(zip(preds, targets)):
        for b, c in zip(t["boxes"].tolist(), t["labels"].tolist()):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": c + 1,
                                      "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                      "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0})
        for b, s, c in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
            dts.append({"image_id": i, "category_id": c + 1, "score": s,
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    coco = COCO(str(tmp_path / "gt.json"))
    ev = COCOeval(coco, coco.loadRes(dts), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def test_coco_map_matches_cocoeval_on_shifted_boxes(tmp_path):
    from googlenet.metrics.detection import coco_map

    preds = _perfect()
    preds[0]["boxes"] = preds[0]["boxes"] + torch.tensor([6.0, 0, 6, 0])  # IoU 0.74 / 0.74
    preds[1]["boxes"] = preds[1]["boxes"] + 3.0
    preds[2] = {"boxes": torch.tensor([[5, 5, 20, 20.]]), "scores": torch.tensor([0.3]),
                "labels": torch.tensor([0])}  # a false positive on an image without objects
    m = coco_map(preds, _targets(), ["a", "b"])
    ref = _cocoeval_directly(preds, _targets(), tmp_path)
    assert m["stats"] == pytest.approx(list(ref), abs=1e-12)
    assert 0 < m["map"] < 1 and m["map_50"] == pytest.approx(ref[1])


def test_no_detections_at_all():
    from googlenet.metrics.detection import coco_map, voc07_ap

    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}] * 3
    m = coco_map(empty, _targets(), ["a", "b"])
    assert m["map"] == 0 and m["map_50"] == 0 and m["per_class"] == {"a": 0, "b": 0}
    v = voc07_ap(empty, _targets(), ["a", "b"])
    assert v["map"] == 0
    with pytest.raises(UserError, match="2 predictions for 3 images"):
        coco_map(empty[:2], _targets(), ["a", "b"])


def _one(boxes, scores=None, labels=None, difficult=None):
    d = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
         "labels": torch.tensor(labels if labels is not None else [0] * len(boxes))}
    if scores is not None:
        d["scores"] = torch.tensor(scores)
    if difficult is not None:
        d["difficult"] = torch.tensor(difficult)
    return d


def test_voc07_hand_computed():
    from googlenet.metrics.detection import voc07_ap

    targets = [_one([[0, 0, 10, 10]]), _one([[0, 0, 10, 10]])]
    preds = [_one([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8]), _one([[1, 0, 10, 10]], [0.7])]
    # score order: TP (p 1, r .5), FP (p .5, r .5), TP (p 2/3, r 1)
    # 11-point: r in 0..0.5 -> 1 (6 points), r in 0.6..1 -> 2/3 (5 points)
    v = voc07_ap(preds, targets, ["x"])
    assert v["map"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    # a duplicate detection of an already matched box is a false positive
    dup = voc07_ap([_one([[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.8])], [_one([[0, 0, 10, 10], [40, 40, 50, 50]])], ["x"])
    # TP (p 1, r .5), FP: r reaches 0.5 only -> 6 points at precision 1
    assert dup["map"] == pytest.approx(6 / 11)
    # IoU just below 0.5 is a miss; a class without ground truth is NaN and left out of the mean
    miss = voc07_ap([_one([[0, 0, 10, 4.9]], [1.0])], [_one([[0, 0, 10, 10]])], ["x", "y"])
    assert miss["per_class"]["x"] == 0 and np.isnan(miss["per_class"]["y"]) and miss["map"] == 0
    # a detection of a "difficult" box counts as neither TP nor FP
    diff = voc07_ap([_one([[20, 20, 30, 30], [0, 0, 10, 10]], [0.9, 0.8])],
                    [_one([[20, 20, 30, 30], [0, 0, 10, 10]], difficult=[True, False])], ["x"])
    assert diff["map"] == pytest.approx(1.0)


def test_save_pr_curve(tmp_path):
    from googlenet.metrics.detection import precision_recall, save_pr_curve

    curves = precision_recall(_perfect(), _targets(), 3)
    files = save_pr_curve(curves, ["a", "b", "c"], tmp_path / "pr.png")
    assert files == [tmp_path / "pr.png"] and files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per = save_pr_curve(curves, ["a", "b", "c"], tmp_path / "pr.png", per_class=True)
    assert [p.name for p in per] == ["pr_a.png", "pr_b.png"]  # "c" has no ground truth
    assert not list(tmp_path.glob(".*tmp"))


def test_voc2007_by_name_reads_root_and_never_downloads(tmp_path):
    with pytest.raises(UserError, match="voc2007 train not found under .*download=True"):
        open_detection_dataset("voc2007", "train", root=tmp_path / "empty")
    write_voc(tmp_path / "data")
    ds = open_detection_dataset("voc2007", "train", root=tmp_path / "data")
    assert ds.name == "voc2007" and len(ds) == 3 and ds.num_boxes() == 3
