"""``googlenet eval``: top-1/top-5 with 1, 10 or the paper's 144 crops, one model or an ensemble.

§7 of the paper: softmax probabilities are averaged over the crops of an image and over the
models of an ensemble; Table 3 reports top-5 error for 1 or 7 models x 1, 10 or 144 crops. This
module reproduces that table for any weights ``weights.load_weights`` accepts, on any dataset
``data.open_dataset`` opens:

    googlenet eval RUN                                   # 1 model, 1 crop, the run's test split
    googlenet eval RUN_A RUN_B RUN_C --crops 1 10 144    # Table 3: 1 and 3 models x 1/10/144 crops

Each model gets the preprocessing stored with its weights (crop size, resize, mean/std), so an
ensemble may mix input sizes. Library use (``predict`` reuses ``image_probs``)::

    report = evaluate_models([load_weights(a), load_weights(b)], dataset, crops=(1, 10, 144))
    print(report.table_markdown())

"top-5" is top-min(5, number of classes): with fewer than 5 classes it would always be 100%.

The crop plan and the evaluation loop are here; the per-row accumulators, the report and its
files (JSON/CSV/markdown/confusion) in ``eval_report`` (importable from here as well).
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.crops import CROP_CHOICES, multi_crop
from ..errors import UserError
from ..models.graph import amp_autocast
from ..data.imaging import ImageError
from ..data.preprocess import Preprocess
from ..weights.records import LoadedWeights
from .eval_report import (  # the report's names, importable from here as before
    MAX_CONFUSION_CLASSES, TOPK, EvalReport, EvalRow, save_confusion_png,
)

# The 1-crop box is the unmirrored center of the 10 crops (tests/test_crops.py checks it), so a
# 10-crop pass also yields the 1-crop numbers without another forward pass.
CENTER_OF_TEN = 4


# ---------------------------------------------------------------------------------------------
# Checks (all before any work)
# ---------------------------------------------------------------------------------------------

def parse_crops(values: Iterable[Any]) -> tuple[int, ...]:
    """``["1", "10", "144"]`` or ``[1, 10]`` -> sorted unique crop counts; UserError otherwise."""
    out = set()
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                n = int(part)
            except ValueError:
                n = None
            if n not in CROP_CHOICES:
                raise UserError(f"--crops {part}: not a crop count; choose from "
                                f"{', '.join(map(str, CROP_CHOICES))} (several allowed, e.g. "
                                f"--crops 1 10 144)")
            out.add(n)
    if not out:
        raise UserError(f"--crops: give at least one of {', '.join(map(str, CROP_CHOICES))}")
    return tuple(sorted(out))


def _describe_classes(names: Optional[Sequence[str]], n: int) -> str:
    if names is None:
        return f"{n} unnamed classes"
    shown = ", ".join(map(str, names[:6])) + (", ..." if len(names) > 6 else "")
    return f"{n} classes ({shown})"


def check_classes(models: Sequence[LoadedWeights], dataset_classes: Optional[Sequence[str]] = None,
                  *, names: Optional[Sequence[str]] = None, match: str = "names") -> list[str]:
    """The class names shared by ``models`` (and the dataset); UserError when they disagree.

    Models must have the same number of outputs and, where both record class names, the same
    names in the same order. Against the dataset, ``match="names"`` requires the same names in
    the same order (a model without names only needs the same count); ``match="index"`` only the
    same count (e.g. ImageNet weights, whose names are words, on a folder named by WordNet ids).
    """
    if match not in ("names", "index"):
        raise ValueError(f"match must be 'names' or 'index', got {match!r}")
    names = list(names) if names is not None else [m.source for m in models]
    ref = models[0]
    for name, m in zip(names[1:], models[1:]):
        if m.model.num_classes != ref.model.num_classes or (
                ref.class_names is not None and m.class_names is not None
                and list(m.class_names) != list(ref.class_names)):
            raise UserError(
                f"{name} and {names[0]} cannot be an ensemble: {name} has "
                f"{_describe_classes(m.class_names, m.model.num_classes)}, {names[0]} has "
                f"{_describe_classes(ref.class_names, ref.model.num_classes)}")
    model_names = next((list(m.class_names) for m in models if m.class_names is not None), None)
    n_out = ref.model.num_classes
    if dataset_classes is None:
        return model_names or [str(i) for i in range(n_out)]
    data = list(dataset_classes)
    mismatch = len(data) != n_out or (match == "names" and model_names is not None
                                      and model_names != data)
    if mismatch:
        hint = ""
        if len(data) == n_out and model_names is not None and sorted(model_names) == sorted(data):
            hint = " (the same names in another order)"
        elif len(data) == n_out:
            hint = ("; if they are the same classes under other names, in the same order, "
                    "pass --match-classes index")
        raise UserError(
            f"{names[0]} was trained on {_describe_classes(model_names, n_out)} but the data has "
            f"{_describe_classes(data, len(data))}{hint}. Evaluate on the data the model was "
            f"trained for (--data), or use weights trained on these classes")
    return data


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------

def crop_probs(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 256,
               device: torch.device | str = "cpu", amp: str | bool = "none") -> torch.Tensor:
    """Softmax probabilities of a stack of crops, ``batch_size`` crops per forward pass.

    x: (N, C, H, W) -> (N, num_classes) float32, on the CPU.
    """
    device = torch.device(device)
    out = []
    with torch.inference_mode():
        for part in x.split(max(1, batch_size)):
            part = part.to(device, non_blocking=True)
            with amp_autocast(amp, device):
                logits = model(part)  # (n, K)
            out.append(logits.float().softmax(-1).cpu())
    return torch.cat(out)


def image_probs(models: Sequence[LoadedWeights], img, crops: int = 1, *, batch_size: int = 256,
                device: torch.device | str = "cpu", amp: str | bool = "none") -> torch.Tensor:
    """One PIL image -> (num_classes,) softmax averaged over ``crops`` crops and over ``models``,
    each model with its own preprocessing (§7)."""
    if crops not in CROP_CHOICES:
        raise UserError(f"crops must be one of {CROP_CHOICES}, got {crops}")
    cache: dict[Preprocess, torch.Tensor] = {}
    total = None
    for m in models:
        if m.preprocess not in cache:
            cache[m.preprocess] = multi_crop(img, m.preprocess, crops)  # (crops, C, h, w)
        p = crop_probs(m.model, cache[m.preprocess], batch_size=batch_size, device=device,
                       amp=amp).mean(0)
        total = p if total is None else total + p
    return total / len(models)


class _CropDataset(Dataset):
    """Item i: the crops of image i for each distinct preprocessing, or why it was skipped.

    Errors travel back as data, not exceptions: a worker's exception would come back with its
    traceback glued into the message.
    """

    def __init__(self, ds: Any, pres: Sequence[Preprocess], n_crops: int, indices: Sequence[int]):
        self.ds, self.pres, self.n, self.indices = ds, list(pres), n_crops, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[int, Optional[list[torch.Tensor]], int, Optional[str]]:
        i = self.indices[j]
        try:  # unreadable, or too large once resized (multi_crop refuses before resizing)
            img, label = self.ds.load(i)
            return i, [multi_crop(img, p, self.n) for p in self.pres], int(label), None
        except ImageError as e:
            return i, None, -1, str(e)


def _collate(items):
    good = [it for it in items if it[1] is not None]
    bad = [(it[0], it[3]) for it in items if it[1] is None]
    if not good:
        return None, None, None, bad
    crops = [torch.stack([it[1][k] for it in good]) for k in range(len(good[0][1]))]  # (b, n, C, h, w)
    return (torch.tensor([it[0] for it in good]), crops,
            torch.tensor([it[2] for it in good]), bad)


# ---------------------------------------------------------------------------------------------
# The evaluation loop
# ---------------------------------------------------------------------------------------------

def _plan(crops: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Passes over the data: (crops computed, crop counts scored from them). The 1 crop is the
    center of the 10, so with both requested the 10-crop pass also scores 1 crop."""
    want = sorted(set(crops))
    passes = []
    if 10 in want:
        passes.append((10, [c for c in want if c in (1, 10)]))
    elif 1 in want:
        passes.append((1, [1]))
    if 144 in want:
        passes.append((144, [144]))
    return passes


