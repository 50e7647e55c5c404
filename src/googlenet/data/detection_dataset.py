"""The detection dataset types: ``DetRecord`` (one image's validated annotations) and
``DetectionDataset`` with its in-memory (``ArrayDetectionDataset``) and file-backed
(``FileDetectionDataset``) forms. Below the readers (``detection_formats``, ``digits_detect``) and
the entry point (``detection``); see ``detection``'s docstring for what an item is.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from ..errors import UserError
from .imaging import ImageError, load_image

__all__ = ["DetRecord", "DetectionDataset", "ArrayDetectionDataset", "FileDetectionDataset"]

# ---------------------------------------------------------------------------------------------
# Dataset types
# ---------------------------------------------------------------------------------------------

@dataclass
class DetRecord:
    """One image's annotations, already validated: boxes (N, 4) float32 XYXY pixels, labels (N,)."""

    file: str  # the image file ("" for in-memory images)
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    image_id: int
    difficult: Optional[np.ndarray] = None  # (N,) bool, VOC's "difficult" flag (VOC folders only)


class DetectionDataset(torch.utils.data.Dataset):
    """Images with boxes and class labels; subclasses provide ``_image(i)`` (uint8 (3, H, W))."""

    def __init__(self, records: Sequence[DetRecord], classes: Sequence[str], *,
                 transforms: Optional[Callable] = None, name: str = "", split: str = "",
                 skipped: Sequence[tuple[str, str]] = ()) -> None:
        self.records = list(records)
        self.classes = list(classes)
        self.transforms = transforms
        self.name = name
        self.split = split
        self.skipped: list[tuple[str, str]] = list(skipped)

    def __len__(self) -> int:
        return len(self.records)

    def _image(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def load(self, i: int) -> tuple[tv_tensors.Image, dict[str, Any]]:
        """The untransformed ``(image, target)`` pair."""
        r = self.records[i]
        img = self._image(i)  # (3, H, W) uint8
        h, w = img.shape[-2:]
        if (h, w) != (r.height, r.width):
            raise ImageError(f"{r.file}: the annotation says {r.width}x{r.height} pixels but the "
                             f"image is {w}x{h}; fix the annotation's image size", key="data")
        boxes = tv_tensors.BoundingBoxes(torch.tensor(r.boxes, dtype=torch.float32).reshape(-1, 4),
                                         format="XYXY", canvas_size=(h, w))
        target = {"boxes": boxes, "labels": torch.tensor(r.labels, dtype=torch.int64).reshape(-1),
                  "image_id": int(r.image_id)}
        if r.difficult is not None:
            target["difficult"] = torch.tensor(r.difficult, dtype=torch.bool).reshape(-1)
        return tv_tensors.Image(img), target

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        image, target = self.load(i)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def num_boxes(self) -> int:
        return int(sum(len(r.labels) for r in self.records))

    def class_counts(self) -> list[int]:
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for r in self.records:
            np.add.at(counts, np.asarray(r.labels, dtype=np.int64), 1)
        return counts.tolist()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, images={len(self)}, "
                f"boxes={self.num_boxes()}, classes={len(self.classes)}, skipped={len(self.skipped)})")


class ArrayDetectionDataset(DetectionDataset):
    """Images held in memory as one uint8 tensor (N, 3, H, W) (the built-in digits-detect)."""

    def __init__(self, images: torch.Tensor, records: Sequence[DetRecord], classes: Sequence[str],
                 **kw: Any) -> None:
        super().__init__(records, classes, **kw)
        self.images = images

    def _image(self, i: int) -> torch.Tensor:
        return self.images[i].clone()  # callers may write into it; the cache must not change


class FileDetectionDataset(DetectionDataset):
    """Images read from files (COCO, VOC, YOLO folders), decoded to RGB on access.

    ``load(i)`` raises ``ImageError`` when file i cannot be used (truncated, over the
    decompression-bomb limit, changed on disk since the annotations were read, not the size its
    annotation says), so evaluation can skip and name it. Item access (``dataset[i]``, what
    training uses) instead takes the next usable item, records the file in ``skipped`` and says
    so on stderr (one line; from a loader worker too), unless ``strict``: one bad file never
    ends an epoch.
    """

    def __init__(self, records: Sequence[DetRecord], classes: Sequence[str], *,
                 strict: bool = False, **kw: Any) -> None:
        super().__init__(records, classes, **kw)
        self.strict = strict

    def _image(self, i: int) -> torch.Tensor:
        # imaging.load_image: any PIL mode to RGB, and an ImageError naming the file
        rgb = np.asarray(load_image(self.records[i].file))  # (H, W, 3) uint8
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1)  # (3, H, W)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        for k in range(min(len(self), 16)):
            j = (i + k) % len(self)
            try:
                return super().__getitem__(j)
            except ImageError as e:
                if self.strict:
                    raise
                if (self.records[j].file, str(e)) not in self.skipped:
                    self.skipped.append((self.records[j].file, str(e)))
                    # print, not warnings.warn: one line, no source line, and seen from a
                    # DataLoader worker process as well
                    print(f"googlenet: skipping unreadable image: {e}", file=sys.stderr)
        raise UserError(f"{self.name}: 16 consecutive images from index {i} cannot be read; "
                        f"first: {self.records[i].file}", key="data")
