"""Weights in and out, safely: atomic writes (``atomic_write``), ``torch.load`` restricted to
tensors and plain containers (``safe_torch_load``), safetensors with ``WeightsMeta`` metadata
(``save_weights`` / ``load_safetensors``), training checkpoints as weights (``from_checkpoint``)
and plain state dicts in this package's key layout, config read off the keys
(``from_state_dict``). Nothing here unpickles arbitrary code. Which file or name to load is
resolved one layer up, by ``googlenet.sources.load_weights``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from ..data.preprocess import Preprocess
from ..errors import UserError
from ..models.registry import config_from_state_dict, model_from_config
from .records import LoadedWeights, TrainCheckpoint, WeightsMeta

from ..fileio import NAME_MAX, TEMP_SUFFIX, atomic_write, check_regular_file, check_writable_dir, fs_error  # noqa: F401  (re-exported)

__all__ = ["atomic_write", "atomic_torch_save", "check_writable_dir", "fs_error", "TEMP_SUFFIX",
           "save_weights", "safe_torch_load", "read_metadata", "load_safetensors",
           "read_safetensors", "from_checkpoint", "from_state_dict", "build_model", "load_into"]


# -- writing --------------------------------------------------------------------------------

def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_weights(model: nn.Module, path: str | os.PathLike, *,
                 class_names: Optional[list[str]] = None, preprocess: Optional[Preprocess] = None,
                 state_dict: Optional[dict[str, torch.Tensor]] = None,
                 extra: Optional[dict[str, Any]] = None, task: str = "classify") -> Path:
    """Save ``model`` (or ``state_dict`` for it) as safetensors, atomically, with its
    ``WeightsMeta``: model config (variant, switches, num_classes), class names, preprocessing."""
    from safetensors.torch import save_file

    num_classes = getattr(model, "num_classes", None)
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {num_classes} outputs")
    sd = state_dict if state_dict is not None else model.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = WeightsMeta(model_config=dict(model.config), class_names=class_names,
                       preprocess=(preprocess or Preprocess()).to_dict(), task=task,
                       extra=dict(extra or {}))
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta.to_metadata()))


# -- reading --------------------------------------------------------------------------------

def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code.

    A pickle that would construct arbitrary objects (and so could run a command) is refused
    with a UserError that says so.
    """
    path = check_regular_file(path)  # missing, a directory, a FIFO (which would block)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:  # permission denied, I/O error: the real cause
        raise fs_error(e, path, "cannot read") from None
    except pickle.UnpicklingError as e:
        # The pickle names a class/function to call: "Unsupported global: GLOBAL builtins.open",
        # or, for modules torch blocks outright (os, subprocess, ...), "Trying to load
        # unsupported GLOBAL posix.system whose module posix is blocked".
        if "unsupported global" in str(e).lower():
            raise UserError(
                f"{path}: refused to load: the file contains Python objects that are not plain "
                f"tensors or containers, and unpickling them could run arbitrary code. If you "
                f"trust its source, re-save just its state_dict. (torch: {_torch_error(e)})"
            ) from None
        with open(path, "rb") as f:
            is_pickle = f.read(1) == b"\x80"  # PROTO opcode: a pickle of protocol >= 2
        if is_pickle and "Unsupported operand" in str(e):  # protocol 4/5 opcodes: not torch.save
            raise UserError(
                f"{path}: refused to load: a raw Python pickle, not a file written by torch.save; "
                f"unpickling it could run arbitrary code. Save weights with torch.save(state_dict) "
                f"or as .safetensors. (torch: {_torch_error(e)})") from None
        raise UserError(f"{path}: not a readable PyTorch file ({_torch_error(e)})") from None
    except Exception as e:  # noqa: BLE001  garbage input makes the unpickler raise KeyError,
        # IndexError, EOFError, ...; with weights_only=True no code ran, so every failure here
        # just means "not a readable file"
        raise UserError(f"{path}: not a readable PyTorch file ({_torch_error(e)})") from None


