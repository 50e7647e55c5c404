"""Grad-CAM heatmaps (Selvaraju et al. 2017) of a prediction, overlaid on the image
(``googlenet predict --explain``).

Grad-CAM itself is Captum's ``LayerGradCam`` (gradients of the class score with respect to a
layer's output, averaged per channel, weighting that output; ReLU), upsampled with Captum's
``LayerAttribution.interpolate``; captum is optional (``pip install 'googlenet[explain]'``).

The heatmap explains the input the model classified: the single center crop of ``Preprocess``
(shorter side resized to ``resize``, ``crop`` x ``crop`` cut from the center, the same boxes as
``data.crops``). It is interpolated straight onto that crop's area of the original image, so the
PNG has the image's own size; the parts of the image outside the crop, which the model never saw,
are dimmed rather than coloured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

# _resized_size: the resized image size of the crop boxes, with the same rounding as theirs.
from ..data.crops import _resized_size, crop_boxes, multi_crop
from ..data.imaging import load_image
from ..data.preprocess import Preprocess
from ..errors import UserError
from ..weights.io import atomic_write

__all__ = ["DEFAULT_LAYER", "Explanation", "require_captum", "resolve_layer", "gradcam",
           "overlay", "explain_image", "heatmap_paths", "explain_files"]

DEFAULT_LAYER = "inception_5b"  # the last Inception module: 7x7 at a 224 input
ALPHA = 0.5  # heatmap opacity over the crop
OUTSIDE = 0.35  # brightness left to the parts of the image outside the crop
COLORMAP = "jet"


@dataclass
class Explanation:
    file: str
    heatmap: str  # the PNG written
    layer: str
    target: int  # the class explained (the top-1 prediction)
    name: str

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "heatmap": self.heatmap, "layer": self.layer,
                "class": self.target, "name": self.name}


def require_captum() -> None:
    try:
        import captum.attr  # noqa: F401
    except ImportError:
        raise UserError("Grad-CAM needs captum, which is not installed: "
                        "pip install 'googlenet[explain]' (or pip install captum)",
                        key="explain") from None


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called ``name`` (a stage such as ``inception_4e``, or a dotted submodule)."""
    try:
        layer = model.get_submodule(name)
    except AttributeError:
        stages = getattr(model, "stage_names", None) or [n for n, _ in model.named_children()]
        raise UserError(f"{name}: no such layer in this model; choose one of "
                        f"{', '.join(stages)} (or a dotted submodule name)", key="explain_layer") from None
    return layer


def gradcam(model: nn.Module, x: torch.Tensor, layer: nn.Module, target: int,
            size: tuple[int, int]) -> torch.Tensor:
    """Grad-CAM of ``target`` for the batch ``x`` (N, C, crop, crop) at ``layer``, interpolated
    to ``size`` (height, width) -> (N, height, width), each map scaled to [0, 1]."""
    from captum.attr import LayerAttribution, LayerGradCam

    with torch.enable_grad():
        cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    cam = cam.detach().float()  # (N, 1, h, w) at the layer's resolution, e.g. 7x7
    if cam.dim() != 4:
        raise UserError("Grad-CAM needs a layer with a spatial (N, C, H, W) output; pick a "
                        "convolutional layer or an Inception module", key="explain_layer")
    up = LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")[:, 0]  # (N, H, W)
    peak = up.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (up / peak).clamp_(0, 1).cpu()


def overlay(img: Image.Image, heat: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    """``heat`` ((h, w) in [0, 1]) coloured over ``box`` (left, top, w, h) of ``img``; the rest
    of the image dimmed."""
    from matplotlib import colormaps

    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255  # (H, W, 3)
    out = rgb * OUTSIDE
    left, top, w, h = box
    colour = colormaps[COLORMAP](heat)[..., :3]  # (h, w, 3)
    region = rgb[top:top + h, left:left + w]
    out[top:top + h, left:left + w] = (1 - ALPHA) * region + ALPHA * colour[:region.shape[0], :region.shape[1]]
    return Image.fromarray((out * 255 + 0.5).clip(0, 255).astype(np.uint8))


def _crop_in_original(width: int, height: int, pre: Preprocess) -> tuple[int, int, int, int]:
    """The 1-crop box of ``data.crops`` mapped back to the original image's pixels."""
    b = crop_boxes(width, height, pre, 1)[0]
    rw, rh = _resized_size(width, height, b.scale)
    left, top, cw, ch = b.box
    sx, sy = width / rw, height / rh
    x0, y0 = round(left * sx), round(top * sy)
    x1, y1 = min(width, round((left + cw) * sx)), min(height, round((top + ch) * sy))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def explain_image(model: nn.Module, path: str | os.PathLike, pre: Preprocess, layer: nn.Module,
                  target: int, out: str | os.PathLike, device: torch.device | str = "cpu") -> Path:
    """Grad-CAM of class ``target`` for one image, written (atomically) as a PNG of the
    image's size to ``out``."""
    img = load_image(path)
    x = multi_crop(img, pre, 1).to(device)  # (1, C, crop, crop): what predict classified
    box = _crop_in_original(img.width, img.height, pre)
    heat = gradcam(model, x, layer, target, (box[3], box[2]))[0].numpy()  # (h, w)
    picture = overlay(img, heat, box)
    return atomic_write(out, lambda tmp: picture.save(tmp, format="PNG"))


def heatmap_paths(files: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """``OUT/<image stem>.gradcam.png`` per image; images that share a stem (a/x.jpg, b/x.png)
    get ``-2``, ``-3``... in input order, so nothing is overwritten."""
    seen: dict[str, int] = {}
    paths = []
    for f in files:
        stem = Path(f).stem
        seen[stem] = seen.get(stem, 0) + 1
        suffix = "" if seen[stem] == 1 else f"-{seen[stem]}"
        paths.append(Path(out_dir) / f"{stem}{suffix}.gradcam.png")
    return paths


def explain_files(model: nn.Module, files: Sequence[str | os.PathLike], targets: Sequence[int],
                  pre: Preprocess, out_dir: str | os.PathLike, *, layer: str = DEFAULT_LAYER,
                  class_names: Optional[Sequence[str]] = None,
                  device: torch.device | str = "cpu") -> list[Explanation]:
    """One Grad-CAM PNG per file (for its class in ``targets``) into ``out_dir``."""
    require_captum()
    model = model.eval().to(device)
    module = resolve_layer(model, layer)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder", key="out")
    result = []
    for f, t, dst in zip(files, targets, heatmap_paths(files, out_dir)):
        explain_image(model, f, pre, module, int(t), dst, device)
        name = class_names[t] if class_names and t < len(class_names) else str(t)
        result.append(Explanation(str(f), str(dst), layer, int(t), name))
    return result
