"""Grad-CAM heatmaps (Selvaraju et al. 2017) of a prediction, overlaid on the image
(``googlenet predict --explain``).

Grad-CAM itself is Captum's ``LayerGradCam`` (gradients of the class score with respect to a
layer's output, averaged per channel, weighting that output; ReLU), upsampled with Captum's
``LayerAttribution.interpolate``; captum is optional (``pip install 'googlenet[explain]'``).

The heatmap explains the input the model classified: the single center crop of ``Preprocess``
(shorter side resized to ``resize``, ``crop`` x ``crop`` cut from the center, the same boxes as
``data.crops``). It is interpolated straight onto that crop's area of the original image (first
enlarged to at least ``MIN_SIDE`` pixels, so a 32 px digit can be seen); the parts of the image
outside the crop, which the model never saw, are dimmed rather than coloured. The PNG captions
the class and its probability, names the layer and its map size, and has a colour bar.

Which layer: Grad-CAM's map has the layer's resolution, and a 1x1 map (inception 5b at a 32 px
input) is one number, a flat tint over the whole image. By default the deepest convolution or
Inception module whose map is at least ``MIN_MAP`` x ``MIN_MAP`` at the weights' input size is
used (inception_5b at 224 px, where the paper's map is 7x7); a smaller map asked for by name is
used with a warning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

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
from .pictures import upscale

__all__ = ["DEFAULT_LAYER", "MIN_MAP", "Explanation", "require_captum", "resolve_layer",
           "layer_maps", "pick_layer", "small_map_warning", "gradcam", "overlay",
           "explain_image", "heatmap_paths", "explain_files"]

DEFAULT_LAYER = "inception_5b"  # the last Inception module: 7x7 at a 224 input
MIN_MAP = 7  # the smallest map side the default layer may have (the paper's 5b at 224 px)
MIN_SIDE = 448  # pictures: images are enlarged until their shorter side is at least this
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
    map_size: int = 0  # the layer's map side at the model's input (Grad-CAM's resolution)
    prob: Optional[float] = None  # the class's predicted probability, when given

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "heatmap": self.heatmap, "layer": self.layer,
                "class": self.target, "name": self.name, "map_size": self.map_size,
                "prob": self.prob}


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


def layer_maps(model: nn.Module, size: int) -> dict[str, int]:
    """Side of each convolution's and Inception module's output map (shorter side) for a
    ``size`` x ``size`` input, in network order, measured with forward hooks on one image."""
    names = [n for n in getattr(model, "stage_names", [])
             if not n.startswith(("pool", "norm")) and isinstance(getattr(model, n, None), nn.Module)]
    sides: dict[str, int] = {}

    def record(name: str):
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:  # None: output kept
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                sides.setdefault(name, int(min(out.shape[-2:])))
        return hook

    hooks = [getattr(model, n).register_forward_hook(record(n)) for n in names]
    try:
        chans = getattr(model, "config", {}).get("in_chans", 3)
        p = next(model.parameters())
        with torch.no_grad():
            model.eval()(torch.zeros(1, chans, size, size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
    return {n: sides[n] for n in names if n in sides}


def pick_layer(model: nn.Module, size: int) -> tuple[str, int]:
    """The deepest layer whose map is at least ``MIN_MAP`` pixels a side at ``size`` (the largest
    map if none is), and that side; ``DEFAULT_LAYER`` for a model without ``stage_names``."""
    sides = layer_maps(model, size)
    if not sides:
        return DEFAULT_LAYER, 0
    fit = [n for n, s in sides.items() if s >= MIN_MAP]
    name = fit[-1] if fit else max(sides, key=lambda n: sides[n])
    return name, sides[name]


def small_map_warning(layer: str, side: int, size: int) -> Optional[str]:
    """A warning when ``layer``'s map (``side``) is too coarse to show where the evidence is."""
    if side <= 0 or side >= MIN_MAP:
        return None
    what = "one number: every heatmap a flat tint" if side == 1 else "a coarse blur"
    return (f"warning: {layer}'s map is {side}x{side} at {size} px, so its Grad-CAM is {what}; "
            f"leave --explain-layer out for the deepest layer with at least {MIN_MAP}x{MIN_MAP}")


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


def picture(img: Image.Image, heat: np.ndarray, box: tuple[int, int, int, int], caption: str,
            note: str) -> Any:
    """A matplotlib Figure: ``overlay`` of ``heat`` on ``img`` (already enlarged), a colour bar
    of the heatmap's scale, ``caption`` (class and probability) as the title, ``note`` below."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    shown = overlay(img, heat, box)
    w_in = 6.5
    h_in = w_in * shown.height / shown.width / 1.15 + 1.2  # room for the title and the note
    fig = Figure(figsize=(w_in, max(3.5, min(h_in, 10.0))), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(shown, interpolation="antialiased")
    ax.axis("off")
    ax.set_title(caption, fontsize=16, fontweight="bold")
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[COLORMAP]), ax=ax, shrink=0.85)
    bar.set_label("Grad-CAM (1: the strongest evidence)", fontsize=11)
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=9, color="0.3", wrap=True)
    return fig


def explain_image(model: nn.Module, path: str | os.PathLike, pre: Preprocess, layer: nn.Module,
                  target: int, out: str | os.PathLike, device: torch.device | str = "cpu", *,
                  caption: Optional[str] = None, note: str = "") -> Path:
    """Grad-CAM of class ``target`` for one image, written (atomically) to ``out`` as a PNG: the
    image enlarged to at least ``MIN_SIDE`` pixels, the heatmap over its crop, a colour bar,
    ``caption`` (default: the class index) as the title and ``note`` below."""
    img = load_image(path)
    x = multi_crop(img, pre, 1).to(device)  # (1, C, crop, crop): what predict classified
    big, k = upscale(img.convert("RGB"), MIN_SIDE)
    box = tuple(v * k for v in _crop_in_original(img.width, img.height, pre))
    heat = gradcam(model, x, layer, target, (box[3], box[2]))[0].numpy()  # (h, w)
    fig = picture(big, heat, box, caption or f"class {target}", note)
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))


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
                  pre: Preprocess, out_dir: str | os.PathLike, *, layer: Optional[str] = None,
                  class_names: Optional[Sequence[str]] = None,
                  probs: Optional[Sequence[float]] = None,
                  device: torch.device | str = "cpu") -> list[Explanation]:
    """One Grad-CAM PNG per file (for its class in ``targets``, captioned with its name and
    ``probs``) into ``out_dir``; ``layer`` unset: ``pick_layer``'s."""
    require_captum()
    model = model.eval().to(device)
    if layer is None:
        layer, side = pick_layer(model, pre.crop)
    else:
        resolve_layer(model, layer)
        side = layer_maps(model, pre.crop).get(layer, 0)
    module = resolve_layer(model, layer)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder", key="out")
    grid = f"{side}x{side} map" if side else "map"
    note = (f"Grad-CAM at {layer} ({grid} at the {pre.crop} px input, upsampled); outside the "
            f"center crop the model saw: dimmed")
    result = []
    for i, (f, t, dst) in enumerate(zip(files, targets, heatmap_paths(files, out_dir))):
        name = class_names[t] if class_names and t < len(class_names) else str(t)
        p = float(probs[i]) if probs is not None else None
        caption = f"predicted {name}" + (f" ({p:.1%})" if p is not None else "")
        explain_image(model, f, pre, module, int(t), dst, device, caption=caption, note=note)
        result.append(Explanation(str(f), str(dst), layer, int(t), name, side, p))
    return result
