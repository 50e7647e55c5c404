"""Gradient checkpointing (``model.set_grad_checkpointing()``): training-step time and peak
memory with and without, per variant, in one run.

    python benchmarks/grad_checkpointing.py --device cuda              # batch 256 at 224
    python benchmarks/grad_checkpointing.py --device cpu --batch 2 --size 64 --repeats 2  # smoke

Each setting runs in its own process (peak memory is per process), warm-up step first, then the
median of ``--repeats`` timed forward+backward+SGD steps. Peak memory: CUDA's
max_memory_allocated, or on the CPU the process's peak RSS (ru_maxrss, which includes the
interpreter). Aux heads on, as ``googlenet train`` trains. Results print as a Markdown table and
go to benchmarks/results/grad-checkpointing-<device>.json with the machine and versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def one(variant: str, ckpt: bool, device: str, batch: int, size: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from googlenet import create_model

    torch.manual_seed(0)
    model = create_model(variant, num_classes=1000).to(device).train()
    model.set_grad_checkpointing(ckpt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)

    def step() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = model(x)
        loss = F.cross_entropy(out.logits, y) + 0.3 * (F.cross_entropy(out.aux1, y)
                                                       + F.cross_entropy(out.aux2, y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    step()  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(repeats)]
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return dict(variant=variant, checkpointing=ckpt, step_s=statistics.median(times),
                step_s_min=min(times), step_s_max=max(times), peak_mib=peak / 2**20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--variants", default="paper,bn,torchvision")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # worker: variant,ckpt
    a = ap.parse_args()
    if a.one:
        variant, ckpt = a.one.split(",")
        print(json.dumps(one(variant, ckpt == "1", a.device, a.batch, a.size, a.repeats)))
        return
    import torch

    rows = []
    for variant in a.variants.split(","):
        for ckpt in ("0", "1"):
            cmd = [sys.executable, __file__, "--one", f"{variant},{ckpt}", "--device", a.device,
                   "--batch", str(a.batch), "--size", str(a.size), "--repeats", str(a.repeats)]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                  text=True).stdout.strip().splitlines()[-1]))
    env = dict(python=platform.python_version(), torch=torch.__version__,
               machine=platform.processor() or platform.machine(),
               gpu=torch.cuda.get_device_name() if a.device == "cuda" else None,
               batch=a.batch, size=a.size, repeats=a.repeats)
    print(f"| variant | checkpointing | step s (median of {a.repeats}) | peak MiB |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {'on' if r['checkpointing'] else 'off'} | "
              f"{r['step_s']:.3f} ({r['step_s_min']:.3f}-{r['step_s_max']:.3f}) | "
              f"{r['peak_mib']:.0f} |")
    print(json.dumps(env))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"grad-checkpointing-{a.device}.json").write_text(
        json.dumps(dict(env=env, rows=rows), indent=2) + "\n")


if __name__ == "__main__":
    main()
