"""GoogLeNet on the Hugging Face Hub, through huggingface_hub's ``PyTorchModelHubMixin``:
``save_pretrained(dir)``, ``GoogLeNet.from_pretrained(dir_or_repo_id)`` and ``push_to_hub``.

``googlenet.interop.hub.GoogLeNet`` is ``googlenet.GoogLeNet`` with the mixin, and a model is
still a ``googlenet.GoogLeNet``. huggingface_hub stays optional: only this module imports it, so
the package imports without it.

A saved folder holds:
    model.safetensors  the weights with googlenet's metadata (``format: pt``, the Hub's convention;
                       config, class names and preprocessing in ``googlenet`` keys), so
                       ``googlenet.load_weights`` and ``googlenet eval --weights`` read it too
    config.json        the model config (variant and every switch), class names, preprocessing
                       and timm's pretrained_cfg, for the Hub and for tools that read no metadata
    README.md          a model card: variant, departures from the paper, preprocessing, classes
                       (written once: an existing card, e.g. one edited by hand, is kept)

    from googlenet import load_weights
    from googlenet.interop.hub import GoogLeNet
    model = GoogLeNet.from_loaded(load_weights("runs/bn"))   # or GoogLeNet(variant="bn", ...)
    model.save_pretrained("googlenet-bn-digits")               # push_to_hub("me/...") uploads
    same = GoogLeNet.from_pretrained("googlenet-bn-digits")    # a folder, or a Hub repo id
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

try:
    from huggingface_hub import ModelCard, ModelCardData, PyTorchModelHubMixin, hf_hub_download
except ImportError as e:  # pragma: no cover - huggingface_hub is optional
    raise ImportError("googlenet.interop.hub needs huggingface_hub: pip install huggingface_hub"
                      ) from e

import torch.nn as nn

from ..data.preprocess import Preprocess
from ..errors import UserError
from ..models import googlenet as _net
from ..models.contract import model_name, pretrained_cfg_from
from ..weights.io import (
    from_state_dict, load_safetensors, read_metadata, read_safetensors, save_weights,
)
from ..weights.records import FORMAT_KEY, FORMAT_VERSION, LoadedWeights, WeightsMeta

__all__ = ["GoogLeNet", "WEIGHTS_NAME", "CONFIG_NAME", "departures"]

WEIGHTS_NAME = "model.safetensors"  # huggingface_hub.constants.SAFETENSORS_SINGLE_FILE
CONFIG_NAME = "config.json"
PAPER_URL = "https://arxiv.org/abs/1409.4842"

_VARIANT_DEPARTURES = {
    "paper": [],
    "bn": ["BatchNorm (eps 1e-3) after every convolution, in place of LRN and conv biases"],
    "torchvision": [
        "BatchNorm (eps 1e-3) after every convolution, in place of LRN and conv biases",
        "a 3x3 convolution in the '#5x5' branch (torchvision's layout, pytorch/vision#906)",
        "a 2x2/2 max pool before inception 5a (the paper: 3x3/2)",
        "dropout 0.2 before the classifier (the paper: 0.4); aux heads pool adaptively to 4x4",
        "torchvision's initialisation (truncated normal, std 0.01)",
    ],
}


def departures(config: dict[str, Any], preprocess: Optional[Preprocess] = None) -> list[str]:
    """Where a model with this config (and input size) departs from the paper's network."""
    v = _net.VARIANTS[config["variant"]]
    out = list(_VARIANT_DEPARTURES.get(v.name, []))
    if config.get("inception") == "naive":
        out.append("naive inception modules (Figure 2a), not the reduced ones of the network")
    if config.get("stem") == "separable":
        out.append("a depthwise-separable conv1 (7x7 x8, then 1x1 to 64), the reading of Table 1 "
                   "row 1 that fits its numbers; the text and BVLC Caffe use a full 7x7 conv")
    if config.get("transform_input"):
        out.append("torchvision's input transform (ImageNet-normalised input rescaled to [-1, 1])")
    if config.get("in_chans", 3) != 3:
        out.append(f"{config['in_chans']}-channel input (the paper: RGB)")
    if config.get("dropout") is not None and config["dropout"] != v.dropout:
        out.append(f"dropout {config['dropout']} before the classifier ({v.name}: {v.dropout})")
    if not config.get("aux_logits", True):
        out.append("no auxiliary classifiers (the paper trains with two, on 4a and 4d)")
    if config.get("global_pool") == "":
        out.append("no global pooling: the model returns feature maps")
    if preprocess is not None and preprocess.crop != 224:
        out.append(f"{preprocess.crop}x{preprocess.crop} input (the paper: 224x224); the final "
                   f"pool is global and the aux heads pool adaptively to 4x4")
    return out


