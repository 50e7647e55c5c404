"""Export round trips for every variant: ONNX (onnxruntime) within 1e-4 of eager fp32, TorchScript
and torch.export within 1e-5; batch dynamic; aux heads never exported; metadata carried."""

from __future__ import annotations

import json

import pytest
import torch

from googlenet import cli
from googlenet.interop import export as E
from googlenet.infer.bench import realistic_random_init
from googlenet.errors import UserError
from googlenet.models.googlenet import GoogLeNet
from googlenet.data.preprocess import Preprocess
from googlenet.weights import save_weights
from googlenet.models.registry import list_variants

SIZE = 64
TOL = {"onnx": 1e-4, "torchscript": 1e-5, "export": 1e-5}

VARIANTS = tuple(list_variants())  # every registered model: a new registration is tested too


def _model(variant: str) -> GoogLeNet:
    # aux heads present in the model: the export must leave them out. Random weights with O(1)
    # activations, so 1e-5 is a real bound (torchvision's init gives logits ~1e-12).
    return realistic_random_init(GoogLeNet(variant=variant, num_classes=10, aux_logits=True,
                                           init_weights=False), seed=1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trips(variant, tmp_path):
    torch.manual_seed(0)
    model = _model(variant)
    example = torch.randn(2, 3, SIZE, SIZE)
    x = torch.randn(3, 3, SIZE, SIZE)  # another batch size than traced with
    with torch.inference_mode():
        ref = model(x)
    assert ref.abs().max() > 0.5  # O(1) logits, so the tolerances below bite
    meta = E.export_metadata(model, Preprocess.for_size(SIZE), [str(i) for i in range(10)])

    program = E.export_program(model, example)
    paths = {
        "export": E.save_program(program, tmp_path / "m.pt2", meta),
        "onnx": E.export_onnx(program, tmp_path / "m.onnx", example=example, metadata=meta),
        "torchscript": E.export_torchscript(model, tmp_path / "m.torchscript.pt", example=example,
                                            metadata=meta),
    }
    loaded = {}
    for fmt, path in paths.items():
        fn, got = loaded[fmt] = E.load_export(fmt, path)
        out = fn(x)
        assert out.shape == (3, 10), fmt
        diff = (out - ref).abs().max().item()
        assert diff <= TOL[fmt], (fmt, diff)
        assert (out.argmax(1) == ref.argmax(1)).all(), fmt
        assert got["model_config"]["variant"] == variant and got["class_names"][3] == "3"
        assert got["preprocess"]["crop"] == SIZE

    # No aux heads anywhere: one ONNX output, no aux weights in any file.
    import onnx

    proto = onnx.load(str(paths["onnx"]))
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert [i.name for i in proto.graph.input] == ["images"]
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic
    assert not any("aux" in init.name for init in proto.graph.initializer)
    ts = torch.jit.load(str(paths["torchscript"]))
    assert not any(k.startswith("aux") for k in ts.state_dict())
    assert not any(k.startswith("aux") for k in program.state_dict)  # what was saved as .pt2
    assert model.aux1 is not None  # the model itself is untouched


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(UserError, match="opset 16"):
        E.export_onnx(_model("torchvision"), tmp_path / "m.onnx", example=torch.zeros(2, 3, 32, 32),
                      opset=16)


def test_export_command_checks_on_real_images(tmp_path, capsys):
    model = _model("bn")
    w = save_weights(model, tmp_path / "w.safetensors", class_names=[f"c{i}" for i in range(10)],
                     preprocess=Preprocess.for_size(SIZE))
    # TorchScript only: the command's other formats run the same code as test_round_trips.
    status = cli.main(["export", "--weights", str(w), "--format", "torchscript",
                       "-o", str(tmp_path / "out" / "net"), "--check-count", "4"])
    out, err = capsys.readouterr()
    assert status == 0, err
    path = tmp_path / "out" / "net.torchscript.pt"
    assert path.is_file()
    assert out.startswith(f"torchscript  {path}  max |logit diff| ")
    assert out.rstrip().endswith("top-1 agreement 100.00% on 4 built-in digits test images  ok")
    assert "aux heads left out" in err
    meta = E.load_export("torchscript", path)[1]
    assert meta["class_names"][0] == "c0" and meta["preprocess"]["resize"] == 73
    json.dumps(meta)  # plain JSON


def test_export_command_bad_weights(tmp_path, capsys):
    status = cli.main(["export", "--weights", str(tmp_path / "nope.safetensors")])
    assert status == 2
    assert "nope.safetensors: no such file" in capsys.readouterr().err
