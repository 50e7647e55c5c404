"""`googlenet experiment`: the arms build the intended models, experiments run end to end on a
tiny budget (an image folder written here, 32 px, 2 optimizer steps, one seed), an interrupted
experiment resumes without redoing finished runs, and the report's numbers are the runs'."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.cli import main as cli_main
from googlenet.engine.task import TaskData
from googlenet.errors import UserError
from googlenet.experiments import EXPERIMENTS, run_experiment
from googlenet.experiments.arms import HEAD_IMAGE_SIZE, default_settings, model_cost
from googlenet.experiments.report import RULE
from googlenet.experiments.runner import GradNormTask, arm_config
from googlenet.models.googlenet import GoogLeNet
from googlenet.tasks import resolve_config
from googlenet.weights.records import WeightsMeta

TINY = {"max_steps": "2", "batch_size": "4"}

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """PATH/train/<class>/ (8 images each) and PATH/val/<class>/ (3 each), 2 classes, 36 px."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for c, name in enumerate(("dark", "light")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                base = 60 + 120 * c
                px = np.clip(rng.normal(base, 20, (36, 36, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(d / f"{i}.png")
    return root

def _arms(name: str) -> dict:
    exp = EXPERIMENTS[name]
    return {a.name: a for a in exp.arms(default_settings(exp))}

def _model(arm, settings, tmp_path, classes=3) -> GoogLeNet:
    cfg = arm_config(arm, 0, settings, 1, {}, tmp_path / "x")
    data = TaskData(train=None, val=None, test=None, meta=WeightsMeta(
        model_config={}, class_names=[str(i) for i in range(classes)]), description="")
    return GradNormTask().build_model(cfg, data)

# -- the arms build the intended models ------------------------------------------------------

def test_reduction_arms_costs_and_trimmed_width():
    arms = _arms("reduction")
    assert set(arms) == {"reduction-reduced", "reduction-naive", "reduction-naive-trimmed"}
    reduced = model_cost(32, variant="bn")
    naive = model_cost(32, variant="bn", inception="naive")
    w = arms["reduction-naive-trimmed"].overrides["width"]
    trimmed = model_cost(32, variant="bn", inception="naive", width=w)
    assert arms["reduction-naive"].overrides == {"inception": "naive", "average": "none"}
    # one epoch: every arm keeps its final weights (a mean of the epoch would start at the init)
    assert all(a.overrides["average"] == "none" for a in arms.values())
    assert naive["multiply_adds"] > 5 * reduced["multiply_adds"]
    assert naive["params"] > 10 * reduced["params"]
    assert 0.2 < w < 0.6
    assert abs(trimmed["multiply_adds"] / reduced["multiply_adds"] - 1) < 0.03

def test_width_scales_every_table1_width_and_the_stem():
    m = GoogLeNet(variant="bn", num_classes=3, inception="naive", width=0.5, aux_logits=False)
    assert m.conv1.conv.out_channels == 32 and m.conv2.conv.out_channels == 96
    s = m.inception_3a.spec
    assert (s.n1x1, s.n3x3, s.n5x5) == (32, 64, 16)
    assert m.config["width"] == 0.5
    default = GoogLeNet(variant="bn", num_classes=3)
    assert default.config["width"] == 1.0 and default.inception_5b.spec.n1x1 == 384

def test_aux_arms_weights_and_gradnorm_rows(tmp_path):
    arms = _arms("aux")
    s = default_settings(EXPERIMENTS["aux"])
    cfgs = {n: arm_config(a, 0, s, 2, {}, tmp_path / n) for n, a in arms.items()}
    assert cfgs["aux-off"].model.aux_logits is False
    assert [cfgs[n].loss.aux_weight for n in ("baseline", "aux-w0.1", "aux-w1.0")] == [0.3, 0.1, 1.0]
    assert all(c.run.epochs == 2 and c.average.start_epoch == 1.0 for c in cfgs.values())
    # a one-epoch run (--epochs 1) averages its second half, never from the random init
    assert arm_config(arms["baseline"], 0, s, 1, {}, tmp_path / "one").average.start_epoch == 0.5
    # the task's hooks record the gradient norm of conv1 per step, into the epoch row
    task = GradNormTask()
    model = _model(arms["baseline"], s, tmp_path).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    res = task.train_step(model, (x, y), cfgs["baseline"], torch.device("cpu"))
    res.loss.backward()
    g = model.conv1.conv.weight.grad.norm().item()
    row = task.epoch_metrics({"images": 4.0}, model)
    assert row["grad_norm_conv1"] == pytest.approx(
        math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.conv1.parameters())), rel=1e-5)
    assert row["grad_norm_conv1"] >= g > 0 and row["grad_norm_inception_5b"] > 0

def test_head_arms_gap_vs_fc(tmp_path):
    arms = _arms("head")
    s = default_settings(EXPERIMENTS["head"])
    assert s["image_size"] == HEAD_IMAGE_SIZE == 64
    gap, fc = (_model(arms[n], s, tmp_path) for n in ("head-gap", "head-fc"))
    assert isinstance(gap.avgpool, torch.nn.AdaptiveAvgPool2d) and gap.fc.in_features == 1024
    assert isinstance(fc.avgpool, torch.nn.Identity) and fc.fc.in_features == 1024 * 2 * 2
    assert fc.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    with pytest.raises(ValueError, match="takes only 64x64"):
        fc(torch.randn(1, 3, 96, 96))
    assert fc.config["head"] == "fc" and fc.config["img_size"] == 64
    assert GoogLeNet(**{**fc.config, "init_weights": False}).fc.in_features == 4096

def test_norm_arms_switch(tmp_path):
    arms = _arms("norm")
    s = default_settings(EXPERIMENTS["norm"])
    kinds = {}
    for n, a in arms.items():
        m = _model(a, s, tmp_path)
        kinds[n] = (m.conv1.bn is not None, isinstance(m.norm1, torch.nn.LocalResponseNorm))
    assert kinds == {"norm-lrn": (False, True), "baseline": (True, False),
                     "norm-none": (False, False)}

def test_default_models_unchanged_by_the_switches():
    torch.manual_seed(0)
    a = GoogLeNet(variant="paper", num_classes=5).eval()
    torch.manual_seed(0)
    b = GoogLeNet(variant="paper", num_classes=5, width=1.0, head="gap", norm=None).eval()
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(a(x), b(x))

def test_config_keys_validated():
    assert resolve_config(None, {"width": "0.5", "head": "fc", "norm": "none"}).model.width == 0.5
    for k, v in (("width", "0"), ("head", "max"), ("norm", "group")):
        with pytest.raises(UserError, match=k):
            resolve_config(None, {k: v})

# -- end to end ------------------------------------------------------------------------------

@pytest.mark.slow
def test_norm_end_to_end_resume_and_report(folder, tmp_path):
    out = tmp_path / "exp"
    res = run_experiment("norm", out=out, seeds=[0], data=str(folder), user=dict(TINY),
                         keep_checkpoints=True, log=lambda s: None)
    runs = {p.name: p for p in (out / "runs").iterdir()}
    assert set(runs) == {"norm-lrn-seed0", "baseline-seed0", "norm-none-seed0"}
    # the report's numbers are the runs' own (results.json, metrics.csv)
    arms = res["experiments"]["norm"]["arms"]
    for name, arm in arms.items():
        saved = json.loads((runs[f"{name}-seed0"] / "results.json").read_text())
        assert arm["stats"]["top1"]["values"] == [saved["val_top1"]]
        assert "grad_norm_conv1" in (runs[f"{name}-seed0"] / "metrics.csv").read_text()
    report = (out / "report.md").read_text()
    for arm in arms.values():
        assert f"{arm['stats']['top1']['mean']:.2f}" in report
    assert RULE in report and "not measurable on this data" in report
    assert json.loads((out / "results.json").read_text())["experiments"]["norm"]["claims"]
    assert all((out / f).stat().st_size > 10_000 for f in res["experiments"]["norm"]["figures"])
    # interrupted: one run lost its results.json (it stopped after its last checkpoint)
    (runs["norm-none-seed0"] / "results.json").unlink()
    before = {n: (p / "results.json").stat().st_mtime_ns for n, p in runs.items()
              if (p / "results.json").exists()}
    ckpt_before = {n: (p / "checkpoint-last.pt").stat().st_mtime_ns for n, p in runs.items()}
    res2 = run_experiment("norm", out=out, seeds=[0], data=str(folder), user=dict(TINY),
                          log=lambda s: None)
    assert res2["setup"]["runs"] == {str(runs["norm-lrn-seed0"]): "done",
                                     str(runs["baseline-seed0"]): "done",
                                     str(runs["norm-none-seed0"]): "resumed"}
    for n, t in before.items():
        assert (runs[n] / "results.json").stat().st_mtime_ns == t
        assert (runs[n] / "checkpoint-last.pt").stat().st_mtime_ns == ckpt_before[n]
    assert (runs["norm-none-seed0"] / "results.json").is_file()
    # without keep_checkpoints the run finished now keeps its weights, not its checkpoints
    assert not list(runs["norm-none-seed0"].glob("checkpoint-*.pt"))
    assert (runs["norm-none-seed0"] / "model.safetensors").is_file()
    # other settings into the same directory: refused, naming the run
    with pytest.raises(UserError, match="other settings"):
        run_experiment("norm", out=out, seeds=[0], data=str(folder),
                       user={**TINY, "lr": "0.5"}, log=lambda s: None)

def test_cli_rejects_bad_input(tmp_path, capsys):
    assert cli_main(["experiment", "norm", "--out", str(tmp_path), "--set", "wdth=2"]) == 2
    assert "unknown config key 'wdth'" in capsys.readouterr().err
    assert cli_main(["experiment", "norm", "--out", str(tmp_path), "--set", "seed=3"]) == 2
    assert "--seeds" in capsys.readouterr().err

@pytest.mark.slow
def test_all_end_to_end_via_cli(folder, tmp_path, capsys):
    """Every experiment, including the naive network and the 144-crop evaluation."""
    out = tmp_path / "all"
    rc = cli_main(["experiment", "all", "--data", str(folder), "--seeds", "0", "--out", str(out),
                   *[a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["experiments"]) == list(EXPERIMENTS)
    t3 = res["experiments"]["crops"]["table3"]
    assert [r["crops"] for r in t3] == [1, 10, 144] and [r["cost"] for r in t3] == [1, 10, 144]
    saved = json.loads((out / "evals" / "crops" / "results.json").read_text())
    assert t3[2]["top1"]["values"] == [saved["rows"][2]["top1_acc"]]
    assert "baseline-seed0" in {p.name for p in (out / "runs").iterdir()}
    # finished runs keep weights and metrics, not their ~125 MB checkpoints
    assert not list((out / "runs").glob("*/checkpoint-*.pt"))
    assert len(list((out / "runs").glob("*/model.safetensors"))) == len(res["setup"]["runs"])
    for er in res["experiments"].values():
        assert all(c["verdict"] in ("supported", "not supported", "not measurable on this data")
                   for c in er["claims"])
    assert "report:" in capsys.readouterr().out


def test_figures_redrawn_from_the_committed_results(tmp_path, monkeypatch, capsys):
    """`--replot` draws every figure from results.json alone: 1600x900; rates and counts as bars
    from zero, accuracies as one dot per seed; no curve of one-epoch arms (one dot per arm) and
    none of the crops baseline under Table 3's title; the crops dots are Table 3's very rows;
    the averaging curves in as many styles as arms (no arm hidden under another)."""
    from matplotlib.figure import Figure

    drawn: dict[str, Figure] = {}
    real = Figure.savefig

    def keep(self, path, *a, **kw):
        drawn[Path(path).name] = self
        return real(self, path, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", keep)
    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "experiments"
    saved = json.loads((committed / "results.json").read_text())
    saved["experiments"]["reduction"]["figures"].append("reduction-curves.png")  # an old style's
    (tmp_path / "results.json").write_text(json.dumps(saved))
    (tmp_path / "reduction-curves.png").write_bytes(b"an old style's figure")
    assert cli_main(["experiment", "all", "--out", str(tmp_path), "--replot"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    figs = {n: e["figures"] for n, e in res["experiments"].items()}
    assert figs["reduction"] == ["reduction-cost.png", "reduction-top1.png"]
    assert not (tmp_path / "reduction-curves.png").exists()
    assert figs["crops"] == ["crops-top1.png", "crops-table3.png"]
    assert figs["aux"] == ["aux-top1.png", "aux-gradient.png", "aux-gap.png", "aux-curves.png"]
    report = (tmp_path / "report.md").read_text()
    for name in (f for fs in figs.values() for f in fs):
        assert f"![{name}]({name})" in report and (tmp_path / name).is_file()
        fig = drawn[name]
        assert tuple(fig.get_size_inches() * fig.dpi) == (1600, 900), name
    assert all(ax.get_ylim()[0] == 0 for ax in drawn["reduction-cost.png"].axes)
    from matplotlib.collections import PathCollection

    dots = [c for c in drawn["aux-top1.png"].axes[0].collections if isinstance(c, PathCollection)]
    seeds = [a["stats"]["top1"]["values"] for a in res["experiments"]["aux"]["arms"].values()]
    assert [len(c.get_offsets()) for c in dots] == [len(v) for v in seeds]  # a dot per seed
    means = {t.get_text() for t in drawn["crops-top1.png"].axes[0].texts}
    assert means == {f"{r['top1']['mean']:.1f}" for r in res["experiments"]["crops"]["table3"]}
    lines = drawn["averaging-curves.png"].axes[0].lines
    assert len({(ln.get_linestyle(), ln.get_marker(), ln.get_linewidth()) for ln in lines}) == 3


@pytest.mark.parametrize("key,why", [("seed", "--seeds"), ("system.seed", "--seeds"),
                                     ("run.epochs", "--epochs"), ("out", "--out")])
def test_experiment_refuses_its_own_settings_in_either_spelling(tmp_path, key, why):
    with pytest.raises(UserError, match=why):
        run_experiment("norm", out=tmp_path / "x", seeds=[0], user={key: "3"}, log=lambda s: None)
    assert not (tmp_path / "x").exists()