class GoogLeNet(_net.GoogLeNet, PyTorchModelHubMixin, library_name="googlenet",
                paper_url=PAPER_URL, pipeline_tag="image-classification",
                license="mit", tags=["image-classification", "googlenet", "inception-v1"]):
    """``googlenet.GoogLeNet`` with ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

    ``class_names`` and ``preprocess`` travel with the weights; set them (or build with
    ``from_model`` / ``from_loaded``) before saving.
    """

    class_names: Optional[list[str]] = None
    preprocess: Optional[Preprocess] = None

    @classmethod
    def from_model(cls, model: nn.Module, *, class_names: Optional[list[str]] = None,
                   preprocess: Optional[Preprocess] = None) -> "GoogLeNet":
        """This class with ``model``'s config and weights (a copy), class names, preprocessing."""
        if not isinstance(model, _net.GoogLeNet):
            raise UserError(f"expected a googlenet GoogLeNet, got {type(model).__name__}")
        hub = cls(**{**model.config, "init_weights": False})
        hub.load_state_dict(model.state_dict())
        hub.class_names = list(class_names) if class_names is not None else None
        hub.preprocess = preprocess
        hub.pretrained_cfg = pretrained_cfg_from(preprocess, hub, class_names)
        return hub.train(model.training)

    @classmethod
    def from_loaded(cls, loaded: LoadedWeights) -> "GoogLeNet":
        """From what ``googlenet.load_weights`` returns (the model in eval mode)."""
        return cls.from_model(loaded.model, class_names=loaded.class_names,
                              preprocess=loaded.preprocess)

    def hub_config(self) -> dict[str, Any]:
        """What config.json holds."""
        pre = self.preprocess or Preprocess()
        return {"architecture": model_name(self.variant.name), "library_name": "googlenet",
                FORMAT_KEY: FORMAT_VERSION, **self.config, "class_names": self.class_names,
                "preprocess": pre.to_dict(),
                "pretrained_cfg": pretrained_cfg_from(pre, self, self.class_names)}

    def _save_pretrained(self, save_directory: Path) -> None:
        save_directory = Path(save_directory)
        save_weights(self, save_directory / WEIGHTS_NAME, class_names=self.class_names,
                     preprocess=self.preprocess)
        (save_directory / CONFIG_NAME).write_text(
            json.dumps(self.hub_config(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: Optional[str], cache_dir: Any,
                         force_download: bool, local_files_only: bool, token: Any,
                         map_location: str = "cpu", strict: bool = True,
                         config: Optional[dict[str, Any]] = None,
                         **model_kwargs: Any) -> "GoogLeNet":
        if os.path.isdir(model_id):
            path = Path(model_id) / WEIGHTS_NAME
            if not path.is_file():
                raise UserError(f"{model_id}: no {WEIGHTS_NAME} in this folder (save one with "
                                f"save_pretrained)")
        else:
            path = Path(hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME,
                                        revision=revision, cache_dir=cache_dir,
                                        force_download=force_download, token=token,
                                        local_files_only=local_files_only))
        loaded = _load(path)
        model = cls.from_loaded(loaded)
        _apply_kwargs(model, model_kwargs, str(path))
        return model.to(map_location).eval()

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        data = ModelCardData(**self._hub_mixin_info.model_card_data.to_dict())
        return ModelCard(f"---\n{data.to_yaml()}\n---\n{self._card_text(**kwargs)}")

    def _card_text(self, repo_id: Optional[str] = None, **_: Any) -> str:
        pre = self.preprocess or Preprocess()
        name = model_name(self.variant.name)
        names = self.class_names or []
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        aux = ("yes (training-mode forward returns (logits, aux1, aux2))" if self.aux_logits
               else "no")
        deps = departures(self.config, pre) or ["none in the network: BVLC Caffe's "
                                                "reproduction is followed where the paper is "
                                                "silent (ceil-mode pools, Xavier init)"]
        lines = [
            f"# {name}: GoogLeNet (Inception v1)", "",
            f"GoogLeNet from Szegedy et al. 2014, \"Going Deeper with Convolutions\" "
            f"([arXiv:1409.4842]({PAPER_URL})), built with the `googlenet` package.", "",
            f"- variant: `{self.variant.name}` (`{name}`)",
            f"- classes: {self.num_classes}" + (f" ({shown})" if names else ""),
            f"- aux heads: {aux}",
            f"- config: `{json.dumps(self.config, sort_keys=True)}`", "",
            "## Departures from the paper", "", *[f"- {d}" for d in deps], "",
            "## Preprocessing", "",
            f"Resize the shorter side to {pre.resize} ({pre.interpolation}), center-crop "
            f"{pre.crop}x{pre.crop}, scale to [0, 1] {'grayscale' if pre.grayscale else 'RGB'}, "
            f"then normalise with mean {list(pre.mean)} and std {list(pre.std)}."
            + (f" {pre.note}" if pre.note else ""), "",
            "## Use", "", "```python",
            "from googlenet.interop.hub import GoogLeNet",
            f"model = GoogLeNet.from_pretrained(\"{repo_id or 'REPO_ID_OR_FOLDER'}\")  # eval mode",
            "```", "",
            "`googlenet.load_weights(\"model.safetensors\")` reads the same file, with its class "
            "names and preprocessing.", "",
        ]
        return "\n".join(lines)


def _load(path: Path) -> LoadedWeights:
    """Our metadata when the file has it, else a plain state dict, config read off its keys."""
    if WeightsMeta.is_ours(read_metadata(path), str(path)):
        return load_safetensors(path)
    return from_state_dict(read_safetensors(path), str(path))


def _apply_kwargs(model: GoogLeNet, kwargs: dict[str, Any], source: str) -> None:
    """``from_pretrained(..., num_classes=N)`` swaps in a fresh classifier; the other switches
    are fixed by the weights (config.json's own values arrive here too and must agree)."""
    kwargs = dict(kwargs)
    kwargs.pop("init_weights", None)
    num_classes = kwargs.pop("num_classes", model.num_classes)
    clash = {k: v for k, v in kwargs.items() if model.config.get(k, v) != v or
             k not in model.config}
    if clash:
        raise UserError(f"{source}: saved model has {({k: model.config.get(k) for k in clash})}, "
                        f"which cannot be changed to {clash} on loaded weights")
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        model.class_names = None
