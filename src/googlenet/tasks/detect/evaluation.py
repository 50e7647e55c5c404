"""Detection runs at inference: evaluation (COCO AP@[.5:.95] / AP50 / AP75 / APs/m/l through
pycocotools, VOC07 11-point AP50, per-class AP, a precision-recall plot), ensembles, and
prediction on image files (text, JSON, images with the boxes drawn).

Ensembles of several runs fuse boxes, not scores: every model's detections of an image are
concatenated and reduced by per-class NMS (``torchvision.ops.batched_nms``) at the first
model's NMS IoU, keeping the ``detections_per_img`` best. (The paper's §8 ensemble averages the
softmax of six region classifiers over the same proposals; that is the R-CNN pipeline's, in
googlenet.tasks.rcnn, whose unit passes its own ``Runner``. One-stage detectors have no
shared proposals to average over.)

Labels here are the dataset's, 0..C-1 (the task's ``from_model_outputs`` undoes torchvision's
background shift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from ...errors import UserError
from ...fileio import atomic_write
from ...models.detection import from_model_outputs, to_image
from ...models.graph import amp_autocast
from ...weights.records import LoadedWeights
from .. import saved_settings

__all__ = ["DetectionReport", "Runner", "run_detector", "describe", "fuse", "evaluate_detectors",
           "evaluate_runs", "predict_files", "drawn_names",
           "draw", "check_detection_classes"]


@torch.no_grad()
def run_detector(model: torch.nn.Module, images: Sequence[Any], device: torch.device, *,
                 batch_size: int = 8, amp: str | bool = "none") -> list[dict[str, torch.Tensor]]:
    """Detections (dataset labels, CPU) of ``model`` (a one-stage or Faster R-CNN detector)
    for each image, in order."""
    model.eval().to(device)
    out: list[dict[str, torch.Tensor]] = []
    for i in range(0, len(images), batch_size):
        batch = [to_image(x, device) for x in images[i:i + batch_size]]
        with amp_autocast(amp, device, detector=True):
            out += from_model_outputs(model(batch))
    return out


def describe(model: torch.nn.Module) -> str:
    """The "method" column of a detector's row."""
    return f"{model.config['detector']}, GoogLeNet {model.config['variant']} FPN"


@dataclass(frozen=True)
class Runner:
    """How a unit runs detection weights: ``run(model, images, device, batch_size=, amp=)``
    -> detections; ``describe(model)``: its row's method; ``ensemble(models, images, device)``:
    an ensemble's detections other than box fusion (None: ``fuse``), named ``ensemble_method``."""

    run: Optional[Callable[..., list[dict[str, torch.Tensor]]]] = None  # None: run_detector
    describe: Callable[[torch.nn.Module], str] = describe
    ensemble: Optional[Callable[..., list[dict[str, torch.Tensor]]]] = None
    ensemble_method: str = "box fusion (concatenate + per-class NMS)"

    def detections(self, model: torch.nn.Module, images: Sequence[Any], device: torch.device,
                   **kw: Any) -> list[dict[str, torch.Tensor]]:
        return (self.run or run_detector)(model, images, device, **kw)


def fuse(per_model: list[list[dict[str, torch.Tensor]]], iou: float = 0.5,
         keep: int = 100) -> list[dict[str, torch.Tensor]]:
    """Box fusion of an ensemble: per image, concatenate every model's detections, then
    per-class NMS at ``iou``, the ``keep`` highest scores."""
    from torchvision.ops import batched_nms

    if len(per_model) == 1:
        return per_model[0]
    fused = []
    for dets in zip(*per_model):
        boxes = torch.cat([d["boxes"] for d in dets])
        scores = torch.cat([d["scores"] for d in dets])
        labels = torch.cat([d["labels"] for d in dets])
        k = batched_nms(boxes, scores, labels, iou)[:keep]
        fused.append({"boxes": boxes[k], "scores": scores[k], "labels": labels[k]})
    return fused


def check_detection_classes(models: Sequence[LoadedWeights], classes: Optional[Sequence[str]],
                            names: Sequence[str]) -> None:
    for m, n in zip(models, names):
        if m.task != "detect":
            raise UserError(f"{n}: a {m.task!r} model; an ensemble of detectors takes detection "
                            f"runs only")
        if classes is not None and m.class_names is not None and list(m.class_names) != list(classes):
            raise UserError(f"{n}: detects {m.class_names[:5]}... but the data has "
                            f"{list(classes)[:5]}...; evaluate on the data it was trained on")
    first = models[0].class_names
    for m, n in zip(models[1:], names[1:]):
        if list(m.class_names or []) != list(first or []):
            raise UserError(f"{n}: other classes than {names[0]}; an ensemble needs the same classes")


