"""The paper's detection pipeline (§8): R-CNN with GoogLeNet as the region classifier on
Selective Search proposals (``googlenet train --task detect --arch rcnn``). Shares the detection
unit's data, checks, reporting and pretraining stage; no export (its proposals are outside the
network)."""

from __future__ import annotations

from typing import Any

__all__ = ["UNIT"]


def __getattr__(name: str) -> Any:  # the unit imports torch; its config (config.py) does not
    if name == "UNIT":
        from .unit import UNIT

        return UNIT
    raise AttributeError(name)
