"""`googlenet summary`: the paper's Table 1, regenerated from the built model.

Nothing in the computed columns is a constant: output sizes come from forward hooks, widths from
the modules, params from the weight tensors (biases excluded, in K = 1024, the paper's unit), ops
(multiply-adds) from ``torch.utils.flop_counter``, depth from the module structure. The paper's
own values (PAPER_TABLE1) are printed beside them, with the difference, and the rows where the
paper disagrees with itself are flagged with the explanation (PAPER.md, "How to read").

The model is built on the ``meta`` device: shapes and counts without memory or compute, so even
the naive-module network (hundreds of millions of weights) summarises instantly.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .blocks import AUX_TAPS, TABLE1, ConvBlock, Inception, InceptionSpec, SeparableConvBlock
from .choices import VARIANTS
from .googlenet import GoogLeNet

WIDTH_COLUMNS = ("#1x1", "#3x3 reduce", "#3x3", "#5x5 reduce", "#5x5", "pool proj")
# A computed value within this relative distance of the paper's printed (rounded) one agrees.
TOLERANCE = 0.03


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1, as printed."""

    type: str
    patch: str
    output: tuple[int, int, int]
    depth: int
    widths: tuple[Optional[int], ...]
    params_k: Optional[float]
    ops_m: Optional[float]


_ = None
PAPER_TABLE1: tuple[PaperRow, ...] = (
    PaperRow("convolution", "7x7/2", (112, 112, 64), 1, (_, _, _, _, _, _), 2.7, 34),
    PaperRow("max pool", "3x3/2", (56, 56, 64), 0, (_, _, _, _, _, _), None, None),
    PaperRow("convolution", "3x3/1", (56, 56, 192), 2, (_, 64, 192, _, _, _), 112, 360),
    PaperRow("max pool", "3x3/2", (28, 28, 192), 0, (_, _, _, _, _, _), None, None),
    PaperRow("inception (3a)", "", (28, 28, 256), 2, (64, 96, 128, 16, 32, 32), 159, 128),
    PaperRow("inception (3b)", "", (28, 28, 480), 2, (128, 128, 192, 32, 96, 64), 380, 304),
    PaperRow("max pool", "3x3/2", (14, 14, 480), 0, (_, _, _, _, _, _), None, None),
    PaperRow("inception (4a)", "", (14, 14, 512), 2, (192, 96, 208, 16, 48, 64), 364, 73),
    PaperRow("inception (4b)", "", (14, 14, 512), 2, (160, 112, 224, 24, 64, 64), 437, 88),
    PaperRow("inception (4c)", "", (14, 14, 512), 2, (128, 128, 256, 24, 64, 64), 463, 100),
    PaperRow("inception (4d)", "", (14, 14, 528), 2, (112, 144, 288, 32, 64, 64), 580, 119),
    PaperRow("inception (4e)", "", (14, 14, 832), 2, (256, 160, 320, 32, 128, 128), 840, 170),
    PaperRow("max pool", "3x3/2", (7, 7, 832), 0, (_, _, _, _, _, _), None, None),
    PaperRow("inception (5a)", "", (7, 7, 832), 2, (256, 160, 320, 32, 128, 128), 1072, 54),
    PaperRow("inception (5b)", "", (7, 7, 1024), 2, (384, 192, 384, 48, 128, 128), 1388, 71),
    PaperRow("avg pool", "7x7/1", (1, 1, 1024), 0, (_, _, _, _, _, _), None, None),
    PaperRow("dropout (40%)", "", (1, 1, 1024), 0, (_, _, _, _, _, _), None, None),
    PaperRow("linear", "", (1, 1, 1000), 1, (_, _, _, _, _, _), 1000, 1),
    PaperRow("softmax", "", (1, 1, 1000), 0, (_, _, _, _, _, _), None, None),
)
del _

