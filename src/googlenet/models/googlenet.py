"""GoogLeNet (Inception v1), built from the paper's Table 1.

Szegedy et al. 2014, "Going Deeper with Convolutions" (arXiv 1409.4842). Where the paper is silent
the BVLC Caffe reproduction (``models/bvlc_googlenet``) is the reference.

Layout, as in timm: configs (Table 1, as data), then blocks, then the network. One code path
serves every variant; they differ only in their ``Variant`` record, which lives with the other
named choices in ``choices.py`` (plain data without torch, so the command line can list them
at once). The registry and builders are in ``registry.py``, timm's helpers (index selection,
pretrained_cfg) in ``contract.py``.

Why one module (over 500 lines): the paper's Table 1, the blocks it is made of and the network
they form are read side by side (CONVENTIONS: timm's ``inception_v3.py`` keeps them in one file);
the network's timm/torchvision contract (forward_features, forward_intermediates, feature_info,
reset_classifier, the torchvision key map) is its interface and stays with it.

TorchScript: ``torch.jit.script`` compiles every variant, as it does torchvision's GoogLeNet, and
so does an FX graph of it. Hence no ``from __future__ import annotations`` here (FX copies the
forward's annotations into the code it generates, where TorchScript cannot read a string), and
the forward's stage loop has a spelled-out twin for TorchScript (``_trunk_scripted``).
"""

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .choices import (
    HEADS, INCEPTION_KINDS, MIN_INPUT_SIZE, NORMS, STEMS, VARIANTS, Variant, feature_grid,
)
from .lrn import LocalResponseNorm
from .contract import group_matcher as _group_matcher
from .contract import pretrained_cfg_from, take_indices

