"""Benchmark googlenet.models.lrn.LocalResponseNorm against torch.nn.LocalResponseNorm.

    python benchmarks/bench_lrn.py                       # LRN forward+backward, GoogLeNet's shapes
    python benchmarks/bench_lrn.py --train-step          # full training steps, paper vs bn variant
    python benchmarks/bench_lrn.py --out results.json    # also write the numbers as JSON

Default mode: forward+backward (input gradient) of LRN(5, 1e-4, 0.75, 1) at 32x192x56x56 (after
conv2) and 32x64x56x56 (after pool1), NCHW and channels_last, float32.

``--train-step``: one SGD training step (forward with aux heads, the paper's loss with the aux
losses at weight 0.3, backward, SGD momentum 0.9) at 224 px, channels_last, of
  * GoogLeNet(variant="paper") with norm1/norm2 swapped for the fast LRN,
  * GoogLeNet(variant="bn"),
  * GoogLeNet(variant="paper") as built, with torch's LRN.

In both modes the runners are timed alternately in one process (round-robin, after warm-up), so
a change in the machine's load hits them alike; each reports the median and min-max over the
repeats. The machine, torch, threads and the load average are printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # run from a checkout

from googlenet.models.lrn import LocalResponseNorm

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_bf16", "amx_int8")


def machine() -> dict:
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in CPU_FLAGS if f in have]
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_flags": flags,
            "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version()}


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def round_robin(runners: dict[str, Callable[[], None]], warmup: int, repeats: int
                ) -> dict[str, list[float]]:
    """Seconds per call of each runner, the runners called in turn, ``repeats`` rounds."""
    for _ in range(warmup):
        for fn in runners.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def stats(ts: list[float]) -> dict:
    return {"median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3,
            "max_ms": max(ts) * 1e3, "repeats": len(ts)}


def fmt(s: dict) -> str:
    return f"{s['median_ms']:8.1f} ms (min {s['min_ms']:.1f}, max {s['max_ms']:.1f})"


# -- LRN alone -------------------------------------------------------------------------------

def bench_lrn(args) -> list[dict]:
    rows = []
    for c in args.channels:
        for fmt_name, mf in (("NCHW", torch.contiguous_format),
                             ("channels_last", torch.channels_last)):
            shape = (args.batch, c, args.size, args.size)
            x = torch.randn(shape).contiguous(memory_format=mf).requires_grad_()
            g = torch.randn(shape).contiguous(memory_format=mf)
            mods = {"torch": nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0),
                    "fast": LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)}
            runners = {name: (lambda m=m, x=x, g=g: torch.autograd.grad(m(x), x, g))
                       for name, m in mods.items()}
            load_before = loadavg()
            times = round_robin(runners, args.warmup, args.repeats)
            row = {"shape": list(shape), "memory_format": fmt_name,
                   "torch": stats(times["torch"]), "fast": stats(times["fast"]),
                   "loadavg_before": load_before, "loadavg_after": loadavg()}
            row["speedup"] = row["torch"]["median_ms"] / row["fast"]["median_ms"]
            rows.append(row)
            print(f"{'x'.join(map(str, shape)):>14} {fmt_name:>13}  torch {fmt(row['torch'])}"
                  f"   fast {fmt(row['fast'])}   speedup {row['speedup']:.2f}x"
                  f"   load {row['loadavg_after']}", flush=True)
    return rows


# -- a training step ---------------------------------------------------------------------------

def _googlenet():
    try:
        from googlenet.model import GoogLeNet
    except ImportError:  # after the package restructure
        from googlenet.models import GoogLeNet
    return GoogLeNet


def swap_lrn(model: nn.Module) -> int:
    """Replace every torch nn.LocalResponseNorm in ``model`` by the fast one; returns how many."""
    n = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.LocalResponseNorm:
                setattr(parent, name, LocalResponseNorm(child.size, child.alpha, child.beta,
                                                        child.k))
                n += 1
    return n


def bench_train_step(args) -> dict:
    GoogLeNet = _googlenet()
    torch.manual_seed(0)
    models = {"paper+fast-lrn": GoogLeNet(variant="paper", num_classes=args.num_classes),
              "bn": GoogLeNet(variant="bn", num_classes=args.num_classes),
              "paper+torch-lrn": GoogLeNet(variant="paper", num_classes=args.num_classes)}
    assert swap_lrn(models["paper+fast-lrn"]) == 2
    x = torch.randn(args.batch, 3, args.image_size, args.image_size).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, args.num_classes, (args.batch,))
    ce = nn.CrossEntropyLoss()
    runners = {}
    for name, model in models.items():
        model.train().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step(model=model, opt=opt):
            out = model(x)
            loss = ce(out.logits, y) + 0.3 * (ce(out.aux1, y) + ce(out.aux2, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        runners[name] = step
    load_before = loadavg()
    times = round_robin(runners, args.warmup, args.repeats)
    res = {name: stats(ts) for name, ts in times.items()}
    for name, s in res.items():
        print(f"{name:>16}: {fmt(s)} per step, {args.batch / (s['median_ms'] / 1e3):.1f} img/s",
              flush=True)
    bn = res["bn"]["median_ms"]
    out = {"batch": args.batch, "image_size": args.image_size, "memory_format": "channels_last",
           "results": res,
           # Speed relative to the bn variant (>1: faster than bn), from medians.
           "paper_fast_vs_bn": bn / res["paper+fast-lrn"]["median_ms"],
           "paper_torch_vs_bn": bn / res["paper+torch-lrn"]["median_ms"],
           "fast_vs_torch_lrn_step": res["paper+torch-lrn"]["median_ms"]
           / res["paper+fast-lrn"]["median_ms"],
           "loadavg_before": load_before, "loadavg_after": loadavg()}
    print(f"speed relative to bn: paper+fast-lrn {out['paper_fast_vs_bn']:.2f}x, "
          f"paper+torch-lrn {out['paper_torch_vs_bn']:.2f}x; the fast LRN makes a paper step "
          f"{out['fast_vs_torch_lrn_step']:.2f}x faster; load {out['loadavg_after']}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-step", action="store_true",
                   help="time full training steps of the paper variant (fast LRN, torch LRN) "
                        "and the bn variant instead of LRN alone")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, nargs="+", default=[192, 64],
                   help="LRN mode: channel counts to time (default: 192 64)")
    p.add_argument("--size", type=int, default=56, help="LRN mode: spatial size (default 56)")
    p.add_argument("--image-size", type=int, default=224, help="--train-step: input size")
    p.add_argument("--num-classes", type=int, default=1000, help="--train-step: classes")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds (default: 9 for LRN, 7 for --train-step)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 7 if args.train_step else 9
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine()
    print(f"CPU: {info['cpu']} ({info['cpus_available']} available), flags: "
          f"{' '.join(info['cpu_flags'])}, torch {info['torch']} "
          f"({info['torch_cpu_capability']}), {info['torch_threads']} threads, "
          f"load average {loadavg()}")
    print(f"median of {args.repeats} round-robin repeats after {args.warmup} warm-up rounds "
          f"(min, max in parentheses)", flush=True)
    with torch.inference_mode(False):
        doc = {"machine": info, "mode": "train-step" if args.train_step else "lrn",
               "settings": {"repeats": args.repeats, "warmup": args.warmup, "batch": args.batch}}
        if args.train_step:
            doc["train_step"] = bench_train_step(args)
        else:
            doc["lrn"] = bench_lrn(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
