"""torchvision's GoogLeNet weights in our ``torchvision`` variant: its state dicts (a local
``.pth``, or ``GoogLeNet_Weights.IMAGENET1K_V1`` through torchvision's own download and cache)
load and give the same logits. The key renaming itself is a load hook of the model
(``googlenet.models.googlenet.torchvision_key``)."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from ..data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from ..errors import UserError
from ..models.googlenet import GoogLeNet
from ..weights.io import load_into, safe_torch_load
from ..weights.records import LoadedWeights

__all__ = ["TORCHVISION_PREPROCESS", "imagenet_categories", "is_torchvision_state_dict",
           "from_torchvision_state_dict", "load_torchvision_imagenet"]

TORCHVISION_PREPROCESS = Preprocess(
    crop=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
    note="torchvision GoogLeNet_Weights.IMAGENET1K_V1: resize 256, center crop 224, ImageNet "
         "mean/std; the model's explicit input_transform then rescales to [-1, 1]")


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
    model = load_into(model, sd, source)
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


