"""``googlenet bench``: inference speed of every mode, against torchvision's GoogLeNet, in one run.

    googlenet bench                                  # all variants x all modes, batch 1 and 32
    googlenet bench --weights RUN --agreement-images 540 --out results.json

On the same real images (the built-in digits by default, preprocessed to ``--image-size``):
``torchvision.models.googlenet`` in eager fp32 (the reference every user has), the same model in
the runtimes a user would pick without us (the peers: torch.compile, onnxruntime, OpenVINO fp32,
bf16 and NNCF int8; ``bench_worker.PEERS``), and each of our variants in each fast mode
(``googlenet.fast``). For every row: images/s (median and min-max of ``--repeats`` timed
calls), the ratio to the reference, effective GFLOP/s (conv + linear FLOPs
per image from ``torch.utils.flop_counter``, times images/s) and its fraction of this machine's
measured peak (a large fp32 and bf16 matmul timed in the same run), and agreement with fp32 eager
(top-1 and max |logit diff| over ``--agreement-images`` images). The summary gives, per batch
size and precision class, our fastest mode over the fastest peer. The machine, CPU flags (bf16,
VNNI, AMX from /proc/cpuinfo, and oneDNN's and OpenVINO's own bf16 checks), the load average and
library versions are recorded with the results.

Isolation: every row runs in its own process (``python -m googlenet.infer.bench_worker``), which
builds only its runtime, warms up and times; this process never loads onnxruntime or OpenVINO,
so no idle thread pool of one runtime competes with another's (onnxruntime's spinning threads
alone made the reference 4x slower at batch 1 when they shared a process). Each row records its
PID, thread count and the load average before and after it ran: on a shared machine, compare
rows taken under similar load, or rerun (the benchmark script runs everything twice).

Weights. Speed does not depend on the weights' values with one exception: activations that
shrink into subnormal floats make CPU kernels many times slower. torchvision's own init with
untouched BatchNorm statistics does exactly that (logits ~1e-12), so random weights here are
drawn to keep activations O(1) (Kaiming fan-in for ReLU, mild BN statistics). The reference
gets the same weights as our torchvision variant (a trained one when ``--weights`` is one), so
both compute the same function, which is checked. Agreement is meaningful for trained weights
only; rows with random weights are marked so.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
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
from ..models.graph import without_aux
from ..models.torchvision_keys import torchvision_key

REFERENCE = "torchvision eager fp32"
REFERENCE_VARIANT = "torchvision (reference)"
PEER_VARIANT = "torchvision.models (peer)"


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
        "native_bf16": fast.native_bf16(device),  # oneDNN's check (AVX512-BF16 or AMX)
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
    }
    flags = set(info["cpu_flags"])
    info["vnni"] = bool(flags & {"avx512_vnni", "avx_vnni"})
    info["amx"] = bool(flags & {"amx_bf16", "amx_int8"})
    info.update(runtime_versions(torch.get_num_threads()))  # asked of a child process
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
# Rows: each runner timed alone, in its own process (infer/bench_worker.py)
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    variant: str  # ours: the variant; REFERENCE_VARIANT / PEER_VARIANT for torchvision's model
    mode: str
    precision: str
    weights: str  # "trained: SOURCE" or "random"
    flops_per_image: int
    setup_s: float = 0.0
    agreement: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)
    timings: dict[int, list[float]] = field(default_factory=dict)  # batch -> seconds per call
    peer: bool = False  # torchvision's model in another runtime (what a user would pick)
    process: dict[str, Any] = field(default_factory=dict)  # pid, threads, load before/after
    job: dict[str, Any] = field(default_factory=dict, repr=False)  # what built it (head_to_head)

    def images_per_s(self, batch: int, stat: Callable[[list[float]], float] = statistics.median
                     ) -> float:
        return batch / stat(self.timings[batch])


def worker_env(threads: Optional[int]) -> dict[str, str]:
    """The environment of a worker: this very package importable, thread counts pinned."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def runtime_versions(threads: Optional[int] = None) -> dict[str, Any]:
    """onnxruntime / OpenVINO / NNCF versions and OpenVINO's CPU capabilities, asked of a child
    process so that this one never loads those runtimes."""
    proc = subprocess.run([sys.executable, "-m", "googlenet.infer.bench_worker", "--probe"],
                          capture_output=True, text=True, env=worker_env(threads), timeout=300)
    if proc.returncode != 0:
        return {"probe_error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_job(job: dict[str, Any], workdir: Path, name: str, *, timeout_s: float = 3600
            ) -> dict[str, Any]:
    """Run one runner in a fresh ``python -m googlenet.infer.bench_worker`` process."""
    job_file, out_file = workdir / f"{name}.job.json", workdir / f"{name}.out.json"
    job_file.write_text(json.dumps(job))
    # the child's stdout (NNCF's progress bars, say) goes to our stderr: stdout may carry --json
    proc = subprocess.run([sys.executable, "-m", "googlenet.infer.bench_worker", str(job_file),
                           str(out_file)], env=worker_env(job.get("threads")), timeout=timeout_s,
                          stdout=subprocess.PIPE, text=True)
    if proc.stdout:
        sys.stderr.write(proc.stdout)
    if not out_file.is_file():
        return {"error": f"worker exited with status {proc.returncode} and no result"}
    return json.loads(out_file.read_text())