@dataclass
class DetectionReport:
    """Rows (one per model, plus the ensemble) of COCO/VOC metrics, per-class AP, and context."""

    rows: list[dict[str, Any]]
    class_names: list[str]
    per_class: dict[str, list[float]]  # row name -> AP50 per class (VOC07), %
    info: dict[str, Any] = field(default_factory=dict)
    curves: Any = None  # what the PR plot needs: (preds, targets) of the last row
    # (file, why) of every file or annotation left out: when the data was opened (bad
    # annotations, missing or unreadable images) and images that failed to decode here
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        out = []
        for r in self.rows:
            out.append(f"{r['name']}: COCO mAP@[.5:.95] {r['map']:.2f}%  AP50 {r['map50']:.2f}%  "
                       f"AP75 {r['map75']:.2f}%  APs/m/l {r['map_small']:.1f}/{r['map_medium']:.1f}/"
                       f"{r['map_large']:.1f}%  VOC07 AP50 {r['voc07_map50']:.2f}%  "
                       f"({r['images']} images, {r['detections']} detections)")
        return out

    def skipped_lines(self, most: Optional[int] = None) -> list[str]:
        """One line per skipped file or annotation (``most``: at most that many, then a count)."""
        shown = self.skipped if most is None else self.skipped[:most]
        out = [w if w.startswith(f) else f"{f}: {w}" for f, w in shown]
        if len(shown) < len(self.skipped):
            out.append(f"... and {len(self.skipped) - len(shown)} more")
        return out

    def table_markdown(self, with_skipped: bool = True) -> str:
        """Shaped like the paper's Tables 4/5: model(s), method, mAP; then what was skipped."""
        lines = ["| models | method | mAP@.5 (VOC07) | COCO AP50 | COCO mAP@[.5:.95] |",
                 "|---|---|---:|---:|---:|"]
        for r in self.rows:
            lines.append(f"| {r['name']} | {r['method']} | {r['voc07_map50']:.2f} | "
                         f"{r['map50']:.2f} | {r['map']:.2f} |")
        head = "| class | " + " | ".join(r["name"] for r in self.rows) + " |"
        lines += ["", "Per-class AP50 (VOC07 11-point, %):", "", head,
                  "|---|" + "---:|" * len(self.rows)]
        for i, c in enumerate(self.class_names):
            lines.append(f"| {c} | " + " | ".join(f"{self.per_class[r['name']][i]:.1f}"
                                                   for r in self.rows) + " |")
        if self.skipped and with_skipped:
            lines += ["", f"Skipped ({len(self.skipped)} files or annotations, not scored):", ""]
            lines += [f"- {ln}" for ln in self.skipped_lines()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """What results.json holds (and ``googlenet eval --json`` prints)."""
        return {"info": self.info, "rows": self.rows, "class_names": self.class_names,
                "per_class_ap50": self.per_class,
                "skipped": [{"file": f, "why": w} for f, w in self.skipped]}

    def save(self, out: str | Path) -> list[Path]:
        from ...metrics.detection import precision_recall, save_pr_curve

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "results.md"]
        for path, text in ((written[0], json.dumps(self.to_dict(), indent=2) + "\n"),
                           (written[1], self.table_markdown() + "\n")):
            atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
        if self.curves is not None:
            preds, targets = self.curves
            curves = precision_recall(preds, targets, len(self.class_names))
            written += save_pr_curve(curves, self.class_names, out / "pr_curve.png")
        return written


def _row(name: str, method: str, preds: list[dict[str, torch.Tensor]],
         targets: list[dict[str, torch.Tensor]], classes: list[str]) -> tuple[dict[str, Any], list[float]]:
    from ...metrics.detection import coco_map, voc07_ap

    c = coco_map(preds, targets, classes)
    v = voc07_ap(preds, targets, classes)
    row: dict[str, Any] = {"name": name, "method": method, "images": len(preds),
                           "detections": int(sum(len(p["scores"]) for p in preds))}
    for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large"):
        row[k] = 100.0 * float(c[k.replace("map5", "map_5").replace("map7", "map_7")])  # NaN: undefined
    row["voc07_map50"] = 100.0 * float(v["map"])
    row["coco_ap_per_class"] = {n: 100.0 * float(a) for n, a in c["per_class"].items()}
    return row, [100.0 * float(v["per_class"][str(n)]) for n in classes]