def _torch_error(e: BaseException) -> str:
    """The informative line of a torch.load error (its first lines are generic advice)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip()
            rest = rest or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest.split(". Please", 1)[0]
        if "unsupported global" in ln.lower():  # torch's "Trying to load unsupported GLOBAL ..."
            return ln
    return lines[0] if lines else type(e).__name__


def build_model(config: dict[str, Any], source: str) -> nn.Module:
    try:
        return model_from_config(config)
    except (TypeError, ValueError) as e:
        shown = str(config) if len(str(config)) <= 300 else str(config)[:296] + " ..."
        raise UserError(f"{source}: saved model config {shown} is not valid: {e}") from None


def check_finite(state_dict: dict[str, Any], source: str) -> None:
    """UserError naming the first tensor holding NaN or inf (weights of a diverged run, or a
    damaged file): such weights predict ``nan%``, so they are refused at load."""
    for name, t in state_dict.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) \
                and not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
            raise UserError(f"{source}: tensor {name!r} holds {bad} values; these weights are "
                            f"unusable (a diverged run, or a damaged file). Use an earlier "
                            f"checkpoint")


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> nn.Module:
    check_finite(state_dict, source)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        # torch's first line is only "Error(s) in loading state_dict ..."; the details follow
        details = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        shown = "; ".join(d.rstrip(".") if len(d) <= 300 else d[:300] + " ..."
                          for d in details[:3])
        more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
        raise UserError(f"{source}: weights do not fit the model they describe: "
                        f"{shown or str(e)}{more}") from None
    return model.eval()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    check_regular_file(path)  # safetensors' reader blocks forever on a FIFO
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except OSError as e:
        raise fs_error(e, path, "cannot read") from None
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, ...
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def load_safetensors(path: str | os.PathLike) -> LoadedWeights:
    from safetensors.torch import load_file

    path = check_regular_file(path)
    raw = read_metadata(path)
    if not WeightsMeta.is_ours(raw, str(path)):
        raise UserError(f"{path}: safetensors file without googlenet metadata (model_config); "
                        f"save weights with googlenet.weights.save_weights or `googlenet convert`")
    meta = WeightsMeta.from_metadata(raw, str(path))
    model = load_into(build_model(meta.model_config, str(path)), load_file(str(path)), str(path))
    # ``extra`` (what train saved, e.g. epochs, steps and the training config) is unpacked next
    # to the raw string entries, as a checkpoint's metadata has them.
    metadata: dict[str, Any] = dict(raw)
    metadata.update({k: v for k, v in meta.extra.items() if k not in raw})
    return LoadedWeights(model=model, preprocess=meta.preprocess_obj(str(path)),
                         class_names=meta.class_names, source=str(path), metadata=metadata,
                         task=meta.task)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, on the CPU, metadata ignored."""
    from safetensors.torch import load_file

    check_regular_file(path)
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, ...
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def from_state_dict(sd: dict[str, torch.Tensor], source: str) -> LoadedWeights:
    """A plain state dict in this package's key layout, without metadata (a Hub-style
    ``model.safetensors``, ``torch.save(model.state_dict())``) -> LoadedWeights.

    The config is read off the keys and shapes (``models.registry.config_from_state_dict``); what
    no tensor records (``transform_input``, dropout rates) takes its default, the preprocessing is
    the default ``Preprocess()`` and there are no class names: ``save_weights`` files carry all
    three. ``metadata["inferred_config"]`` marks such a load.
    """
    try:
        config = config_from_state_dict(sd)
    except ValueError as e:
        raise UserError(f"{source}: {e}") from None
    model = load_into(build_model(config, source), sd, source)
    return LoadedWeights(model=model, preprocess=Preprocess(), source=source,
                         metadata={"inferred_config": True})


def from_checkpoint(ckpt: dict[str, Any], source: str, *, averaged: bool = True) -> LoadedWeights:
    """A training checkpoint dict -> LoadedWeights (the Polyak-averaged weights when present
    and ``averaged``, as the paper evaluates)."""
    tc = TrainCheckpoint.from_state(ckpt, source)
    sd = tc.averaged_model if averaged and tc.averaged_model else tc.model
    model = load_into(build_model(tc.meta.model_config, source), sd, source)
    return LoadedWeights(model=model, preprocess=tc.meta.preprocess_obj(source),
                         class_names=tc.meta.class_names, source=source,
                         metadata=dict(tc.meta.extra), task=tc.meta.task)
