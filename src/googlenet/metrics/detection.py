"""Detection metrics: COCO mAP through pycocotools, Pascal VOC 2007 AP50, precision-recall plots.

Inputs are per image, in the same order: ``predictions[i] = {"boxes": (N, 4) XYXY, "scores": (N,),
"labels": (N,)}`` and ``targets[i] = {"boxes": (M, 4) XYXY, "labels": (M,)}`` (optionally
``"iscrowd"`` or ``"difficult"``: (M,) bool, boxes that are neither required nor penalised).
Labels are class indices 0..C-1 into ``classes``.

``coco_map`` is pycocotools' ``COCOeval`` itself (the reference every paper quotes), fed with
ground truth and detections built in memory; it is never re-implemented here. ``voc07_ap`` is the
ILSVRC/VOC 2007 rule the paper's Table 4 counts by (class matches, IoU >= 0.5), with VOC's
11-point interpolated AP: small enough to write, checked against hand-computed cases.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from ..fileio import atomic_write
from ..errors import UserError

__all__ = ["coco_map", "voc07_ap", "precision_recall", "pr_curve_figure", "save_pr_curve",
           "COCO_KEYS"]

# The 12 numbers COCOeval.summarize() prints, in its order.
COCO_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def _np(x: Any, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(predictions: Sequence[Mapping], targets: Sequence[Mapping]) -> None:
    if len(predictions) != len(targets):
        raise UserError(f"{len(predictions)} predictions for {len(targets)} images: give one "
                        f"prediction dict per image, in the targets' order", key="predictions")


def _ignored(t: Mapping, n: int) -> np.ndarray:
    for k in ("iscrowd", "difficult"):
        if k in t:
            return _np(t[k], bool).reshape(-1)
    return np.zeros(n, dtype=bool)


def _coco_objects(predictions: Sequence[Mapping], targets: Sequence[Mapping],
                  classes: Sequence[str]) -> tuple[Any, Any]:
    """pycocotools COCO objects (ground truth, detections) built in memory; boxes to XYWH.

    The detections object is built like ``COCO.loadRes`` builds it (area = w * h, iscrowd 0), but
    directly, because ``loadRes`` fails on an empty list (no detections at all)."""
    from pycocotools.coco import COCO

    images = [{"id": i, "width": 0, "height": 0} for i in range(len(targets))]
    cats = [{"id": k + 1, "name": str(c)} for k, c in enumerate(classes)]
    gts, dts = [], []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        tb, tl = _np(t["boxes"]).reshape(-1, 4), _np(t["labels"], np.int64).reshape(-1)
        for b, label, crowd in zip(tb, tl, _ignored(t, len(tl))):
            w, h = b[2] - b[0], b[3] - b[1]
            gts.append({"id": len(gts) + 1, "image_id": i, "category_id": int(label) + 1,
                        "bbox": [float(b[0]), float(b[1]), float(w), float(h)],
                        "area": float(w * h), "iscrowd": int(crowd)})
        pb, ps = _np(p["boxes"]).reshape(-1, 4), _np(p["scores"]).reshape(-1)
        for b, s, label in zip(pb, ps, _np(p["labels"], np.int64).reshape(-1)):
            w, h = b[2] - b[0], b[3] - b[1]
            dts.append({"id": len(dts) + 1, "image_id": i, "category_id": int(label) + 1,
                        "bbox": [float(b[0]), float(b[1]), float(w), float(h)],
                        "area": float(w * h), "iscrowd": 0, "score": float(s)})
    out = []
    for anns in (gts, dts):
        c = COCO()
        c.dataset = {"images": images, "categories": cats, "annotations": anns}
        with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
            c.createIndex()
        out.append(c)
    return out[0], out[1]


def coco_map(predictions: Sequence[Mapping], targets: Sequence[Mapping], classes: Sequence[str],
             *, max_dets: int = 100) -> dict[str, Any]:
    """COCO box AP by pycocotools: ``map`` (AP@[.5:.95]), ``map_50``, ``map_75``, ``map_small``/
    ``medium``/``large``, the ARs (``COCO_KEYS``), ``per_class`` {name: AP@[.5:.95]} and
    ``per_class_50`` {name: AP50}; a number pycocotools leaves undefined (-1, e.g. no ground truth
    of that size or class) is NaN. ``stats`` is COCOeval's own 12-vector, untouched.
    """
    from pycocotools.cocoeval import COCOeval

    _check(predictions, targets)
    gt, dt = _coco_objects(predictions, targets, classes)
    ev = COCOeval(gt, dt, iouType="bbox")
    ev.params.maxDets = [1, 10, max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(s) for s in ev.stats]
    out: dict[str, Any] = {k: (v if v >= 0 else float("nan")) for k, v in zip(COCO_KEYS, stats)}
    prec = ev.eval["precision"]  # (T iou thresholds, R recall points, K classes, A areas, M maxDets)

    def ap(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(p.mean()) if p.size else float("nan")

    out["per_class"] = {str(c): ap(prec[:, :, k, 0, -1]) for k, c in enumerate(classes)}
    out["per_class_50"] = {str(c): ap(prec[0, :, k, 0, -1]) for k, c in enumerate(classes)}
    out["stats"] = stats
    return out


# ---------------------------------------------------------------------------------------------
# Pascal VOC 2007
# ---------------------------------------------------------------------------------------------

def precision_recall(predictions: Sequence[Mapping], targets: Sequence[Mapping], num_classes: int,
                     *, iou: float = 0.5) -> list[dict[str, np.ndarray]]:
    """Per class, VOC's matching: detections of all images sorted by score (descending); each is
    a true positive when the ground-truth box of its class it overlaps most (IoU >= ``iou``) is
    not yet taken, else a false positive; a detection whose best box is "difficult" counts as
    neither. Returns per class {"precision", "recall", "scores"} (cumulative, in score order) and
    "npos" (ground-truth boxes that count)."""
    _check(predictions, targets)
    # per detection: (score, class, image, best IoU with a same-class gt box, that box's index)
    rows: list[tuple[float, int, int, float, int]] = []
    npos = np.zeros(num_classes, dtype=np.int64)
    gt_ignored = []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        tl = _np(t["labels"], np.int64).reshape(-1)
        gt_ignored.append(_ignored(t, len(tl)))
        np.add.at(npos, tl[~gt_ignored[-1]], 1)
        pl = _np(p["labels"], np.int64).reshape(-1)
        if np.any((pl < 0) | (pl >= num_classes)):
            raise UserError(f"image {i}: predicted labels must be in 0..{num_classes - 1}",
                            key="predictions")
        ov = box_iou(torch.as_tensor(_np(p["boxes"]).reshape(-1, 4)),
                     torch.as_tensor(_np(t["boxes"]).reshape(-1, 4))).numpy()  # (P, G)
        ov = np.where(pl[:, None] == tl[None, :], ov, -1.0)  # only boxes of the same class match
        best = ov.argmax(axis=1) if ov.shape[1] else np.full(len(pl), -1)
        best_iou = ov.max(axis=1) if ov.shape[1] else np.full(len(pl), -1.0)
        rows += zip(_np(p["scores"]).reshape(-1).tolist(), pl.tolist(), [i] * len(pl),
                    best_iou.tolist(), best.tolist())
    rows.sort(key=lambda r: -r[0])  # stable: ties keep input order
    curves = []
    for c in range(num_classes):
        tp, fp, scores = [], [], []
        taken: set[tuple[int, int]] = set()
        for score, cls, i, ov, k in rows:
            if cls != c:
                continue
            if ov >= iou and gt_ignored[i][k]:
                continue  # VOC: a match to a difficult box is neither TP nor FP
            hit = ov >= iou and (i, k) not in taken  # VOC: the best box already taken -> FP
            if hit:
                taken.add((i, k))
            tp.append(hit)
            fp.append(not hit)
            scores.append(score)
        ctp, cfp = np.cumsum(tp, dtype=np.float64), np.cumsum(fp, dtype=np.float64)
        recall = ctp / npos[c] if npos[c] > 0 else np.full(len(ctp), np.nan)
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        curves.append({"precision": precision, "recall": recall, "scores": np.asarray(scores),
                       "npos": int(npos[c])})
    return curves


def _ap11(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2007 11-point interpolated AP: mean over r in {0, .1, ..., 1} of max precision at
    recall >= r (0 where none)."""
    return float(np.mean([precision[recall >= r].max() if np.any(recall >= r) else 0.0
                          for r in np.linspace(0, 1, 11)]))


