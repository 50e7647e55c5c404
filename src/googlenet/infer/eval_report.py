"""The results of ``googlenet eval``: ``EvalRow`` (one line of the paper's Table 3: these models,
this many crops) and ``EvalReport`` (the table, with its saved forms: JSON, CSV, markdown and the
confusion matrix), which must stay in step with each other."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..metrics.classification import confusion_matrix, topk_hits
from ..weights.io import atomic_write, check_writable_dir

__all__ = ["TOPK", "MAX_CONFUSION_CLASSES", "EvalRow", "EvalReport", "save_confusion_png"]

TOPK = 5
MAX_CONFUSION_CLASSES = 50  # above this a confusion-matrix plot is unreadable; skipped with a note


@dataclass
class EvalRow:
    """One line of Table 3: these models, this many crops."""

    models: tuple[int, ...]  # indices into EvalReport.model_names
    crops: int
    k: int  # the "top-5" k: min(5, classes)
    n: int = 0
    correct1: int = 0
    correctk: int = 0
    preds: list[torch.Tensor] = field(default_factory=list, repr=False)  # top-1 per batch

    @property
    def top1(self) -> float:
        return 100.0 * self.correct1 / max(self.n, 1)

    @property
    def top5(self) -> float:
        return 100.0 * self.correctk / max(self.n, 1)

    @property
    def top1_err(self) -> float:
        return 100.0 - self.top1

    @property
    def top5_err(self) -> float:
        return 100.0 - self.top5

    @property
    def cost(self) -> int:  # forward passes per image, as Table 3's "cost"
        return len(self.models) * self.crops

    def predictions(self) -> np.ndarray:
        return torch.cat(self.preds).numpy() if self.preds else np.zeros(0, dtype=np.int64)

    def add(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        h1, hk, pred = topk_hits(probs, labels, self.k)
        self.n += len(labels)
        self.correct1 += int(h1.sum())
        self.correctk += int(hk.sum())
        self.preds.append(pred)


@dataclass
class EvalReport:
    rows: list[EvalRow]
    model_names: list[str]
    class_names: list[str]
    labels: np.ndarray  # (n,) true labels, in evaluation order
    indices: np.ndarray  # (n,) dataset indices of the evaluated images
    skipped: list[tuple[str, str]]
    seconds: dict[int, float]  # wall time of each pass, by crop count
    info: dict[str, Any] = field(default_factory=dict)  # data, split, device, ...

    @property
    def k(self) -> int:
        return min(TOPK, len(self.class_names))

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def row(self, models: Sequence[int], crops: int) -> EvalRow:
        key = tuple(models)
        for r in self.rows:
            if r.models == key and r.crops == crops:
                return r
        raise KeyError((key, crops))

    def row_label(self, r: EvalRow) -> str:
        if len(r.models) == 1:
            return f"1 ({self.model_names[r.models[0]]})"
        return f"{len(r.models)} (ensemble)"

    def base(self) -> Optional[EvalRow]:
        """Table 3's baseline: the first model, 1 crop."""
        try:
            return self.row((0,), 1)
        except KeyError:
            return None

    def confusion(self, r: Optional[EvalRow] = None) -> np.ndarray:
        """(K, K) counts, rows = true class, columns = predicted; default: the last row (all
        models, most crops)."""
        r = r or self.rows[-1]
        return confusion_matrix(np.asarray(self.labels), r.predictions(), len(self.class_names))

    def table_rows(self) -> list[dict[str, Any]]:
        base = self.base()
        out = []
        for r in self.rows:
            d = {"models": len(r.models), "model_names": [self.model_names[i] for i in r.models],
                 "crops": r.crops, "cost": r.cost, "images": r.n, "k": r.k,
                 "top1_correct": r.correct1, "top5_correct": r.correctk,
                 "top1_acc": round(r.top1, 4), "top5_acc": round(r.top5, 4),
                 "top1_err": round(r.top1_err, 4), "top5_err": round(r.top5_err, 4)}
            if base is not None:
                d["top5_err_vs_base"] = round(r.top5_err - base.top5_err, 4)
            out.append(d)
        return out

    def table_markdown(self) -> str:
        """Table 3's shape: models x crops -> cost, top-1 and top-5 error."""
        k = self.k
        base = self.base()
        head = ["models", "crops", "cost", "top-1 err %", f"top-{k} err %", "top-1 acc %",
                f"top-{k} acc %"] + ([f"top-{k} err vs base"] if base is not None else [])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [self.row_label(r), str(r.crops), str(r.cost), f"{r.top1_err:.2f}",
                     f"{r.top5_err:.2f}", f"{r.top1:.2f}", f"{r.top5:.2f}"]
            if base is not None:
                cells.append("base" if r is base else f"{r.top5_err - base.top5_err:+.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def summary_lines(self) -> list[str]:
        i = self.info
        where = f"{i['data']} ({i.get('split', '?')} split), " if "data" in i else ""
        lines = [f"data: {where}{self.num_images} images, {len(self.class_names)} classes"
                 + (f", {len(self.skipped)} unreadable files skipped" if self.skipped else "")]
        for n, name in enumerate(self.model_names):
            lines.append(f"model {n + 1}: {name}" + (f" [{i['models'][n]}]" if "models" in i else ""))
        if len(self.class_names) < TOPK:
            lines.append(f"top-{self.k}: only {len(self.class_names)} classes, so top-5 is "
                         f"top-{self.k}")
        times = ", ".join(f"{c} crops {s:.1f}s" for c, s in self.seconds.items())
        lines.append(f"device: {i.get('device')}; time: {times}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info, "models": self.model_names, "classes": self.class_names,
                "images": self.num_images, "k": self.k,
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
                "seconds": {str(c): round(s, 3) for c, s in self.seconds.items()},
                "rows": self.table_rows()}

    def results(self) -> dict[str, Any]:
        """What results.json holds (and ``eval --json`` prints)."""
        d, last, K = self.to_dict(), self.rows[-1], len(self.class_names)
        d["confusion"] = ({"row": self.row_label(last), "crops": last.crops,
                           "png": "confusion.png", "csv": "confusion.csv"}
                          if K <= MAX_CONFUSION_CLASSES else
                          {"skipped": f"{K} classes > {MAX_CONFUSION_CLASSES}: too many to plot"})
        return d

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """results.json, results.csv, results.md, and (<= 50 classes) confusion.png/.csv, each
        written atomically (a failed write leaves the previous file; FileSystemError)."""
        out = check_writable_dir(out_dir, "output folder")
        written = []
        last = self.rows[-1]

        def csv_file(path: Path, rows: list[list[Any]]) -> Path:
            def write(tmp: str) -> None:
                with open(tmp, "w", newline="") as f:
                    csv.writer(f).writerows(rows)
            return atomic_write(path, write)

        if len(self.class_names) <= MAX_CONFUSION_CLASSES:
            cm = self.confusion(last)
            title = f"{self.row_label(last)}, {last.crops} crop{'s' if last.crops > 1 else ''}"
            written.append(save_confusion_png(cm, self.class_names, out / "confusion.png", title))
            written.append(csv_file(out / "confusion.csv", [
                ["true \\ predicted", *self.class_names],
                *[[name, *row.tolist()] for name, row in zip(self.class_names, cm)]]))
        d = self.results()
        atomic_write(out / "results.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(d, indent=2) + "\n"))
        rows = self.table_rows()
        csv_file(out / "results.csv", [list(rows[0]), *[
            list({**r, "model_names": " + ".join(r["model_names"])}.values()) for r in rows]])
        md = ["# googlenet eval", "", *[f"- {s}" for s in self.summary_lines()], "",
              self.table_markdown(), ""]
        if self.skipped:
            md += ["Skipped files:", "", *[f"- {f}: {r}" for f, r in self.skipped], ""]
        atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text("\n".join(md)))
        return [out / "results.json", out / "results.csv", out / "results.md", *written]


def save_confusion_png(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                       title: str = "") -> Path:
    """Confusion matrix (rows true, columns predicted) as a PNG; counts written in the cells up to
    20 classes."""
    # Plain matplotlib (what sklearn's ConfusionMatrixDisplay draws, without importing sklearn).
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in threads/servers

    K = len(class_names)
    side = min(4 + 0.3 * K, 18)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set(xticks=range(K), yticks=range(K), xlabel="predicted", ylabel="true",
           title=f"confusion matrix: {title}" if title else "confusion matrix")
    ax.set_xticklabels([str(c) for c in class_names], rotation=90)
    ax.set_yticklabels([str(c) for c in class_names])
    if K <= 20:  # counts in the cells, white on dark
        hi = cm.max() if cm.size else 0
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > hi / 2 else "black")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
