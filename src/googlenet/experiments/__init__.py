"""``googlenet experiment``: the slide deck's claims about GoogLeNet, measured as ablations.

Each experiment (arms.py) is a set of arms, each arm an ordinary training run of the engine per
seed in ``DIR/runs/<arm>-seed<k>/`` (runner.py), resumable: finished runs are kept, interrupted
ones continue from their checkpoint. The report (report.py, plots.py) reads every number back
from the run directories: ``DIR/report.md``, ``DIR/results.json`` and PNG figures for slides.

This layer sits between the command line and the tasks: it trains through the engine and
evaluates through ``googlenet.infer``, and adds no training code of its own.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..tasks import dotted, resolve_config
from ..errors import UserError
from .arms import EXPERIMENTS, Arm, Experiment, default_settings
from .report import METRIC_LABELS, aggregate, render_markdown, run_summary, verdict

# runner.py (training through the engine, so torch) is imported where it is used: the command
# line's --help lists EXPERIMENTS without importing torch.

__all__ = ["EXPERIMENTS", "run_experiment", "build_report", "replot", "machine"]

CROPS = (1, 10, 144)
CROPS_MAX_IMAGES = 120  # the 144-crop pass costs 144 forward passes per image and model


def machine() -> dict[str, str]:
    import torch

    from ..infer.bench import cpu_model

    cpu = cpu_model()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__,
            "python": platform.python_version()}


def _names(name: str) -> list[str]:
    if name == "all":
        return list(EXPERIMENTS)
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {name!r}; choose one of "
                        f"{[*EXPERIMENTS, 'all']}", key="name")
    return [name]


def _settings(exp: Experiment, user: dict[str, Any]) -> dict[str, Any]:
    """The experiment's base settings, with the user's image size / variant where given."""
    from .runner import RECIPE

    s = default_settings(exp)
    typed = resolve_config(RECIPE, {**s, **user})
    s["variant"] = typed.model.variant
    if "image_size" in user or "data.image_size" in user:
        s["image_size"] = typed.data.image_size
    return s


def _plan(names: list[str], user: dict[str, Any], epochs: Optional[int]
          ) -> dict[str, tuple[Experiment, dict[str, Any], int, list[Arm]]]:
    plan = {}
    for n in names:
        exp = EXPERIMENTS[n]
        s = _settings(exp, user)
        plan[n] = (exp, s, epochs or exp.epochs, exp.arms(s))
    return plan


def run_experiment(name: str, *, out: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                   epochs: Optional[int] = None, data: Optional[str] = None,
                   user: Optional[dict[str, Any]] = None, command: str = "",
                   keep_checkpoints: bool = False,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train every missing run of experiment ``name`` (or ``all``), evaluate, write the report.
    A finished run keeps its weights and metrics; its checkpoints only with ``keep_checkpoints``.
    Returns the report's data (also ``DIR/results.json``)."""
    from .runner import arm_config, run_arm, run_dir

    t0 = time.perf_counter()
    seeds = list(dict.fromkeys(seeds))
    if not seeds or any(k < 0 for k in seeds):
        raise UserError(f"seeds must be one or more integers >= 0, got {seeds}", key="seeds")
    if epochs is not None and epochs < 1:
        raise UserError(f"epochs must be at least 1, got {epochs}", key="epochs")
    user = dict(user or {})
    if data is not None:
        user["data"] = data
    given = dotted(user)  # flat or dotted, as the user spelt them
    for bad, key in (("seed", "system.seed"), ("epochs", "run.epochs"), ("out", "run.out")):
        if key in given:
            raise UserError(f"--set {bad}=...: use the command's own --{bad}s option"
                            if bad == "seed" else f"--set {bad}=...: use --{bad}")
    root = Path(out)
    plan = _plan(_names(name), user, epochs)
    done: dict[str, str] = {}
    for n, (exp, s, ep, arms) in plan.items():
        log(f"experiment {n}: {len(arms)} arm(s) x {len(seeds)} seed(s), {ep} epoch(s)")
        for arm in arms:
            for seed in seeds:
                run = run_dir(root, arm, seed)
                if str(run) in done:
                    continue
                cfg = arm_config(arm, seed, s, ep, user, run)
                done[str(run)], _ = run_arm(cfg, run, log, keep_checkpoints)
        if n == "crops":
            _crops_eval(root, arms[0], seeds, s, ep, user, log)
    wall = time.perf_counter() - t0
    setup = {"data": data or "digits (built in)", "seeds": list(seeds),
             "epochs": {n: p[2] for n, p in plan.items()},
             "variant": next(iter(plan.values()))[1]["variant"],
             "image_size": next(iter(plan.values()))[1]["image_size"],
             "user_settings": {k: v for k, v in user.items() if k not in ("data", "data.path")},
             "machine": machine(), "device": str(given.get("system.device", "auto")),
             "command": command or f"googlenet experiment {name}",
             "wall_seconds": wall, "runs": done}
    return build_report(root, plan, setup)