def voc07_ap(predictions: Sequence[Mapping], targets: Sequence[Mapping], classes: Sequence[str],
             *, iou: float = 0.5) -> dict[str, Any]:
    """Pascal VOC 2007 AP50 (11-point) per class and their mean over the classes with ground
    truth: {"map": float, "per_class": {name: AP or NaN (no ground truth)}}."""
    curves = precision_recall(predictions, targets, len(classes), iou=iou)
    per = {str(c): (_ap11(cv["precision"], cv["recall"]) if cv["npos"] > 0 else float("nan"))
           for c, cv in zip(classes, curves)}
    vals = [v for v in per.values() if not np.isnan(v)]
    return {"map": float(np.mean(vals)) if vals else float("nan"), "per_class": per}


# ---------------------------------------------------------------------------------------------
# Precision-recall plots
# ---------------------------------------------------------------------------------------------

def pr_curve_figure(curves: Sequence[Mapping], classes: Sequence[str],
                    only: Optional[Sequence[int]] = None) -> Any:
    """A matplotlib Figure (object API, no pyplot) with one precision-recall line per class,
    its AP50 in % (the unit of every mAP the commands print) in a legend beside the axes, so the
    legend never covers the curves."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    keep = [k for k in (only if only is not None else range(len(classes))) if curves[k]["npos"]]
    fig = Figure(figsize=(9, 5.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for i, k in enumerate(keep):
        cv = curves[k]
        ap = _ap11(cv["precision"], cv["recall"])
        # tab10 then tab20's other shades, dashes every other line: 20 classes stay apart
        colour = f"C{i}" if i < 10 else colormaps["tab20"]((2 * (i - 10) + 1) % 20)
        ax.step(np.r_[0, cv["recall"]], np.r_[1, cv["precision"]], where="post", lw=2,
                color=colour, ls="-" if i % 2 == 0 else "--",
                label=f"{classes[k]}  AP50 {100 * ap:.1f}%")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.set_xlabel("recall", fontsize=12)
    ax.set_ylabel("precision", fontsize=12)
    ax.set_title("precision-recall at IoU 0.5 (VOC07 11-point AP50)", fontsize=13)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                  ncol=1 if len(keep) <= 20 else 2, frameon=False)
    return fig


def _save_atomic(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def save_pr_curve(curves: Sequence[Mapping], classes: Sequence[str], path: str | os.PathLike, *,
                  per_class: bool = False) -> list[Path]:
    """Write the precision-recall plot to ``path`` (PNG, atomically), all classes in one figure;
    with ``per_class``, one PNG per class with ground truth, ``{stem}_{class}.png`` beside it.
    ``curves`` is ``precision_recall(...)``'s output. Returns the files written."""
    path = Path(path)
    if not per_class:
        return [_save_atomic(pr_curve_figure(curves, classes), path)]
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)  # noqa: E731
    return [_save_atomic(pr_curve_figure(curves, classes, only=[k]),
                         path.with_name(f"{path.stem}_{safe(str(c))}.png"))
            for k, c in enumerate(classes) if curves[k]["npos"] > 0]
