"""GoogLeNet in timm's registry: ``import googlenet.interop.timm`` registers ``googlenet``,
``googlenet_bn`` and ``googlenet_torchvision`` with ``timm.models.register_model``, so
``timm.create_model``, ``features_only=True`` (every ``feature_cls``: FeatureListNet, "hook",
"getter", "dict"), ``timm.data.resolve_model_data_config``, timm's train.py (``--model
googlenet_bn`` after the import) and ``timm.list_models("googlenet*")`` work. timm files them
under this package's name: ``timm.list_models(module="googlenet")``.

timm (1.0) finds models only through ``register_model`` calls made on import; it reads no entry
points, so the import above is the way in.

Aux heads are off by default here (``aux_logits=False``): in training mode they make ``forward``
return a named tuple, which a standard loop's ``loss_fn(model(x), y)`` cannot take. Pass
``aux_logits=True`` for the paper's three-loss training (not with ``features_only``).

timm hosts no GoogLeNet weights of ours: ``pretrained=True`` needs a source, e.g.
``pretrained_cfg_overlay=dict(file="model.safetensors")`` (timm loads it into the built model,
so build it with the file's switches); ``googlenet.create_model(name, weights=...)`` reads our
files' metadata instead.
"""

from .googlenet import default_cfgs, googlenet, googlenet_bn, googlenet_torchvision

__all__ = ["googlenet", "googlenet_bn", "googlenet_torchvision", "default_cfgs"]
