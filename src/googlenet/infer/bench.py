"""``googlenet bench``: inference speed of every mode, against torchvision's GoogLeNet, in one run.

    googlenet bench                                  # all variants x all modes, batch 1 and 32
    googlenet bench --weights RUN --agreement-images 540 --out results.json

In one process and on the same real images (the built-in digits by default, preprocessed to
``--image-size``): ``torchvision.models.googlenet`` in eager fp32 (the reference every user has)
and each of our variants in each fast mode (``googlenet.fast``). For every row: images/s (median
of ``--repeats`` timed calls), the ratio to the reference, effective GFLOP/s (conv + linear FLOPs
per image from ``torch.utils.flop_counter``, times images/s) and its fraction of this machine's
measured peak (a large fp32 and bf16 matmul timed in the same run), and agreement with fp32 eager
(top-1 and max |logit diff| over ``--agreement-images`` images). The machine, CPU flags and
library versions are printed with the results.

Timing is round-robin: each repeat times every row once, in turn, so that load from other
processes on a shared machine spreads over all rows instead of skewing the ratios.

Weights. Speed does not depend on the weights' values with one exception: activations that
shrink into subnormal floats make CPU kernels many times slower. torchvision's own init with
untouched BatchNorm statistics does exactly that (logits ~1e-12), so random weights here are
drawn to keep activations O(1) (Kaiming fan-in for ReLU, mild BN statistics). The reference
gets the same weights as our torchvision variant (a trained one when ``--weights`` is one), so
both compute the same function, which is checked. Agreement is meaningful for trained weights
only; rows with random weights are marked so.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from . import fast
from ..data.imaging import ImageError
from ..errors import UserError
from ..models.googlenet import GoogLeNet

DEFAULT_MODES = ("eager", "fold", "channels_last", "bf16", "int8", "ort", "ort_int8")
REFERENCE = "torchvision eager fp32"


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU features that decide which kernels run (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
              "amx_int8")
    return [f for f in wanted if f in flags]


def machine_info(device: torch.device) -> dict[str, Any]:
    import torchvision

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": fast.native_bf16(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
    }
    for mod in ("onnxruntime", "onnx"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, *, max_n: int = 4096,
                budget_s: float = 1.0) -> dict[str, Any]:
    """GFLOP/s of a square matmul, sized up until one takes ``budget_s``/4 (so that emulated
    bf16, ~100x slower, is measured on a small matrix instead of taking minutes)."""
    n, best = 256, None
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b
        _sync(device)
        times = []
        t_end = time.perf_counter() + budget_s
        while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 20):
            t = time.perf_counter()
            a @ b
            _sync(device)
            times.append(time.perf_counter() - t)
        dt = statistics.median(times)
        best = {"n": n, "gflops": 2 * n ** 3 / dt / 1e9, "seconds": dt}
        if n >= max_n or dt > budget_s / 4:
            return best
        n *= 2


def bf16_conv_probe(device: torch.device) -> dict[str, float]:
    """GFLOP/s of one inception-sized 3x3 conv (192 -> 192 channels, 28x28, batch 8) in fp32
    and under bf16 autocast: the evidence for skipping bf16 where it is emulated."""
    conv = nn.Conv2d(192, 192, 3, padding=1).to(device).eval()
    x = torch.randn(8, 192, 28, 28, device=device)
    flops = 2 * 8 * 192 * 192 * 9 * 28 * 28
    out = {}
    for name, enabled in (("fp32", False), ("bf16", True)):
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
            conv(x)
            _sync(device)
            t = time.perf_counter()
            conv(x)
            _sync(device)
            out[name] = flops / (time.perf_counter() - t) / 1e9
    return out


# ---------------------------------------------------------------------------------------------
# Models and inputs
# ---------------------------------------------------------------------------------------------

def realistic_random_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights under which activations stay O(1) through all 22 layers (no subnormals):
    Kaiming normal (fan-in, ReLU gain) for convs and linears, zero biases, BN statistics and
    affine parameters near identity. Returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
    return model.eval()


def torchvision_reference(source: GoogLeNet) -> nn.Module:
    """``torchvision.models.googlenet`` (eager fp32) holding ``source``'s weights (a
    ``torchvision``-variant GoogLeNet), so that both compute the same function."""
    import torchvision

    from ..models.googlenet import torchvision_key

    if source.config["variant"] != "torchvision":
        raise ValueError("the reference takes its weights from a torchvision-variant model")
    tv = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                      num_classes=source.num_classes,
                                      transform_input=bool(source.config.get("transform_input")))
    ours = source.state_dict()
    tv.load_state_dict({k: ours[torchvision_key(k)] for k in tv.state_dict()})
    return tv.eval()


def count_flops(model: nn.Module, image_size: int, in_chans: int = 3) -> int:
    """FLOPs of one image's forward pass as ``torch.utils.flop_counter`` counts them (convs and
    matmuls, 2 per multiply-add; pooling, LRN, BN and ReLU are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, in_chans, image_size, image_size, device=next(model.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def load_images(data: Optional[str], splits: Sequence[str], n: int, pre, *,
                seed: int = 0) -> torch.Tensor:
    """Up to ``n`` real images from ``splits`` of a dataset, preprocessed: (n, C, crop, crop)."""
    from ..data.datasets import open_dataset

    out: list[torch.Tensor] = []
    tf = pre.eval_transform()
    errors: list[UserError] = []
    for split in splits:
        try:
            ds = open_dataset(data, split, seed=seed)
        except UserError as e:  # e.g. no test/ in PATH/<class>/ folders: the next split
            errors.append(e)
            continue
        for i in range(len(ds)):
            if len(out) >= n:
                break
            try:
                out.append(tf(ds.load(i)[0]))
            except ImageError:  # changed since the scan, or too large once resized
                continue
    if not out and len(errors) == len(splits):
        raise errors[-1]  # the last split's reason (the first may only say "no test/ folder")
    if not out:
        raise UserError(f"--data {data}: no images in splits {list(splits)}")
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    variant: str  # "torchvision (reference)" for the reference row
    mode: str
    precision: str
    weights: str  # "trained: SOURCE" or "random"
    flops_per_image: int
    setup_s: float = 0.0
    agreement: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)
    timings: dict[int, list[float]] = field(default_factory=dict)  # batch -> seconds per call

    def images_per_s(self, batch: int) -> float:
        return batch / statistics.median(self.timings[batch])


