"""OpenVINO: convert a model (ours or any ``nn.Module``), quantize it with NNCF, compile it for
the CPU, save and load OpenVINO IR (.xml/.bin) with our metadata.

Precision. OpenVINO's CPU plugin runs fp32 models in bf16 by default on CPUs with native bf16
(AVX512-BF16 or AMX): ``INFERENCE_PRECISION_HINT`` is the switch, and ``compile`` always sets it
(``f32`` for fp32, ``bf16`` for bf16), so that "fp32" means fp32. int8 models (NNCF's
FakeQuantize nodes) run their quantized convolutions in int8 and the ops between them in the
plugin's default precision.

Streams. A synchronous call runs on one stream: ``PERFORMANCE_HINT=LATENCY`` (one stream, all
threads) is what a single call of any batch size wants. ``THROUGHPUT`` makes several streams of
fewer threads each; only a call split across them (``AsyncInferQueue``) gains from it, which
``OVRunner`` does for batches of at least two images per stream. Not for int8: an NNCF-quantized
GoogLeNet compiled with two streams has returned wrong logits, so int8 models always compile
with one stream (what was seen, with the versions: section "openvino" of
benchmarks/results/notes.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from ..models.graph import fold_batchnorm, has_batchnorm, without_aux
from .onnx_export import export_onnx
from .onnx_lrn import fuse_lrn_file

__all__ = ["available", "native_bf16", "convert", "from_googlenet", "pad_oversized_pools", "quantize", "compile_config", "OVRunner",
           "save_ir", "load_ir", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME, OUTPUT_NAME = "images", "logits"
META_KEY = "googlenet"  # rt_info key holding our metadata (JSON) inside the IR's .xml


def available() -> Optional[str]:
    """None if openvino and nncf import, else what to install."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "openvino is not installed (pip install 'googlenet[openvino]')"
    return None


def _ov():
    why = available()
    if why is not None:
        raise UserError(why, key="mode")
    import openvino as ov

    return ov


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (it lists BF16 among its
    OPTIMIZATION_CAPABILITIES only on CPUs with AVX512-BF16 or AMX)."""
    if available() is not None:
        return False
    return "BF16" in _ov().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def convert(module: nn.Module | str | os.PathLike, example: torch.Tensor):
    """An ``ov.Model`` of ``module`` (an eval-mode nn.Module, or the path of an ONNX file) with
    input ``images`` (batch dynamic, C/H/W of ``example``) and output ``logits``."""
    ov = _ov()
    import warnings

    shape = ov.PartialShape([-1, *example.shape[1:]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python branches over shapes
        if isinstance(module, nn.Module):
            model = ov.convert_model(module.eval().cpu(), example_input=example.cpu(), input=[shape])
        else:
            model = ov.convert_model(str(module), input=[shape])
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return model


def from_googlenet(model: nn.Module, example: torch.Tensor,
                   onnx_path: Optional[str | os.PathLike] = None):
    """An ``ov.Model`` of a GoogLeNet: aux heads dropped and BatchNorm folded, through our ONNX
    export (``onnx_path``, an export of this very model, or a fresh one) with each decomposed
    LRN put back as one ONNX ``LRN`` node (``onnx_lrn``), which OpenVINO runs as its own LRN
    kernel, faster than the 9-node decomposition the PyTorch frontend produces (measured:
    section "openvino" of benchmarks/results/notes.md)."""
    import shutil
    import tempfile

    m = without_aux(model).cpu()
    if has_batchnorm(m):
        fold_batchnorm(m)
    with tempfile.TemporaryDirectory(prefix="googlenet-ov-") as tmp:
        path = Path(tmp) / "model.onnx"
        if onnx_path is not None:
            shutil.copyfile(onnx_path, path)
        else:
            export_onnx(m, path, example=example.cpu())
        fuse_lrn_file(path, m)
        pad_oversized_pools(path)
        return convert(path, example)


def pad_oversized_pools(path: str | os.PathLike) -> int:
    """Rewrite, in the ONNX file ``path``, each ceil-mode MaxPool whose window is larger than
    its (padded) input as the same pool in floor mode with explicit end padding; returns how
    many. OpenVINO's ONNX frontend cannot convert such a pool ("rank has to be known" at the
    next conv): below 48 px the paper's 3x3/2 pool before inception 5a gets a 2x2 map (the
    torchvision variant's 2x2 pool does not). The output is the same: ONNX pads a MaxPool with
    -inf, so padding never wins, and the end padding is what ceil mode adds (PyTorch's rule: the
    last window starts inside the input or its left padding)."""
    import math

    import onnx

    model = onnx.load(str(path))
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input]}
    changed = 0
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        shape = shapes.get(node.input[0]) if node.op_type == "MaxPool" else None
        if not shape or len(shape) != 4 or not all(shape[2:]) or not attrs.get("ceil_mode") \
                or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            continue
        k, st = attrs["kernel_shape"], attrs.get("strides", [1, 1])
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if all(shape[2 + i] + pads[i] + pads[i + 2] >= k[i] for i in range(2)):
            continue
        for i in range(2):
            size, lo, hi = shape[2 + i], pads[i], pads[i + 2]
            n = math.ceil((size + lo + hi - k[i]) / st[i]) + 1  # ceil mode's output size
            if (n - 1) * st[i] >= size + lo:
                n -= 1
            pads[i + 2] = max(hi, (n - 1) * st[i] + k[i] - size - lo)
        keep = [a for a in node.attribute if a.name not in ("pads", "ceil_mode")]
        del node.attribute[:]
        node.attribute.extend(keep + [onnx.helper.make_attribute("pads", pads),
                                      onnx.helper.make_attribute("ceil_mode", 0)])
        changed += 1
    if changed:
        onnx.save(model, str(path))
    return changed


def quantize(model, calibration: Sequence[torch.Tensor]):
    """NNCF post-training quantization (int8 weights per channel, activations per tensor) of an
    ``ov.Model``, calibrated on ``calibration`` batches (N, C, H, W), preprocessed like the
    images the model will see. Full bias correction, not NNCF's default fast one: on the
    default digits run (paper variant, 32 px, 256 calibration images) the fast one left a max
    |logit diff| of 18% of the max |logit| and 99.2% top-1 agreement over 256 test images, the
    full one 1.7% and 100%; it costs ~5 s more (at 224 px, 19 s against 14 s on 2 cores)."""
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)
    batches = [b.detach().cpu().float().numpy() for b in calibration]
    if not batches:
        raise UserError("no calibration images for int8", key="calibration")
    # subset_size counts dataset items (our batches): all of them
    return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                         preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=False)


def compile_config(precision: str, *, threads: Optional[int], hint: str = "LATENCY"
                   ) -> dict[str, str]:
    """The CPU plugin's properties for ``precision`` ("fp32" | "bf16" | "int8")."""
    cfg = {"PERFORMANCE_HINT": hint}
    if precision == "fp32":
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    elif precision == "bf16":
        cfg["INFERENCE_PRECISION_HINT"] = "bf16"
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = str(threads)
    return cfg


