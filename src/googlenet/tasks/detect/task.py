"""Object detection (the paper's §8) as a ``Task`` of the training engine: a GoogLeNet-FPN
detector (googlenet.models.detection: FCOS, RetinaNet or Faster R-CNN from torchvision) trained
end to end. The paper's own pipeline (``arch = "rcnn"``) is googlenet.tasks.rcnn, which shares the
helpers here.

Labels: datasets number classes 0..C-1; torchvision's detectors keep 0 for the background, so
targets go in as label + 1 and predictions come out minus 1 (``to_model_targets`` /
``from_model_outputs``). Images arrive from ``googlenet.data.detection`` as float [0, 1] (or
uint8) (3, H, W) tensors in a list; the detector's own transform normalises them with the
mean/std of the weights it was initialised from (or of the data) and pads them into a batch.
Validation is COCO mAP (pycocotools, through googlenet.metrics.detection), with the predictions
of every process gathered first when training is distributed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
import torch.nn as nn

from ...data.config import DataConfig
from ...engine.config import RunConfig
from ...engine.distributed import DistInfo
from ...engine.report import Metric
from ...engine.task import StepResult, TaskData
from ...engine.trainer import autocast
from ...errors import UserError
from ...models.detection import GoogLeNetDetector, from_model_outputs, to_image, to_model_targets
from ...weights.records import WeightsMeta
from ..base import model_differences
from .config import DetectConfig

__all__ = ["DetectionTask", "DetectionSplits", "open_splits", "task_data", "predict",
           "evaluate_detections", "gather", "LOSS_NAMES"]

# Loss names of torchvision's detectors -> the short names logged here.
LOSS_NAMES = {"classification": "cls", "bbox_regression": "box", "bbox_ctrness": "ctr",
               "loss_classifier": "cls", "loss_box_reg": "box", "loss_objectness": "rpn_obj",
               "loss_rpn_box_reg": "rpn_box"}
_ARCH_LOSSES = {"fcos": ("cls", "box", "ctr"), "retinanet": ("cls", "box"),
                "fasterrcnn": ("cls", "box", "rpn_obj", "rpn_box")}


@torch.no_grad()
def predict(model: nn.Module, images: list[Any], device: torch.device,
            amp: Optional[str] = None) -> list[dict[str, torch.Tensor]]:
    """Detections (dataset labels) for a list of images, the model in eval mode."""
    model.eval()
    with autocast(amp, device, detector=True):
        out = model([to_image(i, device) for i in images])
    return from_model_outputs(out)


def gather(items: list[Any]) -> list[Any]:
    """Every process's ``items``, concatenated in rank order (the list itself in one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [x for p in parts for x in p]