@dataclass
class Runner:
    row: Row
    fn: Callable[[torch.Tensor], torch.Tensor]


def build_runners(models: dict[str, tuple[GoogLeNet, str]], reference: nn.Module, modes: Sequence[str], *,
                  device: torch.device, image_size: int, calibration: torch.Tensor,
                  agreement_images: torch.Tensor, n_random: int, force_bf16: bool,
                  threads: Optional[int], log: Callable[[str], None]
                  ) -> tuple[list[Runner], list[dict[str, str]]]:
    """Prepare every (variant, mode), check it against that variant's fp32 eager logits (on the
    first ``n_random`` images only for models with random weights)."""
    ref_flops = count_flops(reference, image_size)
    runners = [Runner(Row("torchvision (reference)", "eager", "fp32", "same as our torchvision variant",
                          ref_flops), lambda x: reference(x.to(device)))]
    skipped: list[dict[str, str]] = []
    probe = None
    for variant, (model, weights) in models.items():
        flops = count_flops(model.to(device), image_size, model.in_chans)
        eager = fast.prepare(model, "eager", device=device)
        check = agreement_images[:n_random] if weights == "random" else agreement_images
        ref_logits = torch.cat([eager(b).cpu() for b in check.split(32)])
        for mode in modes:
            why = fast.applies(model, mode, device)
            if why is None and mode == "bf16" and not fast.native_bf16(device) and not force_bf16:
                probe = probe or bf16_conv_probe(device)
                why = (f"no native bf16 on this {device.type}: one 3x3 conv runs at "
                       f"{probe['bf16']:.1f} GFLOP/s in bf16 vs {probe['fp32']:.1f} in fp32 "
                       f"(--force-bf16 to time it anyway)")
            if why is not None:
                skipped.append({"variant": variant, "mode": mode, "reason": why})
                log(f"  {variant:12s} {mode:14s} skipped: {why}")
                continue
            try:
                # ort_spinning off: onnxruntime's busy-waiting threads would otherwise steal the
                # cores from the row timed next (measured: the reference 4x slower at batch 1)
                runner = fast.prepare(model, mode, device=device, calibration=calibration,
                                      image_size=image_size, threads=threads, ort_spinning=False)
            except Exception as e:  # noqa: BLE001  one mode failing must not lose the others
                reason = f"failed to prepare: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                skipped.append({"variant": variant, "mode": mode, "reason": reason})
                log(f"  {variant:12s} {mode:14s} {reason}")
                continue
            # compile: the first call per shape compiles; do it here, not inside the timing
            logits = torch.cat([runner(b).cpu() for b in check.split(32)])
            a = fast.agreement(ref_logits, logits)
            row = Row(variant, mode, runner.precision, weights, flops, setup_s=runner.setup_s,
                      agreement=a.to_dict(), notes=runner.notes)
            runners.append(Runner(row, runner))
            log(f"  {variant:12s} {mode:14s} ready in {runner.setup_s:5.1f} s; {a}")
    return runners, skipped


