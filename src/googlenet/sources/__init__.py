"""Where weights come from: ``load_weights(spec)`` resolves any weights argument (a run
directory, a file, a known name) to a model in eval mode, and ``create_model(name, weights=...)``
builds a registered model from such weights.

What ``load_weights(spec)`` accepts:
    run directory      -> RUN/model.safetensors (a finished run's final model), else (a run in
                          progress) RUN/checkpoint-best.pt, RUN/model-best.safetensors or
                          RUN/checkpoint-last.pt, the first there is
    FILE.safetensors   -> saved by ``save_weights`` (config, classes, preprocessing in metadata),
                          or a plain state dict as below (the Hub's usual form)
    FILE.pt / .pth     -> a training checkpoint, or a plain state dict
    plain state dict   -> torchvision's GoogLeNet layout (e.g. a local copy of
                          GoogLeNet_Weights.IMAGENET1K_V1) -> the torchvision variant; this
                          package's layout -> the config read off the keys
                          (``weights.io.from_state_dict``)
    imagenet           -> torchvision's GoogLeNet_Weights.IMAGENET1K_V1 into the ``torchvision``
                          variant: our cache's verified copy, else torchvision's own download (or
                          its cache)
    bvlc, caffe:bvlc   -> BVLC Caffe's bvlc_googlenet from the cache (verified), else downloaded
                          into it, then converted (googlenet.interop.caffe)
    caffe:FILE / FILE.caffemodel -> a local .caffemodel, converted

Known names (``googlenet.sources.registry``, ``googlenet weights list``) win over a file or
directory of the same name; write ``./bvlc`` for the file.

``googlenet.sources.registry`` (the known weights) imports no torch, and the two functions load
their module on first use (PEP 562), so ``googlenet weights --help`` and ``googlenet convert
--help`` answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["load_weights", "create_model"]

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below
    from .resolve import create_model, load_weights


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'googlenet.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module("googlenet.sources.resolve"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
