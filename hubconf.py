"""torch.hub entry points: ``torch.hub.load(REPO, "googlenet_bn", num_classes=10)``, with REPO a
GitHub "owner/name[:ref]" or, with ``source="local"``, a checkout of this repository.

Each entry point takes ``weights=`` (anything ``googlenet.load_weights`` accepts: a run directory,
a .safetensors/.pt file, "imagenet" for torchvision's weights, "caffe:FILE") and the keyword
arguments of ``googlenet.GoogLeNet`` (``num_classes``, ``in_chans``, ``inception``, ``stem``...).

Aux heads are off unless ``aux_logits=True`` is passed, so ``loss_fn(model(x), y)`` works in a
standard training loop (with them, training-mode ``forward`` returns a named tuple); weights that
carry aux heads have them removed unless asked for.
"""

import os
import sys

dependencies = ["torch", "torchvision"]

# The package lives under src/; a checkout used through torch.hub is not installed.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

# Underscored: torch.hub.list() shows every public callable of this module as an entry point.
from googlenet.errors import UserError as _UserError  # noqa: E402
from googlenet.models.graph import without_aux as _without_aux  # noqa: E402
from googlenet.models.registry import resolve_name as _resolve_name  # noqa: E402
from googlenet.sources import create_model as _create_model  # noqa: E402


def _build(name, weights, kwargs):
    aux = kwargs.pop("aux_logits", False)
    if weights is None:
        return _create_model(name, aux_logits=aux, **kwargs)
    model = _create_model(name, weights=weights, **kwargs)
    want = _resolve_name(name)
    got = _resolve_name(model.config["variant"])
    if got != want:
        raise _UserError(f"{weights}: these are {got} weights; load them with the {got!r} entry "
                        f"point, not {want!r}", key="weights")
    if aux and not model.aux_logits:
        raise _UserError(f"{weights}: these weights have no aux heads; leave aux_logits off",
                        key="aux_logits")
    return model if aux else _without_aux(model)


def googlenet(weights=None, **kwargs):
    """GoogLeNet as published and as BVLC Caffe trained it: LRN, conv biases, real 5x5 convs.
    ``weights="caffe:bvlc_googlenet.caffemodel"`` loads the original BVLC weights."""
    return _build("googlenet", weights, kwargs)


def googlenet_bn(weights=None, **kwargs):
    """GoogLeNet's topology with BatchNorm after every conv (no LRN, no conv biases)."""
    return _build("googlenet_bn", weights, kwargs)


def googlenet_torchvision(weights=None, **kwargs):
    """torchvision.models.googlenet's layout; ``weights="imagenet"`` loads torchvision's
    GoogLeNet_Weights.IMAGENET1K_V1 (downloaded by torchvision, or from its cache)."""
    return _build("googlenet_torchvision", weights, kwargs)
