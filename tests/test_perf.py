"""The OpenVINO fast modes, the reduced-precision export artifacts and the isolated benchmark.

Models are random with O(1) activations (``bench.realistic_random_init``) and a nearest-class-mean
head on real digit images (as in test_fast), so top-1 agreement is not vacuous. Every OpenVINO
conversion takes seconds (tens on a loaded machine): those tests are marked slow.
"""

from __future__ import annotations

import json

import pytest
import torch

from googlenet.data.preprocess import Preprocess
from googlenet.infer import fast
from googlenet.models.registry import list_variants

pytest.importorskip("openvino")
from googlenet.interop import openvino as ovi  # noqa: E402

SIZE = 64
VARIANTS = tuple(list_variants())
# (top-1 agreement, max |diff| / max |logit|) on 32 images; int8 looser on random features
# (see test_fast's docstring): the benchmark's target with trained weights is TOLERANCES.
EXPECT = {"fp32": (1.0, fast.TOLERANCES["fp32"].rel), "bf16": (0.90, fast.TOLERANCES["bf16"].rel),
          "int8": (0.85, 0.40)}
PRE = Preprocess(crop=SIZE, resize=SIZE, mean=(0.3,) * 3, std=(0.32,) * 3)


# digits, models: fixtures in conftest.py (shared with test_fast.py)


@pytest.fixture(scope="module")
def onnx_files(models, tmp_path_factory):
    """One ONNX export per variant, shared by its three OpenVINO modes."""
    from googlenet.interop.export import export_onnx

    d = tmp_path_factory.mktemp("onnx")
    return {v: export_onnx(m, d / f"{v}.onnx", example=torch.zeros(2, 3, SIZE, SIZE))
            for v, m in models.items()}


def _skip_without_native_bf16(precision: str) -> None:
    if precision == "bf16" and not ovi.native_bf16():
        pytest.skip("no native bf16 on this CPU (OpenVINO lists no BF16 capability)")


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", fast.OV_MODES)
def test_openvino_mode_agrees_with_fp32_eager(models, onnx_files, digits, variant, mode):
    x, _, calib = digits
    _skip_without_native_bf16(fast.MODES[mode].precision)
    model = models[variant]
    ref = fast.prepare(model, "eager")
    runner = fast.prepare(model, mode, calibration=calib, image_size=SIZE,
                          onnx_path=onnx_files[variant])
    # batch 1 (one LATENCY stream) and 31 (split over THROUGHPUT streams where not int8)
    a = fast.check_agreement(ref, runner, [x[:1], x[1:]])
    top1, rel = EXPECT[runner.precision]
    assert a.n == 32
    assert a.top1 >= top1, str(a)
    assert a.rel <= rel, str(a)
    if runner.precision != "fp32":
        assert a.max_abs_diff > 0  # it really ran in reduced precision
    assert runner.device.type == "cpu"


def test_openvino_modes_are_refused_where_they_do_not_apply(models):
    assert fast.applies(models["paper"], "ov", "cuda") == "ov runs on cpu only, not cuda"
    with pytest.raises(Exception, match="calibration"):
        fast.prepare(models["paper"], "ov_int8")
    why = fast.applies(models["paper"], "ov_bf16")
    assert (why is None) == ovi.native_bf16()
    if why is not None:
        assert "no native bf16" in why


def test_runner_hints_are_checked():
    with pytest.raises(Exception, match="hint"):
        ovi.OVRunner(None, "fp32", hint="FASTEST")
    assert ovi.compile_config("fp32", threads=2) == {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": "2"}
    assert ovi.compile_config("int8", threads=None, hint="THROUGHPUT") == {
        "PERFORMANCE_HINT": "THROUGHPUT"}


def test_lrn_becomes_one_onnx_node_with_the_same_output(models, onnx_files, digits, tmp_path):
    """The paper variant's two LRNs, exported as 9 nodes each, become ONNX LRN nodes; onnxruntime
    gives the same logits both ways (1e-5 of max |logit|)."""
    import shutil

    import onnx
    import onnxruntime as ort

    from googlenet.interop.onnx_lrn import fuse_lrn_file, lrn_setting

    x = digits[0]
    assert lrn_setting(models["paper"]) == {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}
    assert lrn_setting(models["bn"]) is None
    path = tmp_path / "lrn.onnx"
    shutil.copyfile(onnx_files["paper"], path)
    before = len(onnx.load(str(path)).graph.node)
    assert fuse_lrn_file(path, models["paper"]) == 2
    proto = onnx.load(str(path))
    assert [n.op_type for n in proto.graph.node].count("LRN") == 2
    assert len(proto.graph.node) == before - 2 * 8
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.numpy()})[0] for p in (onnx_files["paper"], path)]
    assert abs(outs[0] - outs[1]).max() <= 1e-5 * abs(outs[0]).max()
    assert fuse_lrn_file(path, models["paper"]) == 0  # nothing left to fuse


