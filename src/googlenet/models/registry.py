"""The model registry: every GoogLeNet builder by name, as in timm (``register_model``,
``list_models``, ``create_model``). Builders only build; loading weights from files is
``googlenet.sources.create_model(name, weights=...)``, one layer up.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .googlenet import GoogLeNet, VARIANTS

__all__ = ["register_model", "list_models", "create_model", "resolve_name", "MODEL_ALIASES",
           "model_from_config"]


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