# The model's modules that make up each Table 1 row, in the same order as PAPER_TABLE1.
# LRN is not a row of Table 1; it is counted with the layer it follows.
ROW_MODULES: tuple[tuple[str, ...], ...] = (
    ("conv1",), ("pool1", "norm1"), ("conv2_reduce", "conv2", "norm2"), ("pool2",),
    ("inception_3a",), ("inception_3b",), ("pool3",),
    ("inception_4a",), ("inception_4b",), ("inception_4c",), ("inception_4d",), ("inception_4e",),
    ("pool4",), ("inception_5a",), ("inception_5b",), ("avgpool",), ("dropout",), ("fc",), (),
)

# Rows where the paper's numbers disagree with its own widths (PAPER.md, "How to read").
PAPER_INCONSISTENCIES = {
    0: ("the paper lists 2.7K/34M, which a full 7x7x3x64 conv (9.2K, 118M) cannot give; it fits "
        "exactly a depthwise-separable 7x7 with depth multiplier 8 (7*7*3*8 + 3*8*64 = 2,712 "
        "weights, 34.0M ops): `--stem separable` reproduces it. The paper's text and Caffe use the "
        "full conv, as this model does by default."),
    9: ("the paper lists 463K, but its own widths give 497.5K (while its 100M ops do match the "
        "widths); the cause is unknown, so a model built from the widths cannot match this cell."),
    13: ("the paper lists 1072K/54M, but its own widths give 1018K/51.1M; the cause is unknown, so "
         "a model built from the widths cannot match these cells."),
}


@dataclass
class Row:
    type: str
    patch: str
    output: tuple[int, int, int]
    depth: int
    widths: tuple[Optional[int], ...]
    params: int  # conv/linear weights, biases excluded
    ops: int  # multiply-adds
    paper: Optional[PaperRow] = None
    flags: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def params_k(self) -> float:
        return self.params / 1024

    @property
    def ops_m(self) -> float:
        return self.ops / 1e6


def _layer_depth(m: nn.Module) -> int:
    """Layers with parameters along the longest path through ``m`` (the paper's "depth")."""
    if isinstance(m, (ConvBlock, SeparableConvBlock, nn.Linear)):
        return 1  # a separable conv is one layer, as in BN-Inception's description
    if isinstance(m, Inception):
        return 1 if m.naive else 2  # naive: one conv per branch; reduced: 1x1 reduce -> conv
    return 0


def _weights(mods: Sequence[nn.Module]) -> int:
    return sum(sub.weight.numel() for m in mods for sub in m.modules()
               if isinstance(sub, (nn.Conv2d, nn.Linear)))


def _patch(m: nn.Module, in_shape: Optional[torch.Size]) -> str:
    def pair(v: Any) -> int:
        return v[0] if isinstance(v, (tuple, list)) else int(v)

    if isinstance(m, ConvBlock):
        c = m.conv
        return f"{pair(c.kernel_size)}x{pair(c.kernel_size)}/{pair(c.stride)}"
    if isinstance(m, SeparableConvBlock):
        c = m.depthwise
        return f"{pair(c.kernel_size)}x{pair(c.kernel_size)}/{pair(c.stride)} sep"
    if isinstance(m, nn.MaxPool2d):
        return f"{pair(m.kernel_size)}x{pair(m.kernel_size)}/{pair(m.stride)}"
    if isinstance(m, nn.AdaptiveAvgPool2d) and in_shape is not None:
        return f"{in_shape[-2]}x{in_shape[-1]}/1"  # global average: the paper's 7x7/1 at 224
    return ""


def build_meta_model(**kwargs: Any) -> GoogLeNet:
    with torch.device("meta"):
        return GoogLeNet(init_weights=False, **kwargs).eval()


