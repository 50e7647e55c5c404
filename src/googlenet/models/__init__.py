"""The network layer: GoogLeNet built from Table 1 (``googlenet.py``), the registry of named
builders (``registry.py``), Table 1 regenerated from a built model (``summary.py``), and graph
rewrites for inference (``graph.py``). Nothing here reads or writes files."""

from .googlenet import (
    MIN_INPUT_SIZE, TABLE1, VARIANTS, INCEPTION_KINDS, STEMS, GoogLeNet, GoogLeNetOutputs,
    InceptionSpec, Variant,
)
from .registry import create_model, list_models, register_model

__all__ = ["MIN_INPUT_SIZE", "TABLE1", "VARIANTS", "INCEPTION_KINDS", "STEMS", "GoogLeNet",
           "GoogLeNetOutputs", "InceptionSpec", "Variant", "create_model", "list_models",
           "register_model"]
