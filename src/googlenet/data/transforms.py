"""Training-time augmentation (§6): random-area crops with a random interpolation method per
sample, flips, Howard's photometric distortions and AlexNet's PCA lighting noise."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torchvision.transforms import v2 as T

from .config import AugmentConfig
from .preprocess import _INTERP, Preprocess

__all__ = ["PCALighting", "train_transform", "augment_params"]


class PCALighting(nn.Module):
    """AlexNet's PCA lighting noise ("fancy PCA", Krizhevsky et al. 2012 §4.1), which Howard's
    photometric distortions build on: add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~
    N(0, std). torchvision has no such transform, hence this one. Eigen-decomposition of ImageNet's
    RGB covariance for [0, 1] pixels, as in fb.resnet.torch and timm.

    Input/output: a float image tensor (3, H, W) in [0, 1] (before Normalize).
    """

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = std

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.std <= 0:
            return img
        alpha = torch.randn(3) * self.std  # (3,)
        rgb = self.eigvec @ (alpha * self.eigval)  # (3,)
        return img + rgb.view(3, 1, 1).to(img.dtype)


def train_transform(cfg: AugmentConfig, preprocess: Preprocess) -> T.Compose:
    """PIL RGB image -> normalised (3, S, S) tensor with the recipe's augmentation.

    The random interpolation method per sample (§6) is ``RandomChoice`` over one
    ``RandomResizedCrop`` per method, each picked with equal probability.
    """
    size = preprocess.crop
    crops = [T.RandomResizedCrop(size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                                 interpolation=_INTERP[m], antialias=True)
             for m in cfg.interpolations]
    steps: list[Any] = [crops[0] if len(crops) == 1 else T.RandomChoice(crops)]
    if cfg.hflip > 0:
        steps.append(T.RandomHorizontalFlip(cfg.hflip))
    if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
        steps.append(T.ColorJitter(brightness=cfg.brightness or None, contrast=cfg.contrast or None,
                                   saturation=cfg.saturation or None, hue=cfg.hue or None))
    steps += [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if cfg.pca_lighting > 0:
        steps.append(PCALighting(cfg.pca_lighting))
    steps.append(T.Normalize(preprocess.mean, preprocess.std))
    return T.Compose(steps)


def augment_params(cfg: AugmentConfig, size: int) -> "AugmentParams":
    """The same augmentation settings for the GPU pipeline (data/gpu_pipeline.py)."""
    from .gpu_pipeline import AugmentParams

    return AugmentParams(size=size, crop_scale=tuple(cfg.crop_scale), crop_ratio=tuple(cfg.crop_ratio),
                         interpolations=tuple(cfg.interpolations), hflip=cfg.hflip,
                         brightness=cfg.brightness, contrast=cfg.contrast,
                         saturation=cfg.saturation, hue=cfg.hue, pca_lighting=cfg.pca_lighting)
