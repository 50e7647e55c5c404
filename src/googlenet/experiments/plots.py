"""Slide-ready figures of an experiment (16:9 at 1600x900, large fonts; matplotlib's object API,
no pyplot), one per claimed quantity, titled with what the paper claims and the verdict:

- measured over seeds (top-1, gradient norms, the train-val gap): a dot plot, every seed a dot,
  the mean a bar across them with +-std whiskers, so a difference reads against the seeds'
  spread (a bar from zero would hide a 1-point difference, one from 95 would blow it up);
- counts and rates (multiply-adds, parameters, images/s): bars from zero;
- Table 3: top-1 against cost (log), and the same rows as dots;
- curves over epochs (mean +- std over seeds) where the arms trained for more than one epoch,
  each arm in its own colour, line style and marker, earlier arms drawn wider, so an arm equal
  to another (averaging: the same run until the average starts) still shows.

Every figure is drawn from an experiment's results (``DIR/results.json``), so a changed style
re-renders without training (``googlenet experiment NAME --out DIR --replot``).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["dot_plot", "bar_chart", "curves", "table3_plot", "crops_plot", "experiment_figures"]

SIZE = (16, 9)  # inches: 16:9 at 100 dpi is 1600x900 px
FONT = 22
DPI = 100
STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "D", "^", "v", "P")
# What each claimed quantity is called on an axis, and the file its figure goes to
METRICS: dict[str, tuple[str, str]] = {
    "top1": ("top-1 % (eval split)", "top1"),
    "grad_norm_conv1": ("gradient norm at conv1 (mean over steps)", "gradient"),
    "train_val_gap": ("train top-1 - val top-1 (points)", "gap"),
    "params": ("parameters (M, no aux heads)", "params"),
    "multiply_adds": ("multiply-adds / image (M)", "cost"),
    "images_per_s": ("training images / s", "cost"),
}
_SCALE = {"params": 1e-6, "multiply_adds": 1e-6}


def _figure(ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=FONT - 4)
        ax.grid(True, axis="y", alpha=0.3)
    return fig, axes


def _finite(v: Optional[float]) -> float:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def _ticks(ax: Any, labels: Sequence[str], panels: int = 1) -> None:
    wrap = max(10, 64 // (len(labels) * panels))  # characters per tick-label line
    ax.set_xticks(range(len(labels)), [textwrap.fill(t, wrap) for t in labels],
                  fontsize=FONT - 8 if panels > 1 or len(labels) > 3 else FONT - 6)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _title(fig: Any, title: str, subtitle: str = "") -> None:
    text = textwrap.fill(title, 90)
    if subtitle:
        text += "\n" + textwrap.fill(subtitle, 120)
    fig.suptitle(text, fontsize=FONT if not subtitle else FONT - 4)


def dot_plot(ax: Any, labels: Sequence[str], stats: Sequence[dict[str, Any]], ylabel: str,
             digits: int = 2) -> None:
    """One column per arm: each seed's value a dot, the mean a short bar with +-std whiskers,
    the mean written beside it. The y axis spans the values (with room for the labels): the
    seeds' spread is the scale a difference is read against."""
    vals_all = []
    for i, s in enumerate(stats):
        vals = [v for v in s.get("values") or [] if isinstance(v, (int, float)) and math.isfinite(v)]
        mean, std = s.get("mean"), s.get("std") or 0.0
        if mean is None:
            continue
        vals_all += vals + [mean - std, mean + std]
        offsets = [(k - (len(vals) - 1) / 2) * 0.06 for k in range(len(vals))]  # side by side
        ax.scatter([i + o for o in offsets], vals, s=160, color=f"C{i}", alpha=0.75,
                   edgecolor="black", linewidth=0.8, zorder=3,
                   label="one seed" if i == 0 else None)
        ax.errorbar([i], [mean], yerr=[std], fmt="none", ecolor="black", elinewidth=2.5,
                    capsize=18, zorder=4)
        ax.hlines(mean, i - 0.22, i + 0.22, color="black", lw=4, zorder=4,
                  label="mean ± std" if i == 0 else None)
        ax.annotate(f"{mean:.{digits}f}", (i + 0.25, mean), fontsize=FONT - 4, va="center",
                    ha="left", zorder=5)
    _ticks(ax, labels)
    ax.set_ylabel(ylabel, fontsize=FONT - 2)
    if vals_all:
        lo, hi = min(vals_all), max(vals_all)
        pad = max(hi - lo, 1e-9) * 0.2 + (0.5 if "%" in ylabel else 0.0)
        top = min(hi + pad, 100.5) if "top-1 %" in ylabel else hi + pad  # no 102% on an axis
        ax.set_ylim(lo - pad, top)
    ax.legend(fontsize=FONT - 8, loc="best")


