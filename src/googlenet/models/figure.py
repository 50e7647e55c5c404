"""Pictures of the network for slides (``googlenet summary --format svg|png``).

``network_figure``: the whole network as in the paper's Figure 3, laid out in columns (stem,
stage 3, stage 4 with the two auxiliary heads on 4a and 4d, stage 5 and the classifier), every
Inception module with its six Table 1 widths (#1x1, #3x3 reduce -> #3x3, #5x5 reduce -> #5x5,
pool -> pool proj), output shape, weights and multiply-adds. ``inception_figure``: one module
naive (Figure 2a) beside reduced (Figure 2b) with their costs, and the cost of every module both
ways. Both are drawn from the built model (``TABLE1`` widths, shapes from a forward on the meta
device, weights and multiply-adds from ``models.summary``), never from typed-in numbers.

matplotlib is imported inside the functions (the model code never needs it). Figures are 16:9
(``FIGSIZE`` inches, ``DPI`` for PNG) and ``save_figure`` keeps SVG text as text
(``svg.fonttype = "none"``), so labels stay searchable, editable and parseable. Every width label
carries an SVG id ``<module>:<field>`` (e.g. ``inception_3a:n3x3red``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import IO, Any, Optional

import torch.nn as nn

from .blocks import AUX_TAPS, TABLE1, ConvBlock, Inception, InceptionSpec, SeparableConvBlock
from .summary import _profile, _weights, build_meta_model, naive_comparison, table1

__all__ = ["FIGSIZE", "DPI", "WIDTH_FIELDS", "network_figure", "inception_figure", "save_figure"]

FIGSIZE = (40 / 3, 7.5)  # inches: a 16:9 slide (13.33 x 7.5, as PowerPoint and Keynote)
DPI = 150  # PNG: 2000 x 1125 pixels
WIDTH_FIELDS = tuple(f.name for f in fields(InceptionSpec) if f.name != "name")

# Fill colours by kind of layer, as in the paper's Figure 3 (conv blue, pool red, norm green,
# 1x1 reductions yellow); classifier purple, aux heads orange.
_COLOR = {"conv": "#cfe2f3", "reduce": "#fff2cc", "pool": "#f4cccc", "norm": "#d9ead3",
          "head": "#e4d7f5", "aux": "#fce5cd", "io": "#ffffff", "module": "#f3f3f3"}
_EDGE = "#555555"
_FONT = 9.5  # points; at 16:9 these stay readable when the slide is projected


def _x(n: Any) -> str:
    return "\u00d7".join(str(v) for v in n)


def _pair(v: Any) -> int:
    return v[0] if isinstance(v, (tuple, list)) else int(v)


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


class _Canvas:
    """An axes in inches (origin bottom left) with boxes, texts and arrows."""

    def __init__(self, fig: Any) -> None:
        self.ax = fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, FIGSIZE[0])
        self.ax.set_ylim(0, FIGSIZE[1])
        self.ax.axis("off")

    def box(self, x: float, y: float, w: float, h: float, kind: str, gid: Optional[str] = None) -> None:
        from matplotlib.patches import FancyBboxPatch

        self.ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                         facecolor=_COLOR[kind], edgecolor=_EDGE, linewidth=0.9,
                                         gid=gid))

    def text(self, x: float, y: float, s: str, *, size: float = _FONT, gid: Optional[str] = None,
             **kw: Any) -> None:
        kw.setdefault("ha", "center")
        kw.setdefault("va", "center")
        self.ax.text(x, y, s, fontsize=size, gid=gid, **kw)

    def labelled(self, x: float, y: float, w: float, h: float, kind: str, title: str,
                 detail: str = "", gid: Optional[str] = None, size: float = _FONT) -> None:
        self.box(x, y, w, h, kind, gid=gid)
        if detail:
            self.text(x + w / 2, y + h * 0.66, title, size=size, gid=gid and f"{gid}:title")
            self.text(x + w / 2, y + h * 0.27, detail, size=_FONT - 1.5, color="#333333",
                      gid=gid and f"{gid}:detail")
        else:
            self.text(x + w / 2, y + h / 2, title, gid=gid and f"{gid}:title")

    def arrow(self, points: list[tuple[float, float]]) -> None:
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path

        self.ax.add_patch(FancyArrowPatch(path=Path(points), arrowstyle="-|>,head_length=4,head_width=2.5",
                                          color="#444444", linewidth=1.0, shrinkA=0, shrinkB=0))


# -- the network (Figure 3) ------------------------------------------------------------------

def _describe(name: str, m: nn.Module, shapes: dict[str, tuple]) -> Optional[tuple[str, str, str]]:
    """(kind, title, detail) of a non-inception layer, or None for a layer that is not there
    (the BatchNorm variants have no LRN: their norm1/norm2 are Identity)."""
    in_shape, out = shapes[name]
    hwc = _x((out[-2], out[-1], out[-3])) if len(out) == 4 else _x((1, 1, out[-1]))
    if isinstance(m, (ConvBlock, SeparableConvBlock)):
        c = m.depthwise if isinstance(m, SeparableConvBlock) else m.conv
        k, s = _pair(c.kernel_size), _pair(c.stride)
        sep = "separable " if isinstance(m, SeparableConvBlock) else ""
        return ("reduce" if k == 1 else "conv"), f"{sep}conv {k}\u00d7{k}/{s}", hwc
    if isinstance(m, nn.MaxPool2d):
        k, s = _pair(m.kernel_size), _pair(m.stride)
        return "pool", f"max pool {k}\u00d7{k}/{s}", hwc
    if isinstance(m, nn.LocalResponseNorm):
        return "norm", f"local response norm ({m.size})", hwc
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return "pool", f"avg pool {in_shape[-2]}\u00d7{in_shape[-1]}/1", hwc
    if isinstance(m, nn.Dropout):
        return "head", f"dropout {m.p:.0%}", hwc
    if isinstance(m, nn.Linear):
        return "head", f"linear {m.in_features}\u2192{m.out_features}", hwc
    return None


_INC_H, _SIMPLE_H, _GAP = 0.98, 0.46, 0.15


def _inception(cv: _Canvas, x: float, top: float, w: float, m: Inception, out: tuple,
               weights: int, macs: int, kernel5x5: int) -> None:
    s, name = m.spec, m.spec.name
    y = top - _INC_H
    cv.box(x, y, w, _INC_H, "module", gid=name)
    cv.text(x + 0.08, top - 0.15, name, ha="left", weight="bold", gid=f"{name}:name")
    cv.text(x + w - 0.08, top - 0.15, f"\u2192 {_x((out[-2], out[-1], out[-3]))}", ha="right",
            size=_FONT - 1, gid=f"{name}:output")
    k5 = f"{kernel5x5}\u00d7{kernel5x5}"
    # Four branches, as Figure 2b: (fill, label, Table 1 field) from the module's input down.
    branches = [[("conv", "1\u00d71", "n1x1")],
                [("reduce", "1\u00d71", "n3x3red"), ("conv", "3\u00d73", "n3x3")],
                [("reduce", "1\u00d71", "n5x5red"), ("conv", k5, "n5x5")],
                [("pool", "pool 3\u00d73", None), ("reduce", "1\u00d71", "pool_proj")]]
    pad, gap, cell_top, cell_h = 0.07, 0.05, top - 0.30, 0.44
    cw = (w - 2 * pad - 3 * gap) / 4
    for i, branch in enumerate(branches):
        cx = x + pad + i * (cw + gap)
        bh = (cell_h - 0.03 * (len(branch) - 1)) / len(branch)
        for j, (kind, label, fld) in enumerate(branch):
            by = cell_top - (j + 1) * bh - j * 0.03
            cv.box(cx, by, cw, bh, kind)
            text = label if fld is None else f"{label} {getattr(s, fld)}"
            cv.text(cx + cw / 2, by + bh / 2, text, size=_FONT - 1,
                    gid=None if fld is None else f"{name}:{fld}")
    cv.text(x + w / 2, y + 0.11, f"{weights / 1024:.0f}K params \u00b7 {_count(macs)} ops",
            size=_FONT - 2, color="#333333", gid=f"{name}:cost")


def _aux(cv: _Canvas, x: float, top: float, w: float, head: nn.Module, tap: str, label: str,
         shapes: dict[str, tuple]) -> float:
    """One aux head beside its tap; returns the y of its arrow."""
    h = _INC_H * 1.15
    cv.box(x, top - h, w, h, "aux", gid=label)
    tap_shape = shapes[tap][1]
    n_in = tap_shape[1]
    # The paper's 5x5/3 average pool at a 14x14 tap; an adaptive pool to 4x4 at other sizes.
    paper_pool = head.pool_mode == "paper" and tuple(tap_shape[-2:]) == (14, 14)
    lines = [(f"{label} (training only)", {"weight": "bold"}),
             ("avg pool 5\u00d75/3" if paper_pool else "adaptive avg pool \u2192 4\u00d74", {}), (f"conv 1\u00d71 {n_in}\u2192{head.conv.conv.out_channels}", {}),
             (f"FC {head.fc1.out_features} \u00b7 dropout {head.dropout.p:.0%}", {}),
             (f"linear {head.fc1.out_features}\u2192"
              f"{getattr(head.fc2, 'out_features', head.fc1.out_features)} \u00b7 softmax", {})]
    for i, (t, kw) in enumerate(lines):
        cv.text(x + w / 2, top - 0.14 - i * 0.195, t, size=_FONT - (0 if i == 0 else 1),
                gid=f"{label}:line{i}", **kw)
    return top - 0.14


def _columns(model: nn.Module) -> list[list[str]]:
    """Stem | stage 3 | stage 4 | stage 5 + classifier, as module names ("softmax" last)."""
    names = list(model.stage_names)
    first = names.index(TABLE1[0].name)
    cols, cur = [names[:first]], []
    for row in TABLE1:
        cur.append(row if isinstance(row, str) else row.name)
        if isinstance(row, str):
            cols.append(cur)
            cur = []
    cols.append(cur + ["avgpool", "dropout", "fc", "softmax"])
    return cols


def _draw_column(cv: _Canvas, model: nn.Module, col: list[str], x: float, w: float, top: float,
                 shapes: dict[str, tuple], macs: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Boxes from ``top`` down; returns name -> (top y, bottom y) of each box drawn."""
    y, placed = top, {}
    for name in col:
        if name == "softmax":
            out = shapes["fc"][1]
            cv.labelled(x, y - _SIMPLE_H, w, _SIMPLE_H, "head", "softmax", _x((1, 1, out[-1])),
                        gid="softmax")
            placed[name] = (y, y - _SIMPLE_H)
            y -= _SIMPLE_H + _GAP
            continue
        m = getattr(model, name)
        if isinstance(m, Inception):
            _inception(cv, x, y, w, m, shapes[name][1], _weights([m]), macs.get(name, 0),
                       model.variant.kernel5x5)
            placed[name] = (y, y - _INC_H)
            y -= _INC_H + _GAP
            continue
        d = _describe(name, m, shapes)
        if d is None:
            continue
        kind, title, detail = d
        if kind in ("conv", "reduce") or isinstance(m, nn.Linear):
            ops = macs.get(name, 0)
            k = _weights([m]) / 1024
            detail += f" \u00b7 {k:.{0 if k >= 10 else 1}f}K \u00b7 {_count(ops)} ops"
        cv.labelled(x, y - _SIMPLE_H, w, _SIMPLE_H, kind, title, detail, gid=name)
        placed[name] = (y, y - _SIMPLE_H)
        y -= _SIMPLE_H + _GAP
    for (a, b) in zip(list(placed.values()), list(placed.values())[1:]):
        cv.arrow([(x + w / 2, a[1]), (x + w / 2, b[0])])
    return placed


