"""The report of an experiment directory: every number read back from the runs' own files
(``results.json``, ``metrics.csv``, ``config.toml``; the crops evaluation's ``results.json``),
never recomputed from a model; aggregated over seeds, each claim given a verdict by a stated rule.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Optional

from ..tasks import resolve_config
from .arms import DEFAULTS_NOTE, Claim, Experiment, model_cost

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["run_summary", "aggregate", "verdict", "RULE", "render_markdown", "fmt_stat"]

NOISE_FACTOR = 2.0
RULE = (f"A claim measured over seeds is **supported** when the mean difference goes the way the "
        f"paper says by more than {NOISE_FACTOR:g}x the larger of the two arms' standard "
        f"deviations over seeds, **not supported** when it goes the other way by that much, and "
        f"**not measurable on this data** otherwise (the difference is within the seeds' spread, "
        f"or there is one seed). Counts (parameters, multiply-adds) have no noise: the sign decides.")


def _run_dir(run: Path) -> Any:
    """``engine.rundir.RunDir(run)``, imported here: it loads torch (through the weights'
    file names), and `googlenet experiment --help` imports this module."""
    from ..engine.rundir import RunDir

    return RunDir(run)


def _read_metrics(run: Path) -> list[dict[str, float]]:
    path = _run_dir(run).metrics
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: float(v) for k, v in r.items() if v not in ("", None)})
    return rows


def _mean_over(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
    return sum(vals) / len(vals) if vals else float("nan")


def run_summary(run: Path) -> dict[str, Any]:
    """One finished run, as its files say: final accuracy, speed, gap, gradient norms, costs."""
    res = json.loads(_run_dir(run).results.read_text())
    rows = _read_metrics(run)
    split = res.get("eval_split", "test")
    last = rows[-1] if rows else {}
    with open(_run_dir(run).config, "rb") as f:
        cfg = resolve_config(base=tomllib.load(f))
    size, m = cfg.data.image_size or 32, cfg.model
    cost = model_cost(size, variant=m.variant, inception=m.inception, stem=m.stem, width=m.width,
                      head=m.head, norm=m.norm_override, img_size=size if m.head == "fc" else None)
    out = {"run": run.name, "seed": cfg.system.seed, "top1": res[f"{split}_top1"],
           "top5": res[f"{split}_top5"], "eval_split": split, "steps": res["steps"],
           "epochs": res["epochs"], "wall_seconds": res["wall_seconds"],
           "images_per_s": _mean_over(rows, "images_per_s"),
           "train_val_gap": last.get("train_top1", math.nan) - last.get("val_top1", math.nan),
           "val_top1_last": last.get("val_top1", math.nan), **cost,
           "curves": {k: [r.get(k, math.nan) for r in rows] for k in (
               "epoch", "train_loss", "val_loss", "train_top1", "val_top1", "grad_norm_conv1",
               "grad_norm_conv2", "grad_norm_inception_5b")}}
    for key in ("grad_norm_conv1", "grad_norm_conv2", "grad_norm_inception_5b"):
        out[key] = _mean_over(rows, key)
    return out


def _stat(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": values}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "n": len(vals), "values": values}


SCALAR_KEYS = ("top1", "top5", "images_per_s", "train_val_gap", "grad_norm_conv1",
               "grad_norm_conv2", "grad_norm_inception_5b", "params", "multiply_adds",
               "wall_seconds")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: _stat([r[k] for r in runs if k in r]) for k in SCALAR_KEYS
            if any(k in r for r in runs)}


def verdict(claim: Claim, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a``: the arm's statistic of the claim's metric, ``b``: the baseline's; see RULE."""
    if a.get("mean") is None or b.get("mean") is None:
        missing = claim.metric if a.get("mean") is None else (claim.baseline_metric or claim.metric)
        why = f"nothing measured for {missing}" + (
            " (an ensemble needs at least 2 seeds)" if missing.startswith("ensemble") else "")
        return {"verdict": "not measurable on this data", "why": why, "difference": None}
    sign = 1.0 if claim.better == "higher" else -1.0
    d = a["mean"] - b["mean"]
    towards = sign * d
    if claim.kind == "exact":
        v = "supported" if towards > 0 else "not supported"
        why = f"{_num(a['mean'])} vs {_num(b['mean'])} ({_ratio(a['mean'], b['mean'])})"
        return {"verdict": v, "why": why, "difference": d}
    noise = NOISE_FACTOR * max(a["std"], b["std"])
    if min(a["n"], b["n"]) < 2 and max(a["n"], b["n"]) < 2:
        return {"verdict": "not measurable on this data", "difference": d,
                "why": f"difference {d:+.3g} from one seed: no spread to judge it by"}
    if towards > noise:
        v, rel = "supported", "beyond"
    elif towards < -noise:
        v, rel = "not supported", "the opposite way, beyond"
    else:
        v, rel = "not measurable on this data", "within"
    return {"verdict": v, "difference": d, "noise": noise,
            "why": f"difference {d:+.3g}, {rel} {NOISE_FACTOR:g}x the seeds' std ({noise:.3g})"}