def isolated_rows(models: dict[str, tuple[GoogLeNet, str]], modes: Sequence[str],
                  peers: Sequence[str], *, inputs: dict[str, torch.Tensor], device: torch.device,
                  image_size: int, batch_sizes: Sequence[int], repeats: int, warmup: int,
                  threads: Optional[int], force_bf16: bool, n_random: int,
                  reference_source: Optional[tuple[GoogLeNet, str]] = None,
                  workdir: Optional[Path] = None,
                  log: Callable[[str], None] = print) -> tuple[list[Row], list[dict[str, str]]]:
    """Time the reference, each peer and each (variant, mode), one process each.

    ``inputs``: "check" (N, C, H, W) images, timed and checked on; "calibration" for int8.
    Agreement is against each variant's fp32 eager logits (computed here once; torchvision's
    model against our torchvision variant's, which hold the same weights), on the first
    ``n_random`` images for random weights. ``reference_source``: the torchvision-variant model
    (and its weights label) whose weights torchvision's model takes, where ``models`` has none.
    ``workdir``: where the jobs' files go (a temporary directory if unset); a caller that keeps
    it can run the rows' ``job`` again (``head_to_head``)."""
    import contextlib
    import tempfile

    rows: list[Row] = []
    skipped: list[dict[str, str]] = []
    with (contextlib.nullcontext(str(workdir)) if workdir is not None
          else tempfile.TemporaryDirectory(prefix="googlenet-bench-")) as tmp:
        work = Path(tmp)
        jobs: list[tuple[str, str, dict[str, Any], str, int]] = []  # (variant, mode, runner, weights, flops)
        sources = dict(models)
        if "torchvision" not in sources:
            if reference_source is None:
                raise ValueError("the reference and peers need a torchvision-variant model")
            sources["torchvision"] = reference_source
        for variant, (model, weights) in sources.items():
            check = inputs["check"] if weights != "random" else inputs["check"][:n_random]
            with torch.inference_mode():
                eager = without_aux(model).to(device)
                ref_logits = torch.cat([eager(b.to(device)).cpu() for b in check.split(32)])
            torch.save({"check": check, "calibration": inputs["calibration"],
                        "reference_logits": ref_logits}, work / f"{variant}.inputs.pt")
            torch.save({"config": model.config, "state_dict": model.state_dict()},
                       work / f"{variant}.model.pt")
            flops = count_flops(eager, image_size, model.in_chans)
            if variant == "torchvision":
                jobs += [(REFERENCE_VARIANT if p == "eager" else PEER_VARIANT, p,
                          {"kind": "peer", "mode": p}, weights, flops)
                         for p in ["eager", *[p for p in peers if p != "eager"]]]
            if variant in models:
                jobs += [(variant, m, {"kind": "ours", "variant": variant, "mode": m}, weights,
                          flops) for m in modes]
        for i, (label, mode, runner, weights, flops) in enumerate(jobs):
            src = runner.get("variant", "torchvision")
            job = {"runner": runner, "model_file": str(work / f"{src}.model.pt"),
                   "inputs_file": str(work / f"{src}.inputs.pt"), "image_size": image_size,
                   "batch_sizes": list(batch_sizes), "repeats": repeats, "warmup": warmup,
                   "threads": threads, "device": str(device), "force_bf16": force_bf16}
            t = time.perf_counter()
            res = run_job(job, work, f"job{i}")
            why = res.get("skipped") or (res.get("error") and f"failed: {res['error']}")
            if why:
                skipped.append({"variant": label, "mode": mode, "reason": why})
                log(f"  {label:24s} {mode:14s} skipped: {why}")
                continue
            row = Row(label, mode, res["precision"], weights, flops, setup_s=res["setup_s"],
                      agreement=res.get("agreement"), notes=res["notes"],
                      timings={int(b): v for b, v in res["timings"].items()},
                      peer=runner["kind"] == "peer", job=job,
                      process={k: res[k] for k in ("pid", "threads", "load_before", "load_after")})
            rows.append(row)
            log(f"  {label:24s} {mode:14s} pid {res['pid']}, {time.perf_counter() - t:5.1f} s, "
                + ", ".join(f"batch {b}: {row.images_per_s(b):.1f} img/s" for b in batch_sizes))
    return rows, skipped


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
                "peer": row.peer, "weights": row.weights, "batch": b, "images_per_s": ips,
                "images_per_s_min": row.images_per_s(b, max),
                "images_per_s_max": row.images_per_s(b, min),
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
                "process": row.process,
                "notes": row.notes,
            })
    return out


