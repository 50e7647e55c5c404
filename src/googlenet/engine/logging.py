"""What a run reports: lines to the console and RUN/train.log (``RunLog``), ``metrics.csv``
(one row per epoch), TensorBoard scalars (``Scalars``), and ``curves.png``. Rank 0 only."""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..weights.io import atomic_write

__all__ = ["RunLog", "write_metrics", "plot_curves", "Scalars", "hms"]


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


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """RUN/metrics.csv, one row per epoch (columns: the union of the rows' keys, in order)."""
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


def plot_curves(history: list[dict[str, Any]], path: Path,
                groups: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> None:
    """metrics.csv as PNG: one panel per group of (key, label) curves, then the learning rate."""
    # The object-oriented API without pyplot: no GUI backend, and a second faster to import.
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(5 * (len(groups) + 1), 4))
    ax = fig.subplots(1, len(groups) + 1)
    for a, (title, curves) in zip(ax, groups):
        for k, lbl in curves:
            ys = [h.get(k, float("nan")) for h in history]
            if any(isinstance(y, float) and math.isfinite(y) for y in ys):
                a.plot(ep, ys, marker=".", label=lbl)
        a.set(title=title, xlabel="epoch")
        if a.get_legend_handles_labels()[0]:
            a.legend()
        a.grid(alpha=0.3)
    lrs = [h["lr"] for h in history]
    ax[-1].plot(ep, lrs, marker=".")
    # A schedule ending at 0 (cosine, one epoch) has nothing a log axis can show: linear then,
    # instead of matplotlib's warning on stderr.
    positive = any(isinstance(v, (int, float)) and v > 0 for v in lrs)
    ax[-1].set(title="learning rate (end of epoch)", xlabel="epoch",
               yscale="log" if positive else "linear")
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13, top=0.92, wspace=0.25)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))


class Scalars:
    """TensorBoard scalars, all against the global optimizer step (so per-step and per-epoch
    curves share one axis). A no-op when disabled or when tensorboard is not installed (said
    once, on the console)."""

    def __init__(self, enabled: bool, run_dir: Path, step: int, log: Any) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log("tensorboard is not installed: no TensorBoard logs (pip install tensorboard, "
                "or --set tensorboard=false to silence this)")
            return
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step or None)

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/loss_step", loss, step)
            self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        """An epoch's row: ``val_top1`` -> ``val/top1``, ``train_loss`` -> ``train/loss``, the
        rest (``images_per_s``, ``epoch_seconds``) under ``epoch/``; ``lr`` is logged per step."""
        if self.writer is None:
            return
        for k, v in row.items():
            if not (isinstance(v, float) and math.isfinite(v)) or k in ("epoch", "step", "lr"):
                continue
            head, _, rest = k.partition("_")
            tag = f"{head}/{rest}" if head in ("train", "val") and rest else f"epoch/{k}"
            self.writer.add_scalar(tag, v, row["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def compile_cache_note() -> str:
    """What the compiler's graph cache did so far (hits: graphs loaded, not compiled)."""
    try:
        from torch._dynamo.utils import counters

        c = counters["inductor"]
        return (f"graph cache {c.get('fxgraph_cache_hit', 0)} hit(s), "
                f"{c.get('fxgraph_cache_miss', 0)} miss(es), in {os.environ.get('TORCHINDUCTOR_CACHE_DIR')}")
    except Exception:  # noqa: BLE001  a log line only
        return "graph cache unknown"
