"""Fast inference: the same trained GoogLeNet, run faster, each mode checked against fp32 eager.

``prepare(model, mode)`` returns a ``FastModel``: call it on a float32 ``(N, C, H, W)`` batch,
normalised as the weights' ``Preprocess`` says, and it returns float32 logits ``(N, classes)``.
Every mode starts from the eval-mode model without its aux heads (they never take part in
inference). The modes, and where each one applies:

    eager          the model as loaded, fp32: the reference every other mode is checked against
    fold           BatchNorm folded into the convolution before it (fuse_conv_bn_eval): the same
                   function up to float rounding, one op fewer per conv. Variants with BN only
                   (bn, torchvision); the paper variant has none to fold.
    channels_last  fold (where it applies) + NHWC tensors, the layout oneDNN's CPU convolutions
                   and tensor cores prefer; fp32, no precision lost
    bf16           channels_last + torch.autocast(bfloat16). Fast only with native bf16 (a GPU,
                   or a CPU with AVX512-BF16/AMX); elsewhere oneDNN emulates it, far slower
    fp16           channels_last + torch.autocast(float16): for GPUs without bf16. CUDA only (CPU
                   fp16 convolutions are emulated); checked with bf16's tolerance.
    int8           post-training static quantization, torch.ao FX graph mode, x86 backend
                   (fbgemm/oneDNN): per-channel int8 weights, uint8 activations calibrated on a
                   few hundred of the user's images. CPU only.
    ort            onnxruntime on the ONNX export of the model, fp32 (its own graph fusions and
                   NCHWc convolution kernels). CPU.
    ort_int8       onnxruntime static quantization (quantize_static, QDQ, per-channel int8
                   weights, uint8 activations), calibrated like int8. CPU.
    compile        torch.compile (inductor, weights frozen as constants) of channels_last, fp32
    ov             OpenVINO's CPU plugin on our ONNX export (BN folded, no aux heads, LRN as
                   ONNX's LRN op: OpenVINO's LRN kernel is ~2x faster than the decomposition;
                   onnxruntime's is slower, so the ort modes keep it) converted by
                   ``openvino.convert_model``, fp32 forced (INFERENCE_PRECISION_HINT f32: the
                   plugin would otherwise run bf16 on CPUs that have it). CPU.
    ov_bf16        the same with INFERENCE_PRECISION_HINT bf16; only where the CPU has native
                   bf16 (AVX512-BF16 / AMX), never emulated. CPU.
    ov_int8        NNCF post-training quantization of the OpenVINO model, calibrated on the same
                   images as int8 and ort_int8. CPU.

The OpenVINO modes compile with PERFORMANCE_HINT LATENCY (one stream, ``threads`` threads) for
small batches and split batches of 2+ images per stream over THROUGHPUT streams
(``interop.openvino.OVRunner``; ``ov_hint`` overrides).

How close each mode must stay to fp32 eager is ``TOLERANCES``, checked by ``agreement``.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
import torch.nn as nn

from ..errors import UserError
from ..metrics.agreement import TOLERANCES, Agreement, Tolerance, agreement, check_agreement
from ..models.googlenet import GoogLeNet
from ..models.graph import (
    InferenceGraph, amp_autocast, fold_batchnorm, has_batchnorm, inference_graph, native_bf16,
    resolve_amp, without_aux,
)
from .modes import MODES, Mode  # the table of modes, plain data (the command line's --help)

__all__ = ["Mode", "MODES", "with_amp", "TOLERANCES", "Tolerance", "FastModel", "Agreement",
           "prepare",
           "applies", "fold_batchnorm", "inference_graph", "InferenceGraph", "agreement",
           "check_agreement", "has_batchnorm", "native_bf16", "calibration_batches"]


OV_MODES = ("ov", "ov_bf16", "ov_int8")
CPU_ONLY_RUNTIMES = ("ort", "ort_int8", *OV_MODES)
# --amp (the one spelling of mixed precision across commands) applied to a --mode: the fp32 torch
# modes become the autocast mode, OpenVINO's fp32 mode its bf16 one.
_WITH_AMP = {"bf16": {"eager": "bf16", "fold": "bf16", "channels_last": "bf16", "bf16": "bf16",
                      "ov": "ov_bf16", "ov_bf16": "ov_bf16", "cuda_graph": "cuda_graph_bf16",
                      "cuda_graph_bf16": "cuda_graph_bf16"},
             "fp16": {"eager": "fp16", "fold": "fp16", "channels_last": "fp16", "fp16": "fp16"}}


def with_amp(mode: str, amp: str, device: torch.device | str = "cpu") -> str:
    """The mode that runs ``mode`` under ``amp`` (none | bf16 | fp16 | auto: bf16 where ``device``
    has it natively), e.g. (eager, bf16) -> bf16, (ov, bf16) -> ov_bf16; a UserError naming --amp
    where the pair has no such mode."""
    if amp == "auto":
        amp = resolve_amp(amp, device)
        if mode not in _WITH_AMP.get(amp, {}):
            return mode  # auto picks no precision a mode cannot take
    if amp in (None, "none"):
        return mode
    if amp not in _WITH_AMP:
        raise UserError(f"--amp {amp}: choose one of none, {', '.join(_WITH_AMP)}", key="amp")
    if mode not in _WITH_AMP[amp]:
        fits = ", ".join(m for m in _WITH_AMP[amp] if m in ("eager", "ov"))
        raise UserError(f"--amp {amp} does not combine with --mode {mode} (it runs in "
                        f"{MODES[mode].precision} by itself); use --mode {fits}", key="amp")
    return _WITH_AMP[amp][mode]


# ---------------------------------------------------------------------------------------------
# The fast model
# ---------------------------------------------------------------------------------------------

@dataclass
class FastModel:
    """A prepared mode: ``fast(x)`` maps (N, C, H, W) float32 -> (N, classes) float32 logits
    (on ``device``; the CPU for onnxruntime modes)."""

    mode: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    notes: list[str] = field(default_factory=list)
    setup_s: float = 0.0  # time prepare() took (export, calibration, compilation)

    @property
    def precision(self) -> str:
        return MODES[self.mode].precision

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(x)


def applies(model: GoogLeNet, mode: str, device: torch.device | str = "cpu") -> Optional[str]:
    """None if ``mode`` applies to ``model`` on ``device``, else the reason it does not."""
    if mode not in MODES:
        return f"unknown mode {mode!r}; choose from {list(MODES)}"
    device = torch.device(device)
    if device.type not in MODES[mode].devices:
        return f"{mode} runs on {' and '.join(MODES[mode].devices)} only, not {device.type}"
    if mode == "fold" and not has_batchnorm(model):
        return "no BatchNorm to fold (the paper variant has none)"
    if mode in OV_MODES:
        from ..interop import openvino as ovi

        why = ovi.available()
        if why is not None:
            return why
        if mode == "ov_bf16" and not ovi.native_bf16():
            return ("no native bf16 on this CPU (OpenVINO lists no BF16 capability: neither "
                    "AVX512-BF16 nor AMX)")
    return None


def calibration_batches(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 32
                        ) -> list[torch.Tensor]:
    """A (N, C, H, W) tensor or an iterable of batches -> a list of (<=batch_size, C, H, W) batches."""
    if isinstance(images, torch.Tensor):
        return list(images.split(batch_size))
    return [b for b in images]


def prepare(model: GoogLeNet, mode: str, *, device: torch.device | str = "cpu",
            calibration: Optional[torch.Tensor | Iterable[torch.Tensor]] = None,
            image_size: int = 224, threads: Optional[int] = None,
            onnx_path: Optional[str | os.PathLike] = None, ort_spinning: bool = True,
            ov_hint: str = "auto") -> FastModel:
    """Make ``model`` (a GoogLeNet, any variant) run in ``mode`` on ``device``.

    calibration: preprocessed images (N, C, H, W), or batches of them, for the int8 modes: a few
    hundred of the images the model will see (their activation ranges set the int8 scales).
    image_size: the spatial size the ONNX modes are exported at (batch stays dynamic).
    threads: intra-op threads for onnxruntime and OpenVINO (default: torch's setting).
    onnx_path: for the onnxruntime and OpenVINO modes, an existing ONNX export of this very
    model (from ``export.export_onnx``) to use instead of exporting it again.
    ort_spinning: let onnxruntime's threads busy-wait for the next call (its default; lowest
    latency). Turn it off where other work shares the process: spinning threads keep the cores
    busy after a call returns and slow down whatever runs next.
    ov_hint: OpenVINO's PERFORMANCE_HINT: "auto" (see the module docstring), "LATENCY" or
    "THROUGHPUT".
    """
    why = applies(model, mode, device)
    if why is not None:
        raise UserError(f"mode {mode}: {why}")
    device = torch.device(device)
    spec = MODES[mode]
    if spec.needs_calibration and calibration is None:
        raise UserError(f"mode {mode} needs calibration images (a few hundred like the ones it "
                        f"will classify)", key="calibration")
    t0 = time.perf_counter()
    base = without_aux(model).to(device)
    notes: list[str] = []
    if mode == "eager":
        fn: Callable[[torch.Tensor], torch.Tensor] = _eager(base, device)
    elif mode == "fold":
        fn = _eager(fold_batchnorm(base), device)
    elif mode in ("channels_last", "bf16", "fp16"):
        if has_batchnorm(base):
            fold_batchnorm(base)
        base = base.to(memory_format=torch.channels_last)
        if mode == "bf16" and not native_bf16(device):
            notes.append(f"no native bf16 on this {device.type} (oneDNN reports neither "
                         f"AVX512-BF16 nor AMX): bf16 is emulated and slow here")
        fn = _eager(base, device, channels_last=True,
                    amp=mode if mode in ("bf16", "fp16") else "none")
    elif mode == "int8":
        fn = _torch_int8(base, calibration_batches(calibration), notes)
    elif mode in ("ort", "ort_int8"):
        fn = _onnxruntime(base, image_size=image_size, threads=threads, onnx_path=onnx_path,
                          spinning=ort_spinning,
                          calibration=calibration_batches(calibration) if mode == "ort_int8" else None,
                          notes=notes)
    elif mode == "compile":
        fn = _compiled(base, device, image_size=image_size, notes=notes)
    elif mode in ("cuda_graph", "cuda_graph_bf16"):
        fn = _cuda_graph(base, device, amp="bf16" if mode == "cuda_graph_bf16" else "none",
                         notes=notes)
    elif mode in OV_MODES:
        fn = _openvino(base, mode, image_size=image_size, threads=threads, hint=ov_hint,
                       onnx_path=onnx_path,
                       calibration=calibration_batches(calibration) if mode == "ov_int8" else None,
                       notes=notes)
    else:  # pragma: no cover - MODES and this chain are kept in step
        raise AssertionError(mode)
    return FastModel(mode, fn, device if mode not in CPU_ONLY_RUNTIMES else torch.device("cpu"),
                     notes, setup_s=time.perf_counter() - t0)


def _eager(model: nn.Module, device: torch.device, *, channels_last: bool = False,
           amp: str = "none") -> Callable[[torch.Tensor], torch.Tensor]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with amp_autocast(amp, device):
            return model(x).float()

    return run


def _torch_int8(model: GoogLeNet, calibration: list[torch.Tensor],
                notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    # The x86 backend (fbgemm with oneDNN) fuses conv+ReLU (conv+BN+ReLU too) by itself; the
    # LRN of the paper variant has no int8 kernel and runs in fp32 between dequant/quant.
    graph = InferenceGraph(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FX quantization's deprecation notices (moving to torchao)
        prepared = prepare_fx(graph, get_default_qconfig_mapping("x86"), (calibration[0][:1],))
        with torch.inference_mode():
            for batch in calibration:
                prepared(batch)  # observers record activation ranges
        quantized = convert_fx(prepared)
    notes.append(f"calibrated on {sum(len(b) for b in calibration)} images")

    def run(x: torch.Tensor) -> torch.Tensor:
        return quantized(x.to("cpu"))

    return run


def _onnxruntime(model: GoogLeNet, *, image_size: int, threads: Optional[int],
                 onnx_path: Optional[str | os.PathLike], spinning: bool,
                 calibration: Optional[list[torch.Tensor]],
                 notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    from ..interop.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="googlenet-ort-") as tmp:
        if onnx_path is not None:
            path = Path(onnx_path)
        else:
            path = Path(tmp) / "model.onnx"
            example = torch.zeros(2, model.in_chans, image_size, image_size)
            export_onnx(model.cpu(), path, example=example)
        if calibration is not None:
            path = _ort_quantize(path, calibration, Path(tmp))
            notes.append(f"calibrated on {sum(len(b) for b in calibration)} images")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(session.run(None, {name: a})[0])

    return run


def _ort_quantize(path: Path, calibration: list[torch.Tensor], tmp: Path) -> Path:
    from ..interop.export import quantize_onnx_int8

    return quantize_onnx_int8(path, tmp / "model-int8.onnx", calibration, tmp)


def _compiled(model: GoogLeNet, device: torch.device, *, image_size: int,
              notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch._inductor.config as inductor_config

    if has_batchnorm(model):
        fold_batchnorm(model)
    model = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(model, dynamic=False)
    seen: set[tuple[int, ...]] = set()

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if tuple(x.shape) not in seen:
            # freezing: weights become constants, so inductor can pre-pack them for oneDNN
            with inductor_config.patch(freezing=True):
                out = compiled(x)
            seen.add(tuple(x.shape))
            return out.float()
        return compiled(x).float()

    notes.append("compiles once per input shape (the first call of each batch size is slow)")
    return run


def _cuda_graph(model: GoogLeNet, device: torch.device, *, amp: str,
                notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Small batches on a GPU are bound by kernel launches (~100 of them per image; batch 1 took
    3.3 ms eager on an H200, benchmarks/results/gpu.md): the eval forward is captured once per
    input shape as a CUDA graph and replayed, one launch for the whole network."""
    if has_batchnorm(model):
        fold_batchnorm(model)
    model = model.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if amp == "bf16" else None
    graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor]] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        # autocast's cache of cast weights must be off while capturing (torch.cuda.graph's docs)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None,
                            cache_enabled=False):
            return model(x).float()

    def capture(shape: tuple[int, ...]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        static_in = torch.zeros(shape, device=device).contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN picks its algorithms
            for _ in range(3):
                forward(static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = forward(static_in)
        return graph, static_in, static_out

    def run(x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in graphs:
            graphs[key] = capture(key)
        graph, static_in, static_out = graphs[key]
        static_in.copy_(x, non_blocking=True)
        graph.replay()
        return static_out.clone()

    notes.append("captures one CUDA graph per input shape (the first call of each is slow)")
    return run


def _openvino(model: GoogLeNet, mode: str, *, image_size: int, threads: Optional[int], hint: str,
              onnx_path: Optional[str | os.PathLike],
              calibration: Optional[list[torch.Tensor]],
              notes: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    from ..interop import openvino as ovi

    example = torch.zeros(2, model.in_chans, image_size, image_size)
    ov_model = ovi.from_googlenet(model, example, onnx_path)  # BN folded, LRN as one op
    if calibration is not None:
        ov_model = ovi.quantize(ov_model, calibration)
        notes.append(f"calibrated on {sum(len(b) for b in calibration)} images (NNCF)")
    precision = MODES[mode].precision
    return ovi.OVRunner(ov_model, precision, threads=threads or torch.get_num_threads(), hint=hint)
