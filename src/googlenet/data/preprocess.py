"""The input pipeline a set of weights expects, stored with the weights and applied for them.

Every loader of weights returns a ``Preprocess``; ``predict``, ``eval`` and ``export`` apply it, so
users never have to know (or silently get wrong) the size, the crop, the mean/std or the channel
order a model was trained with.

Pixels are first scaled to [0, 1] RGB, then normalised ``(x - mean) / std``. Channel order and
scale differences are folded into mean/std and the weights themselves (Caffe's BGR 0-255 input is
``mean = (123, 117, 104) / 255``, ``std = 1 / 255`` after the first conv's input channels are
flipped to RGB).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from .imaging import ResizedSizeCheck

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Bounds on what a weights file may ask for (its metadata is untrusted input): GoogLeNet's
# activations grow with the square of the crop (224: ~0.1 GB a batch of 32; 2048: ~100x that),
# and the 144-crop scales go up to resize * 352/256.
MAX_CROP = 2048
MAX_RESIZE = 4096

_INTERP = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
    "box": InterpolationMode.BOX,  # PIL's area-averaging filter
}


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize``, center-crop ``crop``, scale to [0,1], normalise."""

    crop: int = 224
    resize: int = 256  # shorter side before the center crop (224/256 = 0.875, as torchvision)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    grayscale: bool = False  # in_chans=1 models
    note: str = field(default="", compare=False)  # where these settings come from

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERP:
            raise ValueError(f"interpolation must be one of {sorted(_INTERP)}")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        n = 1 if self.grayscale else 3
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) not in (1, n):  # one value broadcasts over the channels, as in Normalize
                raise ValueError(f"{name} has {len(v)} values for {n}-channel input; give 1 or {n}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        for name in ("crop", "resize"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be a whole number of pixels, got {v!r}")
        if not all(math.isfinite(x) for x in (*self.mean, *self.std)):
            raise ValueError(f"mean and std must be finite, got {self.mean}, {self.std}")
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"need 1 <= crop <= resize, got crop {self.crop}, resize {self.resize}")
        if self.crop > MAX_CROP or self.resize > MAX_RESIZE:
            raise ValueError(f"crop {self.crop}, resize {self.resize}: at most crop {MAX_CROP}, "
                             f"resize {MAX_RESIZE} pixels")

    @property
    def interp(self) -> InterpolationMode:
        return _INTERP[self.interpolation]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def from_json(cls, s: str) -> "Preprocess":
        return cls.from_dict(json.loads(s))

    @classmethod
    def for_size(cls, crop: int, **kw: Any) -> "Preprocess":
        """Scale the 256/224 resize ratio to another crop size (e.g. 64 -> 73)."""
        return cls(crop=crop, resize=round(crop * 256 / 224), **kw)

    def normalize(self) -> T.Compose:
        """Image (PIL or uint8 tensor) -> float tensor (C, H, W), normalised. No resizing."""
        steps: list[Any] = [T.ToImage()]
        if self.grayscale:
            steps.append(T.Grayscale(1))
        steps += [T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    def eval_transform(self) -> T.Compose:
        """PIL image -> (C, crop, crop) tensor: the single center crop.

        Resizing runs on the uint8 tensor (not PIL), exactly as ``crops.multi_crop`` does, so the
        1-crop evaluation and this transform give identical inputs.
        """
        return T.Compose([ResizedSizeCheck(self.resize), T.ToImage(), T.Resize(self.resize, interpolation=self.interp, antialias=True),
                          T.CenterCrop(self.crop), self.normalize()])

    def channels(self) -> int:
        return 1 if self.grayscale else 3