__all__ = [
    "InceptionSpec", "TABLE1", "Variant", "VARIANTS", "GoogLeNet", "GoogLeNetOutputs",
    "Inception", "AuxHead", "ConvBlock", "SeparableConvBlock", "TorchvisionInputTransform",
    "MIN_INPUT_SIZE", "torchvision_key", "HEADS", "NORMS", "scale_width", "feature_grid",
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


def _max_pool(kernel: int, stride: int, padding: int = 0) -> nn.MaxPool2d:
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
        self.pool = _max_pool(3, 1, padding=1)
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


def _aux_pool(x: torch.Tensor, paper: bool, grid: int = AUX_GRID) -> torch.Tensor:
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


def _check_input(x: torch.Tensor, in_chans: int, img_size: Optional[int] = None,
                 min_size: int = MIN_INPUT_SIZE) -> None:
    """Raise ValueError for input the network cannot take, saying what it accepts. An FX leaf
    (``torch.fx.wrap``, below): traced graphs keep the check instead of failing on it. Written
    so TorchScript compiles it too (no tuple(), no module-level int)."""
    if x.dim() != 4 or x.shape[1] != in_chans:
        shape = ", ".join([str(n) for n in x.shape])
        raise ValueError(f"GoogLeNet expects input of shape (N, {in_chans}, H, W), got "
                         f"({shape})")
    if x.shape[-2] < min_size or x.shape[-1] < min_size:
        raise ValueError(f"input of {x.shape[-2]}x{x.shape[-1]} pixels is too small: GoogLeNet "
                         f"accepts {min_size}x{min_size} and larger (224x224 is "
                         f"the paper's size)")
    if img_size is not None and (x.shape[-2] != img_size or x.shape[-1] != img_size):
        raise ValueError(f"this network's fully connected head (head='fc') takes only "
                         f"{img_size}x{img_size} input, got {x.shape[-2]}x{x.shape[-1]}")


torch.fx.wrap("_aux_pool")
torch.fx.wrap("_check_input")


def _fx_tracing() -> bool:
    """Whether torch.fx.symbolic_trace is running (torch.utils.checkpoint cannot be traced)."""
    fx = torch.fx._symbolic_trace
    check = getattr(fx, "is_fx_symbolic_tracing", None) or getattr(fx, "is_fx_tracing")
    return check()


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
        x = _aux_pool(x, self.pool_mode == "paper")  # (N, C, 4, 4)
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


class GoogLeNetOutputs(NamedTuple):
    """What ``forward`` returns in training mode with aux heads; in eval it returns ``logits``."""

    logits: torch.Tensor
    aux1: torch.Tensor
    aux2: torch.Tensor


def _check_args(variant: str, num_classes: Any, in_chans: Any, inception: str, stem: str,
                transform_input: bool, global_pool: str) -> None:
    """Raise ValueError for constructor arguments GoogLeNet cannot be built with."""
    _check_global_pool(global_pool, num_classes)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
    if inception not in INCEPTION_KINDS:
        raise ValueError(f"unknown inception {inception!r}; choose one of {list(INCEPTION_KINDS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {list(STEMS)}")
    if not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be an integer >= 1, got {in_chans!r}")
    if transform_input and in_chans != 3:
        raise ValueError("transform_input applies to 3-channel RGB input only (in_chans=3)")


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

def _check_ablation(width: float, head: str, norm: Optional[str], img_size: Optional[int]) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be a number > 0, got {width!r}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {list(HEADS)}")
    if norm is not None and norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {list(NORMS)} (or None: the "
                         f"variant's)")
    if head == "fc" and (not isinstance(img_size, int) or img_size < MIN_INPUT_SIZE):
        raise ValueError(f"head='fc' needs the fixed input size: img_size an integer >= "
                         f"{MIN_INPUT_SIZE}, got {img_size!r}")


class GoogLeNet(nn.Module):
    """GoogLeNet as in Table 1 and Figure 3.

    Output contract (one type per mode, pytorch/vision#1273): in eval mode, and in training mode
    without aux heads, ``forward`` returns the logits tensor ``(N, num_classes)``; in training mode
    with aux heads it returns ``GoogLeNetOutputs(logits, aux1, aux2)``.

    Aux heads default: ``aux_logits=True`` here and in ``googlenet.create_model``, because the
    paper trains with them (§5) and ``googlenet train`` passes its ``aux_logits`` setting
    explicitly. A standard training loop (``loss_fn(model(x), y)``) needs a tensor, so the entry
    points built for outside loops default to ``aux_logits=False``: ``timm.create_model`` (after
    ``import googlenet.interop.timm``) and ``torch.hub.load`` (``hubconf.py``).

    timm's model contract: ``forward_features`` / ``forward_head(pre_logits=)``,
    ``forward_intermediates`` / ``prune_intermediate_layers`` over ``feature_info``,
    ``get_classifier`` / ``reset_classifier(num_classes, global_pool)``, ``group_matcher``,
    ``set_grad_checkpointing``, ``drop_rate`` (another name for ``dropout``, the keyword timm's
    train.py passes), and ``pretrained_cfg`` (input size, mean/std, crop; filled from the stored
    preprocessing when weights are loaded), so ``timm.data.resolve_model_data_config`` works.

    Ablation switches (``googlenet experiment``), not paper variants; their defaults build the
    paper's network, with the same state-dict keys:

    - ``width``: multiplies every Table 1 width and the stem's (rounded, >= 1); the aux heads
      keep theirs. Used to trim the naive network to the reduced one's compute.
    - ``head``: ``"gap"`` (§5: global average pooling, then the linear layer) or ``"fc"`` (flatten
      the (num_features, h, w) map of 5b into the linear layer, as before NIN). The FC head's size
      depends on h x w, so it needs ``img_size`` and accepts only that input size (at 32 px the
      map is 1x1 and "fc" is the same function as "gap").
    - ``norm``: ``"lrn"`` (the paper's), ``"bn"`` or ``"none"``, replacing the variant's
      normalisation (None: the variant's). BN keeps the variant's eps (1e-3 if it has none).
    """

    def __init__(self, *, variant: str = "paper", num_classes: int = 1000, in_chans: int = 3,
                 aux_logits: bool = True, inception: str = "reduced", stem: str = "paper",
                 transform_input: bool = False, dropout: Optional[float] = None,
                 aux_dropout: Optional[float] = None, init_weights: bool = True,
                 drop_rate: Optional[float] = None, global_pool: str = "avg",
                 width: float = 1.0, head: str = "gap", norm: Optional[str] = None,
                 img_size: Optional[int] = None) -> None:
        super().__init__()
        dropout = _same_dropout(dropout, drop_rate)
        _check_args(variant, num_classes, in_chans, inception, stem, transform_input, global_pool)
        _check_ablation(width, head, norm, img_size)
        v = VARIANTS[variant]
        self.variant = v
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.aux_logits = aux_logits
        self.inception_kind = inception
        self.stem_kind = stem
        self.transform_input = transform_input
        self.drop_rate = v.dropout if dropout is None else float(dropout)
        aux_drop = v.aux_dropout if aux_dropout is None else float(aux_dropout)
        # Everything needed to rebuild this model; saved with weights and checkpoints. (Not
        # annotated here: torch.jit.script warns about an annotated dict attribute in __init__.)
        self.config = dict(
            variant=variant, num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
            inception=inception, stem=stem, transform_input=transform_input,
            dropout=self.drop_rate, aux_dropout=aux_drop, global_pool=global_pool,
            width=float(width), head=head,
            norm=norm, img_size=img_size if head == "fc" else None)
        self.width_mult, self.head_kind, self.norm_kind = float(width), head, norm
        self.img_size = img_size if head == "fc" else None
        use_bn, use_lrn = {None: (v.batchnorm, v.lrn), "bn": (True, False),
                           "lrn": (False, True), "none": (False, False)}[norm]
        bn_eps = v.bn_eps or 1e-3
        stem1, stem2r, stem2 = (scale_width(c, self.width_mult)
                                for c in (STEM_CONV1, STEM_CONV2_REDUCE, STEM_CONV2))

        conv = partial(ConvBlock, batchnorm=use_bn, bn_eps=bn_eps)
        # Caffe's LRN (size 5, alpha 1e-4, beta 0.75, k 1); models/lrn.py computes the same function
        # as nn.LocalResponseNorm with a hand-written backward, 7-8x faster at 32x192x56x56.
        lrn = (lambda: LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)) if use_lrn else nn.Identity

        self.input_transform = TorchvisionInputTransform() if transform_input else nn.Identity()
        self._build_stem(conv, lrn, stem1, stem2r, stem2, use_bn, bn_eps)

        self.num_features = self._build_stages(conv, stem2, v)  # 1024 for the reduced module

        if aux_logits:
            for tap, head in AUX_TAPS.items():
                self.add_module(head, AuxHead(self.tap_channels[tap], num_classes, conv=conv,
                                              dropout=aux_drop, pool=v.aux_pool))
        else:
            self.aux1 = self.aux2 = None

        # Head: avgpool 7x7/1 (global at a 224 input, so adaptive pooling is the same op and
        # also serves other sizes) -> dropout -> linear.
        # head="fc" (ablation): no pooling; the linear layer sees the whole (C, g, g) map.
        # global_pool="" (timm, with num_classes=0): forward_head returns the unpooled map.
        self.global_pool = global_pool
        pooled = self.head_kind == "gap" and bool(global_pool)
        self.avgpool = nn.AdaptiveAvgPool2d(1) if pooled else nn.Identity()
        grid = feature_grid(img_size, v.pool4_kernel) if self.head_kind == "fc" else 1
        self.head_features = self.num_features * grid * grid
        self.dropout = nn.Dropout(self.drop_rate)
        self.fc = nn.Linear(self.head_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head_hidden_size = self.head_features
        self.grad_checkpointing = False

        self.feature_info = [
            dict(num_chs=stem1, reduction=2, module="conv1"),
            dict(num_chs=stem2, reduction=4, module="conv2"),
            dict(num_chs=self.tap_channels["inception_3b"], reduction=8, module="inception_3b"),
            dict(num_chs=self.tap_channels["inception_4e"], reduction=16, module="inception_4e"),
            dict(num_chs=self.tap_channels["inception_5b"], reduction=32, module="inception_5b"),
        ]
        self.pretrained_cfg = pretrained_cfg_from(None, self)  # replaced when weights load
        self._register_load_state_dict_pre_hook(_torchvision_keys_hook)
        if init_weights:
            self.init_weights()

    # -- construction (called by __init__ in this order: module order fixes the init) --------

    def _build_stem(self, conv: Callable[..., nn.Module], lrn: Callable[[], nn.Module],
                    stem1: int, stem2r: int, stem2: int, use_bn: bool, bn_eps: float) -> None:
        # Stem (Table 1 rows 1-4). Caffe's order: conv1 -> pool1 -> norm1 -> conv2 -> norm2 -> pool2.
        if self.stem_kind == "separable":
            self.conv1 = SeparableConvBlock(self.in_chans, stem1, 7, stride=2, padding=3,
                                            batchnorm=use_bn, bn_eps=bn_eps)
        else:
            self.conv1 = conv(self.in_chans, stem1, 7, stride=2, padding=3)  # (N, 64, 112, 112)
        self.pool1 = _max_pool(3, 2)  # (N, 64, 56, 56)
        self.norm1 = lrn()
        self.conv2_reduce = conv(stem1, stem2r, 1)
        self.conv2 = conv(stem2r, stem2, 3, padding=1)  # (N, 192, 56, 56)
        self.norm2 = lrn()
        self.pool2 = _max_pool(3, 2)  # (N, 192, 28, 28)

    def _build_stages(self, conv: Callable[..., nn.Module], channels: int, v: Variant) -> int:
        """The Inception stages and pools from TABLE1; returns the channels out of 5b."""
        # Inception stages, built from TABLE1; widths are tracked so the naive module can widen.
        self.stage_names: list[str] = ["conv1", "pool1", "norm1", "conv2_reduce", "conv2",
                                       "norm2", "pool2"]
        self.tap_channels: dict[str, int] = {}
        for row in TABLE1:
            if isinstance(row, str):
                kernel = v.pool4_kernel if row == "pool4" else 3
                self.add_module(row, _max_pool(kernel, 2))  # 28 -> 14 (pool3), 14 -> 7 (pool4)
                self.stage_names.append(row)
                continue
            block = Inception(channels, scaled_spec(row, self.width_mult), conv=conv, kernel5x5=v.kernel5x5,
                              naive=self.inception_kind == "naive")
            self.add_module(row.name, block)
            self.stage_names.append(row.name)
            channels = block.out_channels
            self.tap_channels[row.name] = channels
        return channels

    # -- weights ---------------------------------------------------------------------------

    def classifiers(self) -> list[nn.Module]:
        """The final linear layers (main and aux), whose bias Caffe initialises to 0."""
        heads = [self.fc] + [h.fc2 for h in (self.aux1, self.aux2) if h is not None]
        return [h for h in heads if isinstance(h, nn.Linear)]

    def init_weights(self) -> None:
        if self.variant.init == "caffe":
            # Caffe's "xavier" filler scales by fan-in only: U(-sqrt(3/fan_in), +sqrt(3/fan_in)),
            # which is kaiming_uniform_ with a=1 (not nn.init.xavier_uniform_, which also uses
            # fan_out). bvlc_googlenet sets conv/FC biases to 0.2 and classifier biases to 0.
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(m.weight, a=1.0)
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0.2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            for m in self.classifiers():
                nn.init.zeros_(m.bias)
        else:  # torchvision's GoogLeNet init, draw for draw (same seed, same weights)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    # Biases (the linear layers'; its convs have none) keep PyTorch's default.
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    # -- timm's model contract ------------------------------------------------------------

    __jit_unused_properties__ = ["default_cfg"]  # a dict of mixed types: not for TorchScript

    @property
    def default_cfg(self) -> dict[str, Any]:
        """timm's older name for ``pretrained_cfg``."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any]) -> None:
        self.pretrained_cfg = cfg

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for timm's layer-wise lr decay: stem, inception modules (per stage
        when ``coarse``), then the head (fc and the aux classifiers)."""
        return _group_matcher(self.stage_names, coarse)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """In training, recompute each inception module in the backward pass instead of keeping
        its activations (``torch.utils.checkpoint``): less memory, about one more forward of
        compute. As with any checkpointed BatchNorm (timm's models too), BN running statistics
        are updated once more during the recomputation."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New, freshly initialised final layers (main and aux) for ``num_classes`` outputs.

        ``global_pool`` (timm's): ``"avg"`` (the paper's global average pool) or ``""`` (no
        pooling: ``forward_head`` returns the feature map; needs ``num_classes=0``); ``None``
        keeps the current one.
        """
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        if global_pool is not None:
            _check_global_pool(global_pool, num_classes)
            self.global_pool = global_pool
            pooled = bool(global_pool) and self.head_kind == "gap"
            self.avgpool = nn.AdaptiveAvgPool2d(1) if pooled else nn.Identity()
            self.config["global_pool"] = global_pool
        else:
            _check_global_pool(self.global_pool, num_classes)
        self.num_classes = num_classes
        self.config["num_classes"] = num_classes

        def linear(n_in: int) -> nn.Module:
            if num_classes == 0:
                return nn.Identity()
            layer = nn.Linear(n_in, num_classes)  # the variant's init, as in init_weights
            if self.variant.init == "caffe":
                nn.init.kaiming_uniform_(layer.weight, a=1.0)
                nn.init.zeros_(layer.bias)
            else:  # torchvision's: PyTorch's default bias
                nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01, a=-2, b=2)
            return layer

        device = next(self.parameters()).device
        self.fc = linear(self.head_features).to(device).train(self.training)
        for head in (self.aux1, self.aux2):
            if head is not None:
                head.fc2 = linear(AUX_FC).to(device).train(self.training)

    def prune_intermediate_layers(self, indices: Union[int, Sequence[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True) -> list[int]:
        """Drop the stages after the deepest feature level in ``indices`` (timm's semantics;
        returns the kept absolute indices). Pruning the end or ``prune_head`` also removes the
        classifier and the aux heads. ``prune_norm`` is accepted for timm and does nothing:
        GoogLeNet has no final norm layer. A pruned model no longer matches ``config``."""
        take, max_index = take_indices(len(self.feature_info), indices)
        last = self.stage_names.index(self.feature_info[max_index]["module"])
        for name in self.stage_names[last + 1:]:
            setattr(self, name, nn.Identity())
        pruned_end = max_index < len(self.feature_info) - 1
        if pruned_end:
            self.num_features = self.feature_info[max_index]["num_chs"]
            self.head_features = self.head_hidden_size = self.num_features
        if prune_head or pruned_end:
            self.aux1 = self.aux2 = None
            self.aux_logits = self.config["aux_logits"] = False
            self.reset_classifier(0, "")
        return take

    # -- forward ---------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError for input this network cannot take, saying what it accepts."""
        _check_input(x, self.in_chans, self.img_size)

    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        module = getattr(self, name)
        if (self.grad_checkpointing and self.training and name in self.tap_channels
                and torch.is_grad_enabled() and not torch.jit.is_tracing() and not _fx_tracing()):
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def _trunk(self, x: torch.Tensor, *, with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_input(x)
        x = self.input_transform(x)
        aux: list[torch.Tensor] = []
        for name in self.stage_names:
            x = self._stage(name, x)
            if with_aux and name in AUX_TAPS:
                aux.append(getattr(self, AUX_TAPS[name])(x))
        return x, aux  # x: (N, 1024, H/32, W/32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_features, H/32, W/32): the output of inception 5b."""
        return self._trunk(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)  # (N, C, 1, 1); head="fc" or global_pool="": unchanged (N, C, g, g)
        if self.global_pool != "" or self.head_kind == "fc":
            x = torch.flatten(x, 1)  # (N, num_features) or, head="fc", (N, C * g * g)
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)  # (N, num_classes)

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[list[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor]]]:
        """Feature maps at the levels of ``feature_info`` (strides 2 to 32), as timm defines it.

        ``indices``: None for all five levels, an int n for the last n, or a list of levels
        (negative from the end); maps come back in network order. Returns ``(final,
        intermediates)``, ``final`` being the last stage run (inception 5b unless
        ``stop_early``), or only ``intermediates`` with ``intermediates_only``. ``stop_early``
        stops after the deepest level asked for. ``norm`` is accepted and does nothing:
        GoogLeNet has no final norm. ``output_fmt``: "NCHW" only. The aux heads do not run.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt={output_fmt!r} is not supported: GoogLeNet's features "
                             f"are NCHW (permute them yourself for NHWC)")
        take, max_index = take_indices(len(self.feature_info), indices)
        wanted = {self.feature_info[i]["module"] for i in take}
        names = self.stage_names
        if stop_early:
            names = names[:names.index(self.feature_info[max_index]["module"]) + 1]
        self.check_input(x)
        x = self.input_transform(x)
        intermediates: list[torch.Tensor] = []
        for name in names:
            x = self._stage(name, x)
            if name in wanted:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def _trunk_scripted(self, x: torch.Tensor,
                        with_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``_trunk`` for TorchScript, which cannot fetch a module by a name held in a variable
        (``getattr(self, name)``): the stages of ``stage_names``, spelled out in its order (a
        test compares the two on every variant). No gradient checkpointing under TorchScript."""
        self.check_input(x)
        x = self.input_transform(x)
        x = self.norm1(self.pool1(self.conv1(x)))  # (N, 64, H/4, W/4)
        x = self.pool2(self.norm2(self.conv2(self.conv2_reduce(x))))  # (N, 192, H/8, W/8)
        x = self.pool3(self.inception_3b(self.inception_3a(x)))  # (N, 480, H/16, W/16)
        x = self.inception_4a(x)
        aux: list[torch.Tensor] = []
        if with_aux and self.aux1 is not None:
            aux.append(self.aux1(x))
        x = self.inception_4d(self.inception_4c(self.inception_4b(x)))
        if with_aux and self.aux2 is not None:
            aux.append(self.aux2(x))
        x = self.pool4(self.inception_4e(x))  # (N, 832, H/32, W/32)
        x = self.inception_5b(self.inception_5a(x))  # (N, 1024, H/32, W/32)
        return x, aux

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, GoogLeNetOutputs]:
        with_aux = self.training and self.aux_logits
        if torch.jit.is_scripting():
            x, aux = self._trunk_scripted(x, with_aux)
        else:
            x, aux = self._trunk(x, with_aux=with_aux)
        logits = self.forward_head(x)
        if with_aux:
            return GoogLeNetOutputs(logits, aux[0], aux[1])
        return logits


