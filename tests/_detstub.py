"""Test-only stand-ins for ``googlenet.data.detection`` and ``googlenet.metrics.detection``
while those modules are written on another branch, plus a tiny detection set for tests.

``install()`` keeps the real modules where they exist and only adds what is missing; the tiny
set is the spec ``tiny64`` (64-px canvases, a bright square per object, 2 classes; image 0 of
every split has no objects) handled before the real ``open_detection_dataset`` is asked.
Subprocesses call ``python tests/_detstub.py ARGS`` (= ``googlenet ARGS`` with this installed).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import torch

TINY = "tiny64"
SIZES = {"train": 8, "val": 4, "test": 4}


def _tiny(split: str, transforms: Any = None) -> Any:
    from torchvision import tv_tensors

    rng = np.random.default_rng(["train", "val", "test"].index(split))
    items = []
    for i in range(SIZES[split]):
        img = rng.integers(0, 40, (3, 64, 64)).astype(np.uint8)
        boxes, labels = [], []
        for _ in range(0 if i == 0 else int(rng.integers(1, 3))):
            s = int(rng.integers(12, 24))
            x, y = (int(v) for v in rng.integers(0, 64 - s, 2))
            c = int(rng.integers(0, 2))
            img[c, y:y + s, x:x + s] = 230  # class 0 red squares, class 1 green
            boxes.append([x, y, x + s, y + s])
            labels.append(c)
        items.append((torch.from_numpy(img), np.array(boxes, np.float32).reshape(-1, 4),
                       np.array(labels, np.int64)))

    class Tiny(torch.utils.data.Dataset):
        classes = ["red", "green"]
        name = TINY
        skipped: list = []
        images = True  # in memory

        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> Any:
            img, b, l = items[i]
            image = tv_tensors.Image(img)
            target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(b), format="XYXY",
                                                        canvas_size=(64, 64)),
                      "labels": torch.from_numpy(l), "image_id": i}
            return transforms(image, target) if transforms is not None else (image, target)

    return Tiny()


def _data_module() -> types.ModuleType:
    from torchvision.transforms import v2 as T

    from googlenet.data.preprocess import Preprocess

    m = types.ModuleType("googlenet.data.detection")

    def open_detection_dataset(spec, split, *, transforms=None, strict=False, **kw):
        from googlenet.errors import UserError

        if str(spec) != TINY:
            raise UserError(f"stand-in: only {TINY!r}")
        return _tiny(split, transforms)

    m.open_detection_dataset = open_detection_dataset
    m.detection_collate = lambda batch: tuple(list(x) for x in zip(*batch))
    m.detection_train_transforms = lambda size, hflip=0.5, scale=(0.75, 1.25): T.Compose(
        [T.RandomHorizontalFlip(hflip), T.ToDtype(torch.float32, scale=True)])
    m.detection_eval_transforms = lambda size: T.Compose([T.ToDtype(torch.float32, scale=True)])
    m.default_detection_size = lambda spec: 64 if str(spec) == TINY else 128
    m.default_detection_preprocess = lambda spec, size=None: Preprocess(
        crop=size or 64, resize=size or 64)
    return m


def _metrics_module() -> types.ModuleType:
    m = types.ModuleType("googlenet.metrics.detection")

    def coco_map(preds, targets, *, num_classes=None, **kw):
        import contextlib
        import io

        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        n = num_classes or 1 + max([int(t["labels"].max()) for t in targets if len(t["labels"])] + [0])
        images, anns, dets = [], [], []
        for i, (p, t) in enumerate(zip(preds, targets)):
            images.append({"id": i, "width": 1, "height": 1})
            for b, l in zip(t["boxes"].tolist(), t["labels"].tolist()):
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(l),
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "iscrowd": 0,
                             "area": (b[2] - b[0]) * (b[3] - b[1])})
            for b, s, l in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
                dets.append({"image_id": i, "category_id": int(l), "score": float(s),
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in range(n)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not dets:
                return {"map": 0.0, "map50": 0.0, "map75": 0.0}
            ev = COCOeval(gt, gt.loadRes(dets), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        s = [max(float(v), 0.0) for v in ev.stats]
        return {"map": s[0], "map50": s[1], "map75": s[2], "map_small": s[3],
                "map_medium": s[4], "map_large": s[5]}

    m.coco_map = coco_map
    return m


def install() -> None:
    """Add what is missing; route the spec ``tiny64`` to the tiny set in any case."""
    import importlib

    import googlenet.data
    import googlenet.metrics

    try:
        data = importlib.import_module("googlenet.data.detection")
    except ImportError:
        data = sys.modules["googlenet.data.detection"] = _data_module()
        googlenet.data.detection = data
    try:
        importlib.import_module("googlenet.metrics.detection")
    except ImportError:
        sys.modules["googlenet.metrics.detection"] = googlenet.metrics.detection = _metrics_module()
    real_open = data.open_detection_dataset
    if getattr(real_open, "_tiny", False):
        return
    size_of, pre_of = data.default_detection_size, data.default_detection_preprocess

    def open_detection_dataset(spec, split, *, transforms=None, **kw):
        return _tiny(split, transforms) if str(spec) == TINY else real_open(spec, split, transforms=transforms, **kw)

    open_detection_dataset._tiny = True
    data.open_detection_dataset = open_detection_dataset
    data.default_detection_size = lambda spec: 64 if str(spec) == TINY else size_of(spec)
    data.default_detection_preprocess = lambda spec, size=None: (
        pre_of(None, size or 64) if str(spec) == TINY else pre_of(spec, size))


if __name__ == "__main__":  # python tests/_detstub.py train ... = googlenet train ... with the stub
    install()
    from googlenet.cli import main

    sys.exit(main(sys.argv[1:]))
