"""Fixtures shared by the whole suite. Keep this file small: area-specific helpers belong in
their own test module."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


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
