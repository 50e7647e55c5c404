"""``load_weights(spec)`` and ``create_model(name, weights=...)``: what a weights argument can
be is in the package docstring (``googlenet/sources/__init__.py``), which re-exports both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError
from ..fileio import check_regular_file
from ..models.contract import pretrained_cfg_from
from ..models.googlenet import GoogLeNet
from ..models.registry import create_model as _create_fresh
from ..models.registry import resolve_name
from ..weights.io import (
    from_checkpoint, from_state_dict, load_safetensors, read_metadata, read_safetensors,
    safe_torch_load,
)
from ..weights.records import (
    BEST_WEIGHTS, CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS, MAX_NUM_CLASSES, LoadedWeights,
    WeightsMeta,
)

__all__ = ["load_weights", "create_model"]


def load_weights(spec: str | os.PathLike) -> LoadedWeights:
    """Resolve any weights argument (see the module docstring) to a model in eval mode, its
    timm ``pretrained_cfg`` set from the weights' preprocessing."""
    loaded = _load(spec)
    if isinstance(loaded.model, GoogLeNet):
        loaded.model.pretrained_cfg = pretrained_cfg_from(loaded.preprocess, loaded.model,
                                                          loaded.class_names)
    return loaded


def _load(spec: str | os.PathLike) -> LoadedWeights:
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
        for name in (FINAL_WEIGHTS, CHECKPOINT_BEST, BEST_WEIGHTS, CHECKPOINT_LAST):
            if (path / name).is_file():
                return load_weights(path / name)
        raise UserError(f"{path}: a directory without {FINAL_WEIGHTS}, {CHECKPOINT_BEST} or "
                        f"{CHECKPOINT_LAST}; pass a run directory of `googlenet train` or a file")
    if not path.exists():
        raise UserError(f"{path}: no such file or directory (expected a run directory, a "
                        f".safetensors/.pt file, 'imagenet', 'bvlc', or caffe:FILE.caffemodel)")
    check_regular_file(path)  # a FIFO named w.safetensors would block the reader forever
    if path.suffix == ".safetensors":
        if WeightsMeta.is_ours(read_metadata(path), str(path)):
            return load_safetensors(path)
        sd = read_safetensors(path)
        if not _is_state_dict(sd):
            raise UserError(f"{path}: safetensors file without googlenet metadata (model_config) "
                            f"whose tensors are not a GoogLeNet state dict either; save weights "
                            f"with googlenet.weights.save_weights or `googlenet convert`")
        return _from_state_dict(sd, str(path))
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and "model_config" in obj:
        return from_checkpoint(obj, str(path))
    if _is_state_dict(obj):
        return _from_state_dict(obj, str(path))
    raise UserError(f"{path}: neither a googlenet checkpoint nor a torchvision or googlenet "
                    f"GoogLeNet state dict")


def _is_state_dict(obj: Any) -> bool:
    from ..interop.torchvision import is_torchvision_state_dict

    return is_torchvision_state_dict(obj) or (
        isinstance(obj, dict) and "inception_3a.conv1x1.conv.weight" in obj)


def _from_state_dict(sd: dict[str, Any], source: str) -> LoadedWeights:
    """A plain state dict: torchvision's key layout -> the torchvision variant (as torchvision
    loads it, with its input transform); this package's -> the config read off the keys."""
    from ..interop.torchvision import from_torchvision_state_dict, is_torchvision_state_dict

    if is_torchvision_state_dict(sd):
        return from_torchvision_state_dict(sd, source)
    return from_state_dict(sd, source)


def create_model(name: str = "googlenet", *, weights: Optional[str | os.PathLike] = None,
                 **kwargs: Any) -> GoogLeNet:
    """Build a registered model by name (or variant name: paper, bn, torchvision).

    ``weights``: anything ``load_weights`` accepts; the model is then built from the file's saved
    config, with ``kwargs`` applied on top (e.g. ``num_classes`` resets the classifier).
    """
    resolve_name(name)  # an unknown name fails the same way with or without weights
    if weights is None:
        return _create_fresh(name, **kwargs)
    loaded = load_weights(weights)
    model = loaded.model
    if not isinstance(model, GoogLeNet):  # a detection run: not what a classifier builder returns
        raise UserError(f"{weights}: these are {loaded.task!r} weights of a "
                        f"{type(model).__name__}, not a GoogLeNet classifier; load them with "
                        f"googlenet.load_weights", key="weights")
    num_classes = kwargs.pop("num_classes", model.num_classes)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or not 0 <= num_classes <= MAX_NUM_CLASSES:
        raise UserError(f"num_classes={num_classes!r}: must be a whole number in [0, "
                        f"{MAX_NUM_CLASSES:,}]", key="num_classes")
    clash = {k: v for k, v in kwargs.items() if model.config.get(k) != v}
    if clash:
        raise ValueError(f"{weights}: saved model has {({k: model.config.get(k) for k in clash})}, "
                         f"which cannot be changed to {clash} on loaded weights")
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
