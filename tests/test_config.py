"""The config by sections: each task's config class (the engine's RunConfig + the task's own
sections), dotted keys with the flat ones as aliases, recipes with [[case]] tables, saved
configs of both versions, and --help-config grouped by section."""

from __future__ import annotations

import sys

import pytest

from googlenet.cli import main
from googlenet.engine.config import VERSION, RunConfig
from googlenet.errors import UserError
from googlenet.settings import flatten, leaves, to_toml
from googlenet.tasks import resolve_config, schemas
from googlenet.tasks.classify.config import ClassifyConfig
from googlenet.tasks.detect.config import DetectConfig
from googlenet.tasks.rcnn.config import RCNNConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_each_task_picks_its_config_class_with_the_engine_sections():
    assert type(resolve_config()) is ClassifyConfig
    assert type(resolve_config("detect", {"task": "detect"})) is DetectConfig
    assert type(resolve_config("detect", {"task": "detect", "arch": "rcnn"})) is RCNNConfig
    engine = {p.split(".")[0] for p in leaves(RunConfig)}
    assert engine == {"task", "run", "optim", "average", "system"}
    for cls in schemas().all:
        assert issubclass(cls, RunConfig)
    sections = {cls.__name__: {p.split(".")[0] for p in leaves(cls)} - engine
                for cls in schemas().all}
    assert sections == {"ClassifyConfig": {"model", "data", "augment", "loss"},
                        "DetectConfig": {"model", "data", "augment"},
                        "RCNNConfig": {"model", "data", "augment", "rcnn", "loss"}}


def test_flat_keys_are_aliases_of_one_dotted_key_each():
    seen: dict[str, str] = {}
    for cls in schemas().all:
        for path, leaf in leaves(cls).items():
            assert seen.setdefault(leaf.alias, path) == path, (leaf.alias, path, seen[leaf.alias])
    assert seen["lr"] == "optim.lr" and seen["data"] == "data.path"
    assert seen["average"] == "average.mode" and seen["rcnn_region_size"] == "rcnn.region_size"
    a = resolve_config(None, {"lr": "0.05", "variant": "bn", "crop_scale": "0.3,1"})
    b = resolve_config(None, {"optim.lr": "0.05", "model.variant": "bn",
                              "augment.crop_scale": "0.3,1"})
    assert a == b and b.optim.lr == 0.05 and b.run.epochs == 8  # the recipe's bn case applied


def test_unknown_and_foreign_keys_are_refused_with_a_hint():
    with pytest.raises(UserError, match=r"unknown config key 'optim.lrr'.*did you mean 'optim.lr'"):
        resolve_config(None, {"optim.lrr": "1"})
    with pytest.raises(UserError, match=r"unknown config key 'model.variantt'"):
        resolve_config(None, {"model.variantt": "bn"})
    # a detection setting on a classification run: named, with where the task's keys are listed
    with pytest.raises(UserError, match=r"model.fpn_channels is a setting of `--task detect`.*not of this --task classify run"):
        resolve_config(None, {"fpn_channels": "64"})
    with pytest.raises(UserError, match=r"rcnn.region_size is a setting of `--task detect --arch rcnn`, not of this --task detect "):
        resolve_config("detect", {"task": "detect", "rcnn.region_size": "64"})
    assert resolve_config("detect", {"task": "detect", "arch": "rcnn",
                                     "rcnn_region_size": "96"}).rcnn.region_size == 96


def test_sectioned_recipe_with_cases(tmp_path):
    r = tmp_path / "mine.toml"
    r.write_text('version = 2\n[run]\nepochs = 3\n[augment]\ncrop_scale = [0.2, 1.0]\n'
                 '[[case]]\nwhen = { "model.variant" = "bn" }\noptim.lr = 0.5\nrun.epochs = 4\n')
    plain = resolve_config(str(r))
    assert (plain.run.epochs, plain.augment.crop_scale, plain.optim.lr) == (3, (0.2, 1.0), 0.01)
    bn = resolve_config(str(r), {"variant": "bn"})
    assert (bn.run.epochs, bn.optim.lr) == (4, 0.5)
    assert resolve_config(str(r), {"variant": "bn", "epochs": "9"}).run.epochs == 9  # flags last
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 2\n[optim]\nlrr = 1\n')
    with pytest.raises(UserError, match=r"bad.toml: unknown config key 'optim.lrr'"):
        resolve_config(str(bad))
    nowhen = tmp_path / "nowhen.toml"
    nowhen.write_text('version = 2\n[[case]]\noptim.lr = 0.5\n')
    with pytest.raises(UserError, match=r"needs `when"):
        resolve_config(str(nowhen))


def test_saved_configs_of_both_versions_load_to_the_same_config():
    cfg = resolve_config(None, {"variant": "bn", "lr": "0.05", "data": "x", "init": "w.pt"})
    saved = cfg.to_dict()
    assert saved["version"] == VERSION and saved["optim"]["lr"] == 0.05
    # config.toml: sections as TOML tables, read back the same
    again = resolve_config(base=tomllib.loads(to_toml(saved)))
    assert again == cfg
    # version 1: the flat keys of every task, as runs before sections saved them
    flat = {leaves(type(cfg))[p].alias: v for p, v in flatten(saved).items() if p != "version"}
    flat.update(arch="fcos", fpn_channels=128, rcnn_region_size=64, pretrain="none")
    assert resolve_config(base=flat) == cfg
    assert resolve_config(base=flat, overrides={"epochs": "2"}).run.epochs == 2


def test_help_config_is_grouped_by_section(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    for header in ("[run]", "[optim]", "[average]", "[system]", "[model]", "[data]", "[augment]",
                   "[loss]"):
        assert f"\n{header}\n" in out, header
    assert "schedule (lr_schedule)" in out and "[rcnn]" not in out and "arch" not in out
    assert main(["train", "--task", "detect", "--arch", "rcnn", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "[rcnn]" in out and "region_size (rcnn_region_size)" in out and "fcos" in out
    assert main(["train", "--set", "model.variant=bn", "--set", "optim.lr=0.5", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "0.5  (default 0.01)" in out and "variant=bn" in out
