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

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from . import fast
from .errors import UserError
from .model import VARIANTS, GoogLeNet

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

    from .model import torchvision_key

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
    from .data import open_dataset

    out: list[torch.Tensor] = []
    tf = pre.eval_transform()
    for split in splits:
        try:
            ds = open_dataset(data, split, seed=seed)
        except UserError:
            if split == splits[0]:
                raise
            continue
        for i in range(len(ds)):
            if len(out) >= n:
                break
            out.append(tf(ds.load(i)[0]))
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


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", nargs="+", default=[], metavar="SPEC",
                   help="trained weights (run dir, .safetensors, ...), at most one per variant; "
                        "variants without get random weights")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="our variants to time")
    p.add_argument("--modes", nargs="+", choices=list(fast.MODES), default=list(DEFAULT_MODES),
                   help="modes to time (add 'compile' for torch.compile; minutes to compile)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None,
                   help="unset: 1 32 on the CPU, 256 on a GPU")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7, help="timed calls per row and batch size")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for torch and onnxruntime; unset: torch's, one per core")
    p.add_argument("--data", default=None,
                   help="images to time, calibrate and check on; unset: the built-in digits")
    p.add_argument("--agreement-images", type=int, default=256,
                   help="real images each mode of a trained model is compared with fp32 eager on "
                        "(test split, then val)")
    p.add_argument("--agreement-images-random", type=int, default=64,
                   help="the same for models with random weights (whose agreement says little)")
    p.add_argument("--calibration-images", type=int, default=256,
                   help="images (train split) the int8 modes are calibrated on")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--peak-seconds", type=float, default=1.0,
                   help="time budget of each matmul-peak measurement")
    p.add_argument("--force-bf16", action="store_true",
                   help="time bf16 even where it is emulated (very slow without native bf16)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .data import default_preprocess
    from .evaluate import resolve_device
    from .weights import load_weights

    device = resolve_device(args.device)
    batch_sizes = args.batch_sizes or ([256] if device.type == "cuda" else [1, 32])
    if any(b < 1 for b in batch_sizes) or args.repeats < 1 or args.agreement_images < 1:
        raise UserError("--batch-sizes, --repeats and --agreement-images must be at least 1")
    if args.image_size < 32:
        raise UserError(f"--image-size {args.image_size}: GoogLeNet needs 32 or more")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    log = (lambda s: print(s, file=sys.stderr, flush=True))

    info = machine_info(device)
    log(f"machine: {info['cpu']}, {info['cpus_available']} CPUs, flags {' '.join(info['cpu_flags'])}, "
        f"torch threads {info['torch_threads']}" + (f", GPU {info['gpu']}" if "gpu" in info else ""))
    log(f"versions: python {info['python']}, torch {info['torch']}, torchvision "
        f"{info['torchvision']}, onnxruntime {info['onnxruntime']}, onnx {info['onnx']}")
    peaks = {dt: matmul_peak(getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dt]), device,
                             budget_s=args.peak_seconds) for dt in ("fp32", "bf16")}
    log(f"peak (square matmul): fp32 {peaks['fp32']['gflops']:.1f} GFLOP/s (n={peaks['fp32']['n']}), "
        f"bf16 {peaks['bf16']['gflops']:.1f} GFLOP/s (n={peaks['bf16']['n']})")

    # Models: trained ones for their variants, realistic random weights for the others.
    trained: dict[str, Any] = {}
    for spec in args.weights:
        lw = load_weights(spec)
        v = lw.model.config["variant"]
        if v in trained:
            raise UserError(f"--weights: two sets for the {v} variant ({trained[v].source}, {spec})")
        trained[v] = lw
    first = next(iter(trained.values()), None)
    pre = first.preprocess if first else default_preprocess(args.data, args.image_size)
    for lw in trained.values():
        if lw.preprocess != pre:
            log(f"warning: {lw.source} expects other preprocessing than {first.source}; all "
                f"models get the latter's ({pre})")
    pre = replace(pre, crop=args.image_size,
                  resize=max(args.image_size, round(pre.resize * args.image_size / pre.crop)))
    num_classes = first.model.num_classes if first else 10
    models: dict[str, tuple[GoogLeNet, str]] = {}
    for v in dict.fromkeys(list(trained) + list(args.variants)):
        if v in trained:
            models[v] = (trained[v].model.eval(), f"trained ({trained[v].source})")
        else:
            models[v] = (realistic_random_init(GoogLeNet(variant=v, num_classes=num_classes,
                                                         aux_logits=False, init_weights=False)),
                         "random")
    tv_source = models["torchvision"][0] if "torchvision" in models else realistic_random_init(
        GoogLeNet(variant="torchvision", num_classes=num_classes, aux_logits=False, init_weights=False))
    reference = torchvision_reference(tv_source).to(device)

    log(f"images: {args.data or 'digits'} at {args.image_size} px ({pre.note or 'preprocessed'})")
    n_agree = args.agreement_images if trained else args.agreement_images_random
    agree_x = load_images(args.data, ["test", "val"], max(n_agree, max(batch_sizes)), pre)
    calib_x = load_images(args.data, ["train"], args.calibration_images, pre)
    with torch.inference_mode():
        d = (reference(agree_x[:8].to(device)).cpu()
             - fast.prepare(tv_source, "eager", device=device)(agree_x[:8]).cpu()).abs().max().item()
    log(f"reference check: torchvision.models.googlenet with our torchvision variant's weights, "
        f"max |logit diff| {d:.2e} on 8 images")

    log("preparing modes and checking agreement with fp32 eager:")
    runners, skipped = build_runners(models, reference, args.modes, device=device,
                                     image_size=args.image_size, calibration=calib_x,
                                     agreement_images=agree_x[:n_agree],
                                     n_random=args.agreement_images_random,
                                     force_bf16=args.force_bf16,
                                     threads=args.threads, log=log)
    log(f"timing {len(runners)} rows, batch sizes {batch_sizes}, {args.repeats} repeats, round-robin:")
    time_runners(runners, agree_x, batch_sizes, repeats=args.repeats, device=device, log=log)

    res = results([r.row for r in runners], batch_sizes, peaks)
    doc = {"machine": info, "peak": peaks, "reference_check_max_abs_diff": d,
           "settings": {"batch_sizes": batch_sizes, "image_size": args.image_size,
                        "repeats": args.repeats, "data": args.data or "digits",
                        "agreement_images": min(len(agree_x), n_agree),
                        "agreement_images_random": args.agreement_images_random,
                        "calibration_images": len(calib_x),
                        "weights": args.weights,
                        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}},
           "results": res, "skipped": skipped}
    for b in batch_sizes:
        print(f"\nbatch {b}, {args.image_size}x{args.image_size}, median of {args.repeats}:",
              file=sys.stderr if args.json else sys.stdout)
        print(format_table([r for r in res if r["batch"] == b]), file=sys.stderr if args.json else sys.stdout)
        for line in summary(res, b):
            print(line, file=sys.stderr if args.json else sys.stdout)
    doc["summary"] = [line for b in batch_sizes for line in summary(res, b)]
    if args.out:
        from .weights import atomic_write

        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
        log(f"wrote {args.out}")
    if args.json:
        print(json.dumps(doc, indent=1))
    return 0
