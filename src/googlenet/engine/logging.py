"""What a run reports: lines to the console and RUN/train.log (``RunLog``), progress inside an
epoch (``StepProgress``), ``metrics.csv`` (one row per epoch), TensorBoard scalars (``Scalars``),
``curves.png``, and a warning when other processes load the machine (``load_warning``). Rank 0
only."""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..weights.io import atomic_write
from .rundir import RunDir

__all__ = ["RunLog", "StepProgress", "write_metrics", "curves_figure", "plot_curves", "Scalars", "hms",
           "cpus_available", "load_warning"]


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


class StepProgress:
    """Progress inside one epoch. On a terminal: tqdm's bar (smoothed loss, img/s, the run's
    ETA). Elsewhere (nohup, CI, a pipe: stderr is not a terminal) a bar garbles the log and shows
    nothing until the epoch ends, so a line every ``every`` steps instead, with the same numbers,
    as torchvision's ``MetricLogger`` and timm's train loop print; no lines on a terminal."""

    def __init__(self, *, enabled: bool, log: Callable[[str], None], epoch: int, epochs: int,
                 steps: int, done: int, images: float, every: int, unit: str = "img") -> None:
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=steps, initial=done, leave=False, dynamic_ncols=True,
                        desc=f"epoch {epoch}/{epochs}", unit="step", file=sys.stderr,
                        disable=not (enabled and tty))
        self.every = every if enabled and not tty else 0
        self.log, self.epoch, self.epochs, self.steps = log, epoch, epochs, steps
        self.t0, self.done0, self.images0 = time.perf_counter(), done, images
        self.smooth: Optional[float] = None
        self.unit = unit  # what ``images`` counts: "img/s"

    def update(self, *, done: int, step: int, total_steps: int, loss: float, images: float) -> None:
        """After a step: ``done`` steps of this epoch and ``step`` of the run's ``total_steps``
        are done, ``images`` seen in this epoch so far."""
        self.smooth = loss if self.smooth is None else 0.9 * self.smooth + 0.1 * loss
        line = self.every and done % self.every == 0 and done < self.steps
        if done % 5 == 0 or done == self.steps or line:
            now = time.perf_counter()
            per_step = (now - self.t0) / max(1, done - self.done0)
            ips = (images - self.images0) / max(now - self.t0, 1e-9)
            run_eta = hms(per_step * (total_steps - step))
            self.bar.set_postfix_str(f"loss {self.smooth:.4f} {ips:.0f} {self.unit}/s run ETA {run_eta}",
                                     refresh=False)
            if line:
                self.log(f"epoch {self.epoch}/{self.epochs}  step {done}/{self.steps}  loss "
                         f"{self.smooth:.4f}  {ips:.0f} {self.unit}/s  ETA {hms(per_step * (self.steps - done))} "
                         f"this epoch, {run_eta} run")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def cpus_available() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_warning(when: str, advice: str, *, load: Optional[float] = None,
                 cpus: Optional[int] = None, margin: float = 0.0) -> Optional[str]:
    """One line when the 1-minute load average (``load``; unset: now) exceeds the CPUs (less
    ``margin``): other processes are competing for them. ``googlenet bench`` and ``train`` say
    it; torch's OpenMP threads lose most on an oversubscribed machine (they spin at barriers)."""
    cpus = cpus or cpus_available()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover  (no load average on this platform)
            return None
    if load <= cpus - margin:
        return None
    return f"warning: 1-min load average {load:.1f} on {cpus} CPUs {when}; {advice}"


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

    atomic_write(run_dir / RunDir.METRICS, write)


def _x(row: dict[str, Any]) -> float:
    """Where a row sits on the epoch axis: its epoch, or (a partial epoch, stopped by
    max_steps) the fraction of it that was trained."""
    frac = row.get("epoch_fraction")
    return row["epoch"] - 1 + frac if isinstance(frac, (int, float)) else row["epoch"]


def curves_figure(history: list[dict[str, Any]],
                  groups: Sequence[tuple[str, Sequence[tuple[str, str]]]], title: str = "") -> Any:
    """metrics.csv as a Figure: one panel per group of (key, label) curves, then the learning
    rate. A series with one point (the raw weights, evaluated after the last epoch only) is a
    large marker with its value in the legend; the learning rate is on a linear axis (a
    schedule ends at 0, which a log axis cannot show); ``title`` names the run."""
    # The object-oriented API without pyplot: no GUI backend, and a second faster to import.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    ep = [_x(h) for h in history]
    fig = Figure(figsize=(5.5 * (len(groups) + 1), 4.6), dpi=100, layout="constrained")
    ax = fig.subplots(1, len(groups) + 1)
    markers = "osD^vP*X"
    for a, (name, curves) in zip(ax, groups):
        for i, (k, lbl) in enumerate(curves):
            pts = [(x, h[k]) for x, h in zip(ep, history)
                   if isinstance(h.get(k), (int, float)) and math.isfinite(h[k])]
            if not pts:
                continue
            xs, ys = zip(*pts)
            one = len(pts) == 1
            # earlier series wider, so one drawn over an equal one still shows at its edges
            a.plot(xs, ys, marker=markers[i % len(markers)], ms=11 if one else 5,
                   lw=max(1.0, 3.0 - 0.6 * i), ls="-" if i % 2 == 0 else "--",
                   label=lbl + (f" {ys[0]:.4g}" if one else ""), zorder=2 + i)
        a.set(title=name, xlabel="epoch")
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    lrs = [(x, h["lr"]) for x, h in zip(ep, history) if isinstance(h.get("lr"), (int, float))]
    if lrs:
        ax[-1].plot(*zip(*lrs), marker="o", ms=5)
    ax[-1].set(title="learning rate (end of epoch)", xlabel="epoch", ylim=(0, None))
    for a in ax:
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any(h.get("partial") for h in history):
        title += "  (last point: a partial epoch, stopped at max_steps)"
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(history: list[dict[str, Any]], path: Path,
                groups: Sequence[tuple[str, Sequence[tuple[str, str]]]], title: str = "") -> None:
    """``curves_figure`` written to ``path`` (PNG, atomically): RUN/curves.png."""
    fig = curves_figure(history, groups, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


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
        self.writer = SummaryWriter(str(run_dir / RunDir.TENSORBOARD), purge_step=step or None)

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
