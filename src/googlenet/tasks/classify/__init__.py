"""Image classification, the paper's task: GoogLeNet trained on digits, CIFAR or an image
folder (``task``), evaluated over 1/10/144 crops (``evaluate``), predicting (``predict``) and
exported (``export``)."""

from __future__ import annotations

from typing import Any

__all__ = ["UNIT"]


def __getattr__(name: str) -> Any:  # the unit imports torch; its config (config.py) does not
    if name == "UNIT":
        from .unit import UNIT

        return UNIT
    raise AttributeError(name)
