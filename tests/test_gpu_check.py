"""benchmarks/gpu_check.py: on a machine without CUDA (CI) it says so and exits 0 before running
anything; the figures it reports are read correctly from each command's JSON output."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu-check.md"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--work",
                           str(tmp_path / "work")], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout and "nothing to check" in proc.stdout
    assert not out.exists() and not (tmp_path / "work").exists()  # nothing ran, nothing written


def test_steps_cover_the_commands_users_run(tmp_path):
    g = _module()
    names = [s.name for s in g.steps(g.Ctx(tmp_path))]
    for want in ("train", "train-fp16", "train-compile", "detect", "detect-fp16", "eval",
                 "predict", "export", "bench", "experiment", "torchrun"):
        assert want in names
    train = next(s for s in g.steps(g.Ctx(tmp_path)) if s.name == "train")
    assert train.argv == ["train"]  # no flags: what a user types first
    detect = next(s for s in g.steps(g.Ctx(tmp_path)) if s.name == "detect")
    assert detect.argv == ["train", "--task", "detect"]


def test_figures_are_read_from_the_commands_json():
    g = _module()
    assert g._eval_json({"rows": [{"top1_acc": 98.33, "images": 360}]}) == "top-1 98.33% (360 images)"
    assert g._eval_json({"rows": [{"map50": 91.2, "map": 70.4, "images": 500}]}) == \
        "AP50 91.2, mAP 70.4 (500 images)"
    assert g._predict_json({"predictions": [1, 2, 3], "errors": []}) == "3 images classified, 0 failed"
    r = {"ratios_to_peers": [{"batch": 256, "precision": "bf16", "ours": "bn bf16",
                              "ours_images_per_s": 20000.0, "peer": "torchvision eager",
                              "ratio": 1.31}]}
    assert g._bench_json(r) == "b256 bf16: bn bf16 20000 img/s = 1.31x torchvision eager"
    parse = g._json_metric(g._eval_json)
    assert parse(None, 'log line\n{"rows": [{"top1_acc": 97.5, "images": 10}]}\n') == \
        "top-1 97.50% (10 images)"
    assert parse(None, "no json here") == "no JSON output"