def _profile(model: GoogLeNet, size: int) -> tuple[dict[str, tuple], dict[str, int]]:
    """Per-module (input shape, output shape) and multiply-adds, from one meta forward."""
    shapes: dict[str, tuple] = {}
    hooks = []
    for name, m in model.named_children():
        hooks.append(m.register_forward_hook(
            lambda mod, inp, out, name=name: shapes.__setitem__(name, (inp[0].shape, out.shape))))
    x = torch.zeros(1, model.in_chans, size, size, device="meta")
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    root = type(model).__name__
    macs = {}
    for key, ops in counter.get_flop_counts().items():
        if key.startswith(root + "."):
            macs[key[len(root) + 1:]] = sum(ops.values()) // 2  # FLOPs = 2 x multiply-adds
    return shapes, macs


def _aux_macs(model: GoogLeNet, shapes: dict[str, tuple]) -> int:
    """Multiply-adds of the aux heads (they only run in training), on their taps' shapes."""
    counter = FlopCounterMode(display=False)
    with counter:
        for tap, head in AUX_TAPS.items():
            if getattr(model, head) is not None:
                getattr(model, head)(torch.zeros(shapes[tap][1], device="meta"))
    return counter.get_total_flops() // 2


def table1(*, variant: str = "paper", size: int = 224, num_classes: int = 1000,
           stem: str = "paper", inception: str = "reduced") -> dict[str, Any]:
    """Table 1 computed from the model, each row beside the paper's, plus totals."""
    model = build_meta_model(variant=variant, num_classes=num_classes, stem=stem,
                             inception=inception, aux_logits=True)
    shapes, macs = _profile(model, size)
    rows: list[Row] = []
    for i, (names, paper) in enumerate(zip(ROW_MODULES, PAPER_TABLE1)):
        if not names:  # softmax: the linear layer's output
            out = shapes["fc"][1]
            rows.append(Row("softmax", "", (1, 1, out[-1]), 0, (None,) * 6, 0, 0, paper))
            continue
        mods = [getattr(model, n) for n in names]
        first = mods[0]
        # The layer that names the row's patch/stride: conv2's 3x3, not its 1x1 reduction.
        shaped = [n for n, m in zip(names, mods) if isinstance(
            m, (ConvBlock, SeparableConvBlock, nn.MaxPool2d, nn.AdaptiveAvgPool2d))]
        key = shaped[-1] if shaped else names[0]
        in_shape, out_shape = shapes[names[0]][0], shapes[names[-1]][1]
        if len(out_shape) == 4:
            output = (out_shape[-2], out_shape[-1], out_shape[-3])
        else:
            output = (1, 1, out_shape[-1])
        widths: tuple[Optional[int], ...] = (None,) * 6
        if isinstance(first, Inception):
            s = first.spec
            widths = ((s.n1x1, None, s.n3x3, None, s.n5x5, None) if first.naive
                      else (s.n1x1, s.n3x3red, s.n3x3, s.n5x5red, s.n5x5, s.pool_proj))
        elif names[0] == "conv2_reduce":
            widths = (None, model.conv2_reduce.conv.out_channels, model.conv2.conv.out_channels,
                      None, None, None)
        typ = paper.type
        if isinstance(first, nn.Dropout):
            typ = f"dropout ({round(first.p * 100)}%)"
        rows.append(Row(typ, _patch(getattr(model, key), shapes[key][0]), output, sum(_layer_depth(m) for m in mods),
                        widths, _weights(mods), sum(macs.get(n, 0) for n in names), paper))
    for i, row in enumerate(rows):
        _compare(row, i, model)
    body = [getattr(model, n) for n in model.stage_names] + [model.fc]
    aux = [m for m in (model.aux1, model.aux2) if m is not None]
    n_body = sum(p.numel() for m in body for p in m.parameters())
    n_aux = sum(p.numel() for m in aux for p in m.parameters())
    totals = {
        "params_with_biases": n_body,
        "params_with_biases_and_aux": n_body + n_aux,
        "weights_without_biases": _weights(body),
        "weights_without_biases_and_with_aux": _weights(body + aux),
        "multiply_adds": sum(macs.get(n, 0) for n in list(model.stage_names) + ["fc"]),
        "multiply_adds_aux": _aux_macs(model, shapes),
        "depth": sum(r.depth for r in rows),
        "paper_multiply_adds_claim": 1.5e9,  # "1.5 billion multiply-adds at inference time" (§5)
        "paper_depth_claim": 22,
    }
    return {"variant": variant, "size": size, "num_classes": num_classes, "stem": stem,
            "inception": inception, "rows": rows, "totals": totals}