def time_runners(runners: Sequence[Runner], inputs: torch.Tensor, batch_sizes: Sequence[int], *,
                 repeats: int, device: torch.device, log: Callable[[str], None]) -> None:
    """Round-robin timing: each repeat calls every runner once per batch size."""
    for b in batch_sizes:
        x = inputs[:b]
        if len(x) < b:
            x = x.repeat((b + len(x) - 1) // len(x), 1, 1, 1)[:b]
        x = x.to(device)
        for r in runners:  # warm-up (first-call allocations, compilation for a new shape)
            with torch.inference_mode():
                r.fn(x)
                r.fn(x)
            _sync(device)
            r.row.timings[b] = []
        for k in range(repeats):
            for r in runners:
                with torch.inference_mode():
                    _sync(device)
                    t = time.perf_counter()
                    r.fn(x)
                    _sync(device)
                    r.row.timings[b].append(time.perf_counter() - t)
            log(f"  batch {b}: repeat {k + 1}/{repeats} done")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def results(rows: Sequence[Row], batch_sizes: Sequence[int], peaks: dict[str, dict[str, Any]]
            ) -> list[dict[str, Any]]:
    ref = rows[0]
    out = []
    for row in rows:
        for b in batch_sizes:
            ips = row.images_per_s(b)
            gflops = row.flops_per_image * ips / 1e9
            peak = peaks["bf16" if row.precision == "bf16" else "fp32"]["gflops"]
            out.append({
                "variant": row.variant, "mode": row.mode, "precision": row.precision,
                "weights": row.weights, "batch": b, "images_per_s": ips,
                "ms_per_batch": 1000 * statistics.median(row.timings[b]),
                "ms_per_image": 1000 / ips,
                "ratio_to_reference": ips / ref.images_per_s(b),
                "gflops": gflops,
                "fraction_of_peak": gflops / peak,
                "peak_used": "bf16 matmul" if row.precision == "bf16" else "fp32 matmul",
                "flops_per_image": row.flops_per_image,
                "setup_s": row.setup_s,
                "agreement": row.agreement,
                "timings_s": row.timings[b],
                "notes": row.notes,
            })
    return out


def format_table(res: Sequence[dict[str, Any]]) -> str:
    head = ("| variant | mode | prec | batch | images/s | ms/batch | x ref | GFLOP/s | % peak | "
            "top-1 agree | max abs diff |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res:
        a = r["agreement"]
        agree = f"{a['top1']:.2%} of {a['n']}" if a else "-"
        diff = f"{a['max_abs_diff']:.2g}" if a else "-"
        lines.append(f"| {r['variant']} | {r['mode']} | {r['precision']} | {r['batch']} | "
                     f"{r['images_per_s']:.1f} | {r['ms_per_batch']:.1f} | "
                     f"{r['ratio_to_reference']:.2f} | {r['gflops']:.1f} | "
                     f"{r['fraction_of_peak']:.1%} | {agree} | {diff} |")
    return "\n".join(lines)


def summary(res: Sequence[dict[str, Any]], batch: int) -> list[str]:
    """The fastest mode and the fastest fp32 mode at ``batch``: among all rows, and among the
    rows with trained weights (whose agreement numbers mean something), where those differ."""
    ours = [r for r in res if r["batch"] == batch and not r["variant"].endswith("(reference)")]
    trained = [r for r in ours if r["weights"].startswith("trained")]
    out = []
    picked: dict[str, dict[str, Any]] = {}  # label -> the row chosen among all rows
    for scope, rows in (("", ours), (" with trained weights", trained)):
        for label, pick in (("fastest mode", rows),
                            ("fastest fp32 mode", [r for r in rows if r["precision"] == "fp32"])):
            if not pick:
                continue
            r = max(pick, key=lambda r: r["images_per_s"])
            if scope and picked.get(label) is r:
                continue  # the same row as without the restriction
            picked.setdefault(label, r)
            out.append(f"{label}{scope} at batch {batch}: {r['variant']} {r['mode']} "
                       f"({r['precision']}), {r['images_per_s']:.1f} images/s = "
                       f"{r['ratio_to_reference']:.2f}x the reference; top-1 agreement with fp32 "
                       f"eager {r['agreement']['top1']:.2%} over {r['agreement']['n']} images; "
                       f"weights: {r['weights']}")
    return out
