"""Slide-ready figures of an experiment (16:9, large fonts; matplotlib's object API, no pyplot):
bar charts with error bars (std over seeds) and curves with seed bands (mean +- std)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["bar_chart", "curves", "table3_plot", "experiment_figures"]

SIZE = (16, 9)  # inches: 16:9 at 100 dpi is 1600x900 px
FONT = 22
DPI = 100


def _figure(ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=FONT - 4)
        ax.grid(True, alpha=0.3)
    return fig, axes


def _finite(v: Optional[float]) -> float:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def bar_chart(path: Path, title: str, panels: Sequence[tuple[str, list[str], list[dict]]]) -> Path:
    """``panels``: (y label, bar labels, stats {mean, std}) -> one bar chart per panel."""
    fig, axes = _figure(len(panels))
    for ax, (ylabel, labels, stats) in zip(axes, panels):
        means = [_finite(s.get("mean")) for s in stats]
        stds = [_finite(s.get("std")) for s in stats]
        bars = ax.bar(range(len(labels)), means, yerr=stds, capsize=12,
                      color=[f"C{i}" for i in range(len(labels))], alpha=0.85)
        wrap = max(10, 60 // (len(labels) * len(panels)))  # characters per tick-label line
        ax.set_xticks(range(len(labels)), [textwrap.fill(t, wrap) for t in labels],
                      fontsize=FONT - 8 if len(panels) > 1 else FONT - 4)
        ax.set_ylabel(ylabel, fontsize=FONT)
        ax.bar_label(bars, labels=[f"{m:.3g}" for m in means], fontsize=FONT - 6, padding=4)
        lo = min(m - s for m, s in zip(means, stds))
        hi = max(m + s for m, s in zip(means, stds))
        if "top-1" in ylabel and lo > 0:  # accuracies: zoom in on the differences
            ax.set_ylim(max(0.0, lo - (hi - lo) - 1), min(100.0, hi + (hi - lo) * 0.3 + 1))
    fig.suptitle(textwrap.fill(title, 80), fontsize=FONT + 2)
    fig.savefig(path)
    return path


def curves(path: Path, title: str, arms: list[tuple[str, list[dict[str, list[float]]]]],
           panels: Sequence[tuple[str, str]]) -> Path:
    """Per panel (curve key, y label): one line per arm, the mean over seeds with a +-std band."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(len(panels))
    for ax, (key, ylabel) in zip(axes, panels):
        for i, (label, seeds) in enumerate(arms):
            series = [s[key] for s in seeds if key in s and s[key]]
            if not series:
                continue
            n = min(len(s) for s in series)
            y = np.array([s[:n] for s in series], dtype=float)
            x = np.array(seeds[0]["epoch"][:n], dtype=float)
            mean = np.nanmean(y, 0)
            std = np.nanstd(y, 0, ddof=1) if len(series) > 1 else np.zeros(n)
            ax.plot(x, mean, "-o", color=f"C{i}", lw=3, ms=8, label=label)
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.set_xlabel("epoch", fontsize=FONT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel, fontsize=FONT)
    axes[0].legend(fontsize=FONT - 8)
    fig.suptitle(textwrap.fill(title + " (mean ± std over seeds)", 80), fontsize=FONT + 2)
    fig.savefig(path)
    return path


def table3_plot(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Top-1 against cost (forward passes per image), single models and the ensemble."""
    fig, (ax,) = _figure(1)
    for i, who in enumerate(dict.fromkeys(r["models"] for r in rows)):
        pts = sorted((r["cost"], _finite(r["top1"]["mean"]), _finite(r["top1"]["std"]), r["crops"])
                     for r in rows if r["models"] == who)
        x, y, e = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
        ax.errorbar(x, y, yerr=e, fmt="-o", lw=3, ms=10, capsize=10, color=f"C{i}", label=who)
        for c, yy, _, crops in pts:
            ax.annotate(f"{crops} crop{'s' if crops > 1 else ''}", (c, yy), fontsize=FONT - 8,
                        textcoords="offset points", xytext=(8, -24))
    ax.set_xscale("log")
    ax.set_xlabel("cost: forward passes per image (log)", fontsize=FONT)
    ax.set_ylabel("top-1 % (eval split)", fontsize=FONT)
    ax.legend(fontsize=FONT - 6)
    fig.suptitle("Table 3 on this data: crops and models against cost", fontsize=FONT + 4)
    fig.savefig(path)
    return path


def experiment_figures(out: Path, name: str, title: str, er: dict[str, Any]) -> list[str]:
    """Every figure of one experiment's results (``er``), written to ``out``; file names."""
    arms = er["arms"]
    labels = [a["label"] for a in arms.values()]
    stats = [a["stats"] for a in arms.values()]
    files = [bar_chart(out / f"{name}-top1.png", title,
                       [("top-1 % (eval split)", labels, [s.get("top1", {}) for s in stats])])]
    if name == "reduction":
        files.append(bar_chart(out / f"{name}-cost.png", "Cost of the inception modules", [
            ("multiply-adds / image (M)", labels,
             [_scaled(s.get("multiply_adds"), 1e-6) for s in stats]),
            ("parameters (M)", labels, [_scaled(s.get("params"), 1e-6) for s in stats]),
            ("training images / s", labels, [s.get("images_per_s", {}) for s in stats])]))
    seeds = [(a["label"], [r["curves"] for r in a["runs"]]) for a in arms.values()]
    panels = [("val_top1", "val top-1 %"), ("train_loss", "train loss")]
    if name == "aux":
        panels = [("train_top1", "train top-1 %"), ("val_top1", "val top-1 %"),
                  ("grad_norm_conv1", "grad norm conv1")]
    files.append(curves(out / f"{name}-curves.png", title, seeds, panels))
    if er.get("table3"):
        files.append(table3_plot(out / f"{name}-table3.png", er["table3"]))
    return [f.name for f in files]


def _scaled(s: Optional[dict[str, Any]], k: float) -> dict[str, Any]:
    if not s or s.get("mean") is None:
        return {"mean": None, "std": None}
    return {"mean": s["mean"] * k, "std": (s["std"] or 0.0) * k}