def _rel(a: float, b: float) -> float:
    return (a - b) / b if b else 0.0


def _compare(row: Row, i: int, model: GoogLeNet) -> None:
    p = row.paper
    if p is None:
        return
    at_paper_size = row.output[:2] == p.output[:2] or i >= 15
    if row.output != p.output and at_paper_size:
        row.flags.append("output")
    if any(pw is not None and w != pw for w, pw in zip(row.widths, p.widths)):
        row.flags.append("widths")
    if p.params_k is not None and abs(_rel(row.params_k, p.params_k)) > TOLERANCE:
        row.flags.append("params")
    if p.ops_m is not None and at_paper_size and abs(_rel(row.ops_m, p.ops_m)) > TOLERANCE:
        row.flags.append("ops")
    if p.patch and row.patch and row.patch.split()[0] != p.patch and at_paper_size:
        row.flags.append("patch")
    notes = []
    if row.flags and i in PAPER_INCONSISTENCIES and model.variant.name != "torchvision":
        notes.append("paper inconsistency: " + PAPER_INCONSISTENCIES[i])
    if i == 0 and model.stem_kind == "separable" and not row.flags:
        notes.append(f"separable stem: {row.params:,} weights ({row.params_k:.2f}K, printed 2.7K "
                     f"in the paper) and {row.ops_m:.1f}M multiply-adds, the paper's row 1")
    v = model.variant
    if row.flags and isinstance(getattr(model, ROW_MODULES[i][0], None) if ROW_MODULES[i] else None,
                                Inception):
        if v.kernel5x5 != 5:
            notes.append(f"{v.name} variant: {v.kernel5x5}x{v.kernel5x5} conv in the '5x5' branch")
        if model.inception_kind == "naive":
            notes.append("naive module: no reductions, the pool branch passes its input through")
    if "patch" in row.flags and i == 12:
        notes.append(f"{v.name} variant: {v.pool4_kernel}x{v.pool4_kernel}/2 max pool before 5a")
    if row.flags and i == 16:
        notes.append(f"{v.name} variant: dropout {model.drop_rate:g}")
    if row.flags and not notes:
        notes.append("differs from the paper (see the flagged columns)")
    row.note = " ".join(notes)


# -- naive vs reduced ---------------------------------------------------------------------

