"""``googlenet train``: the paper's training recipe (§6), resumable, on one process or many.

Shaped like torchvision's ``references/classification/train.py``: ``train_one_epoch``,
``evaluate``, and ``main`` (here ``train(cfg)``). With no arguments it trains the faithful
``paper`` variant on the built-in digits with the ``short`` recipe and prints where its run
directory is and the final test accuracy.

Reproducibility and resume. Every random draw is a function of the seed and a position, not of
history: the augmentation of a sample is seeded by (seed, epoch, sample index), dropout at a step
by (seed, rank, step), and the shuffling of an epoch by (seed, epoch) (DistributedSampler).
A checkpoint therefore only needs the weights, the optimizer, the scheduler, the averaged weights,
the counters and the running sums of the epoch in progress; ``--resume`` continues bit-exactly on
CPU (the saved RNG states are restored too, for anything else that draws). Checkpoints are written
atomically (temp file, fsync, rename), so a SIGKILL at any moment loses nothing before the last one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn
from torchvision.transforms import v2 as T

from . import config as config_lib
from . import distributed as dist_lib
from .config import TrainConfig
from .data import ArrayImageDataset, ImageDataset, default_eval_split, default_image_size, \
    default_preprocess, open_dataset
from .errors import UserError
from .model import GoogLeNet, GoogLeNetOutputs
from .preprocess import _INTERP, Preprocess
from .weights import CHECKPOINT_BEST, CHECKPOINT_LAST, FINAL_WEIGHTS, atomic_torch_save, \
    atomic_write, load_weights, safe_torch_load, save_weights

CHECKPOINT_FORMAT = "googlenet-train-checkpoint"
CHECKPOINT_VERSION = 1


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


# ---------------------------------------------------------------------------------------------
# Augmentation (§6)
# ---------------------------------------------------------------------------------------------

class PCALighting(nn.Module):
    """AlexNet's PCA lighting noise ("fancy PCA", Krizhevsky et al. 2012 §4.1), which Howard's
    photometric distortions build on: add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~
    N(0, std). torchvision has no such transform, hence this one. Eigen-decomposition of ImageNet's
    RGB covariance for [0, 1] pixels, as in fb.resnet.torch and timm.

    Input/output: a float image tensor (3, H, W) in [0, 1] (before Normalize).
    """

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = std

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.std <= 0:
            return img
        alpha = torch.randn(3) * self.std  # (3,)
        rgb = self.eigvec @ (alpha * self.eigval)  # (3,)
        return img + rgb.view(3, 1, 1).to(img.dtype)


def train_transform(cfg: TrainConfig, preprocess: Preprocess) -> T.Compose:
    """PIL RGB image -> normalised (3, S, S) tensor with the recipe's augmentation.

    The random interpolation method per sample (§6) is ``RandomChoice`` over one
    ``RandomResizedCrop`` per method, each picked with equal probability.
    """
    size = preprocess.crop
    crops = [T.RandomResizedCrop(size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                                 interpolation=_INTERP[m], antialias=True)
             for m in cfg.interpolations]
    steps: list[Any] = [crops[0] if len(crops) == 1 else T.RandomChoice(crops)]
    if cfg.hflip > 0:
        steps.append(T.RandomHorizontalFlip(cfg.hflip))
    if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
        steps.append(T.ColorJitter(brightness=cfg.brightness or None, contrast=cfg.contrast or None,
                                   saturation=cfg.saturation or None, hue=cfg.hue or None))
    steps += [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if cfg.pca_lighting > 0:
        steps.append(PCALighting(cfg.pca_lighting))
    steps.append(T.Normalize(preprocess.mean, preprocess.std))
    return T.Compose(steps)


# ---------------------------------------------------------------------------------------------
# Sampling: resumable mid-epoch, one seed per sample
# ---------------------------------------------------------------------------------------------

def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> 1)


class SeededSampler(torch.utils.data.Sampler):
    """Yields ``(index, seed)`` for one epoch of a DistributedSampler shard, skipping the first
    ``skip`` items (the batches a resumed run has already trained on)."""

    def __init__(self, base: torch.utils.data.DistributedSampler, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in list(self.base)[self.skip:]:
            yield i, sample_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return len(self.base) - self.skip


class SeededDataset(torch.utils.data.Dataset):
    """Applies the dataset's transform under a per-sample seed, in workers and in the main process."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            seed_rng(seed, _CPU)  # transforms draw from the CPU generator only
            return self.dataset[index]


_CPU = torch.device("cpu")


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the CPU generator and, on a GPU, that device's. Not ``torch.manual_seed``: with a
    CUDA build of torch it also queues lazy seeding calls for CUDA, XPU and MTIA, each recording
    a Python stack trace; at one call per sample that was ~2 ms per image on the CPU."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, 1 + rank, step]).generate_state(1, np.uint64)[0] >> 1)