def bar_chart(path: Path, title: str, panels: Sequence[tuple[str, list[str], list[dict]]],
              subtitle: str = "") -> Path:
    """``panels``: (y label, bar labels, stats {mean, std}) -> bars from zero, one chart per
    panel, each bar's value above it (inside the frame)."""
    fig, axes = _figure(len(panels))
    for ax, (ylabel, labels, stats) in zip(axes, panels):
        means = [_finite(s.get("mean")) for s in stats]
        stds = [_finite(s.get("std")) for s in stats]
        bars = ax.bar(range(len(labels)), means, yerr=stds, capsize=12, width=0.6,
                      color=[f"C{i}" for i in range(len(labels))], alpha=0.85)
        _ticks(ax, labels, len(panels))
        ax.set_ylabel(ylabel, fontsize=FONT - 2)
        ax.bar_label(bars, labels=[f"{m:.3g}" for m in means], fontsize=FONT - 6, padding=6)
        ax.set_ylim(0, max([m + s for m, s in zip(means, stds)] + [1e-9]) * 1.18)
    _title(fig, title, subtitle)
    fig.savefig(path)
    return path


def curves(path: Path, title: str, arms: list[tuple[str, list[dict[str, list[float]]]]],
           panels: Sequence[tuple[str, str]], note: str = "") -> Path:
    """Per panel (curve key, y label): one line per arm, the mean over seeds with a +-std band;
    each arm in its own colour, style and marker, earlier arms wider (none hides another)."""
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
            lw = max(2.0, 6.0 - 1.4 * i)
            ax.plot(x, mean, ls=STYLES[i % len(STYLES)], marker=MARKERS[i % len(MARKERS)],
                    color=f"C{i}", lw=lw, ms=6 + lw, label=label, zorder=2 + i,
                    markerfacecolor="none" if i % 2 else f"C{i}", markeredgewidth=2)
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.12)
        ax.set_xlabel("epoch", fontsize=FONT - 2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel, fontsize=FONT - 2)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].legend(fontsize=FONT - 8, loc="best")
    _title(fig, title + " (mean ± std over seeds)", note)
    fig.savefig(path)
    return path