def _crops_eval(root: Path, arm: Arm, seeds: Sequence[int], s: dict[str, Any], epochs: int,
                user: dict[str, Any], log: Callable[[str], None]) -> Path:
    """Table 3 on the data: every seed's model alone and all together, 1/10/144 crops, via
    ``googlenet.infer.evaluate.evaluate_models``; saved in DIR/evals/crops/ (kept once done)."""
    from .runner import arm_config, run_dir

    out = root / "evals" / "crops"
    runs = [run_dir(root, arm, k) for k in seeds]
    if (out / "results.json").is_file():  # kept when it evaluated these very runs
        if json.loads((out / "results.json").read_text()).get("models") == [r.name for r in runs]:
            return out
    import numpy as np

    from ..data.datasets import default_eval_split, open_dataset
    from ..engine.distributed import resolve_device
    from ..infer.evaluate import evaluate_models
    from ..sources import load_weights

    cfg = arm_config(arm, seeds[0], s, epochs, user, run_dir(root, arm, seeds[0]))
    models = [load_weights(str(r)) for r in runs]
    d = cfg.data
    split = default_eval_split(d.path)
    ds = open_dataset(d.path, split, seed=cfg.system.seed, val_fraction=d.val_fraction, root=d.root)
    n = len(ds)
    idx = np.unique(np.linspace(0, n - 1, min(n, CROPS_MAX_IMAGES)).round().astype(int)).tolist()
    log(f"  crops: evaluating {len(models)} model(s) on {len(idx)} {split} images, "
        f"{'/'.join(map(str, CROPS))} crops")
    report = evaluate_models(models, ds, crops=CROPS, names=[r.name for r in runs],
                             device=resolve_device(cfg.system.device),
                             indices=idx, progress=False,
                             info={"data": d.path or "digits", "split": split})
    report.save(out)
    return out


def _crops_result(root: Path, seeds: Sequence[int]) -> tuple[dict[str, list], list[dict]]:
    """Per-seed single-model top-1 and the ensemble's, read back from DIR/evals/crops."""
    from .report import _stat

    path = root / "evals" / "crops" / "results.json"
    if not path.is_file():
        return {}, []
    d = json.loads(path.read_text())
    seconds = {int(k): v for k, v in d.get("seconds", {}).items()}
    values: dict[str, list] = {}
    table = []
    for kind in ("single", "ensemble"):
        for c in CROPS:
            rows = [r for r in d["rows"] if r["crops"] == c
                    and (r["models"] == 1) == (kind == "single")]
            if not rows:
                continue
            vals = [r["top1_acc"] for r in rows]
            values[f"{'crops' if kind == 'single' else 'ensemble'}_{c}"] = vals
            who = "1 model" if kind == "single" else f"{rows[0]['models']} models"
            table.append({"models": who,
                          "crops": c, "cost": rows[0]["cost"], "top1": _stat(vals),
                          "images": rows[0]["images"],
                          # the 1 crop is scored in the 10-crop pass: no time of its own
                          "seconds": seconds.get(c) if kind == "single" else None})
    return values, table


def build_report(root: Path, plan: dict[str, tuple[Experiment, dict[str, Any], int, list[Arm]]],
                 setup: dict[str, Any]) -> dict[str, Any]:
    """Read every run back, aggregate, judge the claims, write report.md/results.json/figures."""
    from .plots import experiment_figures
    from .report import _stat
    from .runner import run_dir

    seeds = setup["seeds"]
    result: dict[str, Any] = {"setup": setup, "experiments": {}}
    setup["train_seconds"] = 0.0
    seen: set[str] = set()
    for n, (exp, s, ep, arms) in plan.items():
        er: dict[str, Any] = {"title": exp.title, "epochs": ep, "settings": s, "arms": {}}
        for arm in arms:
            runs = [run_summary(run_dir(root, arm, k)) for k in seeds]
            for r in runs:
                if r["run"] not in seen:
                    seen.add(r["run"])
                    setup["train_seconds"] += r["wall_seconds"]
            er["arms"][arm.name] = {"label": arm.label, "overrides": arm.overrides,
                                    "runs": runs, "stats": aggregate(runs)}
        if n == "crops":
            values, er["table3"] = _crops_result(root, seeds)
            er["arms"][arms[0].name]["stats"].update({k: _stat(v) for k, v in values.items()})
        er["claims"] = []
        for c in exp.claims:
            a = er["arms"][c.arm]["stats"].get(c.metric, {})
            b = er["arms"][c.baseline]["stats"].get(c.baseline_metric or c.metric, {})
            er["claims"].append({
                "key": c.key, "statement": c.statement, "metric": c.metric,
                "arm": c.arm, "baseline": c.baseline,
                "arm_label": (METRIC_LABELS.get(c.metric, c.metric) if c.baseline_metric
                              else er["arms"][c.arm]["label"]),
                "baseline_label": (METRIC_LABELS.get(c.baseline_metric, c.baseline_metric)
                                   if c.baseline_metric else er["arms"][c.baseline]["label"]),
                "arm_stat": a, "baseline_stat": b, **verdict(c, a, b)})
        er["figures"] = experiment_figures(root, n, exp.title, er)
        result["experiments"][n] = er
    (root / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (root / "report.md").write_text(render_markdown(result, {n: p[0] for n, p in plan.items()}))
    return result


def replot(root: str | os.PathLike) -> dict[str, Any]:
    """Draw the figures and write report.md of an experiment directory again from its
    ``results.json``, training and evaluating nothing (for a new figure style); returns the
    results with their new figure lists (saved back to ``results.json``). Figures an earlier
    style wrote that this one does not are deleted."""
    from .plots import experiment_figures

    root = Path(root)
    path = root / "results.json"
    if not path.is_file():
        raise UserError(f"{root}: no results.json to draw from; run the experiment first",
                        key="out")
    result = json.loads(path.read_text())
    for n, er in result["experiments"].items():
        if n not in EXPERIMENTS:
            raise UserError(f"{path}: unknown experiment {n!r}", key="out")
        old = set(er.get("figures", []))
        er["figures"] = experiment_figures(root, n, EXPERIMENTS[n].title, er)
        for name in old - set(er["figures"]):
            (root / name).unlink(missing_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (root / "report.md").write_text(render_markdown(result, {n: EXPERIMENTS[n]
                                                             for n in result["experiments"]}))
    return result
