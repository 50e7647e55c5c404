"""Image classification, the paper's task, as a ``Task`` of the training engine: the datasets
(built-in digits, image folders, CIFAR) with the §6 augmentation, the GoogLeNet of the chosen
variant, the loss with the aux heads (§5: weight 0.3 each), top-1/top-5, and the check that
weights or a checkpoint fit the data and the network.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...data.datasets import ArrayImageDataset, FolderImageDataset, default_eval_split, \
    default_image_size, default_preprocess, open_dataset
from ...data.gpu_pipeline import EncodedImages, GpuAugment, encoded_collate, is_jpeg_folder
from ...data.transforms import augment_params, train_transform
from ...engine import distributed as dist_lib
from ...engine.config import RunConfig, SystemConfig
from ...engine.distributed import DistInfo
from ...engine.report import Metric
from ...engine.task import StepResult, TaskData
from ...engine.trainer import autocast
from ...errors import UserError
from ...metrics.classification import topk_hits
from ...models.googlenet import GoogLeNet, GoogLeNetOutputs
from ...sources import load_weights
from ...weights.records import WeightsMeta
from ...models.config import ModelConfig
from ..base import model_differences
from .config import ClassifyConfig

__all__ = ["ClassificationTask", "Loss", "compute_loss", "evaluate"]


class Loss(NamedTuple):
    total: torch.Tensor
    main: torch.Tensor
    aux1: Optional[torch.Tensor]
    aux2: Optional[torch.Tensor]
    logits: torch.Tensor


def compute_loss(outputs: torch.Tensor | GoogLeNetOutputs, target: torch.Tensor, *,
                 aux_weight: float = 0.3, label_smoothing: float = 0.0) -> Loss:
    """§5: the aux classifiers' losses are added to the main loss with weight 0.3 each."""
    ce = lambda logits: F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)  # noqa: E731
    if isinstance(outputs, GoogLeNetOutputs):
        main, a1, a2 = ce(outputs.logits), ce(outputs.aux1), ce(outputs.aux2)
        return Loss(main + aux_weight * (a1 + a2), main, a1, a2, outputs.logits)
    main = ce(outputs)
    return Loss(main, main, None, None, outputs)


@torch.no_grad()
def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, *,
             system: Optional[SystemConfig] = None) -> dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean loss, summed over all processes' shards."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if system is not None and system.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(system.amp if system is not None else None, device):
            logits = model(images)
        logits = logits.float()
        h1, hk, _ = topk_hits(logits, target, 5)
        sums += torch.tensor([F.cross_entropy(logits, target, reduction="sum").item(),
                              h1.sum().item(), hk.sum().item(), target.shape[0]],
                             dtype=torch.float64)
    if device.type == "cpu":
        dist_lib.all_reduce_sum(sums)
    else:  # NCCL reduces on the GPU
        r = sums.to(device)
        dist_lib.all_reduce_sum(r)
        sums.copy_(r.cpu())
    n = max(sums[3].item(), 1.0)
    return {"loss": sums[0].item() / n, "top1": 100.0 * sums[1].item() / n,
            "top5": 100.0 * sums[2].item() / n, "images": int(sums[3].item())}


def check_compatible(meta: WeightsMeta, model: ModelConfig, classes: list[str], source: str,
                     what: str) -> None:
    """Refuse (before training) a checkpoint/weights built for other classes or another network."""
    saved = meta.model_config
    if meta.task != "classify":
        raise UserError(f"{source}: {what} is a {meta.task!r} model, not a classifier")
    want = dict(model.backbone(), in_chans=3, transform_input=False, width=model.width,
                head=model.head, norm=model.norm_override)
    txt = model_differences(saved, want, missing_matches=True)
    if txt:
        raise UserError(f"{source}: {what} is for a different network ({txt}); pass the matching "
                        f"variant/inception/stem settings or other weights")
    names = meta.class_names
    if names is not None and list(names) != list(classes):
        n_s, n_h = len(names), len(classes)
        detail = (f"{n_s} classes there, {n_h} here" if n_s != n_h else
                  f"first difference: {next((a, b) for a, b in zip(names, classes) if a != b)}")
        raise UserError(f"{source}: {what} was trained on other classes than this data ({detail}); "
                        f"use the same dataset")
    if names is None and saved.get("num_classes") != len(classes):
        raise UserError(f"{source}: {what} has {saved.get('num_classes')} outputs, this data "
                        f"has {len(classes)} classes")


