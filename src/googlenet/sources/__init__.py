"""Where weights come from: ``load_weights(spec)`` resolves any weights argument (a run
directory, a file, a known name) to a model in eval mode, and ``create_model(name, weights=...)``
builds a registered model from such weights.

What ``load_weights(spec)`` accepts:
    run directory      -> RUN/model.safetensors (a finished run's final, averaged model), else
                          RUN/checkpoint-best.pt, else RUN/checkpoint-last.pt (a run in progress)
    FILE.safetensors   -> saved by ``save_weights`` (config, classes, preprocessing in metadata)
    FILE.pt / .pth     -> a training checkpoint, or a torchvision GoogLeNet state dict
                          (e.g. a local copy of GoogLeNet_Weights.IMAGENET1K_V1)
    imagenet           -> torchvision's GoogLeNet_Weights.IMAGENET1K_V1 into the ``torchvision``
                          variant: our cache's verified copy, else torchvision's own download (or
                          its cache)
    bvlc, caffe:bvlc   -> BVLC Caffe's bvlc_googlenet from the cache (verified), else downloaded
                          into it, then converted (googlenet.interop.caffe)
    caffe:FILE / FILE.caffemodel -> a local .caffemodel, converted

Known names (``googlenet.sources.registry``, ``googlenet weights list``) win over a file or
directory of the same name; write ``./bvlc`` for the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError
from ..models.googlenet import GoogLeNet
from ..models.registry import create_model as _create_fresh
from ..models.registry import resolve_name
from ..weights.io import from_checkpoint, load_safetensors, safe_torch_load
from ..weights.records import CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS, LoadedWeights

__all__ = ["load_weights", "create_model"]


def load_weights(spec: str | os.PathLike) -> LoadedWeights:
    """Resolve any weights argument (see the module docstring) to a model in eval mode."""
    from ..interop.torchvision import from_torchvision_state_dict, is_torchvision_state_dict

    from .registry import BVLC_GOOGLENET, load_known, lookup

    s = str(spec)
    known = lookup(s)
    if known is not None:
        return load_known(known)
    if s.startswith("caffe:") or s.endswith(".caffemodel"):
        from ..interop.caffe import load_caffemodel  # protobuf only when needed

        return load_caffemodel(s[len("caffe:"):] if s.startswith("caffe:") else s,
                               release_sha1=BVLC_GOOGLENET.sha1)
    path = Path(s)
    if path.is_dir():
        # A finished run's final model is the one `train` reports the test accuracy of.
        for name in (FINAL_WEIGHTS, CHECKPOINT_BEST, CHECKPOINT_LAST):
            if (path / name).is_file():
                return load_weights(path / name)
        raise UserError(f"{path}: a directory without {FINAL_WEIGHTS}, {CHECKPOINT_BEST} or "
                        f"{CHECKPOINT_LAST}; pass a run directory of `googlenet train` or a file")
    if not path.exists():
        raise UserError(f"{path}: no such file or directory (expected a run directory, a "
                        f".safetensors/.pt file, 'imagenet', 'bvlc', or caffe:FILE.caffemodel)")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and "model_config" in obj:
        return from_checkpoint(obj, str(path))
    if is_torchvision_state_dict(obj):
        return from_torchvision_state_dict(obj, str(path))
    raise UserError(f"{path}: neither a googlenet checkpoint nor a torchvision GoogLeNet state dict")


def create_model(name: str = "googlenet", *, weights: Optional[str | os.PathLike] = None,
                 **kwargs: Any) -> GoogLeNet:
    """Build a registered model by name (or variant name: paper, bn, torchvision).

    ``weights``: anything ``load_weights`` accepts; the model is then built from the file's saved
    config, with ``kwargs`` applied on top (e.g. ``num_classes`` resets the classifier).
    """
    resolve_name(name)  # an unknown name fails the same way with or without weights
    if weights is None:
        return _create_fresh(name, **kwargs)
    model = load_weights(weights).model
    num_classes = kwargs.pop("num_classes", model.num_classes)
    clash = {k: v for k, v in kwargs.items() if model.config.get(k) != v}
    if clash:
        raise ValueError(f"{weights}: saved model has {({k: model.config.get(k) for k in clash})}, "
                         f"which cannot be changed to {clash} on loaded weights")
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
