"""The data's and the training augmentation's settings as config sections (``data``,
``augment``), read by this package's dataset openers and transforms. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..models.choices import MIN_INPUT_SIZE
from ..settings import PROB, UNIT, Range, setting

__all__ = ["DataConfig", "AugmentConfig", "INTERPOLATIONS", "ordered"]

INTERPOLATIONS = ("bilinear", "box", "nearest", "bicubic")


def _image_size(v: int) -> str:
    return (f"GoogLeNet needs inputs of at least {MIN_INPUT_SIZE} px (0 picks the dataset's "
            f"default)" if v != 0 and v < MIN_INPUT_SIZE else "")


def ordered(v: tuple[float, float]) -> str:
    """A (min, max) pair's check."""
    return "" if v[0] <= v[1] else "need min <= max"


@dataclass
class DataConfig:
    # None: the built-in set; "cifar10"/"cifar100"; or a folder (image folder; COCO/VOC/YOLO)
    path: Optional[str] = setting(None, alias="data")
    # CIFAR's folder; None: $GOOGLENET_DATA, else ~/.cache/googlenet/data
    root: Optional[str] = setting(None, alias="data_root")
    val_fraction: float = setting(0.1, range=PROB)  # held out of train when there is no val split
    strict: bool = setting(False)  # stop at the first unreadable image instead of skipping it
    # training/eval input side; 0: the dataset's default (digits 32, folders 224)
    image_size: int = setting(0, range=Range(0, 2048), check=_image_size)

    @property
    def name(self) -> str:
        """How run names and plot titles call the data."""
        from pathlib import Path

        return "digits" if self.path is None else Path(str(self.path)).name or "data"


@dataclass
class AugmentConfig:
    """The paper's training augmentation (§6)."""

    crop_scale: tuple[float, float] = setting((0.08, 1.0), range=Range(0, 1, lo_open=True),
                                              check=ordered)  # fraction of the image area
    crop_ratio: tuple[float, float] = setting((3 / 4, 4 / 3), range=Range(0, 100, lo_open=True),
                                              check=ordered)  # aspect ratio, log-uniform
    interpolations: tuple[str, ...] = setting(INTERPOLATIONS, choices=INTERPOLATIONS)  # one per sample
    hflip: float = setting(0.5, range=UNIT)  # probability of a horizontal flip (§6: mirroring)
    # ColorJitter strengths (Howard's photometric distortions)
    brightness: float = setting(0.4, range=Range(0, 10))
    contrast: float = setting(0.4, range=Range(0, 10))  # ColorJitter contrast strength (0: off)
    saturation: float = setting(0.4, range=Range(0, 10))  # ColorJitter saturation strength (0: off)
    hue: float = setting(0.0, range=Range(0, 0.5))  # ColorJitter's own limit
    pca_lighting: float = setting(0.1, range=Range(0, 10))  # AlexNet's PCA lighting noise (std)