def format_table(res: Sequence[dict[str, Any]]) -> str:
    head = ("| variant | mode | prec | batch | images/s | min-max | ms/batch | x ref | GFLOP/s | "
            "% peak | top-1 agree | max abs diff |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res:
        a = r["agreement"]
        agree = f"{a['top1']:.2%} of {a['n']}" if a else "-"
        diff = f"{a['max_abs_diff']:.2g}" if a else "-"
        spread = (f"{r['images_per_s_min']:.1f}-{r['images_per_s_max']:.1f}"
                  if "images_per_s_min" in r else "-")
        lines.append(f"| {r['variant']} | {r['mode']} | {r['precision']} | {r['batch']} | "
                     f"{r['images_per_s']:.1f} | {spread} | {r['ms_per_batch']:.1f} | "
                     f"{r['ratio_to_reference']:.2f} | {r['gflops']:.1f} | "
                     f"{r['fraction_of_peak']:.1%} | {agree} | {diff} |")
    return "\n".join(lines)


def ratios_to_peers(res: Sequence[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Per precision class at ``batch``: our fastest mode on the torchvision variant (the same
    network as the peers'; all our variants where it was not timed) over the fastest peer."""
    at = [r for r in res if r["batch"] == batch]
    peers = [r for r in at if r.get("peer") or r["variant"] == REFERENCE_VARIANT]
    ours = [r for r in at if r not in peers]
    same = [r for r in ours if r["variant"] == "torchvision"] or ours
    out = []
    for prec in ("fp32", "bf16", "int8"):
        mine = [r for r in same if r["precision"] == prec]
        theirs = [r for r in peers if r["precision"] == prec]
        if not mine or not theirs:
            continue
        a = max(mine, key=lambda r: r["images_per_s"])
        b = max(theirs, key=lambda r: r["images_per_s"])
        out.append({"batch": batch, "precision": prec, "ours": f"{a['variant']} {a['mode']}",
                    "ours_key": (a["variant"], a["mode"]), "peer_key": (b["variant"], b["mode"]),
                    "ours_images_per_s": a["images_per_s"], "peer": f"{b['variant']} {b['mode']}",
                    "peer_images_per_s": b["images_per_s"],
                    "ratio": a["images_per_s"] / b["images_per_s"]})
    return out


def summary(res: Sequence[dict[str, Any]], batch: int) -> list[str]:
    """The fastest mode and the fastest fp32 mode at ``batch``: among all rows, and among the
    rows with trained weights (whose agreement numbers mean something), where those differ;
    then our best over the best peer per precision class."""
    ours = [r for r in res if r["batch"] == batch and not r.get("peer")
            and not r["variant"].endswith("(reference)")]
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
            a = r["agreement"]
            agree = (f"top-1 agreement with fp32 eager {a['top1']:.2%} over {a['n']} images"
                     if a else "no agreement measured")
            out.append(f"{label}{scope} at batch {batch}: {r['variant']} {r['mode']} "
                       f"({r['precision']}), {r['images_per_s']:.1f} images/s = "
                       f"{r['ratio_to_reference']:.2f}x the reference; {agree}; "
                       f"weights: {r['weights']}")
    for q in ratios_to_peers(res, batch):
        out.append(f"{q['precision']} at batch {batch}: ours ({q['ours']}) "
                   f"{q['ours_images_per_s']:.1f} images/s = {q['ratio']:.2f}x the best peer "
                   f"({q['peer']}, {q['peer_images_per_s']:.1f} images/s)")
    return out
