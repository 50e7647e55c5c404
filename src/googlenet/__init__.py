"""GoogLeNet (Inception v1, Szegedy et al. 2014): the paper's network as published, its
training recipe, its 144-crop evaluation, and a fast inference path.

The package is layered; each folder may import only the folders below it (checked by
import-linter, contracts in pyproject.toml; docs/design.md lists every module):

    cli/        the command line: argument parsing and error mapping only
    tasks/      what is trained: classification (aux-head loss, top-k, compatibility checks)
    infer/      evaluate (1/10/144 crops, ensembles), predict, fast modes, bench
    engine/     the task-agnostic training engine: loop, checkpoints, resume, averaging,
                schedule, seeded sampling, DDP, logging and plots, config
    sources/    resolving a weights argument (run dir, file, 'imagenet', caffe:) to a model
    interop/    BVLC Caffe, torchvision weights, export (ONNX, TorchScript, torch.export)
    weights/    typed records (WeightsMeta, TrainCheckpoint) and safe, atomic file I/O
    data/       datasets, image reading, preprocessing, test-time crops, train transforms
    metrics/    top-k, confusion matrix, agreement with fp32
    models/     the network from Table 1, the registry, Table 1 recomputed, graph rewrites

``import googlenet`` does not import torch: the names below load their modules on first use
(PEP 562), so ``googlenet --help`` answers at once (tests/test_ecosystem.py checks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module it comes from, imported when the name is first used
_LAZY = {
    "TABLE1": "googlenet.models", "VARIANTS": "googlenet.models", "GoogLeNet": "googlenet.models",
    "GoogLeNetOutputs": "googlenet.models", "InceptionSpec": "googlenet.models",
    "list_models": "googlenet.models",
    "create_model": "googlenet.sources", "load_weights": "googlenet.sources",
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below
    from .models import TABLE1, VARIANTS, GoogLeNet, GoogLeNetOutputs, InceptionSpec, list_models
    from .sources import create_model, load_weights


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'googlenet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