def naive_comparison(*, size: int = 224, variant: str = "paper") -> dict[str, Any]:
    """Module by module: the reduced module, the naive module on the same input, and the naive
    network, where each module's input has widened through the naive modules before it."""
    reduced = build_meta_model(variant=variant, inception="reduced", aux_logits=False)
    naive = build_meta_model(variant=variant, inception="naive", aux_logits=False)
    r_shapes, r_macs = _profile(reduced, size)
    n_shapes, n_macs = _profile(naive, size)
    v = VARIANTS[variant]
    rows = []
    for spec in (s for s in TABLE1 if isinstance(s, InceptionSpec)):
        in_shape = r_shapes[spec.name][0]
        c_in, h, w = in_shape[1], in_shape[2], in_shape[3]
        # The naive module alone on the reduced network's input (the paper's Figure 2 contrast).
        with torch.device("meta"):
            alone = Inception(c_in, spec, conv=lambda *a, **k: ConvBlock(
                *a, batchnorm=v.batchnorm, bn_eps=v.bn_eps, **k), kernel5x5=v.kernel5x5, naive=True)
        counter = FlopCounterMode(display=False)
        with counter:
            alone(torch.zeros(1, c_in, h, w, device="meta"))
        rm, nm = getattr(reduced, spec.name), getattr(naive, spec.name)
        rows.append({
            "module": spec.name, "input": [h, w, c_in],
            "reduced": {"weights": _weights([rm]), "multiply_adds": r_macs[spec.name],
                        "out_channels": rm.out_channels},
            "naive_same_input": {"weights": _weights([alone]),
                                 "multiply_adds": counter.get_total_flops() // 2,
                                 "out_channels": alone.out_channels},
            "naive_network": {"in_channels": n_shapes[spec.name][0][1], "weights": _weights([nm]),
                              "multiply_adds": n_macs[spec.name], "out_channels": nm.out_channels},
        })
    total = {k: sum(r[k]["weights"] for r in rows) for k in ("reduced", "naive_same_input", "naive_network")}
    total_ops = {k: sum(r[k]["multiply_adds"] for r in rows)
                 for k in ("reduced", "naive_same_input", "naive_network")}
    whole = {"reduced": sum(p.numel() for p in reduced.parameters()),
             "naive": sum(p.numel() for p in naive.parameters()),
             "reduced_multiply_adds": sum(r_macs.get(n, 0) for n in list(reduced.stage_names) + ["fc"]),
             "naive_multiply_adds": sum(n_macs.get(n, 0) for n in list(naive.stage_names) + ["fc"])}
    return {"size": size, "variant": variant, "rows": rows, "weights_total": total,
            "multiply_adds_total": total_ops, "whole_network": whole}


# -- formatting ---------------------------------------------------------------------------

def _fmt_k(v: Optional[float]) -> str:
    return "" if v is None else (f"{v:.2f}K" if v < 10 else f"{v:.0f}K" if v == int(v) else f"{v:.1f}K")


def _fmt_m(v: Optional[float]) -> str:
    return "" if v is None else (f"{v:.1f}M" if v < 10 else f"{v:.1f}M")