def _table_rows(n_models: int, crops: Sequence[int], k: int
                ) -> dict[tuple[tuple[int, ...], int], EvalRow]:
    """Table 3's rows, in its order: each model alone, then the ensemble of all (if several)."""
    rows: dict[tuple[tuple[int, ...], int], EvalRow] = {}
    for i in range(n_models):
        for c in crops:
            rows[(i,), c] = EvalRow((i,), c, k)
    if n_models > 1:
        everyone = tuple(range(n_models))
        for c in crops:
            rows[everyone, c] = EvalRow(everyone, c, k)
    return rows


def _files_of(dataset: Any) -> Optional[list[Any]]:
    files = getattr(dataset, "files", None)  # data.FolderImageDataset
    if files is None and getattr(dataset, "samples", None) is not None:  # torchvision-style
        files = [f for f, _ in dataset.samples]
    return files


def _record_unreadable(bad: Sequence[tuple[int, str]], files: Optional[Sequence[Any]],
                       skipped: dict[str, str], strict: bool) -> None:
    for i, msg in bad:
        if strict:
            raise UserError(f"{msg} (strict evaluation stops at the first unreadable file; "
                            f"without it such files are skipped and counted)")
        path = str(files[i]) if files is not None else msg.split(": ", 1)[0]
        skipped.setdefault(path, msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg)