def _num(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.1f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:,.0f}K"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def fmt_stat(s: Optional[dict[str, Any]], digits: int = 2) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    if s["n"] < 2:
        return f"{s['mean']:.{digits}f}" if abs(s["mean"]) < 1e4 else _num(s["mean"])
    if abs(s["mean"]) >= 1e4:
        return _num(s["mean"])  # a count: the same for every seed
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


METRIC_LABELS = {"crops_1": "1 model, 1 crop", "crops_10": "1 model, 10 crops",
                 "crops_144": "1 model, 144 crops", "ensemble_1": "ensemble of the seeds, 1 crop"}


def _arm_table(exp_result: dict[str, Any]) -> list[str]:
    split = next((r["eval_split"] for a in exp_result["arms"].values() for r in a["runs"]), "test")
    lines = [f"| arm | runs | {split} top-1 % | train-val gap (pts) | params (no aux) | "
             f"multiply-adds / image | train img/s | grad norm conv1 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, arm in exp_result["arms"].items():
        st = arm["stats"]
        lines.append(
            f"| {arm['label']} (`{name}`) | {len(arm['runs'])} | {fmt_stat(st.get('top1'))} | "
            f"{fmt_stat(st.get('train_val_gap'), 1)} | {fmt_stat(st.get('params'))} | "
            f"{fmt_stat(st.get('multiply_adds'))} | {fmt_stat(st.get('images_per_s'), 1)} | "
            f"{fmt_stat(st.get('grad_norm_conv1'), 3)} |")
    return lines


def _claims_table(exp_result: dict[str, Any]) -> list[str]:
    lines = ["| the paper says | measured | verdict |", "|---|---|---|"]
    for c in exp_result["claims"]:
        lines.append(f"| {c['statement']} | {c['arm_label']}: {fmt_stat(c['arm_stat'], 3)} vs "
                     f"{c['baseline_label']}: {fmt_stat(c['baseline_stat'], 3)} | "
                     f"**{c['verdict']}**: {c['why']} |")
    return lines


def _crops_table(exp_result: dict[str, Any]) -> list[str]:
    rows = exp_result.get("table3") or []
    if not rows:
        return []
    lines = ["", "Table 3 on this data (single models: mean ± std over seeds):", "",
             "| models | crops | cost (forward passes / image) | top-1 % | eval seconds |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['models']} | {r['crops']} | {r['cost']} | {fmt_stat(r['top1'])} | "
                     f"{_num(r.get('seconds'))} |")
    return lines


def render_markdown(result: dict[str, Any], experiments: dict[str, Experiment]) -> str:
    s = result["setup"]
    out = ["# What the paper claims, measured", "",
           f"- experiments: {', '.join(result['experiments'])}",
           f"- data: {s['data']}; seeds: {', '.join(map(str, s['seeds']))}",
           f"- training: every arm is `googlenet train` with the short recipe, variant "
           f"{s['variant']}, {s['image_size']} px input unless an arm says otherwise; epochs: "
           + ", ".join(f"{k} {v}" for k, v in s["epochs"].items())
           + (f"; extra settings: {s['user_settings']}" if s["user_settings"] else ""),
           f"- hardware: {s['machine']['cpu']}, {s['machine']['cores']} cores; torch "
           f"{s['machine']['torch']}, python {s['machine']['python']}; device {s['device']}",
           f"- wall time: {s['train_seconds'] / 60:.1f} min of training (sum of the runs' own), "
           f"{s['wall_seconds'] / 60:.1f} min for this invocation (finished runs are not redone)",
           f"- command: `{s['command']}`", "", DEFAULTS_NOTE, "", "Verdict rule: " + RULE, ""]
    for name, er in result["experiments"].items():
        exp = experiments[name]
        out += [f"## {exp.title}", ""]
        if exp.notes:
            out += [exp.notes, ""]
        out += _claims_table(er) + [""] + _arm_table(er) + _crops_table(er) + [""]
        out += [f"![{f}]({f})" for f in er.get("figures", [])] + [""]
    return "\n".join(out)
