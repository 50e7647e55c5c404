"""GoogLeNet's parts: the paper's Table 1 as data, and the blocks the network is built from.

Layout, as in timm: configs (Table 1, as data), then blocks here; the network that stacks them is
``googlenet.py``. The variants (``Variant`` records) and the other named choices are in
``choices.py``. No ``from __future__ import annotations``: TorchScript compiles these modules'
forwards (see ``googlenet.py``).
"""

from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "InceptionSpec", "TABLE1", "STEM_CONV1", "STEM_CONV2_REDUCE", "STEM_CONV2",
    "SEPARABLE_DEPTH_MULTIPLIER", "AUX_TAPS", "AUX_CONV", "AUX_FC", "AUX_GRID", "scale_width",
    "scaled_spec", "ConvBlock", "SeparableConvBlock", "max_pool", "Inception", "aux_pool",
    "AuxHead", "TorchvisionInputTransform",
]


# ---------------------------------------------------------------------------------------------
# Configs: Table 1, as data (the variants: choices.py)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InceptionSpec:
    """One inception row of Table 1, its six widths named as the paper's columns."""

    name: str
    n1x1: int
    n3x3red: int
    n3x3: int
    n5x5red: int
    n5x5: int
    pool_proj: int

    def out_channels(self, in_channels: int, naive: bool = False) -> int:
        # The naive module's pool branch passes its input through (Figure 2a), so it widens.
        return self.n1x1 + self.n3x3 + self.n5x5 + (in_channels if naive else self.pool_proj)


# Stem widths (Table 1 rows 1 and 3: conv 7x7/2 64; conv 1x1 64 -> 3x3/1 192).
STEM_CONV1 = 64
STEM_CONV2_REDUCE = 64
STEM_CONV2 = 192
# Separable stem: depth multiplier of the depthwise 7x7 that reproduces Table 1's row 1
# (7*7*3*8 + 3*8*64 = 2,712 weights; BN-Inception, arXiv 1502.03167, uses such a first layer).
SEPARABLE_DEPTH_MULTIPLIER = 8

# Table 1, in network order. A string is a 3x3/2 max pool between stages.
TABLE1: tuple[InceptionSpec | str, ...] = (
    InceptionSpec("inception_3a", 64, 96, 128, 16, 32, 32),
    InceptionSpec("inception_3b", 128, 128, 192, 32, 96, 64),
    "pool3",
    InceptionSpec("inception_4a", 192, 96, 208, 16, 48, 64),
    InceptionSpec("inception_4b", 160, 112, 224, 24, 64, 64),
    InceptionSpec("inception_4c", 128, 128, 256, 24, 64, 64),
    InceptionSpec("inception_4d", 112, 144, 288, 32, 64, 64),
    InceptionSpec("inception_4e", 256, 160, 320, 32, 128, 128),
    "pool4",
    InceptionSpec("inception_5a", 256, 160, 320, 32, 128, 128),
    InceptionSpec("inception_5b", 384, 192, 384, 48, 128, 128),
)
# Auxiliary classifiers sit on the outputs of 4a and 4d (§5).
AUX_TAPS = {"inception_4a": "aux1", "inception_4d": "aux2"}
AUX_CONV = 128  # 1x1 conv filters
AUX_FC = 1024  # fully connected units
AUX_GRID = 4  # 14x14 -> 4x4 by avgpool 5x5/3, so the FC sees 128 * 4 * 4 = 2048 inputs
# The variants (the Variant records), the other switches, MIN_INPUT_SIZE and feature_grid are in
# choices.py, without torch, for the command line's --help.


