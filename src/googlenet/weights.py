"""Weights in and out: safetensors with metadata, training checkpoints, torchvision's ImageNet
weights, and (through ``googlenet.caffe``) BVLC Caffe's. Nothing here unpickles arbitrary code.

Every loader returns ``LoadedWeights``: the built model (eval mode), its class names and the
``Preprocess`` its inputs need, so callers never guess the input pipeline.

What ``load_weights(spec)`` accepts:
    run directory      -> RUN/model.safetensors (a finished run's final, averaged model), else
                          RUN/checkpoint-best.pt, else RUN/checkpoint-last.pt (a run in progress)
    FILE.safetensors   -> saved by ``save_weights`` (config, classes, preprocessing in metadata)
    FILE.pt / .pth     -> a training checkpoint, or a torchvision GoogLeNet state dict
                          (e.g. a local copy of GoogLeNet_Weights.IMAGENET1K_V1)
    imagenet           -> torchvision's GoogLeNet_Weights.IMAGENET1K_V1 through torchvision's
                          own download (or its cache) into the ``torchvision`` variant
    caffe:FILE / FILE.caffemodel -> BVLC Caffe's bvlc_googlenet, converted (googlenet.caffe)
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .errors import UserError
from .model import GoogLeNet
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

FORMAT = "googlenet"
FORMAT_VERSION = "1"
# Run-directory layout written by ``googlenet train``.
CHECKPOINT_LAST = "checkpoint-last.pt"
CHECKPOINT_BEST = "checkpoint-best.pt"
FINAL_WEIGHTS = "model.safetensors"

TORCHVISION_PREPROCESS = Preprocess(
    crop=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
    note="torchvision GoogLeNet_Weights.IMAGENET1K_V1: resize 256, center crop 224, ImageNet "
         "mean/std; the model's explicit input_transform then rescales to [-1, 1]")


@dataclass
class LoadedWeights:
    model: GoogLeNet
    preprocess: Preprocess
    class_names: Optional[list[str]] = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


# -- writing --------------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that a crash at any moment leaves either the old file or the new one.

    ``write(tmp_path)`` writes the content to a temporary file in the same directory, which is
    then fsynced and renamed over ``path`` (rename is atomic on POSIX), and the directory fsynced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems refuse fsync on directories; the rename already happened
        pass
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_weights(model: GoogLeNet, path: str | os.PathLike, *,
                 class_names: Optional[list[str]] = None, preprocess: Optional[Preprocess] = None,
                 state_dict: Optional[dict[str, torch.Tensor]] = None,
                 extra: Optional[dict[str, Any]] = None) -> Path:
    """Save ``model`` (or ``state_dict`` for it) as safetensors, atomically, with metadata:
    model config (variant, switches, num_classes), class names and preprocessing."""
    from safetensors.torch import save_file

    if class_names is not None and len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    sd = state_dict if state_dict is not None else model.state_dict()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model_config": json.dumps(model.config), "variant": model.config["variant"],
        "num_classes": str(model.num_classes),
        "class_names": json.dumps(class_names),
        "preprocess": (preprocess or Preprocess()).to_json(),
        "extra": json.dumps(extra or {}),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


# -- reading --------------------------------------------------------------------------------

def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code.

    A pickle that would construct arbitrary objects (and so could run a command) is refused
    with a UserError that says so.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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


def _preprocess(d: dict[str, Any], source: str) -> Preprocess:
    try:
        return Preprocess.from_dict(d)
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: saved preprocessing {d} is not valid: {e}") from None


def build_model(config: dict[str, Any], source: str) -> GoogLeNet:
    try:
        return GoogLeNet(**{**config, "init_weights": False})
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: saved model config {config} is not valid: {e}") from None


def _load_into(model: GoogLeNet, state_dict: dict[str, torch.Tensor], source: str) -> GoogLeNet:
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

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, ...
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def load_safetensors(path: str | os.PathLike) -> LoadedWeights:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "model_config" not in meta:
        raise UserError(f"{path}: safetensors file without googlenet metadata (model_config); "
                        f"save weights with googlenet.weights.save_weights or `googlenet convert`")
    config = json.loads(meta["model_config"])
    model = _load_into(build_model(config, str(path)), load_file(str(path)), str(path))
    # ``extra`` (JSON: what train saved, e.g. epochs, steps and the training config) is unpacked
    # next to the raw string entries, as a checkpoint's metadata has them.
    try:
        extra = json.loads(meta.get("extra", "{}"))
    except ValueError:
        extra = {}
    metadata: dict[str, Any] = dict(meta)
    if isinstance(extra, dict):
        metadata.update({k: v for k, v in extra.items() if k not in meta})
    return LoadedWeights(model=model, preprocess=_preprocess(json.loads(meta["preprocess"]), str(path)),
                         class_names=json.loads(meta.get("class_names", "null")),
                         source=str(path), metadata=metadata)


def from_checkpoint(ckpt: dict[str, Any], source: str, *, averaged: bool = True) -> LoadedWeights:
    """A ``googlenet train`` checkpoint dict -> LoadedWeights (the Polyak-averaged weights when
    present and ``averaged``, as the paper evaluates)."""
    for key in ("model_config", "model"):
        if key not in ckpt:
            raise UserError(f"{source}: not a googlenet training checkpoint (no {key!r})")
    sd = ckpt.get("averaged_model") if averaged and ckpt.get("averaged_model") else ckpt["model"]
    model = _load_into(build_model(ckpt["model_config"], source), sd, source)
    pre = ckpt.get("preprocess")
    return LoadedWeights(model=model, preprocess=_preprocess(pre, source) if pre else Preprocess(),
                         class_names=ckpt.get("class_names"), source=source,
                         metadata={k: ckpt[k] for k in ("epoch", "step", "config") if k in ckpt})


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, as torchvision ships them (no download)."""
    from torchvision.models import GoogLeNet_Weights

    return list(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


def is_torchvision_state_dict(sd: Any) -> bool:
    return isinstance(sd, dict) and "inception3a.branch1.conv.weight" in sd


def from_torchvision_state_dict(sd: dict[str, torch.Tensor], source: str, *,
                                transform_input: bool = True) -> LoadedWeights:
    """A torchvision GoogLeNet state dict -> our ``torchvision`` variant, same logits.

    ``transform_input=True`` is what torchvision uses with GoogLeNet_Weights.IMAGENET1K_V1; here
    it is an explicit ``input_transform`` layer of the model, recorded in its config.
    """
    num_classes = sd["fc.weight"].shape[0]
    aux = any(k.startswith("aux1.") for k in sd)
    model = GoogLeNet(variant="torchvision", num_classes=num_classes, aux_logits=aux,
                      transform_input=transform_input, init_weights=False)
    model = _load_into(model, sd, source)
    names = imagenet_categories() if num_classes == 1000 else None
    return LoadedWeights(model=model, preprocess=TORCHVISION_PREPROCESS, class_names=names,
                         source=source)


def load_torchvision_imagenet(path: Optional[str | os.PathLike] = None) -> LoadedWeights:
    """torchvision's GoogLeNet_Weights.IMAGENET1K_V1 in the ``torchvision`` variant.

    With ``path``, a local copy of the .pth file (loaded with weights_only=True). Without, through
    torchvision's own download, which uses its cache ($TORCH_HOME/hub/checkpoints) when the file
    is already there and needs the network otherwise.
    """
    if path is not None:
        sd = safe_torch_load(path)
        if not is_torchvision_state_dict(sd):
            raise UserError(f"{path}: not a torchvision GoogLeNet state dict")
        return from_torchvision_state_dict(sd, str(path))
    from torchvision.models import GoogLeNet_Weights

    w = GoogLeNet_Weights.IMAGENET1K_V1
    try:
        sd = w.get_state_dict(progress=True, weights_only=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError
        raise UserError(
            f"could not download torchvision's GoogLeNet weights from {w.url} ({e}). Offline? "
            f"Fetch that file elsewhere and pass it as --weights PATH.pth") from None
    return from_torchvision_state_dict(sd, f"torchvision:{w.name}")


def load_weights(spec: str | os.PathLike) -> LoadedWeights:
    """Resolve any weights argument (see the module docstring) to a model in eval mode."""
    s = str(spec)
    if s in ("imagenet", "torchvision", "torchvision:imagenet"):
        return load_torchvision_imagenet()
    if s.startswith("caffe:") or s.endswith(".caffemodel"):
        from .caffe import load_caffemodel  # noqa: PLC0415  (protobuf only when needed)

        return load_caffemodel(s[len("caffe:"):] if s.startswith("caffe:") else s)
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
                        f".safetensors/.pt file, 'imagenet', or caffe:FILE.caffemodel)")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and "model_config" in obj:
        return from_checkpoint(obj, str(path))
    if is_torchvision_state_dict(obj):
        return from_torchvision_state_dict(obj, str(path))
    raise UserError(f"{path}: neither a googlenet checkpoint nor a torchvision GoogLeNet state dict")
