"""Object detection with a GoogLeNet-FPN detector (FCOS, RetinaNet, Faster R-CNN): training
(``task``, after the backbone's digits pretraining stage), evaluation, prediction and ONNX
export."""

from __future__ import annotations

from typing import Any

__all__ = ["UNIT"]


def __getattr__(name: str) -> Any:  # the unit imports torch; its config (config.py) does not
    if name == "UNIT":
        from .unit import UNIT

        return UNIT
    raise AttributeError(name)