class OVRunner:
    """Callable (N, C, H, W) float32 tensor -> (N, classes) float32 tensor on OpenVINO's CPU
    plugin. ``hint="auto"``: a LATENCY-compiled model (one stream) for small batches, and a
    THROUGHPUT-compiled one (compiled on first use) whose streams each take a slice of a batch
    of at least two images per stream."""

    def __init__(self, model, precision: str, *, threads: Optional[int] = None,
                 hint: str = "auto") -> None:
        if hint not in ("auto", "LATENCY", "THROUGHPUT"):
            raise UserError(f"OpenVINO hint {hint!r}: choose auto, LATENCY or THROUGHPUT",
                            key="hint")
        self.ov = _ov()
        self.core = self.ov.Core()
        if precision == "int8":
            hint = "LATENCY"  # multi-stream int8 gave wrong logits: see the module docstring
        self.model, self.precision, self.threads, self.hint = model, precision, threads, hint
        self._latency = None
        self._throughput = None  # (compiled model, AsyncInferQueue)
        if hint in ("auto", "LATENCY"):
            self._latency = self._compile("LATENCY")

    def _compile(self, hint: str):
        return self.core.compile_model(self.model, "CPU",
                                       compile_config(self.precision, threads=self.threads, hint=hint))

    def streams(self) -> int:
        if self._throughput is None:
            compiled = self._compile("THROUGHPUT")
            queue = self.ov.AsyncInferQueue(
                compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._throughput = (compiled, queue)
        return len(self._throughput[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        if self.hint == "LATENCY" or (self.hint == "auto" and len(a) < 4):
            return torch.from_numpy(self._latency(a)[0].copy())
        n = self.streams()
        if self.hint == "auto" and len(a) < 2 * n:
            return torch.from_numpy(self._latency(a)[0].copy())
        _, queue = self._throughput
        parts = np.array_split(a, min(n, len(a)))
        out: list[Optional[np.ndarray]] = [None] * len(parts)

        def done(request, i: int) -> None:
            out[i] = request.get_output_tensor(0).data.copy()

        queue.set_callback(done)
        for i, p in enumerate(parts):
            queue.start_async({0: p}, i)
        queue.wait_all()
        return torch.from_numpy(np.concatenate(out))


def save_ir(model, path: str | Path, metadata: Optional[dict[str, Any]] = None) -> Path:
    """Write ``model`` as OpenVINO IR: ``path`` (.xml) and its .bin, with ``metadata`` (JSON)
    in the model's rt_info under ``googlenet``. Weights stay as they are (no fp16 compression)."""
    ov = _ov()
    path = Path(path)
    if path.suffix != ".xml":
        raise UserError(f"{path}: OpenVINO IR files end in .xml", key="out")
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is not None:
        model.set_rt_info(json.dumps(metadata), META_KEY)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def load_ir(path: str | Path, *, precision: Optional[str] = None, threads: Optional[int] = None
            ) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """Read an IR written by ``save_ir`` and compile it: (images -> logits, metadata).
    ``precision``: "fp32" | "bf16" | "int8"; unset: the metadata's ("fp16" weights run in fp32)."""
    ov = _ov()
    path = Path(path)
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        raise UserError(f"{path}: no such OpenVINO IR (.xml with its .bin next to it)")
    model = ov.Core().read_model(str(path))
    meta: dict[str, Any] = {}
    if model.has_rt_info(META_KEY):
        meta = json.loads(model.get_rt_info(META_KEY).astype(str))
    if precision is None:
        precision = {"bf16": "bf16", "int8": "int8"}.get(meta.get("precision"), "fp32")
    return OVRunner(model, precision, threads=threads, hint="LATENCY"), meta
