"""Detection datasets (the paper's §8): one type, ``DetectionDataset``, and joint box transforms.

``open_detection_dataset(spec, split)`` is the single entry point:

    None / "digits-detect"  built in, no download: 128 px canvases holding 1-4 of scikit-learn's
                            real handwritten digits at 12-56 px on cluttered backgrounds; fixed
                            seeded splits 2,000 train / 250 val / 500 test (``digits_detect``).
    "voc2007" / "voc2012"   Pascal VOC under ``root`` (torchvision's ``VOCDetection`` downloads
                            it when ``download=True``); split train / val / trainval / test.
    PATH                    a folder in one of three layouts, detected in this order:
                            COCO  PATH/annotations/instances_{split}.json or PATH/{split}.json,
                                  images in PATH/{split}/ (or {split}2017/, images/);
                            VOC   PATH/Annotations/*.xml + PATH/ImageSets/Main/{split}.txt +
                                  PATH/JPEGImages/ (or PATH/VOCdevkit/VOC2007/...);
                            YOLO  PATH/images/{split}/* + PATH/labels/{split}/*.txt, class names
                                  in PATH/classes.txt or PATH/data.yaml ``names:``.

Item ``i`` is ``(image, target)``: ``image`` a ``tv_tensors.Image`` uint8 (3, H, W) RGB and
``target = {"boxes": BoundingBoxes (N, 4) float32 XYXY in pixels, "labels": int64 (N,) indices
into .classes, "image_id": int}``; N may be 0. VOC folders add ``"difficult"``: bool (N,)
(VOC's flag: kept for training, as Detectron2 does; neither required nor penalised by
``metrics.detection``). COCO crowd regions are left out (as torchvision's references do). ``transforms`` (torchvision.transforms.v2) are
applied to the pair jointly, so boxes follow flips, crops and scaling.

Bad annotations are never silently used: boxes partly outside the image are clipped; boxes wholly
outside, with zero or negative size or an unknown class, images listed but missing, image paths
leading out of the dataset folder, and files that are not valid JSON/XML/txt are skipped and
listed in ``dataset.skipped`` as ``(file, why)``, or, with ``strict=True``, stop everything with
a ``UserError`` naming the file and annotation (``detection_formats``). An image that turns out
unreadable only when it is decoded (truncated) is skipped and named by item access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torchvision.transforms import v2 as T

from ..errors import UserError
from . import detection_formats as fmt
from .detection_dataset import (  # the dataset types, importable from here
    ArrayDetectionDataset, DetectionDataset, DetRecord, FileDetectionDataset,
)
from .digits_detect import DIGITS_DETECT_MEAN, DIGITS_DETECT_STD, digits_detect
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = ["DetectionDataset", "ArrayDetectionDataset", "FileDetectionDataset", "DetRecord",
           "open_detection_dataset", "detection_collate", "detection_train_transforms",
           "detection_eval_transforms", "default_train_transforms", "default_detection_size",
           "default_detection_preprocess", "DIGITS_DETECT"]

DIGITS_DETECT = "digits-detect"


def detection_collate(batch: Sequence[tuple[Any, dict]]) -> tuple[list, list[dict]]:
    """DataLoader ``collate_fn``: images differ in size and box count, so keep lists."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)


# ---------------------------------------------------------------------------------------------
# Transforms (boxes follow the image: tv_tensors.BoundingBoxes through transforms.v2)
# ---------------------------------------------------------------------------------------------

PER_BOX_KEYS = ("labels", "difficult", "iscrowd")


def _per_box(inputs: Any) -> Optional[tuple[torch.Tensor, ...]]:
    """SanitizeBoundingBoxes' labels_getter: every per-box tensor of the target (labels and, where
    present, difficult/iscrowd), so a dropped box takes all its fields with it."""
    for x in inputs if isinstance(inputs, (tuple, list)) else (inputs,):
        if isinstance(x, dict) and "labels" in x:
            return tuple(x[k] for k in PER_BOX_KEYS if isinstance(x.get(k), torch.Tensor))
    return None