def _same_dropout(dropout: Optional[float], drop_rate: Optional[float]) -> Optional[float]:
    """``drop_rate`` (timm's keyword) and ``dropout`` (ours) are one setting."""
    if drop_rate is not None and dropout is not None and float(drop_rate) != float(dropout):
        raise ValueError(f"dropout={dropout} and drop_rate={drop_rate} are the same setting "
                         f"(the dropout before the final linear layer); give one of them")
    return dropout if dropout is not None else drop_rate


def _check_global_pool(global_pool: Any, num_classes: int) -> None:
    if global_pool not in ("avg", ""):
        raise ValueError(f"global_pool={global_pool!r} is not supported: use 'avg' (the paper's "
                         f"global average pool) or '' (no pooling, with num_classes=0)")
    if global_pool == "" and num_classes > 0:
        raise ValueError("global_pool='' (no pooling) leaves a feature map, which a linear "
                         "classifier cannot take: use num_classes=0 with it")


# torchvision's module names -> ours, so `load_state_dict(torchvision_model.state_dict())` works
# on the torchvision variant as it is (its names are positional; ours are the paper's).
_TV_STEM = {"conv2.": "conv2_reduce.", "conv3.": "conv2."}
_TV_BRANCH = {"branch1.": "conv1x1.", "branch2.0.": "reduce3x3.", "branch2.1.": "conv3x3.",
              "branch3.0.": "reduce5x5.", "branch3.1.": "conv5x5.", "branch4.1.": "pool_proj."}
_TV_AUX = {"fc1.": "fc1.", "fc2.": "fc2.", "conv.": "conv."}


def torchvision_key(key: str) -> str:
    """Translate one torchvision GoogLeNet state-dict key to this module's naming."""
    for old, new in _TV_STEM.items():
        if key.startswith(old):
            return new + key[len(old):]
    if key.startswith("inception") and not key.startswith("inception_"):
        stage, rest = key.split(".", 1)
        for old, new in _TV_BRANCH.items():
            if rest.startswith(old):
                return f"inception_{stage[len('inception'):]}." + new + rest[len(old):]
    if key.startswith("maxpool"):
        return "pool" + key[len("maxpool"):]
    return key


def _torchvision_keys_hook(state_dict, prefix, local_metadata, strict, missing_keys,
                           unexpected_keys, error_msgs) -> None:
    own = prefix + "inception_3a."
    tv = prefix + "inception3a."
    if any(k.startswith(tv) for k in state_dict) and not any(k.startswith(own) for k in state_dict):
        for key in list(state_dict):
            if key.startswith(prefix):
                state_dict[prefix + torchvision_key(key[len(prefix):])] = state_dict.pop(key)