def scale_width(channels: int, width: float) -> int:
    """A Table 1 width times the ``width`` multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def scaled_spec(spec: InceptionSpec, width: float) -> InceptionSpec:
    if width == 1.0:
        return spec
    return InceptionSpec(spec.name, *(scale_width(getattr(spec, f), width) for f in (
        "n1x1", "n3x3red", "n3x3", "n5x5red", "n5x5", "pool_proj")))


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """conv -> [BN] -> ReLU. Every convolution in GoogLeNet, reductions included, has a ReLU (§5).

    The attribute names (``conv``, ``bn``) are torchvision's ``BasicConv2d``'s, so its keys load.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, batchnorm: bool = False, bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batchnorm else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class SeparableConvBlock(nn.Module):
    """Depthwise kxk (depth multiplier m) -> pointwise 1x1 -> [BN] -> ReLU, counted as one layer.

    Only used for ``stem="separable"``: it is the reading of Table 1 row 1 (2.7K params, 34M ops)
    that fits its numbers; the paper's text and Caffe's model use a full 7x7 conv instead.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, multiplier: int = SEPARABLE_DEPTH_MULTIPLIER,
                 batchnorm: bool = False, bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels * multiplier, kernel_size,
                                   stride=stride, padding=padding, groups=in_channels, bias=False)
        self.conv = nn.Conv2d(in_channels * multiplier, out_channels, 1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if batchnorm else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.depthwise(x))
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


def max_pool(kernel: int, stride: int, padding: int = 0) -> nn.MaxPool2d:
    # Caffe rounds pooled sizes up (ceil mode): 112 -> 56 -> 28 -> 14 -> 7 with 3x3/2 pools.
    return nn.MaxPool2d(kernel, stride=stride, padding=padding, ceil_mode=True)


class Inception(nn.Module):
    """Figure 2: four branches on the same input, concatenated on channels.

    reduced (2b): 1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 5x5 | maxpool 3x3/1 -> 1x1 pool proj.
    naive (2a):   1x1 | 3x3 | 5x5 | maxpool 3x3/1 (input passed through, so the output widens).
    """

    def __init__(self, in_channels: int, spec: InceptionSpec, *, conv: Callable[..., nn.Module],
                 kernel5x5: int = 5, naive: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.naive = naive
        self.in_channels = in_channels
        self.out_channels = spec.out_channels(in_channels, naive)
        pad5 = kernel5x5 // 2  # "same" padding
        self.conv1x1 = conv(in_channels, spec.n1x1, 1)
        if naive:
            self.conv3x3 = conv(in_channels, spec.n3x3, 3, padding=1)
            self.conv5x5 = conv(in_channels, spec.n5x5, kernel5x5, padding=pad5)
        else:
            self.reduce3x3 = conv(in_channels, spec.n3x3red, 1)
            self.conv3x3 = conv(spec.n3x3red, spec.n3x3, 3, padding=1)
            self.reduce5x5 = conv(in_channels, spec.n5x5red, 1)
            self.conv5x5 = conv(spec.n5x5red, spec.n5x5, kernel5x5, padding=pad5)
        self.pool = max_pool(3, 1, padding=1)
        self.pool_proj = None if naive else conv(in_channels, spec.pool_proj, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C_in, H, W) -> (N, C_out, H, W)
        if self.pool_proj is None:  # naive (TorchScript skips the branch of a module it lacks)
            branches = [self.conv1x1(x), self.conv3x3(x), self.conv5x5(x), self.pool(x)]
        else:
            branches = [
                self.conv1x1(x),
                self.conv3x3(self.reduce3x3(x)),
                self.conv5x5(self.reduce5x5(x)),
                self.pool_proj(self.pool(x)),
            ]
        return torch.cat(branches, 1)  # order as in Caffe's concat: 1x1, 3x3, 5x5, pool proj


def aux_pool(x: torch.Tensor, paper: bool, grid: int = AUX_GRID) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 4, 4): the paper's avgpool 5x5/3 where the paper defines it (a
    14x14 tap, i.e. a 224 input: Caffe's loss1/ave_pool), adaptive pooling to 4x4 elsewhere.

    At 14x14 the two differ (5-wide windows at 0/3/6/9 against adaptive 4-wide ones at 0/3/7/10),
    so no one shape-independent op gives both; the choice is made on the shape at run time.
    (``grid`` is an argument because TorchScript cannot read a module-level int.)
    ``torch.fx.wrap`` below makes this function a single leaf node for FX tracing (torchvision's
    ``create_feature_extractor``, timm's ``FeatureGraphNet``), which cannot branch on a traced
    shape; eager, ``torch.jit.trace`` and ``torch.export`` run it as plain Python.
    """
    if paper and x.shape[-2] == 14 and x.shape[-1] == 14:
        return F.avg_pool2d(x, 5, stride=3, ceil_mode=True)  # (N, C, 4, 4): Caffe's loss1/ave_pool
    return F.adaptive_avg_pool2d(x, (grid, grid))  # (N, C, 4, 4)


torch.fx.wrap("aux_pool")


class AuxHead(nn.Module):
    """Auxiliary classifier (§5): avgpool 5x5/3 -> conv 1x1 128 -> FC 1024 -> dropout 70% -> linear.

    At a 224 input its tap is 14x14 and the paper's 5x5/3 pool gives 4x4. At other input sizes
    (a departure the paper does not cover) the pool adapts to 4x4 so the FC still sees 2048 inputs.
    """

    def __init__(self, in_channels: int, num_classes: int, *, conv: Callable[..., nn.Module],
                 dropout: float, pool: str) -> None:
        super().__init__()
        self.pool_mode = pool
        self.conv = conv(in_channels, AUX_CONV, 1)
        self.fc1 = nn.Linear(AUX_CONV * AUX_GRID * AUX_GRID, AUX_FC)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(AUX_FC, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, 14, 14) at a 224 input
        x = aux_pool(x, self.pool_mode == "paper")  # (N, C, 4, 4)
        x = torch.flatten(self.conv(x), 1)  # (N, 2048)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))  # (N, 1024)
        return self.fc2(x)  # (N, num_classes)


class TorchvisionInputTransform(nn.Module):
    """torchvision's ``transform_input=True``, as an explicit, visible layer.

    torchvision's ImageNet GoogLeNet weights were ported from a network trained on inputs scaled
    to [-1, 1]; torchvision silently rescales ImageNet-normalised input to that range
    (pytorch/vision#4136). Here it is a named module that shows up in ``print(model)`` and in the
    saved config, and it exists only when asked for.
    """

    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)
    __constants__ = ["mean", "std"]  # TorchScript reads class attributes declared as constants

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 3, H, W)
        # Same arithmetic, in the same order, as torchvision's GoogLeNet._transform_input.
        chans = [x[:, i].unsqueeze(1) * (self.std[i] / 0.5) + (self.mean[i] - 0.5) / 0.5
                 for i in range(3)]
        return torch.cat(chans, 1)