def _eval_batches(dataset: Any, idx: Sequence[int], batch_size: int, strict: bool,
                  skipped: list[tuple[str, str]]) -> Iterator[tuple[list[Any], list[dict]]]:
    """(images, targets) ``batch_size`` at a time, each decoded and transformed only when its
    batch comes: memory holds one batch, never the split. An image that cannot be read is
    skipped and recorded in ``skipped`` as (file, why) (``strict``: raised)."""
    from ...data.imaging import ImageError

    images: list[Any] = []
    targets: list[dict[str, torch.Tensor]] = []
    for i in idx:
        try:
            img, t = dataset.load(i)  # not dataset[i]: that would stand in another image
            if dataset.transforms is not None:
                img, t = dataset.transforms(img, t)
        except ImageError as e:
            if strict:
                raise
            skipped.append((getattr(dataset.records[i], "file", str(i)), str(e)))
            continue
        images.append(img)
        targets.append({"boxes": t["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4),
                        "labels": t["labels"].as_subclass(torch.Tensor).long()})
        if len(images) == batch_size:
            yield images, targets
            images, targets = [], []
    if images:
        yield images, targets


def evaluate_detectors(models: Sequence[LoadedWeights], dataset: Any, *, names: Sequence[str],
                       device: torch.device, batch_size: int = 8, amp: str | bool = "none",
                       indices: Optional[Sequence[int]] = None, strict: bool = False,
                       info: Optional[dict[str, Any]] = None,
                       runner: Runner = Runner()) -> DetectionReport:
    """Each model alone, then (several models) their box-fused ensemble, on ``dataset``'s items
    (``(image, target)``, dataset labels), streamed batch by batch (only detections and boxes
    are kept). Files the dataset skipped when it was opened and images that fail to decode
    here are listed in the report's ``skipped``."""
    idx = list(range(len(dataset))) if indices is None else list(indices)
    skipped: list[tuple[str, str]] = list(getattr(dataset, "skipped", []))
    per_model: list[list[dict[str, torch.Tensor]]] = [[] for _ in models]
    fused: list[dict[str, torch.Tensor]] = []
    targets: list[dict[str, torch.Tensor]] = []
    for images, tgts in _eval_batches(dataset, idx, batch_size, strict, skipped):
        targets += tgts
        batch = []
        for k, m in enumerate(models):
            batch.append(runner.detections(m.model, images, device, batch_size=batch_size, amp=amp))
            per_model[k] += batch[-1]
        if len(models) > 1:
            if runner.ensemble is not None:  # e.g. R-CNN's: softmax averaged per region
                fused += runner.ensemble([m.model for m in models], images, device)
            else:
                fused += fuse(batch, iou=float(models[0].model.config.get("nms_thresh", 0.5)),
                              keep=int(models[0].model.config.get("detections_per_img", 100)))
    if not targets:
        raise UserError(f"{getattr(dataset, 'name', 'the data')}: none of the "
                        f"{len(idx)} images could be read (first: {skipped[-1][1] if skipped else '?'})",
                        key="data")
    classes = [str(c) for c in dataset.classes]
    rows, per_class = [], {}
    for m, n, preds in zip(models, names, per_model):
        row, pc = _row(n, runner.describe(m.model), preds, targets, classes)
        rows.append(row)
        per_class[n] = pc
    final = per_model[-1]
    if len(models) > 1:
        name = f"ensemble of {len(models)}"
        final = fused
        row, pc = _row(name, runner.ensemble_method, final, targets, classes)
        rows.append(row)
        per_class[name] = pc
    return DetectionReport(rows=rows, class_names=classes, per_class=per_class,
                           info=dict(info or {}), curves=(final, targets), skipped=skipped)


def draw(image: Any, det: dict[str, torch.Tensor], class_names: Optional[Sequence[str]], *,
         min_side: Optional[int] = None) -> Any:
    """A PIL image of ``image`` (PIL, or uint8 (3, H, W)) with the boxes drawn, one colour per
    class, each "name score" label on a background of its colour; upscaled until its shorter
    side is at least ``min_side`` (default ``pictures.MIN_SIDE``) so the labels can be read."""
    from PIL import Image

    from ...infer.pictures import MIN_SIDE, draw_detections

    if isinstance(image, torch.Tensor):
        image = Image.fromarray(image.permute(1, 2, 0).cpu().numpy())
    return draw_detections(image, det["boxes"].tolist(), det["labels"].tolist(),
                           det["scores"].tolist(), class_names, min_side=min_side or MIN_SIDE)


def _name(class_names: Optional[Sequence[str]], i: int) -> str:
    return class_names[i] if class_names and 0 <= i < len(class_names) else f"class {i}"


def drawn_names(files: Sequence[Path], out: Path) -> list[Path]:
    """Where the drawing of each input goes in ``out``: ``STEM.png``, made unique (``STEM-2.png``,
    ...) when two inputs share a stem (a/x.jpg, b/x.png), and never a path that is one of the
    inputs (an input image living in ``out`` is not overwritten by its own drawing)."""
    import os

    def key(p: Path) -> str:
        return os.path.normcase(os.path.realpath(p))

    inputs = {key(f) for f in files}
    taken: set[str] = set()
    names = []
    for f in files:
        stem, n = Path(f).stem, 1
        while True:
            path = out / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
            if key(path) not in inputs and key(path) not in taken:
                break
            n += 1
        taken.add(key(path))
        names.append(path)
    return names


def predict_files(loaded: LoadedWeights, files: Sequence[Path], *, device: torch.device,
                  score_thresh: float = 0.3, batch_size: int = 8,
                  out: Optional[str | Path] = None, amp: str | bool = "none",
                  sheet: Optional[list[Any]] = None,
                  runner: Runner = Runner()) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Detections per readable file as plain dicts (file, boxes, names, scores), and
    ``(file, why)`` for the files that could not be read. With ``out``, the images with the
    boxes drawn are written there, each atomically, as ``drawn_names`` says (``"drawn"`` in its
    dict): an input is never overwritten, and two inputs never share a drawing. With ``sheet``
    (a list), the first ``pictures.SHEET_MAX`` drawings are appended to it as contact-sheet
    cells. Images are decoded ``batch_size`` at a time."""
    import numpy as np

    from ...data.imaging import ImageError, load_image
    from ...infer.pictures import SHEET_MAX

    results, failed = [], []
    targets = drawn_names(list(files), Path(out)) if out is not None else [None] * len(files)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    for start in range(0, len(files), batch_size):
        good, images = [], []
        for f, target in zip(files[start:start + batch_size], targets[start:start + batch_size]):
            try:
                pil = load_image(f)
            except ImageError as e:
                failed.append((str(f), str(e)))
                continue
            images.append(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))  # (3, H, W) uint8
            good.append((f, target))
        dets = runner.detections(loaded.model, images, device, batch_size=batch_size, amp=amp)
        for (f, target), img, d in zip(good, images, dets):
            keep = d["scores"] >= score_thresh
            d = {k: v[keep] for k, v in d.items()}
            results.append({"file": str(f), "boxes": [[round(float(x), 1) for x in b] for b in d["boxes"]],
                            "labels": d["labels"].tolist(),
                            "names": [_name(loaded.class_names, int(l)) for l in d["labels"]],
                            "scores": [round(float(s), 4) for s in d["scores"]]})
            if target is not None:
                drawn = draw(img, d, loaded.class_names)
                atomic_write(target, lambda tmp, im=drawn: im.save(tmp, format="PNG"))
                results[-1]["drawn"] = str(target)
            if sheet is not None and len(sheet) < SHEET_MAX:
                n = len(d["labels"])
                sheet.append((draw(img, d, loaded.class_names, min_side=320),
                              f"{n} object{'s' if n != 1 else ''}", Path(f).name))
    return results, failed


def evaluate_runs(models: Sequence[LoadedWeights], names: Sequence[str], *,
                  spec: Optional[str], split: Optional[str], device: torch.device,
                  batch_size: int = 8, amp: str | bool = "none", limit: Optional[int] = None,
                  strict: bool = False, root: Optional[str] = None,
                  runner: Runner = Runner()) -> DetectionReport:
    """``googlenet eval`` of detection runs: open the data (default: what the first run was
    trained on, else digits-detect) at the first model's input size, then ``evaluate_detectors``."""
    import numpy as np

    from ...data.detection import detection_eval_transforms, open_detection_dataset

    check_detection_classes(models, None, names)
    saved = models[0].metadata.get("config") if isinstance(models[0].metadata, dict) else None
    cfg = saved_settings(saved, strict=False)
    if spec is None and isinstance(cfg.get("data.path"), str):
        spec = cfg["data.path"]
    size = int(models[0].model.config["min_size"])
    kw: dict[str, Any] = dict(strict=strict, root=root)
    if isinstance(saved, dict):
        kw.update(seed=int(cfg.get("system.seed", 0)),
                  val_fraction=float(cfg.get("data.val_fraction", 0.1)))
    split = split or "test"
    try:
        ds = open_detection_dataset(spec, split, transforms=detection_eval_transforms(size), **kw)
    except UserError as e:
        if split != "test" or spec is None or "no 'test' split" not in str(e):
            raise
        split = "val"  # a folder without a test split
        ds = open_detection_dataset(spec, split, transforms=detection_eval_transforms(size), **kw)
    check_detection_classes(models, [str(c) for c in ds.classes], names)
    if len(ds) == 0:
        raise UserError(f"{spec or 'digits-detect'}: the {split} split has no images", key="data")
    idx = None
    if limit is not None and limit < len(ds):
        idx = np.unique(np.linspace(0, len(ds) - 1, limit).round().astype(int)).tolist()
    info = {"data": spec or "digits-detect", "split": split, "size": size,
            "weights": [m.source for m in models], "torch": torch.__version__,
            "ensemble": "box fusion: concatenate every model's detections, per-class NMS"}
    return evaluate_detectors(models, ds, names=names, device=device, batch_size=batch_size,
                              amp=amp, indices=idx, strict=strict, info=info, runner=runner)
