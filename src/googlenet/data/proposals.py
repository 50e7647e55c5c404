"""The paper's R-CNN region proposals (§8): Selective Search, coverage, labelling and warping.

GoogLeNet's detection entry was R-CNN with Inception as the region classifier, on Selective
Search proposals "with the superpixel size doubled" (about half the proposals; coverage 92%), plus
200 MultiBox proposals. ``selective_search`` is OpenCV contrib's implementation
(``cv2.ximgproc.segmentation``, package ``opencv-contrib-python-headless``, extra ``detect``) with
``base_k = inc_k = 300`` (OpenCV's default is 150: the doubled superpixel size). Results are cached
per image on disk (key: hash of the pixels and the parameters).

``label_proposals`` assigns R-CNN training labels by IoU with the ground truth, and
``warp_regions`` crops each proposal with R-CNN's 16 px context padding and warps it (anisotropic
scaling) to the classifier's input size.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou, roi_align

from ..fileio import atomic_write
from ..errors import UserError

__all__ = ["selective_search", "proposal_recall", "proposal_stats", "label_proposals",
           "ProposalLabels", "warp_regions"]

_MODES = ("fast", "quality", "single")


def _rgb_hwc(image: Any) -> np.ndarray:
    """A PIL image, uint8 tensor (3, H, W) or uint8 array (H, W, 3) -> contiguous uint8 (H, W, 3) RGB."""
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise UserError(f"expected an image tensor (3, H, W), got {tuple(image.shape)}", key="image")
        if image.is_floating_point():
            image = (image.clamp(0, 1) * 255).round()
        return np.ascontiguousarray(image.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise UserError(f"expected an RGB image (H, W, 3), got shape {arr.shape}", key="image")
    return np.ascontiguousarray(arr.astype(np.uint8))


def _cv2() -> Any:
    try:
        import cv2

        cv2.ximgproc.segmentation  # noqa: B018  (contrib only)
    except (ImportError, AttributeError):
        raise UserError("Selective Search needs OpenCV's contrib modules: pip install "
                        "'googlenet[detect]' (opencv-contrib-python-headless; uninstall "
                        "opencv-python if both are present)", key="proposals") from None
    return cv2


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a bare name
            np.save(f, arr)

    atomic_write(path, write)


def selective_search(image: Any, *, mode: str = "fast", base_k: int = 300, inc_k: int = 300,
                     sigma: float = 0.8, max_proposals: int = 2000,
                     cache_dir: Optional[str | os.PathLike] = None) -> torch.Tensor:
    """Selective Search proposals (N, 4) float32 XYXY pixels, in OpenCV's ranking order,
    duplicates removed, at most ``max_proposals``.

    ``mode``: "fast" (OpenCV's ``switchToSelectiveSearchFast``: 2 colour spaces, k = base_k and
    base_k + inc_k), "quality" (``switchToSelectiveSearchQuality``: more strategies, ~4x the
    proposals) or "single" (one strategy, k = base_k). ``cache_dir``: reuse results saved there
    (one .npy per image and parameter set).
    """
    if mode not in _MODES:
        raise UserError(f"Selective Search mode must be one of {_MODES}, got {mode!r}", key="mode")
    if base_k < 1 or inc_k < 1 or sigma <= 0 or max_proposals < 1:
        raise UserError(f"need base_k, inc_k, max_proposals >= 1 and sigma > 0, got {base_k}, "
                        f"{inc_k}, {max_proposals}, {sigma}", key="proposals")
    rgb = _rgb_hwc(image)  # (H, W, 3)
    cache = None
    if cache_dir is not None:
        h = hashlib.sha256(rgb.tobytes())
        h.update(repr((rgb.shape, mode, base_k, inc_k, sigma, max_proposals)).encode())
        cache = Path(cache_dir) / f"ss-{h.hexdigest()[:32]}.npy"
        if cache.is_file():
            try:
                return torch.from_numpy(np.load(cache, allow_pickle=False))
            except (ValueError, OSError):
                pass  # a damaged cache file is recomputed and replaced
    cv2 = _cv2()
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(rgb[:, :, ::-1]))  # OpenCV wants BGR
    if mode == "fast":
        ss.switchToSelectiveSearchFast(base_k, inc_k, sigma)
    elif mode == "quality":
        ss.switchToSelectiveSearchQuality(base_k, inc_k, sigma)
    else:
        ss.switchToSingleStrategy(base_k, sigma)
    rects = np.asarray(ss.process(), dtype=np.float32).reshape(-1, 4)  # (N, 4) x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)  # (N, 4) XYXY
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = np.ascontiguousarray(boxes[np.sort(first)][:max_proposals])  # keep OpenCV's order
    if cache is not None:
        _save_npy_atomic(cache, boxes)
    return torch.from_numpy(boxes)


def _boxes(x: Any) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32).reshape(-1, 4)


def _best_iou(proposals: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """For each gt box, its best IoU with any proposal (G,)."""
    if len(gt) == 0:
        return torch.zeros(0)
    if len(proposals) == 0:
        return torch.zeros(len(gt))
    return box_iou(gt, proposals).max(dim=1).values


def proposal_recall(proposals: Any, gt_boxes: Any, iou: float = 0.5) -> float:
    """The paper's "coverage": the fraction of ground-truth boxes that some proposal of the same
    image overlaps with IoU >= ``iou``. Give one image's tensors or lists of them (per image).
    NaN when there is no ground truth."""
    if isinstance(proposals, torch.Tensor) or (isinstance(proposals, np.ndarray)):
        proposals, gt_boxes = [proposals], [gt_boxes]
    best = torch.cat([_best_iou(_boxes(p), _boxes(g)) for p, g in zip(proposals, gt_boxes)]
                     or [torch.zeros(0)])
    return float((best >= iou).float().mean()) if len(best) else float("nan")


def proposal_stats(proposals: Sequence[Any], gt_boxes: Sequence[Any],
                   ious: Sequence[float] = (0.5, 0.7)) -> dict[str, float]:
    """Coverage at each IoU (``recall@0.5``...), average best overlap (``abo``) and proposals per
    image (``mean``, ``median``, ``min``, ``max`` of ``per_image``) over a set of images."""
    if len(proposals) != len(gt_boxes):
        raise UserError(f"{len(proposals)} proposal sets for {len(gt_boxes)} images", key="proposals")
    best = torch.cat([_best_iou(_boxes(p), _boxes(g)) for p, g in zip(proposals, gt_boxes)]
                     or [torch.zeros(0)])
    counts = np.array([len(_boxes(p)) for p in proposals], dtype=np.float64)
    out = {f"recall@{t:g}": (float((best >= t).float().mean()) if len(best) else float("nan"))
           for t in ious}
    out["abo"] = float(best.mean()) if len(best) else float("nan")
    if counts.size:
        out.update(per_image_mean=float(counts.mean()), per_image_median=float(np.median(counts)),
                   per_image_min=float(counts.min()), per_image_max=float(counts.max()))
    out["images"] = float(len(proposals))
    return out


class ProposalLabels(NamedTuple):
    labels: torch.Tensor  # (N,) int64: 0 background, 1..C the class (gt label + 1)
    ignore: torch.Tensor  # (N,) bool: IoU in [bg_iou, fg_iou), neither foreground nor background
    max_iou: torch.Tensor  # (N,) float: best IoU with any ground-truth box (0 without gt)
    gt_index: torch.Tensor  # (N,) int64: that box's index (-1 without gt)


def label_proposals(proposals: Any, gt_boxes: Any, gt_labels: Any, *, fg_iou: float = 0.5,
                    bg_iou: float = 0.3) -> ProposalLabels:
    """R-CNN labels: IoU >= ``fg_iou`` with a ground-truth box -> that box's class + 1 (C+1
    classes, 0 is background); IoU < ``bg_iou`` with every box -> background (0); in between ->
    ignored (label 0, ``ignore`` True). R-CNN fine-tuned with fg 0.5 and used 0.3 as the SVM
    negative threshold; ``bg_iou == fg_iou`` gives its fine-tuning rule (no ignored proposals)."""
    if not 0 <= bg_iou <= fg_iou <= 1:
        raise UserError(f"need 0 <= bg_iou <= fg_iou <= 1, got bg_iou {bg_iou}, fg_iou {fg_iou}",
                        key="fg_iou")
    p, g = _boxes(proposals), _boxes(gt_boxes)
    gl = torch.as_tensor(gt_labels, dtype=torch.int64).reshape(-1)
    if len(gl) != len(g):
        raise UserError(f"{len(g)} ground-truth boxes but {len(gl)} labels", key="gt_labels")
    n = len(p)
    if len(g) == 0:
        return ProposalLabels(torch.zeros(n, dtype=torch.int64), torch.zeros(n, dtype=torch.bool),
                              torch.zeros(n), torch.full((n,), -1, dtype=torch.int64))
    iou = box_iou(p, g)  # (N, G)
    max_iou, idx = iou.max(dim=1) if n else (torch.zeros(0), torch.zeros(0, dtype=torch.int64))
    fg = max_iou >= fg_iou
    labels = torch.where(fg, gl[idx] + 1, torch.zeros_like(idx))
    ignore = ~fg & (max_iou >= bg_iou)
    return ProposalLabels(labels, ignore, max_iou, idx)


def warp_regions(image: torch.Tensor, boxes: Any, size: int | tuple[int, int], *,
                 context: int = 16) -> torch.Tensor:
    """Crop each box with R-CNN's context padding and warp it to ``size`` -> (N, C, h, w) float.

    R-CNN dilates each box so that, after warping, ``context`` pixels of the warped output show
    the image around the box (16 in R-CNN); the box itself fills the central
    ``size - 2 * context``. Pixels beyond the image border are 0 (R-CNN's mean fill, when
    ``image`` is already normalised). Sampling is ``roi_align`` (bilinear, averaged over each
    output cell, so large boxes are not aliased). uint8 images are scaled to [0, 1] first.
    """
    h_out, w_out = (size, size) if isinstance(size, int) else size
    if context < 0 or 2 * context >= min(h_out, w_out):
        raise UserError(f"context {context} leaves no room for the box in a {h_out}x{w_out} "
                        f"output; need 0 <= 2 * context < size", key="context")
    if image.ndim != 3:
        raise UserError(f"expected an image (C, H, W), got {tuple(image.shape)}", key="image")
    img = image.float() / 255 if not image.is_floating_point() else image
    b = _boxes(boxes).to(img.device)
    if len(b) == 0:
        return img.new_zeros((0, img.shape[0], h_out, w_out))
    # scale from the box to the inner (size - 2 * context) region, per axis
    pad_x = (b[:, 2] - b[:, 0]) * context / (w_out - 2 * context)
    pad_y = (b[:, 3] - b[:, 1]) * context / (h_out - 2 * context)
    grown = torch.stack([b[:, 0] - pad_x, b[:, 1] - pad_y, b[:, 2] + pad_x, b[:, 3] + pad_y], 1)
    rois = torch.cat([grown.new_zeros((len(b), 1)), grown], dim=1)  # (N, 5): batch index, XYXY
    return roi_align(img[None], rois, (h_out, w_out), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)