# -- export --precision ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "bf16", "fp16"])
def test_precision_export_loads_back_with_its_metadata(models, digits, tmp_path, precision):
    from googlenet.interop.export import (
        PRECISION_FILES, export_metadata, export_precision, load_export,
    )

    _skip_without_native_bf16(precision)
    x, _, calib = digits
    model = models["paper"]
    record = {"source": "digits test[32:48]", "count": len(calib), "preprocess": json.loads(json.dumps(PRE.__dict__))}
    written = export_precision(model, precision, tmp_path / "m", example=x[:2], check_x=x,
                               calibration=[calib], calibration_record=record,
                               metadata=export_metadata(model, PRE, [str(i) for i in range(10)]))
    assert [(rt, p.name) for rt, p, _ in written] == [
        (rt, "m" + suffix) for rt, suffix in PRECISION_FILES[precision]]
    with torch.inference_mode():
        ref = model(x)
    for runtime, path, a in written:
        if runtime == "onnx":
            fn, meta = load_export("onnx", path)
        else:
            assert path.with_suffix(".bin").is_file()
            fn, meta = ovi.load_ir(path)
        sidecar = json.loads(path.with_name(path.name + ".json").read_text())
        assert meta == sidecar
        assert meta["precision"] == precision and meta["runtime"] == runtime
        assert meta["class_names"] == [str(i) for i in range(10)]
        assert meta["calibration"] == (record if precision == "int8" else None)
        # loaded back in its runtime, it reproduces the recorded agreement
        again = fast.agreement(ref, fn(x))
        assert again.max_abs_diff == pytest.approx(meta["agreement"]["max_abs_diff"], rel=1e-3,
                                                   abs=1e-6)
        assert again.top1 == meta["agreement"]["top1"] >= EXPECT[
            "bf16" if precision == "fp16" else precision][0]
        assert 0 < again.rel <= EXPECT["bf16" if precision == "fp16" else precision][1]


def test_precision_export_is_atomic(models, digits, tmp_path, monkeypatch):
    """A precision export that fails after writing its files (here: the agreement check raises)
    leaves the previous export untouched and no temp folder behind; one that succeeds replaces it."""
    from googlenet.interop import export as E

    x, _, _ = digits
    old = tmp_path / "m.fp16.onnx"
    old.write_bytes(b"previous export")
    real = E.agreement

    def boom(*a, **k):
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(E, "agreement", boom)
    with pytest.raises(RuntimeError, match="killed mid-export"):
        E.export_precision(models["paper"], "fp16", tmp_path / "m", example=x[:2], check_x=x)
    assert old.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fp16.onnx"]
    monkeypatch.setattr(E, "agreement", real)
    written = E.export_precision(models["paper"], "fp16", tmp_path / "m", example=x[:2], check_x=x)
    assert [p.name for _, p, _ in written] == ["m.fp16.onnx"] and old.read_bytes() != b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fp16.onnx", "m.fp16.onnx.json"]


def test_precision_export_refuses_int8_without_calibration(models, digits, tmp_path):
    from googlenet.errors import UserError
    from googlenet.interop.export import export_precision

    x, _, _ = digits
    with pytest.raises(UserError, match="calibration"):
        export_precision(models["paper"], "int8", tmp_path / "m", example=x[:2], check_x=x)
    with pytest.raises(UserError, match="precision"):
        export_precision(models["paper"], "int4", tmp_path / "m", example=x[:2], check_x=x)


# -- the benchmark's isolation -----------------------------------------------------------------

@pytest.mark.slow
def test_bench_times_each_runner_in_its_own_process(capsys):
    import os

    from googlenet import cli

    status = cli.main(["bench", "--variants", "torchvision", "--modes", "fold", "--peers",
                       "--image-size", "32", "--batch-sizes", "2", "--repeats", "2",
                       "--warmup", "0", "--agreement-images-random", "2",
                       "--calibration-images", "2", "--peak-seconds", "0.02",
                       "--paired-rounds", "2", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    doc = json.loads(out)
    rows = [(r["variant"], r["mode"]) for r in doc["results"]]
    assert rows == [("torchvision (reference)", "eager"), ("torchvision", "fold")]
    pids = [r["process"]["pid"] for r in doc["results"]]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    for r in doc["results"]:
        assert len(r["timings_s"]) == 2
        assert r["images_per_s_min"] <= r["images_per_s"] <= r["images_per_s_max"]
        assert len(r["process"]["load_before"]) == 3
    m = doc["machine"]
    assert isinstance(m["vnni"], bool) and isinstance(m["native_bf16"], bool)
    assert m["openvino"] is not None and "load_average_after" in m
    # fp32 rows only, no peer but the reference: one ratio, ours over the reference
    q, = doc["ratios_to_peers"]
    assert q["precision"] == "fp32" and q["peer"] == "torchvision (reference) eager"
    assert q["ratio"] == pytest.approx(doc["results"][1]["images_per_s"]
                                       / doc["results"][0]["images_per_s"])
    # the paired timing: two more processes, alive together, taking turns (AB then BA)
    h = q["paired"]
    assert h["rounds"] == 2 and len(h["ratios"]) == 2 and len(set(h["pids"])) == 2
    assert not set(h["pids"]) & {os.getpid(), *pids}
    assert h["ratios"] == pytest.approx([o / p for o, p in zip(h["ours_images_per_s"],
                                                                h["peer_images_per_s"])])
    assert h["ratio_min"] <= h["ratio"] <= h["ratio_max"]
    # the process waiting its turn used no core meanwhile (a spinning pool would show ~1.0)
    assert 0 <= h["idle_cpu_max"] < 0.5, h
    assert any(line.startswith("fp32 at batch 2, paired") for line in doc["summary"])


@pytest.mark.slow
def test_export_command_writes_fp16_with_sidecar(models, tmp_path, capsys):
    from googlenet import cli
    from googlenet.weights import save_weights

    w = save_weights(models["bn"], tmp_path / "w.safetensors", preprocess=PRE,
                     class_names=[str(i) for i in range(10)])
    status = cli.main(["export", "--weights", str(w), "--precision", "fp16", "-o",
                       str(tmp_path / "out" / "m"), "--check-count", "8"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "fp16 onnx" in out and " ok " in out
    meta = json.loads((tmp_path / "out" / "m.fp16.onnx.json").read_text())
    assert meta["precision"] == "fp16" and meta["agreement"]["n"] == 8
    assert meta["agreement"]["top1"] == 1.0 and 0 < meta["agreement"]["rel"] < 0.05
