"""Graph rewrites of a built GoogLeNet for inference and export: drop the aux heads, fold
BatchNorm into the convolutions, and a flat, FX-traceable chain of the eval forward. Shared by
``googlenet.infer.fast`` (fast modes) and ``googlenet.interop.export`` (exports), one layer
below both so neither imports the other."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn as nn

from .choices import AMP_CHOICES
from .googlenet import GoogLeNet

__all__ = ["AMP_CHOICES", "DETECTOR_AUTO_ON_CUDA", "amp_autocast", "resolve_amp", "has_batchnorm", "native_bf16",
           "without_aux", "fold_batchnorm", "InferenceGraph", "inference_graph"]


# AMP_CHOICES (choices.py): the one spelling of mixed precision across commands.
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# "auto" for a detector on a GPU: float32. Detection under CUDA's bf16 autocast stopped
# learning its boxes (box loss stuck at ~0.6, AP50 26); the box math now runs in float32
# (models/precision.py), but no GPU run has yet shown bf16 reaching the detection targets, and
# a default that learns beats a fast one that may not (benchmarks/results/gpu-check.md).
# `--amp bf16` asks for it explicitly.
DETECTOR_AUTO_ON_CUDA = "none"


def resolve_amp(amp: "str | bool | None", device: torch.device | str, *,
                detector: bool = False) -> str:
    """``amp`` as it runs on ``device``: "auto" becomes bf16 or none (none for a ``detector`` on
    a GPU, ``DETECTOR_AUTO_ON_CUDA``); True means bf16."""
    if amp is True:
        return "bf16"
    if amp in (None, False):
        return "none"
    if amp == "auto":
        if detector and torch.device(device).type == "cuda":
            return DETECTOR_AUTO_ON_CUDA
        return "bf16" if native_bf16(device) else "none"
    return str(amp)


def amp_autocast(amp: "str | bool | None", device: torch.device | str, *,
                 detector: bool = False) -> torch.autocast:
    """``torch.autocast`` for ``amp`` (none | bf16 | fp16 | auto; True means bf16, the CPU's
    mixed precision) on ``device``; disabled for none."""
    amp = resolve_amp(amp, device, detector=detector)
    if amp == "none":
        return torch.autocast(torch.device(device).type, enabled=False)
    if amp not in _AMP_DTYPES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    return torch.autocast(torch.device(device).type, dtype=_AMP_DTYPES[amp])


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 convolutions run natively (not emulated) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # oneDNN's own check: AVX512-BF16 (AVX512_CORE_BF16) or AMX. Without it bf16 convs are
    # emulated, far slower than fp32 (section "graph" of benchmarks/results/notes.md).
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def without_aux(model: GoogLeNet) -> GoogLeNet:
    """A copy in eval mode without the aux heads (inference and every export leave them out)."""
    m = copy.deepcopy(model).eval()
    if getattr(m, "aux_logits", False):
        m.aux1 = m.aux2 = None
        m.aux_logits = False
        m.config = {**m.config, "aux_logits": False}
    return m


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``ConvBlock``'s BatchNorm into its conv, in place (eval mode only).

    y = gamma * (W*x + b - mean) / sqrt(var + eps) + beta is again a convolution, with
    W' = W * gamma / sqrt(var + eps) and b' = (b - mean) * gamma / sqrt(var + eps) + beta;
    torch's ``fuse_conv_bn_eval`` computes exactly that.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (it bakes in running stats)")
    for block in model.modules():
        if isinstance(getattr(block, "conv", None), nn.Conv2d) and isinstance(
                getattr(block, "bn", None), nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = None  # ConvBlock.forward skips a None bn
    return model


class InferenceGraph(nn.Module):
    """A GoogLeNet's eval forward as a flat chain of its own modules: input transform, stages,
    pool, fc. No aux heads, no input checks, no Python branches on tensors, so that torch.fx
    can trace it symbolically (FX quantization needs that; ``GoogLeNet.forward`` checks shapes).
    Dropout is left out: it is the identity in eval mode."""

    def __init__(self, model: GoogLeNet) -> None:
        super().__init__()
        self.input_transform = model.input_transform
        self.stages = nn.Sequential(OrderedDict((n, getattr(model, n)) for n in model.stage_names))
        self.avgpool = model.avgpool
        self.fc = model.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, classes)
        x = self.stages(self.input_transform(x))  # (N, 1024, H/32, W/32)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def inference_graph(model: GoogLeNet) -> InferenceGraph:
    return InferenceGraph(without_aux(model)).eval()
