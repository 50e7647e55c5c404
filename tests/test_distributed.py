"""Many processes and machines through torchrun, on CPU (gloo): an elastic restart after a
SIGKILLed worker resumes from the last checkpoint by itself, and a 2-node job on loopback
(two torchrun invocations with a c10d rendezvous) trains as one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ARGS = ["--no-aux", "--batch-size", "2", "--image-size", "32", "--no-progress", "--workers", "0",
        "--set", "tensorboard=false", "--set", "plots=false"]


def _folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("val", 2)):
        for c, name in enumerate(("a", "b")):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                px = np.full((36, 36, 3), 60 + 120 * c) + rng.integers(0, 40, (36, 36, 3))
                Image.fromarray(px.astype(np.uint8)).save(d / f"{i}.png")
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_elastic_restart_resumes_after_a_sigkilled_worker(tmp_path):
    data = _folder(tmp_path / "data", 16)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "1", "-m", "googlenet", "train", "--data", str(data), *ARGS,
           "--epochs", "30", "--checkpoint-every", "3", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint-last.pt").exists():
            assert proc.poll() is None and time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2, workers
        os.kill(int(workers[-1]), signal.SIGKILL)  # one worker dies, as on a lost machine
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    log = (out / "train.log").read_text()
    assert "resumed from" in log  # torchrun restarted the workers; they continued the run
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 30 and (out / "model.safetensors").is_file()


def test_two_nodes_on_loopback(tmp_path):
    data = _folder(tmp_path / "data", 4)
    out = tmp_path / "run"
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t",
           "-m", "googlenet", "train", "--data", str(data), *ARGS, "--epochs", "1",
           "--out", str(out)]
    nodes = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in nodes]
    for p, o in zip(nodes, outputs):
        assert p.returncode == 0, o[-4000:]
    assert "x 2 processes" in (out / "train.log").read_text()
    res = json.loads((out / "results.json").read_text())
    assert res["steps"] == 2 and res["val_images"] == 4  # 8 images / (2 x 2); val once over ranks
