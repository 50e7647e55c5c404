"""What runs under mixed precision and what stays float32: the one rule, for every model.

Autocast lowers convolutions and matrix products to bf16/fp16, and which other ops it lowers
differs between devices (CUDA's lists are not the CPU's). A classifier only needs its loss taken
on float32 logits (``tasks.classify.task.compute_loss`` casts them). A detector computes far
more after its network: anchors, box coding and decoding, IoU/GIoU matching, the losses, score
thresholds and NMS. In bf16 a 128 px image's box coordinates are rounded to 0.5 px and box deltas
to 1/256 of their size; that is how detection under CUDA autocast stopped learning its boxes. So
a detector is split into **islands** that run under the caller's autocast (the trunk with its
FPN, and each head) and everything between and after them, which runs in float32 with autocast
off:

    with torch.autocast("cuda", dtype=torch.bfloat16):   # the caller's (engine, eval, predict)
        detector(images, targets)
          -> MixedPrecisionPlan.float32(): autocast off; the plan remembers (cuda, bf16)
               transform (resize, normalise)              float32
               backbone island: trunk + FPN               bf16 inside, float32 out
               head island(s): FCOS/RetinaNet/RPN/box head bf16 inside, float32 out
               anchors, box coding, matching, losses, postprocessing, NMS: float32

An island is the module itself with its class swapped for a subclass whose ``forward`` re-enters
the remembered autocast and casts what it returns to float32 (``MixedPrecisionPlan.island``):
state-dict keys, ``deepcopy`` (EMA), FX, tracing and exports are unchanged, and without an
enclosing autocast nothing at all happens. ``tests/test_precision.py`` checks by dtype, on the
CPU, that every detector's losses, box coding and postprocessing see float32 only.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch
import torch.nn as nn

__all__ = ["MixedPrecisionPlan", "to_float32", "autocast_dtype", "describe_amp"]


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast lowers to on ``device_type`` here and now, or None when it is off."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def to_float32(out: Any) -> Any:
    """``out`` (a tensor, or dicts/lists/tuples of them) with every low-precision floating
    tensor cast to float32; containers keep their type (OrderedDict, named tuples)."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() and out.dtype != torch.float64 else out
    if isinstance(out, dict):
        return type(out)((k, to_float32(v)) for k, v in out.items())
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # a named tuple
        return type(out)(*(to_float32(v) for v in out))
    if isinstance(out, (list, tuple)):
        return type(out)(to_float32(v) for v in out)
    return out


class _Island:
    """Mixin of an island's class: ``forward`` under the autocast its plan captured."""

    _precision_plan: "MixedPrecisionPlan"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        plan = self._precision_plan
        if plan.dtype is None:  # no enclosing autocast: the module as it is
            return super().forward(*args, **kwargs)  # type: ignore[misc]
        with torch.autocast(plan.device_type, dtype=plan.dtype):
            out = super().forward(*args, **kwargs)  # type: ignore[misc]
        return to_float32(out)


_ISLAND_CLASSES: dict[type, type] = {}


def _island_class(cls: type) -> type:
    if issubclass(cls, _Island):
        return cls
    if cls not in _ISLAND_CLASSES:
        _ISLAND_CLASSES[cls] = type(cls.__name__, (_Island, cls),
                                    {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return _ISLAND_CLASSES[cls]


class MixedPrecisionPlan:
    """One model's split into autocast islands and float32 glue (see the module docstring).

    ``island(module)`` marks a submodule; ``float32()`` is entered by the model's ``forward``
    around everything it does. The plan holds the captured autocast only while a forward runs.
    """

    def __init__(self) -> None:
        self.device_type = "cpu"
        self.dtype: Optional[torch.dtype] = None

    def island(self, module: nn.Module) -> nn.Module:
        """Make ``module`` an island of this plan, in place (its class is swapped for an
        island subclass of it); returns it."""
        module.__class__ = _island_class(type(module))
        module._precision_plan = self  # a plain attribute: not a submodule, not in state dicts
        return module

    @contextlib.contextmanager
    def float32(self, device_type: str) -> Iterator[None]:
        """Autocast off for the block, remembering the caller's autocast on ``device_type`` for
        the islands run inside it. A no-op when autocast is off."""
        dtype = autocast_dtype(device_type)
        if dtype is None:
            yield
            return
        saved = (self.device_type, self.dtype)
        self.device_type, self.dtype = device_type, dtype
        try:
            with torch.autocast(device_type, enabled=False):
                yield
        finally:
            self.device_type, self.dtype = saved


def describe_amp(amp: str, device: torch.device, *, detector: bool = False) -> Optional[str]:
    """What ``--amp amp`` does on ``device``, for the run log (None: plain float32, not asked
    for): the precision, a GradScaler under fp16, why "auto" chose what it chose, and a warning
    where the precision is emulated (slow, not wrong)."""
    from .graph import DETECTOR_AUTO_ON_CUDA, native_bf16, resolve_amp

    used = resolve_amp(amp, device, detector=detector)
    how = {"none": "none, fp32", "fp16": "fp16 autocast with a GradScaler"}.get(used, f"{used} autocast")
    note = ""
    if used == "bf16" and not native_bf16(device):
        note = (f" (no native bf16 on this {device.type}: emulated and slow"
                + ("; --amp fp16 suits GPUs without bf16)" if device.type == "cuda" else ")"))
    elif used == "fp16" and device.type == "cpu":
        note = " (fp16 on a CPU is mostly emulated; --amp bf16 is the CPU's mixed precision)"
    if amp != "auto":
        return None if used == "none" else how + note
    if detector and device.type == "cuda" and used == DETECTOR_AUTO_ON_CUDA:
        why = ("float32 for detection on a GPU until a GPU run shows bf16 reaching the detection "
               "targets; --amp bf16 to use it")
    else:
        why = f"{'' if used == 'bf16' else 'no '}native bf16 on this {device.type}"
    return f"{how}{note} (amp auto: {why})"
