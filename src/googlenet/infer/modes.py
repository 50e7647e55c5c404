"""The fast inference modes (``fast.py`` runs them) and the runtimes ``googlenet bench`` times
torchvision's GoogLeNet in (``bench_worker.py``), by name, as plain data; fast.py describes what
each mode does.

No torch here, on purpose: ``googlenet bench --help`` lists them without importing torch.
``fast.py`` re-exports ``Mode`` and ``MODES``, ``bench_worker.py`` ``PEERS``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_BATCH_SIZE", "Mode", "MODES", "PEERS", "TORCH_PEERS", "DEFAULT_MODES", "DEFAULT_PEERS", "GPU_MODES",
           "GPU_PEERS"]


# Most crops in one forward pass of `eval` and `predict` (one default for both): the batch that
# keeps a CPU's cores busy, and bounds the memory of 144-crop passes (a GPU takes more).
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class Mode:
    name: str
    precision: str  # "fp32" | "bf16" | "int8": which tolerance applies
    devices: tuple[str, ...]  # device types it runs on
    needs_calibration: bool
    summary: str


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("eager", "fp32", ("cpu", "cuda"), False, "fp32 eager PyTorch (the reference)"),
    Mode("fold", "fp32", ("cpu", "cuda"), False, "BatchNorm folded into convs, fp32"),
    Mode("channels_last", "fp32", ("cpu", "cuda"), False, "BN folded + channels_last, fp32"),
    Mode("bf16", "bf16", ("cpu", "cuda"), False, "BN folded + channels_last + bf16 autocast"),
    Mode("fp16", "bf16", ("cuda",), False, "BN folded + channels_last + fp16 autocast (GPUs)"),
    Mode("int8", "int8", ("cpu",), True, "torch.ao FX int8 static quantization (x86 backend)"),
    Mode("ort", "fp32", ("cpu",), False, "onnxruntime, fp32"),
    Mode("ort_int8", "int8", ("cpu",), True, "onnxruntime int8 static quantization (QDQ)"),
    Mode("compile", "fp32", ("cpu", "cuda"), False, "torch.compile (inductor, frozen) + BN folded + channels_last, fp32"),
    Mode("cuda_graph", "fp32", ("cuda",), False, "BN folded + channels_last, replayed as a CUDA graph (tf32 convs)"),
    Mode("cuda_graph_bf16", "bf16", ("cuda",), False, "BN folded + channels_last + bf16 autocast, replayed as a CUDA graph"),
    Mode("ov", "fp32", ("cpu",), False, "OpenVINO CPU plugin, fp32"),
    Mode("ov_bf16", "bf16", ("cpu",), False, "OpenVINO CPU plugin, bf16 (native bf16 CPUs only)"),
    Mode("ov_int8", "int8", ("cpu",), True, "OpenVINO + NNCF int8 post-training quantization"),
)}

# torchvision's own GoogLeNet in another runtime (a peer) -> its precision class
PEERS: dict[str, str] = {"eager": "fp32", "compile": "fp32", "eager_bf16": "bf16",
                         "compile_bf16": "bf16", "ort": "fp32", "ov": "fp32", "ov_bf16": "bf16",
                         "ov_int8": "int8"}
TORCH_PEERS = ("eager", "compile", "eager_bf16", "compile_bf16")  # the others: CPU runtimes

# What ``googlenet bench`` times unless told otherwise
DEFAULT_MODES = ("eager", "fold", "channels_last", "bf16", "int8", "ort", "ort_int8", "ov",
                 "ov_bf16", "ov_int8")
DEFAULT_PEERS = ("eager", "ort", "ov", "ov_bf16", "ov_int8", "compile")
# On a GPU: eager, autocast and CUDA-graph modes against torchvision eager and compiled, fp32 (tf32
# convolutions) and bf16.
GPU_MODES = ("eager", "bf16", "cuda_graph", "cuda_graph_bf16")
GPU_PEERS = ("eager", "eager_bf16", "compile", "compile_bf16")