def _diff(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or not b:
        return ""
    return f"{_rel(a, b) * 100:+.1f}%"


def _table_cells(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["type", "patch/stride", "output", "depth", *WIDTH_COLUMNS, "params", "paper",
              "diff", "ops", "paper", "diff", "flag"]
    cells = []
    at224 = result["size"] == 224
    for r in result["rows"]:
        p = r.paper
        has_params = bool(r.params) or (p is not None and p.params_k is not None)
        cells.append([
            r.type, r.patch, "x".join(map(str, r.output)), str(r.depth),
            *["" if w is None else str(w) for w in r.widths],
            _fmt_k(r.params_k) if has_params else "", _fmt_k(p.params_k) if p else "",
            _diff(r.params_k, p.params_k) if p and has_params else "",
            _fmt_m(r.ops_m) if has_params else "",
            # the paper's ops are for a 224 input; at other sizes there is nothing to compare
            _fmt_m(p.ops_m) if p and p.ops_m and at224 else "",
            _diff(r.ops_m, p.ops_m) if p and p.ops_m and at224 else "",
            "!" + ",".join(r.flags) if r.flags else ""])
    return header, cells


def _text_table(header: list[str], cells: list[list[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda cs: "  ".join(c.rjust(w) if j >= 2 else c.ljust(w)  # noqa: E731
                                for j, (c, w) in enumerate(zip(cs, widths))).rstrip()
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(c) for c in cells])


def _md_table(header: list[str], cells: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(out)


def _totals_lines(t: dict[str, Any]) -> list[str]:
    return [
        f"parameters (weights + biases), without aux heads: {t['params_with_biases']:,}",
        f"parameters (weights + biases), with aux heads:    {t['params_with_biases_and_aux']:,}",
        f"weights without biases, without aux heads:        {t['weights_without_biases']:,}",
        f"weights without biases, with aux heads:           {t['weights_without_biases_and_with_aux']:,}",
        f"multiply-adds (inference, no aux heads): {t['multiply_adds'] / 1e9:.3f} G "
        f"(paper: 'about 1.5 billion'; aux heads add {t['multiply_adds_aux'] / 1e6:.1f} M in training)",
        f"depth (layers with parameters): {t['depth']} (paper: {t['paper_depth_claim']})",
    ]


def render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        def row_json(r: Row) -> dict[str, Any]:
            d = asdict(r)
            d["params_k"], d["ops_m"] = r.params_k, r.ops_m
            return d
        return json.dumps({**result, "rows": [row_json(r) for r in result["rows"]]}, indent=2)
    header, cells = _table_cells(result)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header + ["note"])
        for c, r in zip(cells, result["rows"]):
            w.writerow(c + [r.note])
        return buf.getvalue()
    title = (f"Table 1 from the built model: variant={result['variant']}, stem={result['stem']}, "
             f"inception={result['inception']}, input {result['size']}x{result['size']}, "
             f"{result['num_classes']} classes. params = weights without biases (K = 1024); "
             f"ops = multiply-adds (torch.utils.flop_counter).")
    notes = [f"- {r.type}: {r.note}" for r in result["rows"] if r.note]
    totals = _totals_lines(result["totals"])
    if fmt == "markdown":
        parts = [title, "", _md_table(header, cells), ""]
        parts += (["Flagged rows:", "", *notes, ""] if notes else [])
        parts += [f"- {t}" for t in totals]
        return "\n".join(parts) + "\n"
    parts = [title, "", _text_table(header, cells), ""]
    parts += (["Flagged rows (! = differs from the paper by more than "
               f"{TOLERANCE:.0%} or exactly, in that column):", *notes, ""] if notes else [])
    return "\n".join(parts + totals) + "\n"


def render_naive(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2)
    header = ["module", "input", "reduced weights", "ops", "out",
              "naive weights", "ops", "out", "x ops",
              "naive-net input", "weights", "ops", "out"]
    cells = []
    for r in result["rows"]:
        red, alone, net = r["reduced"], r["naive_same_input"], r["naive_network"]
        cells.append([
            r["module"], "x".join(map(str, r["input"])),
            f"{red['weights']:,}", f"{red['multiply_adds'] / 1e6:.1f}M", str(red["out_channels"]),
            f"{alone['weights']:,}", f"{alone['multiply_adds'] / 1e6:.1f}M", str(alone["out_channels"]),
            f"{alone['multiply_adds'] / red['multiply_adds']:.1f}x",
            str(net["in_channels"]), f"{net['weights']:,}", f"{net['multiply_adds'] / 1e6:.1f}M",
            str(net["out_channels"])])
    wt, ot, whole = result["weights_total"], result["multiply_adds_total"], result["whole_network"]
    cells.append(["total", "", f"{wt['reduced']:,}", f"{ot['reduced'] / 1e6:.0f}M", "",
                  f"{wt['naive_same_input']:,}", f"{ot['naive_same_input'] / 1e6:.0f}M", "",
                  f"{ot['naive_same_input'] / ot['reduced']:.1f}x", "",
                  f"{wt['naive_network']:,}", f"{ot['naive_network'] / 1e6:.0f}M", ""])
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows([header] + cells)
        return buf.getvalue()
    table = _md_table(header, cells) if fmt == "markdown" else _text_table(header, cells)
    title = (f"Naive (Figure 2a) vs reduced (Figure 2b) inception modules, variant "
             f"{result['variant']}, input {result['size']}x{result['size']}. 'naive' = the naive "
             f"module on the same input as the reduced one; 'naive-net' = the whole network built "
             f"from naive modules, where the pool branch's pass-through widens every input.")
    foot = (f"Whole network: reduced {whole['reduced']:,} parameters, "
            f"{whole['reduced_multiply_adds'] / 1e9:.2f} G multiply-adds; naive "
            f"{whole['naive']:,} parameters, {whole['naive_multiply_adds'] / 1e9:.2f} G multiply-adds "
            f"({whole['naive_multiply_adds'] / whole['reduced_multiply_adds']:.1f}x).")
    return "\n".join([title, "", table, "", foot]) + "\n"
