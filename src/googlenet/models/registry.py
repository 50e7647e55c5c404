"""The model registry: every GoogLeNet builder by name, as in timm (``register_model``,
``list_models``, ``create_model``). Builders only build; loading weights from files is
``googlenet.sources.create_model(name, weights=...)``, one layer up.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch.nn as nn

from .blocks import SEPARABLE_DEPTH_MULTIPLIER
from .choices import VARIANTS
from .googlenet import GoogLeNet

__all__ = ["register_model", "list_models", "create_model", "resolve_name", "MODEL_ALIASES",
           "model_from_config", "list_variants", "config_from_state_dict"]


_MODELS: dict[str, Callable[..., GoogLeNet]] = {}


def register_model(fn: Callable[..., GoogLeNet]) -> Callable[..., GoogLeNet]:
    _MODELS[fn.__name__] = fn
    return fn


@register_model
def googlenet(**kwargs: Any) -> GoogLeNet:
    """The paper's network as BVLC Caffe trained it: LRN, conv biases, real 5x5, no BN."""
    return GoogLeNet(variant="paper", **kwargs)


@register_model
def googlenet_bn(**kwargs: Any) -> GoogLeNet:
    """The paper's topology with BatchNorm after every conv (no LRN, no conv bias)."""
    return GoogLeNet(variant="bn", **kwargs)


@register_model
def googlenet_torchvision(**kwargs: Any) -> GoogLeNet:
    """torchvision.models.googlenet's layout; loads its state dicts and gives the same logits."""
    return GoogLeNet(variant="torchvision", **kwargs)


MODEL_ALIASES = {v: f"googlenet{'' if v == 'paper' else '_' + v}" for v in VARIANTS}


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_variants() -> list[str]:
    """The variant of every registered model (``paper``, ``bn``, ``torchvision``), in registry
    order: what tests and tools parametrize over."""
    return [v for v, name in MODEL_ALIASES.items() if name in _MODELS]


def resolve_name(name: str) -> str:
    """A registered model name, or a variant name (paper, bn, torchvision) -> the model name."""
    key = MODEL_ALIASES.get(name, name)
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()} "
                         f"(or a variant: {sorted(MODEL_ALIASES)})")
    return key


def create_model(name: str = "googlenet", **kwargs: Any) -> GoogLeNet:
    """Build a registered model by name (or variant name: paper, bn, torchvision), freshly
    initialised. ``kwargs`` go to ``GoogLeNet`` (``num_classes``, ``aux_logits``, ...)."""
    return _MODELS[resolve_name(name)](**kwargs)


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a network from the ``config`` saved with its weights (``model.config``), without
    initialising weights (they are about to be loaded). A config with ``"detector": arch`` is a
    GoogLeNet-backbone detector (googlenet.models.detection)."""
    if not isinstance(config, dict):
        raise ValueError(f"a model config must be a dict, got {type(config).__name__}")
    if "detector" in config:
        from .detection import GoogLeNetDetector, RegionClassifier

        rest = {k: v for k, v in config.items() if k != "detector"}
        if config["detector"] == "rcnn":  # the paper's §8 region classifier
            return RegionClassifier(**rest, init_weights=False)
        return GoogLeNetDetector(arch=config["detector"], **rest, init_weights=False)
    return GoogLeNet(**{**config, "init_weights": False})


def config_from_state_dict(sd: Mapping[str, Any]) -> dict[str, Any]:
    """The model config of a plain state dict in this package's key layout (no metadata, e.g. a
    Hub-style ``model.safetensors`` or ``torch.save(model.state_dict())``), read off its keys and
    shapes: BN keys -> ``bn`` or ``torchvision`` (by the "#5x5" branch's kernel, 5 or 3), none ->
    ``paper``; ``num_classes`` from ``fc.weight``; aux heads, stem, inception kind, in_chans.

    What no tensor records takes its default: ``transform_input=False`` and the variant's dropout
    rates. Raises ValueError, saying what is missing, when the keys do not decide.
    """
    if "inception_3a.conv1x1.conv.weight" not in sd:
        raise ValueError("not a GoogLeNet state dict in this package's layout (no "
                         "'inception_3a.conv1x1.conv.weight')")
    bn = "inception_3a.conv1x1.bn.running_mean" in sd
    k5 = tuple(sd["inception_3a.conv5x5.conv.weight"].shape[-2:])
    variant = {(False, (5, 5)): "paper", (True, (5, 5)): "bn", (True, (3, 3)): "torchvision"}.get(
        (bn, k5))
    if variant is None:
        raise ValueError(f"the keys do not match a known variant ({'with' if bn else 'no'} "
                         f"BatchNorm, a {k5[0]}x{k5[1]} '#5x5' branch); the file needs its "
                         f"'model_config' metadata (save it with googlenet.weights.save_weights)")
    separable = "conv1.depthwise.weight" in sd
    in_chans = (sd["conv1.depthwise.weight"].shape[0] // SEPARABLE_DEPTH_MULTIPLIER if separable
                else sd["conv1.conv.weight"].shape[1])
    return dict(variant=variant, num_classes=int(sd["fc.weight"].shape[0]) if "fc.weight" in sd
                else 0, in_chans=int(in_chans), aux_logits=any(k.startswith("aux1.") for k in sd),
                inception="reduced" if "inception_3a.reduce3x3.conv.weight" in sd else "naive",
                stem="separable" if separable else "paper")