def detection_train_transforms(size: int, *, hflip: float = 0.5,
                               scale: tuple[float, float] = (0.75, 1.25)) -> T.Compose:
    """Flip, scale jitter (longer side to ``size * s``, s in ``scale``), a random ``size`` square
    crop (zero-padded where the image is smaller), boxes clipped, degenerate boxes dropped, float.

    The output is a float image in [0, 1] (3, size, size); normalisation (mean/std) belongs to
    the model's stored ``Preprocess``.
    """
    if not 0.0 <= hflip <= 1.0:
        raise UserError(f"hflip must be a probability in [0, 1], got {hflip}", key="hflip")
    if not (0 < scale[0] <= scale[1]):
        raise UserError(f"scale must be (low, high) with 0 < low <= high, got {scale}", key="scale")
    steps: list[Any] = [T.ToImage()]
    if hflip > 0:
        steps.append(T.RandomHorizontalFlip(hflip))
    steps += [T.ScaleJitter((size, size), scale_range=tuple(scale), antialias=True),
              T.RandomCrop(size, pad_if_needed=True, fill=0),
              T.ClampBoundingBoxes(),
              T.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_per_box),
              T.ToDtype(torch.float32, scale=True)]
    return T.Compose(steps)


def detection_eval_transforms(size: int) -> T.Compose:
    """Longer side to ``size`` (aspect kept, no crop: every box stays), float in [0, 1]."""
    return T.Compose([T.ToImage(), T.Resize(None, max_size=size, antialias=True),
                      T.ClampBoundingBoxes(), T.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_per_box),
                      T.ToDtype(torch.float32, scale=True)])


def _kind(spec: str | os.PathLike | None) -> str:
    if spec is None or str(spec) == DIGITS_DETECT:
        return DIGITS_DETECT
    if str(spec).lower() in ("voc2007", "voc2012"):
        return str(spec).lower()
    return "folder"


def default_train_transforms(spec: str | os.PathLike | None, size: Optional[int] = None) -> T.Compose:
    """The recommended training transforms for a dataset: digits are not mirror-symmetric, so
    digits-detect trains without horizontal flips."""
    size = size or default_detection_size(spec)
    hflip = 0.0 if _kind(spec) == DIGITS_DETECT else 0.5
    return detection_train_transforms(size, hflip=hflip)


def default_detection_size(spec: str | os.PathLike | None) -> int:
    """The input side a detector for this dataset trains at: 128 for digits-detect, else 512."""
    return 128 if _kind(spec) == DIGITS_DETECT else 512


def default_detection_preprocess(spec: str | os.PathLike | None,
                                 size: Optional[int] = None) -> Preprocess:
    """The preprocessing record a detector stores with its weights (size, mean/std)."""
    size = size or default_detection_size(spec)
    if _kind(spec) == DIGITS_DETECT:
        return Preprocess(crop=size, resize=size, mean=DIGITS_DETECT_MEAN, std=DIGITS_DETECT_STD,
                          note=f"digits-detect: 128 px canvases resized to {size}, normalised by "
                               f"the training canvases' mean/std")
    return Preprocess(crop=size, resize=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      note=f"detection: longer side to {size} (aspect kept), ImageNet mean/std")


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def open_detection_dataset(spec: str | os.PathLike | None, split: str, *,
                           transforms: Optional[Callable] = None, strict: bool = False,
                           seed: int = 0, val_fraction: float = 0.1,
                           root: Optional[str | os.PathLike] = None,
                           download: bool = False) -> DetectionDataset:
    """Open a detection dataset (see the module docstring for ``spec``).

    ``seed`` and ``val_fraction`` split a folder that has a train split but no val split
    (``val_fraction`` of the train images, chosen by ``seed``); the built-in splits are fixed.
    ``root`` is where ``voc2007``/``voc2012`` live (default ``$GOOGLENET_DATA``).
    """
    kind = _kind(spec)
    if kind == DIGITS_DETECT:
        return digits_detect(split, transforms=transforms)
    if kind.startswith("voc"):
        return fmt.open_voc_download(kind, split, transforms=transforms, strict=strict,
                                     root=root, download=download)
    path = Path(spec)  # type: ignore[arg-type]
    if not path.is_dir():
        raise UserError(f"detection dataset {str(spec)!r} is neither {DIGITS_DETECT!r}, 'voc2007', "
                        f"'voc2012' nor a folder; give one of those", key="data")
    return fmt.open_folder(path, split, transforms=transforms, strict=strict, seed=seed,
                           val_fraction=val_fraction)
