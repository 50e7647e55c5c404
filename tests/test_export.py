"""Export round trips for every variant: ONNX (onnxruntime) within 1e-4 of eager fp32, TorchScript
and torch.export within 1e-5; batch dynamic; aux heads never exported; metadata carried."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_export_out_is_a_folder_and_dash_o_is_the_deprecated_prefix(tmp_path, capsys):
    """--out is a folder, as in every other command (--name the file stem); the old -o PREFIX
    still works, with a one-line deprecation warning."""
    w = save_weights(_model("bn"), tmp_path / "w.safetensors", preprocess=Preprocess.for_size(32))
    args = ["export", "--weights", str(w), "--format", "torchscript", "--check-count", "2"]
    assert cli.main([*args, "--out", str(tmp_path / "dir"), "--name", "net"]) == 0
    assert (tmp_path / "dir" / "net.torchscript.pt").is_file()
    assert "deprecated" not in capsys.readouterr().err
    assert cli.main([*args, "-o", str(tmp_path / "old" / "net")]) == 0
    assert (tmp_path / "old" / "net.torchscript.pt").is_file()
    err = capsys.readouterr().err
    assert "googlenet export: warning: -o is deprecated; use --out DIR --name NAME" in err
    assert cli.main([*args, "--out", str(tmp_path), "--name", "a/b"]) == 2
    assert "--name 'a/b': a file name without a folder" in capsys.readouterr().err


def test_oversized_pools_are_rewritten_for_openvino_with_the_same_output(tmp_path):
    """At 32 px the paper's 3x3/2 pool before inception 5a sees a 2x2 map, which OpenVINO's ONNX
    frontend cannot convert in ceil mode: the rewrite (explicit end padding) changes no logit."""
    import onnxruntime as ort

    pytest.importorskip("openvino")
    from googlenet.interop.openvino import pad_oversized_pools

    model = _model("bn").eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    path = E.export_onnx(model, tmp_path / "m.onnx", example=x[:2])

    def run() -> torch.Tensor:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])

    before = run()
    assert pad_oversized_pools(path) == 1  # pool4 only: the inception branches' pools are padded
    torch.testing.assert_close(run(), before, rtol=0, atol=0)
    assert pad_oversized_pools(path) == 0


@pytest.mark.slow
def test_int8_export_at_32px_writes_every_file(tmp_path):
    pytest.importorskip("openvino")
    model = _model("paper").eval()
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    written = E.export_precision(model, "int8", tmp_path / "m", example=x[:2], check_x=x,
                                 calibration=[x], calibration_record={"count": 8})
    assert [p.name for _, p, _ in written] == ["m.int8.onnx", "m.int8.xml"]
    for _, p, _ in written:
        sidecar = json.loads(p.with_name(p.name + ".json").read_text())
        assert sidecar["target"] == {"top1": 0.99, "rel": 0.15} and "within_target" in sidecar
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "m.int8.bin", "m.int8.onnx", "m.int8.onnx.json", "m.int8.xml", "m.int8.xml.json"]


def test_a_failed_int8_export_leaves_nothing_behind(tmp_path, monkeypatch):
    """The ONNX file is written and checked, then OpenVINO fails: neither file, nor a sidecar,
    nor the folder the export made, is left as if the export had finished."""
    import shutil

    from googlenet.interop import openvino as ovi

    monkeypatch.setattr(E, "quantize_onnx_int8", lambda src, dst, cal, work: shutil.copy(src, dst))

    def fail(*a, **kw):
        raise RuntimeError("OpConversionFailure: Conv rank has to be known")

    monkeypatch.setattr(ovi, "from_googlenet", fail)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="OpConversionFailure"):
        E.export_precision(_model("bn").eval(), "int8", tmp_path / "int8" / "model", example=x,
                           check_x=x, calibration=[x])
    assert list(tmp_path.iterdir()) == []


def test_export_below_its_agreement_target_is_a_failure(tmp_path, monkeypatch, capsys):
    """int8 files whose top-1 agreement (87.5%) is under the stated target (99%): exit 1 and
    'BELOW TARGET', never 'ok'."""
    from googlenet.metrics.agreement import Agreement

    def fake(model, precision, prefix, **kw):
        return [("onnx", Path(str(prefix) + ".int8.onnx"),
                 Agreement(n=32, top1=0.875, max_abs_diff=0.5, max_abs_ref=10.0))]

    monkeypatch.setattr(E, "export_precision", fake)
    w = save_weights(_model("bn"), tmp_path / "w.safetensors", preprocess=Preprocess.for_size(32))
    status = cli.main(["export", "--weights", str(w), "--precision", "int8", "--out",
                       str(tmp_path), "--check-count", "2", "--calibration-count", "2"])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert "top-1 agreement 87.50%" in out and "BELOW TARGET (top-1 agreement >= 99%" in out
    assert " ok" not in out and "do not reproduce the fp32 model closely enough" in err
