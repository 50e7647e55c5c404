"""timm's model contract, as small functions the network's methods call: which feature levels to
take (``take_indices``), the data config timm reads from ``model.pretrained_cfg``
(``pretrained_cfg_from``), and parameter groups for layer-wise learning rates (``group_matcher``).

timm is an optional dependency and this is the lowest layer, so nothing here imports timm (or
``googlenet.data``): ``take_indices`` restates timm's ``feature_take_indices``, and
``pretrained_cfg_from`` reads any object with ``Preprocess``'s fields.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

__all__ = ["take_indices", "pretrained_cfg_from", "group_matcher", "model_name",
           "DEFAULT_INPUT", "PAPER_ID"]

# What a fresh model expects until weights say otherwise: ``googlenet.data.Preprocess()``'s
# defaults (ImageNet mean/std, shorter side 256, center crop 224, bilinear), restated because
# models/ may not import data/.
DEFAULT_INPUT: dict[str, Any] = dict(crop=224, resize=256, mean=(0.485, 0.456, 0.406),
                                     std=(0.229, 0.224, 0.225), interpolation="bilinear",
                                     grayscale=False)
PAPER_ID = "arXiv:1409.4842"


def take_indices(num_features: int,
                 indices: Optional[Union[int, Sequence[int]]] = None) -> tuple[list[int], int]:
    """timm's ``feature_take_indices``: ``None`` -> all levels, an int n -> the last n, a
    sequence -> those levels (negative counts from the end). Returns (sorted-as-given absolute
    indices, the largest one).

    Restated rather than imported: timm is optional, and its version asserts where a clear
    ValueError is wanted (asserts vanish under ``python -O``).
    """
    if indices is None:
        indices = num_features
    if isinstance(indices, int):
        if not 0 < indices <= num_features:
            raise ValueError(f"indices={indices} asks for the last {indices} feature levels; "
                             f"feature_info has {num_features}, so use 1..{num_features}")
        take = list(range(num_features - indices, num_features))
    else:
        take = []
        for i in indices:
            if not isinstance(i, int) or not -num_features <= i < num_features:
                raise ValueError(f"indices {list(indices)} out of range: feature_info has "
                                 f"{num_features} entries, so use 0..{num_features - 1} (or "
                                 f"-{num_features}..-1)")
            take.append(i % num_features)
        if not take:
            raise ValueError("indices is empty: give at least one feature level (or None for all)")
    return take, max(take)


def model_name(variant: str) -> str:
    """The registered name of a variant: paper -> googlenet, bn -> googlenet_bn, ..."""
    return "googlenet" if variant == "paper" else f"googlenet_{variant}"


def pretrained_cfg_from(preprocess: Any, model: Any,
                        class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for ``model`` fed as ``preprocess`` says (a
    ``googlenet.data.Preprocess``; ``None``: the defaults a fresh model is trained with).

    ``timm.data.resolve_model_data_config(model)`` reads input_size, interpolation, mean, std,
    crop_pct and crop_mode from it, so timm's loaders build the same input pipeline as ours.
    """
    p = dict(DEFAULT_INPUT)
    if preprocess is not None:
        p.update({k: getattr(preprocess, k) for k in DEFAULT_INPUT})
    chans = int(getattr(model, "in_chans", 1 if p["grayscale"] else 3))

    def per_channel(v: Sequence[float]) -> tuple[float, ...]:
        v = tuple(float(x) for x in v)
        return v * chans if len(v) == 1 else v  # one value broadcasts, as in Normalize

    crop, resize = int(p["crop"]), int(p["resize"])
    aux = [f"{h}.fc2" for h in ("aux1", "aux2") if getattr(model, h, None) is not None]
    stem = getattr(model, "stem_kind", "paper")
    cfg: dict[str, Any] = dict(
        architecture=model_name(getattr(model, "variant").name),
        input_size=(chans, crop, crop), min_input_size=(chans, 32, 32), fixed_input_size=False,
        interpolation=p["interpolation"], crop_pct=crop / resize, crop_mode="center",
        mean=per_channel(p["mean"]), std=per_channel(p["std"]),
        num_classes=int(getattr(model, "num_classes", 1000)),
        pool_size=(-(-crop // 32), -(-crop // 32)),  # ceil-mode pools: 224 -> 7
        # timm adapts (or drops) these when in_chans / num_classes differ from the weights'.
        first_conv="conv1.depthwise" if stem == "separable" else "conv1.conv",
        classifier=tuple(["fc"] + aux) if aux else "fc",
        paper_ids=PAPER_ID, paper_name="Going Deeper with Convolutions",
    )
    if class_names is not None:
        cfg["label_names"] = tuple(class_names)
    return cfg


def group_matcher(stage_names: Sequence[str], coarse: bool = False) -> dict[str, Any]:
    """timm's parameter-group spec (``timm.models.group_parameters``, layer-wise lr decay):
    the stem, then the inception modules (one group per stage 3/4/5 when ``coarse``, else one
    per module), then everything else (fc and the aux heads, which are classifiers too).
    Regexes match parameter names; captured groups and suffixes become sort keys."""
    blocks = [n for n in stage_names if n.startswith("inception_")]
    stem = r"^input_transform|^conv1\.|^conv2_reduce\.|^conv2\.|^norm1\.|^norm2\."
    if coarse:
        return dict(stem=stem, blocks=r"^inception_(\d)")
    return dict(stem=stem, blocks=[(rf"^{n}\.", (i,)) for i, n in enumerate(blocks)])
