"""Task units (googlenet.tasks): the registry picks the unit from a config, a command line or
loaded weights; stages run in order on the config; R-CNN's proposals are one function for
training and inference; the command line holds no per-task fork."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from googlenet.tasks import resolve_config as resolve
from googlenet.engine.stages import Stage, run_stages
from googlenet.errors import UserError
from googlenet.tasks import (CONFIG_TASKS, TASKS, get_unit, unit_for_command_line, unit_for_config,
                             unit_for_weights)

SRC = Path(__file__).resolve().parents[1] / "src" / "googlenet"


def _loaded(task: str, detector: str | None = None) -> SimpleNamespace:
    config = {"variant": "bn"} | ({"detector": detector} if detector else {})
    return SimpleNamespace(task=task, model=SimpleNamespace(config=config))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_unit_is_whole(name):
    unit = get_unit(name)
    assert unit.name == name
    for part in (unit.task, unit.evaluate, unit.predict, unit.export):
        assert callable(part)
    assert unit.task().name in CONFIG_TASKS  # what weights and checkpoints store


def test_units_for_configs_and_command_lines():
    assert unit_for_config(resolve(None, {})).name == "classify"
    assert unit_for_config(resolve("detect", {"task": "detect"})).name == "detect"
    assert unit_for_config(resolve("detect", {"task": "detect", "arch": "rcnn"})).name == "rcnn"
    assert unit_for_command_line({}).recipe == "short"
    assert unit_for_command_line({"task": "detect"}).recipe == "detect"
    assert unit_for_command_line({"task": "detect", "arch": "rcnn"}).name == "rcnn"
    with pytest.raises(UserError, match="task 'segment' is not known"):
        get_unit("segment")
    assert [s.name for s in get_unit("detect").stages] == ["pretrain"]
    assert get_unit("rcnn").stages == get_unit("detect").stages and not get_unit("classify").stages


def test_units_for_weights():
    assert unit_for_weights([_loaded("classify")]).name == "classify"
    assert unit_for_weights([_loaded("detect", "fcos")]).name == "detect"
    assert unit_for_weights([_loaded("detect", "rcnn")]).name == "rcnn"
    # an ensemble with one R-CNN run goes to the unit that runs both kinds
    assert unit_for_weights([_loaded("detect", "fcos"), _loaded("detect", "rcnn")]).name == "rcnn"
    # a classifier among detectors: the detection unit refuses it with its own message
    assert unit_for_weights([_loaded("classify"), _loaded("detect", "fcos")]).name == "detect"


def test_stages_run_in_order_on_the_config():
    seen, logged = [], []

    def stage(tag):
        def run(cfg, log):
            seen.append((tag, cfg.system.seed))
            log(f"stage {tag}")
            cfg.system.seed += 1
            return cfg
        return Stage(tag, run)

    cfg = run_stages([stage("a"), stage("b")], resolve(None, {"seed": 5}), log=logged.append)
    assert seen == [("a", 5), ("b", 6)] and cfg.system.seed == 7
    assert logged == ["stage a", "stage b"]
    assert run_stages([], cfg) is cfg


def test_rcnn_inference_uses_the_training_proposals(monkeypatch, tmp_path):
    """``model_proposals`` (eval, predict) is ``image_proposals`` (training) with the model's
    saved settings: the same Selective Search call, the same cache, the same extra boxes."""
    from googlenet.tasks.rcnn import proposals as P

    calls = []

    def fake_ss(image, **kw):
        calls.append(kw)
        return torch.tensor([[0.0, 0.0, 4.0, 4.0]])

    monkeypatch.setattr(P, "selective_search", fake_ss)
    monkeypatch.setenv("GOOGLENET_CACHE", str(tmp_path))
    extra = lambda image: torch.tensor([[1, 1, 3, 3]] * 3)  # noqa: E731  (an ExtraProposer)
    monkeypatch.setattr(P, "extra_proposer", lambda run: extra)
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    train = P.image_proposals(image, extra)
    model = SimpleNamespace(config={"proposals": dict(P.SELECTIVE_SEARCH), "extra_proposals": "RUN"})
    (infer,) = P.model_proposals(model, [image])
    assert torch.equal(train, infer) and len(infer) == 1 + 3
    assert calls[0] == calls[1] == dict(P.SELECTIVE_SEARCH, cache_dir=tmp_path / "proposals")


def test_the_command_line_has_no_task_forks():
    pattern = re.compile(r'task ==|== "detect"|== "rcnn"')
    hits = [f"{f.name}:{i}" for f in (SRC / "cli").glob("*.py")
            for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_one_comparison_of_model_configs():
    """Resume and --init compare the saved model config with the run's model section in one
    function, over one list of the backbone's keys (models.choices.BACKBONE_KEYS)."""
    from googlenet.models.choices import BACKBONE_KEYS
    from googlenet.tasks.base import model_differences

    cfg = resolve("detect", {"task": "detect", "variant": "bn"})
    assert cfg.model.backbone() == {"variant": "bn", "inception": "reduced", "stem": "paper"}
    assert tuple(cfg.model.backbone()) == BACKBONE_KEYS
    saved = {"variant": "paper", "inception": "reduced", "detector": "fcos"}
    assert model_differences(saved, cfg.model.detector()) == (
        "variant: 'paper' there, 'bn' here, stem: None there, 'paper' here")
    # a key the saved file predates (no "stem" there) counts as the value this run has
    assert model_differences(saved, {"inception": "reduced", "stem": "paper"},
                             missing_matches=True) == ""
    assert model_differences(saved, {"variant": "paper"}) == ""


def test_detection_checks_a_checkpoint_without_changing_the_data_and_adopts_apart():
    """check_compatible only checks; the saved normalisation is taken over by adopt (which the
    engine calls on resume), so a resumed detector normalises as the interrupted run did."""
    from types import SimpleNamespace

    from googlenet.tasks.detect.task import DetectionTask
    from googlenet.weights.records import WeightsMeta

    cfg = resolve("detect", {"task": "detect", "variant": "bn"})
    pre = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop": 128}
    data = SimpleNamespace(meta=WeightsMeta(model_config={}, class_names=["a"], preprocess=dict(pre)))
    saved = WeightsMeta(model_config={**cfg.model.detector(), "image_mean": [0.1, 0.2, 0.3],
                                      "image_std": [0.9, 0.8, 0.7]}, class_names=["a"], task="detect")
    task = DetectionTask()
    task.check_compatible(saved, cfg, data, "run", "the checkpoint to resume")
    assert data.meta.preprocess == pre
    task.adopt(saved, data)
    assert data.meta.preprocess == {**pre, "mean": [0.1, 0.2, 0.3], "std": [0.9, 0.8, 0.7]}
