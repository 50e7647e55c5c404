"""Device resolution, with ``torch.cuda`` mocked (CI has no GPU): every command's ``--device``
becomes a device with its index (``auto``/``cuda``: the current GPU; ``cuda:N``: that one;
torchrun: the local rank's), ``set_device`` is called with it, and that is the device the model
is moved to. On main before this, ``googlenet train`` crashed on any CUDA machine:
``set_device(torch.device("cuda"))`` needs an index."""

from __future__ import annotations

import pytest
import torch

from googlenet.cli import main as cli_main
from googlenet.engine import distributed as dist_lib
from googlenet.engine.distributed import DistInfo, resolve_device
from googlenet.errors import UserError


class FakeCuda:
    """``torch.cuda`` as seen on a machine with ``count`` GPUs, ``current`` the current one.
    ``set_device`` refuses an index-less device, as the real one does."""

    def __init__(self, count: int = 2, current: int = 0) -> None:
        self.count, self.current, self.set_calls = count, current, []

    def install(self, monkeypatch) -> "FakeCuda":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(k, raising=False)
        return self

    def set_device(self, device) -> None:
        d = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        if d.index is None:  # what torch.cuda.set_device does with torch.device("cuda")
            raise ValueError("Expected a torch.device with a specified index or an integer, "
                             f"but got:{device}")
        self.set_calls.append(d)
        self.current = d.index


@pytest.fixture
def cuda(monkeypatch):
    return FakeCuda(count=2, current=1).install(monkeypatch)


@pytest.mark.parametrize("spec,want", [("auto", 1), ("cuda", 1), ("cuda:0", 0), ("cuda:1", 1)])
def test_cuda_specs_resolve_to_an_indexed_current_device(cuda, spec, want):
    d = resolve_device(spec)
    assert d == torch.device("cuda", want) and d.index == want
    assert cuda.set_calls == [d]


def test_cpu_needs_no_cuda_call(cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert cuda.set_calls == []


def test_a_gpu_that_is_not_there_is_refused(cuda):
    with pytest.raises(UserError, match=r"cuda:2.*2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    with pytest.raises(UserError, match="not a device"):
        resolve_device("gpu0")
    with pytest.raises(UserError, match="only cpu and cuda"):
        resolve_device("meta")


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    fake = FakeCuda(count=0).install(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="CUDA is not available"):
        resolve_device("cuda")
    assert fake.set_calls == []


@pytest.mark.parametrize("spec", ["auto", "cuda"])
def test_torchrun_processes_take_their_local_ranks_gpu(cuda, monkeypatch, spec):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    cuda.current = 0
    assert resolve_device(spec) == torch.device("cuda", 1)  # read from the environment
    info = DistInfo(rank=2, world_size=4, local_rank=0, local_world_size=2)
    assert resolve_device(spec, info) == torch.device("cuda", 0)
    assert cuda.set_calls == [torch.device("cuda", 1), torch.device("cuda", 0)]


def test_torchrun_refuses_a_fixed_gpu_for_many_local_processes_and_too_many_ranks(cuda):
    info = DistInfo(rank=1, world_size=2, local_rank=1, local_world_size=2)
    with pytest.raises(UserError, match="local rank"):
        resolve_device("cuda:0", info)
    with pytest.raises(UserError, match="nproc_per_node 2"):
        resolve_device("cuda", DistInfo(rank=2, world_size=3, local_rank=2, local_world_size=3))
    # One process per machine (multi-node): its explicit GPU is honoured.
    assert resolve_device("cuda:1", DistInfo(rank=1, world_size=2, local_rank=0,
                                             local_world_size=1)) == torch.device("cuda", 1)


class _Moved(Exception):
    """Raised by the patched ``Module.to`` once it has recorded where the model goes."""


@pytest.fixture
def record_model_device(monkeypatch):
    seen: list[torch.device] = []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        dev = kwargs.get("device", args[0] if args else None)
        if isinstance(dev, (str, torch.device)) and torch.device(dev).type == "cuda":
            seen.append(torch.device(dev))
            raise _Moved
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return seen


@pytest.mark.parametrize("flag", [[], ["--device", "cuda"], ["--device", "cuda:1"]])
def test_train_moves_the_model_to_the_indexed_gpu(cuda, record_model_device, tmp_path, flag,
                                                  capsys, monkeypatch):
    """`googlenet train` with no device flag on a CUDA machine: the model goes to cuda:1 (the
    current device here), never to an index-less "cuda"; set_device got the same device."""
    monkeypatch.chdir(tmp_path)
    code = cli_main(["train", "--variant", "bn", "--epochs", "1", "--no-progress",
                     "--out", str(tmp_path / "run"), *flag])
    err = capsys.readouterr().err
    assert code == 70 and "_Moved" in err  # stopped by the recorder, past device resolution
    assert record_model_device == [torch.device("cuda", 1)]
    assert cuda.set_calls and set(cuda.set_calls) == {torch.device("cuda", 1)}


@pytest.fixture
def tiny_weights(tmp_path):
    from PIL import Image

    from googlenet.data.preprocess import Preprocess
    from googlenet.models.googlenet import GoogLeNet
    from googlenet.weights import save_weights

    torch.manual_seed(0)
    model = GoogLeNet(variant="bn", num_classes=2, aux_logits=False)
    path = save_weights(model, tmp_path / "w.safetensors", class_names=["a", "b"],
                        preprocess=Preprocess(crop=32, resize=32))
    img = tmp_path / "img.png"
    Image.new("RGB", (40, 40), (90, 20, 200)).save(img)
    return path, img


@pytest.mark.parametrize("command", ["predict", "eval"])
@pytest.mark.parametrize("flag", [[], ["--device", "cuda"], ["--device", "cuda:0"]])
def test_eval_and_predict_move_the_model_to_the_indexed_gpu(cuda, record_model_device,
                                                            tiny_weights, tmp_path, capsys,
                                                            command, flag):
    weights, img = tiny_weights
    folder = tmp_path / "data"
    for c in ("a", "b"):
        (folder / "val" / c).mkdir(parents=True)
        (folder / "train" / c).mkdir(parents=True)
        (folder / "val" / c / "x.png").write_bytes(img.read_bytes())
        (folder / "train" / c / "x.png").write_bytes(img.read_bytes())
    argv = (["predict", str(img), "--weights", str(weights)] if command == "predict"
            else ["eval", str(weights), "--data", str(folder), "--split", "val"])
    code = cli_main(argv + flag)
    err = capsys.readouterr().err
    want = torch.device("cuda", 0 if flag[-1:] == ["cuda:0"] else 1)
    assert code == 70 and "_Moved" in err, err
    assert record_model_device[:1] == [want]
    assert cuda.set_calls and set(cuda.set_calls) == {want}


def test_amp_auto_is_float32_for_detection_on_a_gpu(cuda):
    """Until a GPU run shows bf16 detection reaching its targets, amp auto trains and runs
    detectors in float32 on CUDA; classifiers still get bf16 there."""
    from googlenet.models.graph import resolve_amp

    assert resolve_amp("auto", "cuda:0") == "bf16"
    assert resolve_amp("auto", "cuda:0", detector=True) == "none"
    assert resolve_amp("bf16", "cuda:0", detector=True) == "bf16"  # asked for: given
    assert resolve_amp("auto", "cpu", detector=True) == resolve_amp("auto", "cpu")
