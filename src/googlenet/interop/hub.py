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
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path,
                        **kwargs: Any) -> "GoogLeNet":
        """huggingface_hub's ``from_pretrained``, with config.json checked first (a FIFO, bad
        JSON, not an object: a UserError naming it) and the keyword arguments given here told
        apart from those huggingface_hub copies out of config.json: only these may reset the
        classifier (``num_classes=N``); config.json's values must agree with the weights."""
        model_id = str(pretrained_model_name_or_path)
        if "num_classes" in kwargs:
            _check_num_classes(kwargs["num_classes"])  # before anything is read or built
        hub_args = {k: kwargs[k] for k in _HUB_ARGS if k in kwargs}
        _check_config_json(_config_file(model_id, hub_args))
        explicit = tuple(k for k in kwargs if k not in _HUB_ARGS)
        return super().from_pretrained(pretrained_model_name_or_path, _explicit=explicit,
                                       **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: Optional[str], cache_dir: Any,
                         force_download: bool, local_files_only: bool, token: Any,
                         map_location: str = "cpu", strict: bool = True,
                         config: Optional[dict[str, Any]] = None, _explicit: tuple = (),
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
        given = {k: v for k, v in model_kwargs.items() if k in _explicit}
        from_config = {k: v for k, v in model_kwargs.items() if k not in _explicit}
        _agree(model, from_config, f"{model_id}/{CONFIG_NAME}", str(path))
        _apply_kwargs(model, given, str(path))
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


_HUB_ARGS = ("force_download", "token", "cache_dir", "local_files_only", "revision")
MAX_CONFIG_BYTES = 16 << 20  # a config.json is a few KB; class names of 100,000 classes ~ 2 MB


def _config_file(model_id: str, hub_args: dict[str, Any]) -> Optional[Path]:
    """The config.json huggingface_hub is about to read: in the folder, else downloaded (then
    cached: huggingface_hub finds it there); None where there is none."""
    if os.path.isdir(model_id):
        p = Path(model_id) / CONFIG_NAME
        return p if os.path.lexists(p) else None
    try:
        return Path(hf_hub_download(repo_id=model_id, filename=CONFIG_NAME, **hub_args))
    except Exception:  # noqa: BLE001  not there, offline: huggingface_hub says so its own way
        return None


def _check_config_json(path: Optional[Path]) -> None:
    """UserError naming config.json unless it is a regular file of UTF-8 JSON, an object."""
    from ..fileio import check_regular_file

    if path is None:
        return
    check_regular_file(path)  # a FIFO would block the reader forever
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: {path.stat().st_size:,} bytes is not a config.json (at most "
                        f"{MAX_CONFIG_BYTES:,}); the folder is damaged")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e}); the file is damaged") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a model config") from None
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e}); fix it, or delete it (the weights "
                        f"carry their own config)") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: must be a JSON object of the model config, got a "
                        f"{type(doc).__name__}")


def _agree(model: GoogLeNet, values: dict[str, Any], config_json: str, source: str) -> None:
    """config.json's model settings (which huggingface_hub passes along as keyword arguments)
    must be what the weights are: a num_classes there that differs would otherwise swap the
    trained classifier for a random one. Only an explicit argument may reset the head."""
    values = {k: v for k, v in values.items() if k != "init_weights"}
    differ = {k: v for k, v in values.items() if model.config.get(k, v) != v
              or k not in model.config}
    if differ:
        shown = ", ".join(f"{k} {str(v)[:40]} there, {str(model.config.get(k))[:40]} in the "
                          f"weights" for k, v in list(differ.items())[:4])
        raise UserError(f"{config_json}: does not match {source} ({shown}); fix config.json "
                        f"(or pass e.g. num_classes=N explicitly to reset the classifier)")


def _check_num_classes(n: Any) -> None:
    from ..weights.records import MAX_NUM_CLASSES

    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUM_CLASSES:
        raise UserError(f"num_classes={str(n)[:40]}: must be a whole number in [0, "
                        f"{MAX_NUM_CLASSES:,}]")


def _apply_kwargs(model: GoogLeNet, kwargs: dict[str, Any], source: str) -> None:
    """``from_pretrained(..., num_classes=N)`` swaps in a fresh classifier; the other switches
    are fixed by the weights."""
    kwargs = dict(kwargs)
    kwargs.pop("init_weights", None)
    num_classes = kwargs.pop("num_classes", model.num_classes)
    _check_num_classes(num_classes)
    clash = {k: v for k, v in kwargs.items() if model.config.get(k, v) != v or
             k not in model.config}
    if clash:
        raise UserError(f"{source}: saved model has {({k: model.config.get(k) for k in clash})}, "
                        f"which cannot be changed to {clash} on loaded weights")
    if num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        model.class_names = None