def table3_plot(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Top-1 against cost (forward passes per image, log), single models and the ensemble."""
    fig, (ax,) = _figure(1)
    costs, tops = [], []
    for i, who in enumerate(dict.fromkeys(r["models"] for r in rows)):
        pts = sorted((r["cost"], _finite(r["top1"]["mean"]), _finite(r["top1"]["std"]), r["crops"])
                     for r in rows if r["models"] == who)
        x, y, e = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
        costs += x
        tops += [a - b for a, b in zip(y, e)] + [a + b for a, b in zip(y, e)]
        ax.errorbar(x, y, yerr=e, fmt="-o", lw=3, ms=12, capsize=10, color=f"C{i}", label=who)
        for c, yy, _, crops in pts:  # to the right of the point, clear of its whisker
            ax.annotate(f"{crops} crop{'s' if crops > 1 else ''}: {yy:.1f}%", (c, yy),
                        fontsize=FONT - 8, textcoords="offset points", xytext=(16, 0),
                        ha="left", va="center")
    ax.set_xscale("log")
    ax.set_xlim(min(costs) / 2, max(costs) * 8)  # room for the labels right of the points
    lo, hi = min(tops), max(tops)
    pad = (hi - lo) * 0.15 + 0.5
    ax.set_ylim(lo - pad, min(hi + pad, 100.5))
    ax.set_xlabel("cost: forward passes per image (log)", fontsize=FONT - 2)
    ax.set_ylabel("top-1 % (eval subset)", fontsize=FONT - 2)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=FONT - 6, loc="lower right")
    n = rows[0].get("images") if rows else None
    _title(fig, "Table 3 on this data: crops and models against cost",
           f"{n} images of the eval split; single models: mean ± std over seeds" if n else "")
    fig.savefig(path)
    return path


def crops_plot(path: Path, rows: list[dict[str, Any]], claims: Sequence[dict[str, Any]]) -> Path:
    """Table 3's rows (the very numbers of ``table3_plot``, on the same images) as dots: what
    the crops and ensemble claims compare."""
    fig, (ax,) = _figure(1)
    labels = [f"{r['models']}, {r['crops']} crop{'s' if r['crops'] > 1 else ''}" for r in rows]
    dot_plot(ax, labels, [r["top1"] for r in rows], "top-1 % (eval subset)", digits=1)
    n = rows[0].get("images") if rows else None
    _title(fig, "Table 3: more crops and more models" + (f" ({n} images)" if n else ""),
           _verdicts(claims))
    fig.savefig(path)
    return path


def _verdicts(claims: Sequence[dict[str, Any]]) -> str:
    """One claim: its verdict and why; several: each one's verdict."""
    if len(claims) == 1:
        return f"{claims[0]['verdict']}: {claims[0]['why']}"
    return "; ".join(f"{c['key']}: {c['verdict']}" for c in claims)


def _epochs(seeds: list[tuple[str, list[dict[str, list[float]]]]]) -> int:
    return max((len(r.get("epoch") or []) for _, runs in seeds for r in runs), default=0)


CURVE_NOTES = {"averaging": "the arms are one training run until averaging starts (the last "
                            "epoch): their curves coincide until then"}


def experiment_figures(out: Path, name: str, title: str, er: dict[str, Any]) -> list[str]:
    """Every figure of one experiment's results (``er``), written to ``out``; file names. One
    figure per claimed quantity (its claims as the title, the verdicts below), curves over
    epochs when the arms trained for more than one, Table 3 for the crops."""
    arms = er["arms"]
    labels = [a["label"] for a in arms.values()]
    stats = [a["stats"] for a in arms.values()]
    claims = er.get("claims") or []
    files: list[Path] = []
    if er.get("table3"):  # crops: every number from the one crops evaluation
        files.append(crops_plot(out / f"{name}-top1.png", er["table3"], claims))
        files.append(table3_plot(out / f"{name}-table3.png", er["table3"]))
    by_file: dict[str, list[dict[str, Any]]] = {}
    costs = any(c["metric"] == "multiply_adds" for c in claims)  # params join the cost figure
    for c in claims:
        if c["metric"] in METRICS and not er.get("table3"):
            stem = "cost" if costs and c["metric"] == "params" else METRICS[c["metric"]][1]
            by_file.setdefault(stem, []).append(c)
    for stem, cs in by_file.items():
        path = out / f"{name}-{stem}.png"
        statement = " ".join(c["statement"] for c in cs).removeprefix("... ")
        if stem == "cost":  # counts and a rate: bars from zero, one panel each
            panels = [(METRICS[m][0], labels, [_scaled(s.get(m), _SCALE.get(m, 1.0)) for s in stats])
                      for m in ("multiply_adds", "params", "images_per_s")]
            files.append(bar_chart(path, statement, panels, _verdicts(cs)))
        elif stem == "params":
            files.append(bar_chart(path, statement, [(METRICS["params"][0], labels,
                                                      [_scaled(s.get("params"), 1e-6) for s in stats])],
                                   _verdicts(cs)))
        else:
            fig, (ax,) = _figure(1)
            metric = cs[0]["metric"]
            dot_plot(ax, labels, [s.get(metric, {}) for s in stats], METRICS[metric][0],
                     digits=2 if metric == "top1" else 3)
            _title(fig, statement, _verdicts(cs))
            fig.savefig(path)
            files.append(path)
    seeds = [(a["label"], [r["curves"] for r in a["runs"]]) for a in arms.values()]
    if not er.get("table3") and _epochs(seeds) > 1:  # one epoch is one dot per arm: no curve
        panels = [("val_top1", "val top-1 %"), ("train_loss", "train loss")]
        if name == "aux":
            panels = [("train_top1", "train top-1 %"), ("val_top1", "val top-1 %"),
                      ("grad_norm_conv1", "grad norm conv1")]
        files.append(curves(out / f"{name}-curves.png", title, seeds, panels,
                            CURVE_NOTES.get(name, "")))
    return [f.name for f in files]


def _scaled(s: Optional[dict[str, Any]], k: float) -> dict[str, Any]:
    if not s or s.get("mean") is None:
        return {"mean": None, "std": None}
    return {"mean": s["mean"] * k, "std": (s["std"] or 0.0) * k}
