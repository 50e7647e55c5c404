"""The network layer: GoogLeNet built from Table 1 (``googlenet.py``), its named choices as
plain data (``choices.py``), the registry of named builders (``registry.py``), Table 1
regenerated from a built model (``summary.py``), and graph rewrites for inference
(``graph.py``). Nothing here reads or writes files.

The names below load their modules on first use (PEP 562), so importing ``choices.py`` (the
command line's --help does) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module it comes from, imported when the name is first used
_LAZY = {
    **dict.fromkeys(["MIN_INPUT_SIZE", "VARIANTS", "INCEPTION_KINDS", "STEMS", "Variant"],
                    "googlenet.models.choices"),
    **dict.fromkeys(["TABLE1", "GoogLeNet", "GoogLeNetOutputs", "InceptionSpec"],
                    "googlenet.models.googlenet"),
    **dict.fromkeys(["create_model", "list_models", "register_model"],
                    "googlenet.models.registry"),
}

__all__ = ["MIN_INPUT_SIZE", "TABLE1", "VARIANTS", "INCEPTION_KINDS", "STEMS", "GoogLeNet",
           "GoogLeNetOutputs", "InceptionSpec", "Variant", "create_model", "list_models",
           "register_model"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below
    from .choices import INCEPTION_KINDS, MIN_INPUT_SIZE, STEMS, VARIANTS, Variant
    from .googlenet import TABLE1, GoogLeNet, GoogLeNetOutputs, InceptionSpec
    from .registry import create_model, list_models, register_model


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'googlenet.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