def network_figure(*, variant: str = "paper", size: int = 224, num_classes: int = 1000,
                   stem: str = "paper") -> Any:
    """The network as the paper's Figure 3, from the built model (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    model = build_meta_model(variant=variant, num_classes=num_classes, stem=stem, aux_logits=True)
    shapes, macs = _profile(model, size)
    totals = table1(variant=variant, size=size, num_classes=num_classes, stem=stem)["totals"]
    fig = Figure(figsize=FIGSIZE)
    cv = _Canvas(fig)
    bn = " (BatchNorm)" if model.variant.batchnorm else ""
    cv.text(0.15, 7.22, f"GoogLeNet (Inception v1), {variant} variant{bn}, {size}\u00d7{size} input: "
            f"{totals['params_with_biases']:,} parameters, "
            f"{totals['multiply_adds'] / 1e9:.2f}G multiply-adds, {totals['depth']} layers",
            ha="left", size=14, weight="bold", gid="title")
    cv.text(0.15, 6.92, "Inception widths from Table 1: #1\u00d71 | #3\u00d73 reduce \u2192 #3\u00d73"
            " | #5\u00d75 reduce \u2192 #5\u00d75 | pool \u2192 pool proj, concatenated. "
            "params: weights without biases (K = 1024); ops: multiply-adds, as in Table 1.",
            ha="left", size=_FONT, color="#333333", gid="subtitle")
    # Column x and width, inches: stem, stage 3, stage 4, aux heads, stage 5 + classifier.
    xs, ws = (0.15, 2.7, 5.6, 8.45, 10.6), (2.25, 2.6, 2.6, 1.9, 2.55)
    top = 6.7
    cols = _columns(model)
    order = [0, 1, 2, 4]
    placed: list[dict[str, tuple[float, float]]] = []
    cv.labelled(xs[0], top - _SIMPLE_H, ws[0], _SIMPLE_H, "io", "input",
                _x((size, size, model.in_chans)), gid="input")
    first = {0: top - _SIMPLE_H - _GAP}
    for i, col in zip(order, cols):
        p = _draw_column(cv, model, col, xs[i], ws[i], first.get(i, top), shapes, macs)
        placed.append(p)
    cv.arrow([(xs[0] + ws[0] / 2, top - _SIMPLE_H), (xs[0] + ws[0] / 2, first[0])])
    floor = 0.22
    for (ia, pa), (ib, pb) in zip(zip(order, placed), list(zip(order, placed))[1:]):
        xa, xb = xs[ia] + ws[ia] / 2, xs[ib] + ws[ib] / 2
        gap_x = xs[ib] - 0.12
        bottom = list(pa.values())[-1][1]
        first_top = list(pb.values())[0][0]
        cv.arrow([(xa, bottom), (xa, floor), (gap_x, floor), (gap_x, top + 0.08),
                  (xb, top + 0.08), (xb, first_top)])
    for tap, label in AUX_TAPS.items():
        head = getattr(model, label)
        if head is None:
            continue
        t = placed[2][tap][0]
        ay = _aux(cv, xs[3], t, ws[3], head, tap, label, shapes)
        cv.arrow([(xs[2] + ws[2], ay), (xs[3], ay)])
    return fig


# -- one module, naive (Figure 2a) vs reduced (Figure 2b) -----------------------------------

def _module_diagram(cv: _Canvas, x: float, w: float, spec: InceptionSpec, naive: bool,
                    in_hwc: tuple[int, int, int], out_c: int, kernel5x5: int) -> None:
    """Figure 2a/2b, bottom-up as in the paper: previous layer, branches, concatenation."""
    h, wd, c_in = in_hwc
    k5 = f"{kernel5x5}\u00d7{kernel5x5}"
    tag = "naive" if naive else "reduced"
    bottom, row_h, concat_y = 1.25, 0.55, 5.15
    cv.labelled(x + 0.3, bottom, w - 0.6, row_h, "io", "previous layer", _x(in_hwc), gid=f"{tag}:in")
    cv.labelled(x + 0.3, concat_y, w - 0.6, row_h, "module", "filter concatenation",
                _x((h, wd, out_c)), gid=f"{tag}:out")
    if naive:  # one layer per branch; the pool passes its c_in channels through
        rows = [[("conv", "1\u00d71 conv", spec.n1x1)], [("conv", "3\u00d73 conv", spec.n3x3)],
                [("conv", f"{k5} conv", spec.n5x5)], [("pool", "3\u00d73 max pool", c_in)]]
    else:
        rows = [[("conv", "1\u00d71 conv", spec.n1x1)],
                [("reduce", "1\u00d71 conv", spec.n3x3red), ("conv", "3\u00d73 conv", spec.n3x3)],
                [("reduce", "1\u00d71 conv", spec.n5x5red), ("conv", f"{k5} conv", spec.n5x5)],
                [("pool", "3\u00d73 max pool", c_in), ("reduce", "1\u00d71 conv", spec.pool_proj)]]
    gap = 0.1
    bw = (w - 3 * gap) / 4
    levels = (2.45, 3.7)  # y of the first and second layer of a branch
    for i, branch in enumerate(rows):
        bx = x + i * (bw + gap)
        ys = [levels[1]] if len(branch) == 1 else list(levels)
        if naive:
            ys = [(levels[0] + levels[1]) / 2 + 0.0]
        prev = bottom + row_h
        for j, ((kind, label, n), y) in enumerate(zip(branch, ys)):
            cv.labelled(bx, y, bw, row_h, kind, label, str(n), gid=f"{tag}:b{i}l{j}",
                        size=_FONT - 0.5)
            cv.arrow([(bx + bw / 2, prev), (bx + bw / 2, y)])
            prev = y + row_h
        cv.arrow([(bx + bw / 2, prev), (bx + bw / 2, concat_y)])


def _cost_bars(fig: Any, rows: list[dict[str, Any]], chosen: str) -> None:
    ax = fig.add_axes((0.70, 0.2, 0.28, 0.62))
    names = [r["module"].replace("inception_", "") for r in rows][::-1]
    red = [r["reduced"]["multiply_adds"] / 1e6 for r in rows][::-1]
    nai = [r["naive_same_input"]["multiply_adds"] / 1e6 for r in rows][::-1]
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], nai, height=0.4, color="#e06666", label="naive (2a)")
    ax.barh([y - 0.2 for y in ys], red, height=0.4, color="#6fa8dc", label="reduced (2b)")
    for y, a, b in zip(ys, nai, red):
        ax.text(a, y + 0.2, f" {a / b:.1f}\u00d7", va="center", fontsize=_FONT - 1)
    ax.set_yticks(list(ys), names, fontsize=_FONT)
    for t, n in zip(ax.get_yticklabels(), names):
        if f"inception_{n}" == chosen:
            t.set_fontweight("bold")
    ax.set_xlabel("multiply-adds (M), each module on the same input", fontsize=_FONT)
    ax.tick_params(axis="x", labelsize=_FONT - 1)
    ax.set_xlim(0, max(nai) * 1.25)
    ax.legend(fontsize=_FONT - 0.5, loc="lower right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("every Inception module", fontsize=_FONT + 1.5)


def inception_figure(*, module: str = "inception_3a", variant: str = "paper", size: int = 224) -> Any:
    """One Inception module naive (Figure 2a) beside reduced (Figure 2b), on the same input,
    with weights and multiply-adds, and every module's cost both ways (``naive_comparison``)."""
    from matplotlib.figure import Figure

    specs = {s.name: s for s in TABLE1 if isinstance(s, InceptionSpec)}
    if module not in specs:
        raise ValueError(f"module must be one of {', '.join(specs)}, got {module!r}")
    comp = naive_comparison(size=size, variant=variant)
    row = next(r for r in comp["rows"] if r["module"] == module)
    kernel5x5 = build_meta_model(variant=variant, aux_logits=False).variant.kernel5x5
    fig = Figure(figsize=FIGSIZE)
    cv = _Canvas(fig)
    red, nai = row["reduced"], row["naive_same_input"]
    whole = comp["whole_network"]
    cv.text(0.15, 7.15, f"{module}: naive vs with dimension reductions (Figure 2), variant "
            f"{variant}, input {size}\u00d7{size}", ha="left", size=15, weight="bold", gid="title")
    h, w, c = row["input"]
    for x, naive, title, cost in ((0.15, True, "(a) naive", nai), (4.6, False, "(b) reduced", red)):
        cv.text(x + 2.15, 6.2, title, size=_FONT + 3, weight="bold")
        _module_diagram(cv, x, 4.3, specs[module], naive, (h, w, c), cost["out_channels"], kernel5x5)
        cv.text(x + 2.15, 0.85, f"{cost['weights']:,} weights \u00b7 "
                f"{cost['multiply_adds'] / 1e6:.1f}M multiply-adds", size=_FONT + 1.5,
                gid=f"{'naive' if naive else 'reduced'}:cost")
    cv.text(0.15, 0.42, f"Here the naive module costs {nai['multiply_adds'] / red['multiply_adds']:.1f}"
            f"\u00d7 the multiply-adds, and its pool branch widens the output to "
            f"{nai['out_channels']} channels instead of {red['out_channels']}.",
            ha="left", size=_FONT + 0.5, color="#333333", gid="footer")
    cv.text(0.15, 0.17, f"A whole network of naive modules: {whole['naive']:,} parameters, "
            f"{whole['naive_multiply_adds'] / 1e9:.1f}G multiply-adds; with reductions: "
            f"{whole['reduced']:,} parameters, {whole['reduced_multiply_adds'] / 1e9:.2f}G.",
            ha="left", size=_FONT + 0.5, color="#333333", gid="footer2")
    _cost_bars(fig, comp["rows"], module)
    return fig


def save_figure(fig: Any, file: str | IO[bytes], fmt: str) -> None:
    """Write ``fig`` as ``fmt`` ("svg" or "png"): SVG with real text and stable ids (no date, a
    fixed hash salt, so the same model gives the same file), PNG at ``DPI``."""
    import matplotlib

    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be svg or png, got {fmt!r}")
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "googlenet"}):
        fig.savefig(file, format=fmt, dpi=DPI, metadata=meta)