def evaluate_detections(preds: list[dict[str, torch.Tensor]], targets: list[dict[str, Any]],
                        classes: list[str]) -> dict[str, float]:
    """COCO mAP@[.5:.95], AP50, AP75 in % (pycocotools) over aligned prediction/target lists;
    0 where pycocotools leaves a number undefined (no detections at all)."""
    import math

    from ...metrics.detection import coco_map

    gts = [{"boxes": t["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4).cpu(),
            "labels": t["labels"].as_subclass(torch.Tensor).long().cpu()} for t in targets]
    res = coco_map(preds, gts, classes)
    pct = lambda v: 0.0 if math.isnan(float(v)) else 100.0 * float(v)  # noqa: E731
    return {"map": pct(res["map"]), "map50": pct(res["map_50"]), "map75": pct(res["map_75"]),
            "images": len(preds)}


class DetectionSplits(NamedTuple):
    spec: Optional[str]
    size: int
    preprocess: Any  # googlenet.data.preprocess.Preprocess at the detection size
    train: Any
    val: Any
    test: Any  # None: no test split (the final evaluation is on val)
    classes: list[str]


def splits_size(data: DataConfig) -> int:
    from ...data import detection as D

    return data.image_size or D.default_detection_size(data.path)


def open_splits(data: DataConfig, seed: int, train_transforms: Any,
                eval_transforms: bool) -> DetectionSplits:
    """The run's train, val and (where the data has one) test splits; ``eval_transforms``:
    resize val/test to the detection size (False: the images as they are)."""
    from ...data import detection as D

    spec = data.path
    size = splits_size(data)
    preprocess = D.default_detection_preprocess(spec, size)
    kw = dict(strict=data.strict, seed=seed, val_fraction=data.val_fraction, root=data.root)
    train = D.open_detection_dataset(spec, "train", transforms=train_transforms, **kw)
    evalt = D.detection_eval_transforms(size) if eval_transforms else None
    val = D.open_detection_dataset(spec, "val", transforms=evalt, **kw)
    if list(val.classes) != list(train.classes):
        raise UserError(f"{spec}: train and val have different classes", key="data")
    try:
        test = D.open_detection_dataset(spec, "test", transforms=evalt, **kw)
    except UserError as e:
        if "no 'test' split" not in str(e):
            raise
        test = None  # no test split: the final evaluation is on val
    return DetectionSplits(spec, size, preprocess, train, val, test, [str(c) for c in train.classes])


def task_data(task: str, arch: str, s: DetectionSplits, train: Any, collate: Any, *,
              in_memory: bool, note: str = "") -> TaskData:
    """The ``TaskData`` of a detection run whose training items are ``train`` (the train split
    itself, or items made from it); ``note`` ends the description line."""
    val, test = s.val, s.test
    return TaskData(
        train=train, val=val, test=test,
        meta=WeightsMeta(model_config={}, class_names=list(train.classes),
                         preprocess=s.preprocess.to_dict(), task=task),
        description=(f"data: {getattr(val, 'name', None) or s.spec} train {len(train)} / val "
                     f"{len(val)}" + (f" / test {len(test)}" if test is not None else "")
                     + f" images, {len(train.classes)} classes, {s.size} px, arch {arch}"
                     + note),
        collate=collate,
        skipped=_named(getattr(train, "skipped", []), val.skipped),
        in_memory=in_memory)


def _named(*lists: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(file, why) of skipped files and annotations, ``why`` led by the file (as the engine
    logs ``why`` alone), each once."""
    return sorted({(f, w if w.startswith(f) else f"{f}: {w}") for skipped in lists
                   for f, w in skipped})


class DetectionTask:
    """The ``Task`` (googlenet.engine.task) of ``googlenet train --task detect``."""

    name = "detect"
    best_metric = "val_map"  # COCO mAP@[.5:.95] (the stricter of the two targets)
    detector = True  # box coding and losses stay fp32 under autocast (engine.trainer.autocast)

    def __init__(self) -> None:
        self.arch = "fcos"
        self.classes: list[str] = []
        self._init_source: Optional[dict[str, Any]] = None  # model config of --init weights

    def _losses(self) -> tuple[str, ...]:
        """The loss parts this detector logs (short names)."""
        return _ARCH_LOSSES.get(self.arch, ())

    # -- data and model ------------------------------------------------------------------------

    def setup_data(self, cfg: DetectConfig, dist: DistInfo) -> TaskData:
        from ...data import detection as D

        self.arch = cfg.model.arch
        splits = open_splits(cfg.data, cfg.system.seed, D.detection_train_transforms(
            splits_size(cfg.data), hflip=cfg.augment.hflip, scale=cfg.augment.scale_jitter),
            eval_transforms=True)
        self.classes = splits.classes
        return task_data(self.name, self.arch, splits, splits.train, D.detection_collate,
                         in_memory=hasattr(splits.train, "images"))

    def build_model(self, cfg: DetectConfig, data: TaskData) -> nn.Module:
        pre = data.meta.preprocess_obj("the data")
        init, m = self._init_source or {}, cfg.model
        return GoogLeNetDetector(
            arch=m.arch, num_classes=len(data.meta.class_names), variant=m.variant,
            inception=m.inception, stem=m.stem, fpn_channels=m.fpn_channels,
            head_convs=m.head_convs, anchor_scale=m.anchor_scale, min_size=pre.crop,
            max_size=pre.crop, image_mean=pre.mean, image_std=pre.std,
            transform_input=bool(init.get("transform_input", False)),
            score_thresh=m.score_thresh, nms_thresh=m.nms_thresh)

    # -- weights and checkpoints -----------------------------------------------------------

    def check_compatible(self, meta: WeightsMeta, cfg: DetectConfig, data: TaskData,
                         source: str, what: str) -> None:
        saved = meta.model_config
        if meta.task != self.name or "detector" not in saved:
            raise UserError(f"{source}: {what} is a {meta.task!r} model, not a detector; start a "
                            f"new run (--init takes classification weights for the backbone)")
        txt = model_differences(saved, cfg.model.detector())
        if txt:
            raise UserError(f"{source}: {what} is a different detector ({txt}); pass the matching "
                            f"settings (--arch, --variant)")
        names, classes = meta.class_names, data.meta.class_names
        if names is not None and list(names) != list(classes):
            raise UserError(f"{source}: {what} detects other classes ({len(names)}: "
                            f"{names[:5]}...) than this data ({len(classes)}: {classes[:5]}...); "
                            f"use the same dataset")

    def adopt(self, meta: WeightsMeta, data: TaskData) -> None:
        """The normalisation the saved detector was built with is not a tensor in its state
        dict: take it over, so a resumed run normalises as the interrupted one did."""
        self._adopt(data, meta.model_config)

    @staticmethod
    def _adopt(data: TaskData, model_config: dict[str, Any], preprocess: Any = None) -> None:
        pre = dict(data.meta.preprocess or {})
        if preprocess is not None:
            pre.update(mean=list(preprocess.mean), std=list(preprocess.std))
        if "image_mean" in model_config:
            pre.update(mean=list(model_config["image_mean"]), std=list(model_config["image_std"]))
        data.meta.preprocess = pre

    def load_init(self, cfg: DetectConfig, data: TaskData) -> Any:
        """Classification weights (run, file, imagenet, caffe:FILE) for the backbone, with their
        input normalisation; or a detection run of the same detector and classes."""
        from ...sources import load_weights

        loaded = load_weights(cfg.run.init)
        mc = dict(loaded.model.config)
        if loaded.task == self.name:
            meta = WeightsMeta(model_config=mc, class_names=loaded.class_names, task=loaded.task)
            self.check_compatible(meta, cfg, data, cfg.run.init, "the init weights")
            self.adopt(meta, data)
            self._init_source = {"transform_input": bool(mc.get("transform_input", False))}
            return loaded
        txt = model_differences(mc, cfg.model.backbone())
        if txt or mc.get("in_chans", 3) != 3:
            txt = txt or "1 input channel"
            raise UserError(f"{cfg.run.init}: the init weights are for another backbone ({txt}); "
                            f"pass --variant {mc.get('variant')} (and the same inception/stem)",
                            key="init")
        self._init_source = mc
        self._adopt(data, {}, loaded.preprocess)  # the weights' mean/std, at the data's size
        return loaded

    def apply_init(self, model: nn.Module, loaded: Any, cfg: DetectConfig) -> str:
        if loaded.task == self.name:
            model.load_state_dict(loaded.model.state_dict())
            return f"initialised from the detector {cfg.run.init}"
        own = model.backbone.state_dict()
        # The classifier heads are dropped: all of them for the detectors' trunk, the final
        # layers (other classes) for the R-CNN region classifier, whose aux heads stay.
        sd = {k: v for k, v in loaded.model.state_dict().items()
              if k in own and own[k].shape == v.shape}
        missing, unexpected = model.backbone.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith(("fc.", "aux1.", "aux2."))]
        if missing or unexpected:
            raise UserError(f"{cfg.run.init}: weights do not fit the backbone (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})", key="init")
        return (f"backbone initialised from {cfg.run.init} ({len(sd)} tensors; classifier and aux "
                f"heads dropped; FPN and detection heads fresh)")

    # -- training and evaluation -----------------------------------------------------------

    def train_step(self, model: nn.Module, batch: Any, cfg: DetectConfig,
                   device: torch.device) -> StepResult:
        images, targets = batch
        images = [to_image(i, device) for i in images]
        tgts = to_model_targets(targets, device)
        with autocast(cfg.system.amp, device, detector=True):
            losses = model(images, tgts)
        loss = sum(v.float() for v in losses.values())
        n = torch.tensor(float(len(images)), device=device)
        with torch.no_grad():
            sums = {"loss": loss.detach() * n, "images": n,
                    "objects": torch.tensor(float(sum(len(t["labels"]) for t in tgts)), device=device)}
            for k, v in losses.items():
                sums[f"loss_{LOSS_NAMES.get(k, k)}"] = v.detach().float() * n
        return StepResult(loss=loss, sums=sums)

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        n = max(sums.get("images", 0.0), 1.0)
        out = {"train_loss": sums.get("loss", 0.0) / n}
        for k in self._losses():
            out[f"train_loss_{k}"] = sums.get(f"loss_{k}", float("nan")) / n
        return out

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader,
                 device: torch.device, cfg: RunConfig) -> dict[str, float]:
        preds: list[dict[str, torch.Tensor]] = []
        targets: list[dict[str, Any]] = []
        for images, tgts in loader:
            preds += predict(model, images, device, cfg.system.amp)
            targets += [{"boxes": t["boxes"].as_subclass(torch.Tensor).cpu(),
                         "labels": t["labels"].cpu()} for t in tgts]
        preds, targets = gather(preds), gather(targets)  # every rank scores the whole split
        return evaluate_detections(preds, targets, self.classes)

    # -- reporting -------------------------------------------------------------------------

    count_format = ".1f"  # img/s in the epoch line
    final_line = ("final {split} detection ({which}, {images} images): COCO mAP@[.5:.95] "
                  "{map:.2f}%  AP50 {map50:.2f}%  AP75 {map75:.2f}%",
                  "  (Selective Search: {proposals_per_image:.0f} proposals/image, recall@.5 "
                  "{proposal_recall50:.1f}%)")

    @property
    def epoch_line(self) -> tuple[str, ...]:
        parts = ", ".join(f"{k} {{train_loss_{k}:.3f}}" for k in self._losses())
        return (f"loss {{train_loss:.4f}} ({parts})",
                "  val mAP {val_map:.2f}% AP50 {val_map50:.2f}%",
                " (raw weights mAP {val_map_raw:.2f}%)",
                "  proposals {val_proposals_per_image:.0f}/image, recall@.5 "
                "{val_proposal_recall50:.1f}%")

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """What curves.png draws: the losses, then COCO AP."""
        ap = "COCO AP (%)"
        return (Metric("train_loss", "train (total)", group="loss"),
                *(Metric(f"train_loss_{k}", f"train {k}", group="loss")
                  for k in self._losses()),
                Metric("val_map", "val mAP@[.5:.95]", group=ap),
                Metric("val_map50", "val AP50", group=ap), Metric("val_map75", "val AP75", group=ap),
                Metric("val_map_raw", "val mAP (raw weights)", group=ap))