def _score_batch(models: Sequence[LoadedWeights], crops_per_model: Sequence[torch.Tensor],
                 labels: torch.Tensor, n_crops: int, scored: Sequence[int],
                 rows: dict[tuple[tuple[int, ...], int], EvalRow], *, batch_size: int,
                 device: torch.device, amp: str | bool) -> None:
    """Add one loader batch to every row: each model's softmax averaged over its crops (or the
    center crop of the 10 for the 1-crop row), and the ensemble's average over models."""
    b, M = len(labels), len(models)
    ens: dict[int, torch.Tensor] = {}
    for mi, m in enumerate(models):
        x = crops_per_model[mi].flatten(0, 1)  # (b * n, C, h, w)
        p = crop_probs(m.model, x, batch_size=batch_size, device=device, amp=amp)
        p = p.view(b, n_crops, -1)  # (b, n, K): per-crop softmax
        for c in scored:
            pc = p[:, CENTER_OF_TEN] if c == 1 and n_crops == 10 else p.mean(1)  # (b, K)
            rows[(mi,), c].add(pc, labels)
            ens[c] = ens[c] + pc if c in ens else pc.clone()
    if M > 1:
        for c in scored:
            rows[tuple(range(M)), c].add(ens[c] / M, labels)


def evaluate_models(models: Sequence[LoadedWeights], dataset: Any, *, crops: Sequence[int] = (1,),
                    names: Optional[Sequence[str]] = None, batch_size: int = 256, workers: int = 0,
                    device: torch.device | str = "cpu", amp: str | bool = "none", strict: bool = False,
                    indices: Optional[Sequence[int]] = None, match: str = "names",
                    progress: Optional[bool] = None, info: Optional[dict[str, Any]] = None
                    ) -> EvalReport:
    """Evaluate ``models`` (each alone, and together as a softmax-averaged ensemble) on
    ``dataset`` (an ``ImageDataset``: ``classes``, ``skipped``, ``load(i) -> (PIL RGB, label)``)
    with each crop count in ``crops``.

    ``batch_size`` bounds the crops in one forward pass (an image's 144 crops are split into
    chunks of at most that many). Unreadable images are skipped and listed in ``report.skipped``;
    with ``strict`` the first one raises UserError naming it.
    """
    if not models:
        raise UserError("no models to evaluate")
    crops = parse_crops(crops)
    names = list(names) if names is not None else [m.source for m in models]
    class_names = check_classes(models, dataset.classes, names=names, match=match)
    indices = list(range(len(dataset))) if indices is None else list(indices)
    if not indices:
        raise UserError(f"{(info or {}).get('data', 'the dataset')}: no images to evaluate")
    device = torch.device(device)
    for m in models:
        m.model.to(device).eval()
    pres = list(dict.fromkeys(m.preprocess for m in models))  # distinct preprocessings
    which = [pres.index(m.preprocess) for m in models]
    K = len(class_names)
    k = min(TOPK, K)
    M = len(models)
    everyone = tuple(range(M))
    rows = _table_rows(M, crops, k)

    skipped: dict[str, str] = {f: r for f, r in getattr(dataset, "skipped", [])}
    files = _files_of(dataset)
    labels_seen: Optional[np.ndarray] = None
    indices_seen: Optional[np.ndarray] = None
    seconds: dict[int, float] = {}
    from tqdm.auto import tqdm

    for n_crops, scored in _plan(crops):
        t0 = time.perf_counter()
        per_batch = max(1, batch_size // n_crops)  # images per loader batch
        loader = DataLoader(_CropDataset(dataset, pres, n_crops, indices), batch_size=per_batch,
                            shuffle=False, num_workers=workers, collate_fn=_collate,
                            pin_memory=device.type == "cuda")
        labels_pass, idx_pass = [], []
        bar = tqdm(total=len(indices), desc=f"eval {n_crops} crop{'s' if n_crops > 1 else ''}",
                   unit="img", disable=None if progress is None else not progress, leave=True)
        for idx, batch_crops, labels, bad in loader:
            _record_unreadable(bad, files, skipped, strict)
            bar.update(len(bad))
            if idx is None:
                continue
            b = len(labels)
            _score_batch(models, [batch_crops[w] for w in which], labels, n_crops, scored, rows,
                         batch_size=batch_size, device=device, amp=amp)
            labels_pass.append(labels)
            idx_pass.append(idx)
            bar.update(b)
            last = rows[everyone if M > 1 else (0,), scored[-1]]
            bar.set_postfix(top1=f"{last.top1:.2f}%", **{f"top{k}": f"{last.top5:.2f}%"})
        bar.close()
        seconds[n_crops] = time.perf_counter() - t0
        lab = torch.cat(labels_pass).numpy() if labels_pass else np.zeros(0, dtype=np.int64)
        ids = torch.cat(idx_pass).numpy() if idx_pass else np.zeros(0, dtype=np.int64)
        if labels_seen is None:
            labels_seen, indices_seen = lab, ids
        elif not np.array_equal(ids, indices_seen):  # a file became unreadable between passes
            raise UserError("the data changed during evaluation (different images were "
                            "readable in different passes); run again")
    if labels_seen is None or len(labels_seen) == 0:
        raise UserError(f"{(info or {}).get('data', 'the dataset')}: none of the {len(indices)} "
                        f"images could be read ({len(skipped)} skipped)")
    ordered = [rows[key] for key in rows]
    # data.py's reasons start with the path already; keep (path, reason) without repeating it
    skipped = {f: r[len(f) + 2:] if r.startswith(f"{f}: ") else r for f, r in skipped.items()}
    return EvalReport(rows=ordered, model_names=names, class_names=class_names,
                      labels=labels_seen, indices=indices_seen, skipped=sorted(skipped.items()),
                      seconds=seconds, info=dict(info or {}, device=str(device)))