# ---------------------------------------------------------------------------------------------
# Loss, learning rate, averaging
# ---------------------------------------------------------------------------------------------

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


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of ``cfg.lr`` at optimizer step ``s`` (per step, so mid-epoch resume is exact)."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    step_size = max(1, int(round(cfg.lr_step_epochs * steps_per_epoch)))

    def f(s: int) -> float:
        if s < warmup:  # linear warmup from 1% of the base lr
            return 0.01 + 0.99 * s / warmup
        if cfg.lr_schedule == "step":  # §6: x0.96 every 8 epochs
            return cfg.lr_gamma ** (s // step_size)
        t = min(1.0, (s - warmup) / max(1, total - warmup))
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0 - t  # linear to 0

    return f


def make_averaged(model: nn.Module, cfg: TrainConfig) -> Optional[AveragedModel]:
    """§6 "Polyak averaging": ``mean`` is Polyak-Juditsky's uniform mean of the iterates
    (``torch.optim.swa_utils``' SWA average), ``ema`` an exponential moving average. BN buffers
    are averaged too (``use_buffers``), so the averaged model needs no extra BN pass."""
    if cfg.average == "none":
        return None
    avg = get_ema_multi_avg_fn(cfg.ema_decay) if cfg.average == "ema" else get_swa_multi_avg_fn()

    @torch.no_grad()
    def fn(averaged: list[torch.Tensor], current: list[torch.Tensor], n: Any) -> None:
        # swa_utils' integer path fails on BN's num_batches_tracked (an int64 counter, torch
        # 2.x addcdiv refuses integer division): counters take the latest value, floats average.
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        for a, c in zip(averaged, current):
            if not a.is_floating_point():
                a.copy_(c)
        if floats:
            avg([a for a, _ in floats], [c for _, c in floats], n)

    return AveragedModel(model, multi_avg_fn=fn, use_buffers=True)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on conv/linear weights only, not on biases or BN scales (as Caffe's
    # bvlc_googlenet, whose bias layers have decay_mult 0).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernels (CPU and CUDA) do the whole update in one pass over the weights: on the
    # 2-core CPU, AdamW's step over the bn variant's 10.3M weights takes 11 ms fused against
    # 43 ms with the default foreach path, a fifth of a 32-px training step.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                for g in groups for p in g["params"])
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           fused=fused)


# ---------------------------------------------------------------------------------------------
# Run state, checkpoints, logging
# ---------------------------------------------------------------------------------------------

SUM_KEYS = ("loss", "main_loss", "aux1_loss", "aux2_loss", "correct", "images", "batches")


@dataclass
class RunState:
    epoch: int = 0  # the epoch in progress (or next to start)
    epoch_step: int = 0  # optimizer steps already done in ``epoch``
    step: int = 0  # optimizer steps done in total
    best_metric: float = -1.0
    best_epoch: int = -1
    last_checkpoint_step: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUM_KEYS, 0.0))
    train_seconds: float = 0.0  # time spent in train_one_epoch in this epoch so far


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
    }


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available() and len(s["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = s["python"]
    random.setstate((py[-1], tuple(py[:-1]), None))


class RunLog:
    """Lines to the console (above the progress bar) and to RUN/train.log; rank 0 only.

    Lines logged before ``open`` (while the data is checked, before the run directory exists)
    are kept and written to the file when it opens.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.file = None
        self._pending: list[str] = []

    def open(self, path: Path) -> None:
        if self.enabled:
            self.file = open(path, "a", buffering=1)
            for line in self._pending:
                self.file.write(line)
            self._pending = []

    def __call__(self, msg: str, *, console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n"
        if self.file is not None:
            self.file.write(line)
        else:
            self._pending.append(line)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _snapshot(obj: Any) -> Any:
    """A copy of a (nested) state dict whose tensors training can no longer change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints in a background thread, so training does not wait for the disk.

    The state is copied in memory first (``_snapshot``), then serialised, fsynced and renamed into
    place (``weights.atomic_torch_save``) while the next steps run; at most one write is in
    flight. A SIGKILL at any moment leaves the previous complete checkpoint (or the new one).
    """

    def __init__(self, run_dir: Path, log: RunLog) -> None:
        self.run_dir, self.log = run_dir, log
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def submit(self, ckpt: dict[str, Any], *, best: bool, note: str) -> None:
        self.wait()
        snap = _snapshot(ckpt)
        self._thread = threading.Thread(target=self._write, args=(snap, best, note),
                                        name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _write(self, ckpt: dict[str, Any], best: bool, note: str) -> None:
        try:
            last = self.run_dir / CHECKPOINT_LAST
            atomic_torch_save(ckpt, last)
            if best:  # the same bytes: a hard link renamed into place, no second write
                tmp = self.run_dir / f".{CHECKPOINT_BEST}.link"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                try:
                    os.link(last, tmp)
                    os.replace(tmp, self.run_dir / CHECKPOINT_BEST)
                except OSError:  # filesystems without hard links
                    atomic_torch_save(ckpt, self.run_dir / CHECKPOINT_BEST)
            self.log(note, console=False)
        except BaseException as e:  # reported by wait(), in the training thread
            self._error = e

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            e, self._error = self._error, None
            raise UserError(f"could not write a checkpoint to {self.run_dir}: {e}") from e


def unwrap(model: nn.Module) -> nn.Module:
    """The bare GoogLeNet under DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module) and not isinstance(model, AveragedModel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# ---------------------------------------------------------------------------------------------
# One epoch, and evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class Ctx:
    """What the loops need besides model/optimizer/data."""

    cfg: TrainConfig
    device: torch.device
    dist: dist_lib.DistInfo
    log: RunLog
    steps_per_epoch: int
    save: Callable[[RunState], None]  # checkpoint the current state (rank 0 writes)
    flush: Callable[[], None]  # wait until the checkpoint being written is on disk
    run_dir: Path
    tb: Any = None


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(model: nn.Module, loader: torch.utils.data.DataLoader,
                    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                    averaged: Optional[AveragedModel], state: RunState, ctx: Ctx) -> dict[str, float]:
    """Train until the end of ``state.epoch`` (from ``state.epoch_step``); returns its metrics."""
    from tqdm import tqdm

    cfg, device = ctx.cfg, ctx.device
    model.train()
    raw = unwrap(model)
    total_steps = cfg.epochs * ctx.steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    bar = tqdm(total=ctx.steps_per_epoch, initial=state.epoch_step, leave=False, dynamic_ncols=True,
               desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="step", file=sys.stderr,
               disable=not (ctx.dist.is_main and cfg.progress))
    avg_start_step = int(round(cfg.average_start_epoch * ctx.steps_per_epoch))
    sums = state.sums
    t_start = time.perf_counter()
    t_mark, imgs_mark = t_start, 0.0
    smooth = None
    first_step = state.epoch_step
    for images, target in loader:
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        # Dropout's randomness at this step depends on (seed, rank, step) only: exact resume.
        seed_rng(step_seed(cfg.seed, ctx.dist.rank, state.step), device)
        with _autocast(cfg, device):
            outputs = model(images)
        loss = compute_loss(outputs, target, aux_weight=cfg.aux_weight,
                            label_smoothing=cfg.label_smoothing)
        # Sum over ranks: (total, main, aux1, aux2, correct, images); one all-reduce per step.
        with torch.no_grad():
            correct = (loss.logits.argmax(1) == target).sum()
            parts = [loss.total, loss.main,
                     loss.aux1 if loss.aux1 is not None else torch.zeros((), device=device),
                     loss.aux2 if loss.aux2 is not None else torch.zeros((), device=device)]
            n = target.shape[0]
            red = torch.stack([p.detach().float() * n for p in parts] + [correct.float(),
                              torch.tensor(float(n), device=device)])
            dist_lib.all_reduce_sum(red)
            red = red.cpu()
        if not math.isfinite(float(red[0])):
            ctx.flush()  # the last good checkpoint is complete on disk before we stop
            raise TrainingDiverged(_diverged_message(float(red[0] / red[5]), state, ctx))
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if cfg.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        state.step += 1
        state.epoch_step += 1
        if averaged is not None and state.step > avg_start_step:
            averaged.update_parameters(raw)
        for k, v in zip(("loss", "main_loss", "aux1_loss", "aux2_loss", "correct", "images"),
                        red.tolist()):
            sums[k] += v
        sums["batches"] += 1
        batch_loss = float(red[0] / red[5])
        smooth = batch_loss if smooth is None else 0.9 * smooth + 0.1 * batch_loss
        now = time.perf_counter()
        if state.epoch_step % 5 == 0 or state.epoch_step == ctx.steps_per_epoch:
            ips = (sums["images"] - imgs_mark) / max(now - t_mark, 1e-9) if now > t_mark else 0.0
            done = state.step
            eta = (now - t_start) / max(1, state.epoch_step - first_step) * (total_steps - done)
            bar.set_postfix_str(f"loss {smooth:.4f} {ips:.0f} img/s run ETA {_hms(eta)}", refresh=False)
        bar.update(1)
        if ctx.tb is not None and state.step % 10 == 0:
            ctx.tb.add_scalar("train/loss_step", batch_loss, state.step)
            ctx.tb.add_scalar("train/lr", optimizer.param_groups[0]["lr"], state.step)
        if cfg.max_steps and state.step >= cfg.max_steps:
            break
        if (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0
                and state.epoch_step < ctx.steps_per_epoch):
            state.train_seconds += time.perf_counter() - t_start
            t_start = time.perf_counter()
            ctx.save(state)
    bar.close()
    state.train_seconds += time.perf_counter() - t_start
    n = max(sums["images"], 1.0)
    out = {
        "train_loss": sums["loss"] / n, "train_main_loss": sums["main_loss"] / n,
        "train_aux1_loss": sums["aux1_loss"] / n, "train_aux2_loss": sums["aux2_loss"] / n,
        "train_top1": 100.0 * sums["correct"] / n,
        "images_per_s": sums["images"] / max(state.train_seconds, 1e-9),
        "lr": optimizer.param_groups[0]["lr"],
    }
    if not unwrap(model).aux_logits:
        out["train_aux1_loss"] = out["train_aux2_loss"] = float("nan")
    return out


def _diverged_message(value: float, state: RunState, ctx: Ctx) -> str:
    last = (f"{ctx.run_dir / CHECKPOINT_LAST} (step {state.last_checkpoint_step}) is intact"
            if state.last_checkpoint_step >= 0 else "no checkpoint was written yet")
    return (f"the training loss became {value} at step {state.step + 1} (epoch {state.epoch + 1}, "
            f"batch {state.epoch_step + 1}); stopped without updating the weights. The last good "
            f"checkpoint, {last}. Lower the learning rate (--lr), add warmup "
            f"(--set warmup_epochs=1) or gradient clipping (--set clip_grad_norm=5), then "
            f"--resume the run or start again")


@torch.no_grad()
def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, *,
             cfg: Optional[TrainConfig] = None) -> dict[str, float]:
    """Top-1/top-5 accuracy (%) and mean loss, summed over all processes' shards."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss, top1, top5, n
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if cfg is not None and cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with (_autocast(cfg, device) if cfg is not None else contextlib.nullcontext()):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, 1).indices  # (N, k)
        hit = top == target[:, None]
        sums += torch.tensor([F.cross_entropy(logits, target, reduction="sum").item(),
                              hit[:, 0].sum().item(), hit.any(1).sum().item(), target.shape[0]],
                             dtype=torch.float64)
    dist_lib.all_reduce_sum(sums) if device.type == "cpu" else _reduce_on(sums, device)
    n = max(sums[3].item(), 1.0)
    return {"loss": sums[0].item() / n, "top1": 100.0 * sums[1].item() / n,
            "top5": 100.0 * sums[2].item() / n, "images": int(sums[3].item())}


def _reduce_on(t: torch.Tensor, device: torch.device) -> None:
    r = t.to(device)
    dist_lib.all_reduce_sum(r)
    t.copy_(r.cpu())


# ---------------------------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------------------------

def pick_device(spec: str, info: dist_lib.DistInfo) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError as e:
        raise UserError(f"--device {spec}: {e}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
        if info.enabled:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise UserError(f"--device {spec}: only cpu and cuda are supported")
    return device


def default_run_dir(cfg: TrainConfig) -> Path:
    data = "digits" if cfg.data is None else Path(str(cfg.data)).name or "data"
    base = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.variant}-{data}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = Path(f"{base}-{i}")
    return path


def _loader_workers(cfg: TrainConfig, ds: ImageDataset) -> int:
    if cfg.workers >= 0:
        return cfg.workers
    if isinstance(ds, ArrayImageDataset):
        return 0  # in memory, cheap transforms: worker processes cost more than they save
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _check_compatible(saved_config: dict[str, Any], saved_classes: Optional[list[str]],
                      cfg: TrainConfig, classes: list[str], source: str, what: str) -> None:
    """Refuse (before training) a checkpoint/weights built for other classes or another network."""
    want = dict(variant=cfg.variant, inception=cfg.inception, stem=cfg.stem, in_chans=3,
                transform_input=False)
    diff = {k: (saved_config.get(k), v) for k, v in want.items() if saved_config.get(k, v) != v}
    if diff:
        txt = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in diff.items())
        raise UserError(f"{source}: {what} is for a different network ({txt}); pass the matching "
                        f"--variant/--set options or other weights")
    if saved_classes is not None and list(saved_classes) != list(classes):
        n_s, n_h = len(saved_classes), len(classes)
        detail = (f"{n_s} classes there, {n_h} here" if n_s != n_h else
                  f"first difference: {next((a, b) for a, b in zip(saved_classes, classes) if a != b)}")
        raise UserError(f"{source}: {what} was trained on other classes than this data ({detail}); "
                        f"use the same dataset")
    if saved_classes is None and saved_config.get("num_classes") != len(classes):
        raise UserError(f"{source}: {what} has {saved_config.get('num_classes')} outputs, this data "
                        f"has {len(classes)} classes")


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(history[0].keys())
    for h in history[1:]:
        keys += [k for k in h if k not in keys]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for h in history:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in h.items()})

    atomic_write(run_dir / "metrics.csv", write)


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """metrics.csv as PNG: losses, accuracies and the learning rate per epoch."""
    # The object-oriented API without pyplot: no GUI backend, and a second faster to import.
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(15, 4))
    ax = fig.subplots(1, 3)
    for k, lbl in (("train_loss", "train (total)"), ("train_main_loss", "train main"),
                   ("train_aux1_loss", "train aux1"), ("train_aux2_loss", "train aux2"),
                   ("val_loss", "val")):
        ys = [h.get(k, float("nan")) for h in history]
        if any(isinstance(y, float) and math.isfinite(y) for y in ys):
            ax[0].plot(ep, ys, marker=".", label=lbl)
    ax[0].set(title="loss", xlabel="epoch")
    for k, lbl in (("train_top1", "train top-1"), ("val_top1", "val top-1"),
                   ("val_top5", "val top-5"), ("val_top1_raw", "val top-1 (raw weights)")):
        ys = [h.get(k, float("nan")) for h in history]
        if any(isinstance(y, float) and math.isfinite(y) for y in ys):
            ax[1].plot(ep, ys, marker=".", label=lbl)
    ax[1].set(title="accuracy (%)", xlabel="epoch")
    ax[2].plot(ep, [h["lr"] for h in history], marker=".")
    ax[2].set(title="learning rate (end of epoch)", xlabel="epoch", yscale="log")
    for a in ax[:2]:
        a.legend()
        a.grid(alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


def _open_tensorboard(cfg: TrainConfig, run_dir: Path, step: int):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=step or None)


def _hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def train(cfg: TrainConfig, *, resume: Optional[dict[str, Any]] = None,
          resume_dir: Optional[Path] = None) -> dict[str, Any]:
    """Train with ``cfg`` (or continue the checkpoint ``resume``). Returns the final results."""
    t0 = time.perf_counter()
    info = dist_lib.from_env()
    device = pick_device(cfg.device, info)
    dist_lib.init(info, device)
    try:
        return _train(cfg, info, device, t0, resume, resume_dir)
    finally:
        dist_lib.shutdown()


def _train(cfg: TrainConfig, info: dist_lib.DistInfo, device: torch.device, t0: float,
           resume: Optional[dict[str, Any]], resume_dir: Optional[Path]) -> dict[str, Any]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif info.enabled and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.local_world_size))
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False

    # -- run directory -----------------------------------------------------------------------
    run_dir = Path(resume_dir) if resume_dir is not None else (
        Path(cfg.out) if cfg.out else default_run_dir(cfg))
    if resume is None and (run_dir / CHECKPOINT_LAST).exists():
        raise UserError(f"{run_dir}: already holds a training run; continue it with "
                        f"--resume {run_dir}, or choose another --out")
    log = RunLog(info.is_main)
    log(f"run directory: {run_dir}")

    # -- data ------------------------------------------------------------------------------------
    size = cfg.image_size or default_image_size(cfg.data)
    preprocess = default_preprocess(cfg.data, size)
    data_kw = dict(strict=cfg.strict, seed=cfg.seed, val_fraction=cfg.val_fraction,
                   root=cfg.data_root)
    if info.enabled and not info.is_main:
        dist_lib.barrier()  # rank 0 downloads (CIFAR) first
    train_ds = open_dataset(cfg.data, "train", transform=train_transform(cfg, preprocess), **data_kw)
    val_ds = open_dataset(cfg.data, "val", transform=preprocess.eval_transform(), **data_kw)
    if info.enabled and info.is_main:
        dist_lib.barrier()
    classes = train_ds.classes
    if val_ds.classes != classes:
        raise UserError(f"{cfg.data}: train and val have different classes")
    skipped = sorted(set(train_ds.skipped) | set(val_ds.skipped))
    if skipped:
        log(f"skipped {len(skipped)} unreadable file(s) (listed in {run_dir / 'train.log'}; "
            f"--strict stops at the first instead)")
        for f, why in skipped:
            log(f"  skipped: {why}", console=False)
    # A checkpoint or init weights for other classes or another network: refuse now.
    loaded_init = None
    if resume is not None:
        _check_compatible(resume["model_config"], resume.get("class_names"), cfg, classes,
                          str(resume_dir), "the checkpoint to resume")
    elif cfg.init:
        loaded_init = load_weights(cfg.init)
        _check_compatible(loaded_init.model.config, loaded_init.class_names, cfg, classes,
                          cfg.init, "--init weights")
    per_step = cfg.batch_size * info.world_size
    if len(train_ds) < per_step:
        raise UserError(f"the training set has {len(train_ds)} images, fewer than one step's batch "
                        f"({cfg.batch_size} x {info.world_size} process(es)); lower --batch-size")
    log(f"data: {train_ds.name} train {len(train_ds)} / val {len(val_ds)} images, "
        f"{len(classes)} classes, {size}x{size} px")

    # The data is usable: only now does the run directory appear.
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        log.open(run_dir / "train.log")

    base_sampler = torch.utils.data.DistributedSampler(
        train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed,
        drop_last=True)
    sampler = SeededSampler(base_sampler, cfg.seed)
    workers = _loader_workers(cfg, train_ds)
    loader_kw = dict(num_workers=workers, pin_memory=device.type == "cuda",
                     persistent_workers=workers > 0)
    if workers > 0:
        loader_kw["prefetch_factor"] = 4
    train_loader = torch.utils.data.DataLoader(
        SeededDataset(train_ds), batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed), **loader_kw)
    steps_per_epoch = len(base_sampler) // cfg.batch_size
    val_idx = list(range(info.rank, len(val_ds), info.world_size))  # each image once over ranks
    val_loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(val_ds, val_idx), batch_size=max(2 * cfg.batch_size, 64),
        num_workers=_loader_workers(cfg, val_ds), pin_memory=device.type == "cuda")

    # -- model -----------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts them)
    model = GoogLeNet(variant=cfg.variant, num_classes=len(classes), aux_logits=cfg.aux_logits,
                      inception=cfg.inception, stem=cfg.stem, dropout=cfg.dropout,
                      aux_dropout=cfg.aux_dropout)
    if loaded_init is not None:
        missing, unexpected = model.load_state_dict(loaded_init.model.state_dict(), strict=False)
        if unexpected or [k for k in missing if not k.startswith(("aux1.", "aux2."))]:
            raise UserError(f"{cfg.init}: weights do not fit this model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}); check --no-aux and the variant")
        log(f"initialised from {cfg.init}" + (" (aux heads fresh)" if missing else ""))
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    averaged = make_averaged(model, cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch))

    state = RunState()
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if averaged is not None and resume.get("averaged_model") is not None:
            averaged.module.load_state_dict(resume["averaged_model"])
            averaged.n_averaged.fill_(int(resume.get("averaged_n", 0)))
        rs = resume["run_state"]
        state = RunState(epoch=rs["epoch"], epoch_step=rs["epoch_step"], step=rs["step"],
                         best_metric=rs["best_metric"], best_epoch=rs["best_epoch"],
                         last_checkpoint_step=rs["step"], history=list(resume.get("history", [])),
                         sums=dict(rs["sums"]), train_seconds=rs.get("train_seconds", 0.0))
        if resume.get("rng") is not None:
            set_rng_state(resume["rng"])
        log(f"resumed from {resume_dir / CHECKPOINT_LAST}: epoch {state.epoch + 1}, "
            f"step {state.step}")

    train_model: nn.Module = model
    if info.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    eval_model = lambda: averaged.module if averaged is not None and averaged.n_averaged > 0 else model  # noqa: E731

    # -- checkpoints -----------------------------------------------------------------------------
    cfg_dict = cfg.to_dict()
    pre_dict = asdict(preprocess)

    def checkpoint(st: RunState) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model_config": dict(model.config), "class_names": list(classes),
            "preprocess": pre_dict,
            "model": model.state_dict(),
            "averaged_model": (averaged.module.state_dict()
                               if averaged is not None and averaged.n_averaged > 0 else None),
            "averaged_n": int(averaged.n_averaged) if averaged is not None else 0,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": st.epoch, "step": st.step,
            "run_state": {"epoch": st.epoch, "epoch_step": st.epoch_step, "step": st.step,
                          "best_metric": st.best_metric, "best_epoch": st.best_epoch,
                          "sums": dict(st.sums), "train_seconds": st.train_seconds},
            "history": list(st.history), "config": cfg_dict, "rng": rng_state(),
            "best_metric": st.best_metric, "world_size": info.world_size,
        }

    writer = CheckpointWriter(run_dir, log)

    def save(st: RunState, *, best: bool = False) -> None:
        if info.is_main:
            writer.submit(checkpoint(st), best=best,
                          note=f"checkpoint: step {st.step} (epoch {st.epoch + 1}, batch "
                               f"{st.epoch_step})" + (", best so far" if best else ""))
        st.last_checkpoint_step = st.step

    try:
        if info.is_main and resume is None:
            atomic_write(run_dir / "config.toml",
                         lambda tmp: Path(tmp).write_text(config_lib.to_toml(cfg_dict)))
        tb = _open_tensorboard(cfg, run_dir, state.step) if info.is_main else None
        ctx = Ctx(cfg=cfg, device=device, dist=info, log=log, steps_per_epoch=steps_per_epoch,
                  save=save, flush=writer.wait, run_dir=run_dir, tb=tb)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"model: GoogLeNet variant={cfg.variant} ({n_params / 1e6:.2f}M parameters), "
            f"{cfg.epochs} epochs x {steps_per_epoch} steps, batch {cfg.batch_size}"
            + (f" x {info.world_size} processes" if info.enabled else "")
            + f", {cfg.optimizer} lr {cfg.lr}, averaging {cfg.average}, device {device}"
            + (f", {workers} loader workers" if workers else ""))

        # -- the loop --------------------------------------------------------------------------------
        stopped_early = False
        while state.epoch < cfg.epochs:
            sampler.set_epoch(state.epoch, skip=state.epoch_step * cfg.batch_size)
            t_epoch = time.perf_counter()
            stats = train_one_epoch(train_model, train_loader, optimizer, scheduler, averaged, state, ctx)
            stopped_early = bool(cfg.max_steps and state.step >= cfg.max_steps
                                 and state.epoch_step < steps_per_epoch)
            last = state.epoch + 1 == cfg.epochs or stopped_early
            row: dict[str, Any] = {"epoch": state.epoch + 1, "step": state.step, **stats}
            if (state.epoch + 1) % cfg.eval_every == 0 or last:
                val = evaluate(eval_model(), val_loader, device, cfg=cfg)
                row.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
                if averaged is not None and last:  # the raw weights, for comparison, once
                    row["val_top1_raw"] = evaluate(model, val_loader, device, cfg=cfg)["top1"]
            row["epoch_seconds"] = time.perf_counter() - t_epoch
            is_best = "val_top1" in row and row["val_top1"] > state.best_metric
            if is_best:
                state.best_metric, state.best_epoch = row["val_top1"], state.epoch + 1
            if not stopped_early:  # a partial epoch's row is written to metrics.csv but not kept
                state.history.append(row)
                state.epoch += 1
                state.epoch_step = 0
                state.sums = dict.fromkeys(SUM_KEYS, 0.0)
                state.train_seconds = 0.0
            save(state, best=is_best)
            if info.is_main:
                _write_metrics(run_dir, state.history + ([dict(row, partial=1)] if stopped_early else []))
                if tb is not None:
                    for k, v in row.items():
                        if isinstance(v, float) and math.isfinite(v) and k not in ("epoch",):
                            tb.add_scalar(("val/" if k.startswith("val") else "train/") + k, v, row["epoch"])
                    tb.flush()
            log(_summary(row, cfg, averaged is not None))
            if stopped_early:
                log(f"stopped at max_steps={cfg.max_steps}")
                break

        # -- final model: the averaged weights (§6) --------------------------------------------------
        results: dict[str, Any] = {"run_dir": str(run_dir), "epochs": state.epoch, "steps": state.step,
                                   "best_val_top1": state.best_metric, "best_epoch": state.best_epoch}
        final = eval_model()
        if info.is_main:
            save_weights(model, run_dir / FINAL_WEIGHTS, state_dict=final.state_dict(),
                         class_names=list(classes), preprocess=preprocess,
                         extra={"epochs": state.epoch, "steps": state.step,
                                "averaged": final is not model, "config": cfg_dict})
        split = default_eval_split(cfg.data)
        if split == "test":
            test_ds = open_dataset(cfg.data, "test", transform=preprocess.eval_transform(), **data_kw)
            test_idx = list(range(info.rank, len(test_ds), info.world_size))
            test_loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(test_ds, test_idx), batch_size=max(2 * cfg.batch_size, 64),
                num_workers=_loader_workers(cfg, test_ds))
            res = evaluate(final, test_loader, device, cfg=cfg)
        else:
            res = evaluate(final, val_loader, device, cfg=cfg)
        results.update({f"{split}_top1": res["top1"], f"{split}_top5": res["top5"],
                        f"{split}_images": res["images"], "eval_split": split,
                        "wall_seconds": time.perf_counter() - t0,
                        "final_weights": str(run_dir / FINAL_WEIGHTS),
                        "averaged": final is not model})
        if info.is_main:
            atomic_write(run_dir / "results.json",
                         lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
            if cfg.plots and state.history:
                plot_curves(state.history, run_dir / "curves.png")
            if tb is not None:
                tb.close()
        which = "averaged weights" if final is not model else "weights"
        log(f"final {split} accuracy ({which}, {res['images']} images): top-1 {res['top1']:.2f}%  "
            f"top-5 {res['top5']:.2f}%  [{_hms(results['wall_seconds'])} wall]")
        log(f"run directory: {run_dir}  (final model: {run_dir / FINAL_WEIGHTS}; "
            f"`googlenet eval {run_dir}` to evaluate)")
        return results
    finally:
        writer.wait()  # a checkpoint in flight reaches the disk, whatever happened
        log.close()


def _summary(row: dict[str, Any], cfg: TrainConfig, averaged: bool) -> str:
    s = f"epoch {row['epoch']:>3}/{cfg.epochs}  loss {row['train_loss']:.4f}"
    if math.isfinite(row.get("train_aux1_loss", float("nan"))):
        s += (f" (main {row['train_main_loss']:.4f}, aux {row['train_aux1_loss']:.3f}/"
              f"{row['train_aux2_loss']:.3f})")
    if "val_top1" in row:
        s += f"  val top-1 {row['val_top1']:.2f}% top-5 {row['val_top5']:.2f}%"
        if averaged and "val_top1_raw" in row:
            s += f" (raw weights {row['val_top1_raw']:.2f}%)"
    s += (f"  lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  "
          f"{row['epoch_seconds']:.1f}s")
    return s


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

# flag -> config key, for the most used settings (anything else: --set KEY=VALUE)
_FLAGS = {"data": "data", "data_root": "data_root", "variant": "variant", "epochs": "epochs",
          "batch_size": "batch_size", "lr": "lr", "image_size": "image_size", "out": "out",
          "seed": "seed", "workers": "workers", "device": "device", "amp": "amp",
          "compile": "compile", "aux_logits": "aux_logits", "inception": "inception",
          "stem": "stem", "init": "init", "strict": "strict", "deterministic": "deterministic",
          "checkpoint_every": "checkpoint_every", "max_steps": "max_steps",
          "progress": "progress", "channels_last": "channels_last"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train GoogLeNet. With no arguments: the paper's network (LRN, no BN) on the built-in "
        "digits with the short recipe. Settings come from the typed defaults, then --recipe, "
        "then these flags and --set KEY=VALUE (see --help-config for every key).")
    p.epilog = ("multi-process / multi-node: torchrun --nproc_per_node N -m googlenet train ...; "
                "see googlenet/distributed.py")
    g = p.add_argument_group("what to train on")
    g.add_argument("--data", default=argparse.SUPPRESS, metavar="PATH|cifar10|cifar100",
                   help="image folder (PATH/train/<class>/, PATH/val/<class>/ or PATH/<class>/), "
                        "cifar10, cifar100; default: the built-in digits")
    g.add_argument("--data-root", default=argparse.SUPPRESS, help="where CIFAR is stored or downloaded to")
    g.add_argument("--strict", action="store_true", default=argparse.SUPPRESS,
                   help="stop at the first unreadable image instead of skipping it")
    g = p.add_argument_group("recipe and model")
    g.add_argument("--recipe", default=argparse.SUPPRESS, metavar="NAME|FILE.toml",
                   help=f"built in: {', '.join(config_lib.list_recipes())} (default "
                        f"{config_lib.DEFAULT_RECIPE})")
    g.add_argument("--set", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override any config key, e.g. --set crop_scale=0.3,1 --set average=ema")
    g.add_argument("--help-config", action="store_true", default=argparse.SUPPRESS, help="list every config key and exit")
    g.add_argument("--variant", choices=config_lib.CHOICES["variant"], default=argparse.SUPPRESS)
    g.add_argument("--inception", choices=config_lib.CHOICES["inception"], default=argparse.SUPPRESS)
    g.add_argument("--stem", choices=config_lib.CHOICES["stem"], default=argparse.SUPPRESS)
    g.add_argument("--no-aux", dest="aux_logits", action="store_false", default=argparse.SUPPRESS,
                   help="train without the auxiliary classifiers")
    g.add_argument("--init", default=argparse.SUPPRESS, metavar="WEIGHTS",
                   help="start from these weights (run dir, .safetensors, .pt)")
    g.add_argument("--epochs", type=int, default=argparse.SUPPRESS)
    g.add_argument("--batch-size", type=int, default=argparse.SUPPRESS, help="per process")
    g.add_argument("--lr", type=float, default=argparse.SUPPRESS)
    g.add_argument("--image-size", type=int, default=argparse.SUPPRESS, help="input side in pixels (>= 32)")
    g.add_argument("--seed", type=int, default=argparse.SUPPRESS)
    g = p.add_argument_group("run")
    g.add_argument("--out", default=argparse.SUPPRESS, metavar="RUN_DIR",
                   help="run directory (default runs/<date>-<time>-<variant>-<data>)")
    g.add_argument("--resume", default=argparse.SUPPRESS, metavar="RUN_DIR",
                   help="continue RUN_DIR from its last checkpoint (its saved config; flags given "
                        "here override it, e.g. --epochs to train longer)")
    g.add_argument("--checkpoint-every", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="also checkpoint every N steps inside an epoch")
    g.add_argument("--max-steps", type=int, default=argparse.SUPPRESS, help="stop after N steps in total")
    g.add_argument("--device", default=argparse.SUPPRESS, help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--workers", type=int, default=argparse.SUPPRESS, help="data loader processes")
    g.add_argument("--amp", choices=config_lib.CHOICES["amp"], default=argparse.SUPPRESS,
                   help="bf16: autocast to bfloat16")
    g.add_argument("--compile", action="store_true", default=argparse.SUPPRESS, help="torch.compile the model")
    g.add_argument("--no-channels-last", dest="channels_last", action="store_false", default=argparse.SUPPRESS)
    g.add_argument("--deterministic", action="store_true", default=argparse.SUPPRESS,
                   help="deterministic algorithms (bit-exact resume)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="no progress bar (the per-epoch lines remain)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = dict(config_lib.parse_set(getattr(args, "set", [])))
    for flag, key in _FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            out[key] = v
    return out


def load_resume(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"--resume {run}: no such run directory")
    path = run / CHECKPOINT_LAST
    if not path.is_file():
        raise UserError(f"--resume {run}: no {CHECKPOINT_LAST} in it (the run wrote no checkpoint "
                        f"yet); start a new run instead")
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a `googlenet train` checkpoint")
    return run, ckpt


def run(args: argparse.Namespace) -> int:
    if getattr(args, "help_config", False):
        print("config keys (recipe files and --set KEY=VALUE):")
        print(config_lib.describe())
        return 0
    overrides = _overrides(args)
    resume, recipe = getattr(args, "resume", None), getattr(args, "recipe", None)
    if resume:
        if recipe:
            raise UserError("--recipe cannot be combined with --resume: a resumed run keeps its "
                            "saved config (override single keys with flags or --set)")
        run_dir, ckpt = load_resume(resume)
        overrides.pop("out", None)
        cfg = config_lib.resolve(base=ckpt["config"], overrides=overrides)
        cfg.out = str(run_dir)
        train(cfg, resume=ckpt, resume_dir=run_dir)
    else:
        cfg = config_lib.resolve(recipe, overrides)
        train(cfg)
    return 0