def _loader(loader: str, train: Any, device: torch.device) -> str:
    """``data.loader`` made concrete: auto is the GPU pipeline for JPEG folders on a GPU."""
    folder = isinstance(train, FolderImageDataset)
    if loader == "gpu" and not folder:
        raise UserError(f"loader gpu decodes image files; {train.name} is held in memory (use "
                        f"--loader cpu or auto)", key="loader")
    if loader == "auto":
        return "gpu" if folder and device.type == "cuda" and is_jpeg_folder(train.files) else "cpu"
    return loader


class ClassificationTask:
    """The ``Task`` (googlenet.engine.task) of ``googlenet train`` for image classification."""

    name = "classify"
    best_metric = "val_top1"
    # What the engine shows (engine/report.py): the epoch's and the final line, curves.png.
    epoch_line = ("loss {train_loss:.4f}",
                  " (main {train_main_loss:.4f}, aux {train_aux1_loss:.3f}/{train_aux2_loss:.3f})",
                  "  val top-1 {val_top1:.2f}% top-5 {val_top5:.2f}%",
                  " (raw weights {val_top1_raw:.2f}%)")
    final_line = ("final {split} accuracy ({which}, {images} images): top-1 {top1:.2f}%  "
                  "top-5 {top5:.2f}%",)
    metrics = (Metric("train_loss", "train (total)", group="loss"),
               Metric("train_main_loss", "train main", group="loss"),
               Metric("train_aux1_loss", "train aux1", group="loss"),
               Metric("train_aux2_loss", "train aux2", group="loss"),
               Metric("val_loss", "val", group="loss"),
               Metric("train_top1", "train top-1", group="accuracy (%)"),
               Metric("val_top1", "val top-1", group="accuracy (%)"),
               Metric("val_top5", "val top-5", group="accuracy (%)"),
               Metric("val_top1_raw", "val top-1 (raw weights)", group="accuracy (%)"))
    _augment: Optional[GpuAugment] = None  # loader gpu: decode + augment on the device (setup_data)

    def setup_data(self, cfg: ClassifyConfig, dist: DistInfo) -> TaskData:
        d = cfg.data
        size = d.image_size or default_image_size(d.path)
        preprocess = default_preprocess(d.path, size)
        kw = dict(strict=d.strict, seed=cfg.system.seed, val_fraction=d.val_fraction, root=d.root)
        train = open_dataset(d.path, "train", transform=train_transform(cfg.augment, preprocess),
                             **kw)
        loader = _loader(d.loader, train, dist_lib.resolve_device(cfg.system.device, dist))
        collate, how = None, ""
        if loader == "gpu":
            params = augment_params(cfg.augment, size)
            self._augment = GpuAugment(params, preprocess.mean, preprocess.std, files=train.files,
                                       channels_last=cfg.system.channels_last)
            train = EncodedImages(train, params)
            collate = encoded_collate
            how = ("; loader gpu: the workers read the files, JPEGs are decoded (nvJPEG on a GPU) "
                   "and augmented on the device")
        val = open_dataset(d.path, "val", transform=preprocess.eval_transform(), **kw)
        if val.classes != train.classes:
            raise UserError(f"{d.path}: train and val have different classes")
        test = None
        if default_eval_split(d.path) == "test":
            test = open_dataset(d.path, "test", transform=preprocess.eval_transform(), **kw)
        return TaskData(
            train=train, val=val, test=test,
            meta=WeightsMeta(model_config={}, class_names=list(train.classes),
                             preprocess=preprocess.to_dict(), task=self.name),
            description=(f"data: {train.name} train {len(train)} / val {len(val)} images, "
                         f"{len(train.classes)} classes, {size}x{size} px{how}"),
            train_collate=collate,
            skipped=sorted(set(train.skipped) | set(val.skipped)),
            in_memory=isinstance(train, ArrayImageDataset))

    def build_model(self, cfg: ClassifyConfig, data: TaskData) -> nn.Module:
        size = cfg.data.image_size or default_image_size(cfg.data.path)
        m = cfg.model
        return GoogLeNet(variant=m.variant, num_classes=len(data.meta.class_names),
                         aux_logits=m.aux_logits, inception=m.inception, stem=m.stem,
                         dropout=m.dropout, aux_dropout=m.aux_dropout, width=m.width,
                         head=m.head, norm=m.norm_override, img_size=size if m.head == "fc" else None)

    def check_compatible(self, meta: WeightsMeta, cfg: ClassifyConfig, data: TaskData,
                         source: str, what: str) -> None:
        check_compatible(meta, cfg.model, data.meta.class_names, source, what)

    def load_init(self, cfg: ClassifyConfig, data: TaskData) -> Any:
        loaded = load_weights(cfg.run.init)
        meta = WeightsMeta(model_config=dict(loaded.model.config),
                           class_names=loaded.class_names, task=loaded.task)
        self.check_compatible(meta, cfg, data, cfg.run.init, "the init weights")
        return loaded

    def apply_init(self, model: nn.Module, loaded: Any, cfg: ClassifyConfig) -> str:
        missing, unexpected = model.load_state_dict(loaded.model.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.startswith(("aux1.", "aux2."))]:
            raise UserError(f"{cfg.run.init}: weights do not fit this model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}); check aux_logits and the variant")
        return f"initialised from {cfg.run.init}" + (" (aux heads fresh)" if missing else "")

    def prepare_batch(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader batch -> (images, labels) on ``device`` (the engine runs this one batch ahead,
        on a side stream on a GPU): decoded and augmented there with loader gpu, else copied."""
        if self._augment is not None:
            return self._augment(batch, device)
        images, target = batch
        return images.to(device, non_blocking=True), target.to(device, non_blocking=True)

    def train_step(self, model: nn.Module, batch: Any, cfg: ClassifyConfig,
                   device: torch.device) -> StepResult:
        images, target = batch
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if cfg.system.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(cfg.system.amp, device):
            outputs = model(images)
        loss = compute_loss(outputs, target, aux_weight=cfg.loss.aux_weight,
                            label_smoothing=cfg.loss.label_smoothing)
        n = target.shape[0]
        zero = torch.zeros((), device=device)
        with torch.no_grad():
            sums = {"loss": loss.total * n, "main_loss": loss.main * n,
                    "aux1_loss": (loss.aux1 if loss.aux1 is not None else zero) * n,
                    "aux2_loss": (loss.aux2 if loss.aux2 is not None else zero) * n,
                    "correct": (loss.logits.argmax(1) == target).sum(),
                    "images": torch.tensor(float(n), device=device)}
        return StepResult(loss=loss.total, sums=sums)

    def epoch_metrics(self, sums: dict[str, float], model: nn.Module) -> dict[str, float]:
        n = max(sums.get("images", 0.0), 1.0)
        out = {"train_loss": sums.get("loss", 0.0) / n,
               "train_main_loss": sums.get("main_loss", 0.0) / n,
               "train_aux1_loss": sums.get("aux1_loss", 0.0) / n,
               "train_aux2_loss": sums.get("aux2_loss", 0.0) / n,
               "train_top1": 100.0 * sums.get("correct", 0.0) / n}
        if not getattr(model, "aux_logits", False):
            out["train_aux1_loss"] = out["train_aux2_loss"] = float("nan")
        return out

    def evaluate(self, model: nn.Module, loader: torch.utils.data.DataLoader,
                 device: torch.device, cfg: RunConfig) -> dict[str, float]:
        return evaluate(model, loader, device, system=cfg.system)
