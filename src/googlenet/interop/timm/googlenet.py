"""The timm entry points and pretrained cfgs (``import googlenet.interop.timm`` runs this).

The module is named ``googlenet`` because timm files each model under the last part of its
entry point's module name (``timm.list_modules()``, ``list_models(module="googlenet")``), as it
files its own under ``inception_v3``, ``resnet``; from ``interop/timm.py`` they were filed under
``timm``. timm also reads this module's ``default_cfgs`` and adds to its ``__all__``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

try:
    import timm  # noqa: F401
    from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
except ImportError as e:  # pragma: no cover - timm is optional
    raise ImportError("googlenet.interop.timm needs timm: pip install timm") from e

from ...errors import UserError
from ...models.contract import DEFAULT_INPUT, PAPER_ID
from ...models.googlenet import GoogLeNet

__all__ = ["googlenet", "googlenet_bn", "googlenet_torchvision", "default_cfgs"]

# timm's FeatureListNet / FeatureHookNet rebuild the network from its direct children, which are
# registered in forward order (input_transform, stem, stages; aux heads and the head after 5b),
# so no flattening is needed; every feature_info level is a direct child.
_FEATURE_CFG = dict(flatten_sequential=False, out_indices=(0, 1, 2, 3, 4))
_SOURCE_KEYS = ("url", "file", "state_dict", "hf_hub_id")


def _cfg(**kwargs: Any) -> dict[str, Any]:
    # The same values a fresh GoogLeNet puts in model.pretrained_cfg (models.contract).
    crop, resize = DEFAULT_INPUT["crop"], DEFAULT_INPUT["resize"]
    return dict(url="", num_classes=1000, input_size=(3, crop, crop), min_input_size=(3, 32, 32),
                pool_size=(7, 7), crop_pct=crop / resize, crop_mode="center",
                interpolation=DEFAULT_INPUT["interpolation"], mean=DEFAULT_INPUT["mean"],
                std=DEFAULT_INPUT["std"], first_conv="conv1.conv", classifier="fc",
                paper_ids=PAPER_ID, paper_name="Going Deeper with Convolutions", **kwargs)


default_cfgs = generate_default_cfgs({
    "googlenet": _cfg(description="GoogLeNet as published and as BVLC Caffe trained it: LRN, "
                                  "conv biases, real 5x5 convs"),
    "googlenet_bn": _cfg(description="GoogLeNet's topology with BatchNorm after every conv"),
    "googlenet_torchvision": _cfg(description="torchvision.models.googlenet's layout (its state "
                                              "dicts load)"),
})


def _create(name: str, variant: str, pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    kwargs.setdefault("aux_logits", False)
    if kwargs["aux_logits"] and kwargs.get("features_only"):
        raise UserError(f"{name}: features_only=True with aux_logits=True: a feature extractor "
                        f"has no classifiers; leave aux_logits off", key="aux_logits")
    # The registered cfg describes the default build; switches that move the first conv or add
    # classifiers say so, for timm's in_chans / num_classes adaptation of loaded weights.
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    if kwargs["aux_logits"]:
        overlay.setdefault("classifier", ("fc", "aux1.fc2", "aux2.fc2"))
    if kwargs.get("stem") == "separable":
        overlay.setdefault("first_conv", "conv1.depthwise")
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    if pretrained:
        given = kwargs.get("pretrained_cfg")
        has_source = any(overlay.get(k) for k in _SOURCE_KEYS) or (
            isinstance(given, dict) and any(given.get(k) for k in _SOURCE_KEYS))
        if not has_source:
            raise UserError(
                f"{name}: timm hosts no weights for it; pass "
                f"pretrained_cfg_overlay=dict(file=PATH) or load with "
                f"googlenet.create_model({name!r}, weights=...)", key="pretrained")
    return build_model_with_cfg(partial(GoogLeNet, variant=variant), name, pretrained,
                                feature_cfg=dict(_FEATURE_CFG), **kwargs)


@register_model
def googlenet(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet as published (LRN, conv biases, real 5x5); aux heads off unless asked for."""
    return _create("googlenet", "paper", pretrained, **kwargs)


@register_model
def googlenet_bn(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet's topology with BatchNorm after every conv; aux heads off unless asked for."""
    return _create("googlenet_bn", "bn", pretrained, **kwargs)


@register_model
def googlenet_torchvision(pretrained: bool = False, **kwargs: Any) -> GoogLeNet:
    """torchvision.models.googlenet's layout; aux heads off unless asked for."""
    return _create("googlenet_torchvision", "torchvision", pretrained, **kwargs)
