"""The checks of GoogLeNet's constructor arguments and input: each a ValueError that says what
the network accepts. No ``from __future__ import annotations``: TorchScript compiles
``check_input_shape`` (it runs in the forward)."""

from typing import Any, Optional

import torch

from .choices import HEADS, INCEPTION_KINDS, MIN_INPUT_SIZE, NORMS, STEMS, VARIANTS

__all__ = ["check_args", "check_ablation", "check_global_pool", "same_dropout", "check_input_shape"]


def check_args(variant: str, num_classes: Any, in_chans: Any, inception: str, stem: str,
               transform_input: bool, global_pool: str) -> None:
    """Raise ValueError for constructor arguments GoogLeNet cannot be built with."""
    check_global_pool(global_pool, num_classes)
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


def check_ablation(width: float, head: str, norm: Optional[str], img_size: Optional[int]) -> None:
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


def same_dropout(dropout: Optional[float], drop_rate: Optional[float]) -> Optional[float]:
    """``drop_rate`` (timm's keyword) and ``dropout`` (ours) are one setting."""
    if drop_rate is not None and dropout is not None and float(drop_rate) != float(dropout):
        raise ValueError(f"dropout={dropout} and drop_rate={drop_rate} are the same setting "
                         f"(the dropout before the final linear layer); give one of them")
    return dropout if dropout is not None else drop_rate


def check_global_pool(global_pool: Any, num_classes: int) -> None:
    if global_pool not in ("avg", ""):
        raise ValueError(f"global_pool={global_pool!r} is not supported: use 'avg' (the paper's "
                         f"global average pool) or '' (no pooling, with num_classes=0)")
    if global_pool == "" and num_classes > 0:
        raise ValueError("global_pool='' (no pooling) leaves a feature map, which a linear "
                         "classifier cannot take: use num_classes=0 with it")


def check_input_shape(x: torch.Tensor, in_chans: int, img_size: Optional[int] = None,
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
