"""Fixtures shared by the whole suite. Keep this file small: area-specific helpers belong in
their own test module."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from googlenet.data.datasets import open_dataset
from googlenet.data.preprocess import Preprocess
from googlenet.infer.bench import realistic_random_init
from googlenet.models.googlenet import GoogLeNet
from googlenet.models.registry import list_variants


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state, so failures reproduce one test at a time
    and under ``pytest -n``."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty, private $TORCH_HOME, so nothing reads or writes the user's torch hub cache."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def random_torchvision_googlenet():
    """Factory for torchvision's own GoogLeNet, randomly initialised, with BN running stats
    calibrated on random data and random BN affine parameters, so its logits vary by O(1)
    (with torchvision's init and untouched BN stats they are ~1e-2, and a 1e-5 parity
    tolerance would mean little)."""
    torchvision = pytest.importorskip("torchvision")

    def make(*, aux_logits: bool = True, transform_input: bool = False, num_classes: int = 1000):
        tv = torchvision.models.googlenet(weights=None, aux_logits=aux_logits, init_weights=True,
                                          transform_input=transform_input, num_classes=num_classes)
        bns = [m for m in tv.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        with torch.no_grad():
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batch
            tv.train()(torch.randn(4, 3, 64, 64))
            for m in bns:
                m.momentum = 0.1
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.add_(torch.randn_like(m.running_mean) * 0.05)
        return tv.eval()

    return make


# -- models for the fast-mode tests (test_fast.py, test_perf.py) --------------------------------
# Random with O(1) activations and a nearest-class-mean head on real digit images, so that top-1
# agreement between a fast mode and fp32 eager is not vacuous.

@pytest.fixture(scope="module")
def digits():
    """48 real digit images at 64 px: 32 to check on, 16 to calibrate int8 on. (N, 3, 64, 64)"""
    pre = Preprocess(crop=64, resize=64, mean=(0.3,) * 3, std=(0.32,) * 3)
    tf = pre.eval_transform()
    ds = open_dataset("digits", "test")
    x = torch.stack([tf(ds.load(i)[0]) for i in range(48)])
    y = torch.tensor(ds.targets[:48])
    return x[:32], y[:32], x[32:]


def _ncm_model(variant: str, x: torch.Tensor, y: torch.Tensor) -> GoogLeNet:
    torch.manual_seed(0)
    m = realistic_random_init(GoogLeNet(variant=variant, num_classes=10, aux_logits=True,
                                        init_weights=False))
    with torch.no_grad():  # nearest-class-mean head: logits = W (f - mean f), rows of W unit norm
        f = m.forward_head(m.forward_features(x), pre_logits=True)  # (N, 1024)
        mu = f.mean(0)
        w = torch.stack([f[y == c].mean(0) - mu for c in range(10)])
        w = w / w.norm(dim=1, keepdim=True) * 10 / (f - mu).norm(dim=1).mean()
        m.fc.weight.copy_(w)
        m.fc.bias.copy_(-(w @ mu))
    return m.eval()


@pytest.fixture(scope="module")
def models(digits):
    x, y, _ = digits
    return {v: _ncm_model(v, x, y) for v in list_variants()}
