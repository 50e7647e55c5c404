"""Accuracy and wall time of `googlenet train` on the built-in digits, as a user runs it.

Runs, as subprocesses in a fresh temporary directory and exactly as typed by a user:

    googlenet train                    the faithful `paper` variant (LRN, no BN), short recipe
                                       target: >= 97% test top-1
    googlenet train --variant bn       the BatchNorm variant, short recipe
                                       target: >= 98% test top-1 in <= 60 s wall (startup included)

and reports the test accuracy (from the run's results.json) as mean +- std and minimum over the
seeds (default 5: 0-4; a README claim ">= 98%" is a claim about every seed, so the target is met
only when the minimum reaches it), the wall time of the whole command (interpreter start to
exit), its CPU time (user + system, all threads) and the machine: CPU model, the instruction-set
flags that change PyTorch's CPU kernels (AVX2 / AVX-512 / AMX: results differ between them in the
last digits, which over a short run can move a seed's accuracy by a point), torch's CPU
capability and version. The load average before each run is printed: on a
shared machine other processes slow training down, and the wall times then mean little (the CPU time much
less so: with 2 cores to itself, wall time is roughly CPU time / 2 for the training part).

    python benchmarks/train_digits.py                 # both, seeds 0-4 (seed 0 is the command as
                                                      # typed; others add --seed N)
    python benchmarks/train_digits.py --only bn --seeds 0 1 2 3 4 5 6 7 --json results.json
    python benchmarks/train_digits.py --repeats 3     # also the run-to-run spread per seed
    python benchmarks/train_digits.py --isa avx2      # an AVX-512 machine running AVX2 kernels

`--isa avx2` caps the kernels every run uses at AVX2 (ATEN_CPU_CAPABILITY for PyTorch's own
kernels, ONEDNN_MAX_CPU_ISA for oneDNN's convolutions, MKL_ENABLE_INSTRUCTIONS for MKL's
matrix products), so an AVX-512 machine computes what an AVX2-only CPU would, to check that a
recipe's accuracy holds on both kinds of CPU without a second machine. The timings of such a run
are not an AVX2 machine's (same cores, other kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "default": {"args": [], "target_top1": 97.0, "target_seconds": None,
                "what": "googlenet train (variant paper, no BN)"},
    "bn": {"args": ["--variant", "bn"], "target_top1": 98.0, "target_seconds": 60.0,
           "what": "googlenet train --variant bn"},
}


# Environment variables that cap the CPU kernels at an instruction set (see the docstring).
ISA_CAPS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                     "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def machine() -> dict[str, str]:
    import torch  # after main() set any --isa caps: torch reads them on import

    from googlenet.infer.bench import cpu_model

    cpu = cpu_model()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__,
            "cpu_flags": " ".join(cpu_flags()),
            "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "platform": platform.platform()}


# The instruction-set extensions that select PyTorch's (oneDNN's) CPU kernels.
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


def run_case(name: str, workdir: Path, seed: int = 0, extra: tuple[str, ...] = ()) -> dict[str, object]:
    case = CASES[name]
    exe = Path(sys.executable).with_name("googlenet")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "googlenet"]
    args = [*case["args"], *extra, *(["--seed", str(seed)] if seed else [])]
    cmd += ["train", *args]
    load = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    run_dirs = re.findall(r"^run directory: (\S+)", done.stdout, flags=re.M)
    if not run_dirs:
        raise SystemExit(f"no 'run directory:' line in the output of {' '.join(cmd)}")
    res = json.loads((workdir / run_dirs[-1] / "results.json").read_text())
    final = [line for line in done.stdout.splitlines() if line.startswith("final ")]
    return {"case": name, "command": " ".join(["googlenet", "train", *case["args"], *extra]),
            "seed": seed,
            "test_top1": res["test_top1"], "test_top5": res["test_top5"], "wall_s": wall,
            "cpu_s": cpu,
            "train_reported_s": res["wall_seconds"], "epochs": res["epochs"],
            "load_before": load, "final_line": final[-1] if final else ""}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(CASES), action="append")
    p.add_argument("--repeats", type=int, default=1, help="runs per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="training seeds (0 is the command as typed); at least 5 for a claim")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="passed on to `googlenet train --set` (to try a recipe change before "
                        "writing it into the recipe), e.g. --set epochs=6")
    p.add_argument("--isa", choices=sorted(ISA_CAPS),
                   help="cap the CPU kernels of every run at this instruction set (emulates a "
                        "CPU without AVX-512; the timings are not that CPU's)")
    args = p.parse_args()
    if args.isa:
        os.environ.update(ISA_CAPS[args.isa])  # inherited by every run's subprocess
    info = machine()
    info["isa_cap"] = args.isa or "none"
    if args.isa:
        print(f"kernels capped at {args.isa}: {' '.join(f'{k}={v}' for k, v in ISA_CAPS[args.isa].items())}")
    print(f"machine: {info['cpu']}, {info['cores']} cores; CPU flags: {info['cpu_flags']} "
          f"(torch CPU capability {info['cpu_capability']}); torch {info['torch']} "
          f"({info['threads']} threads), python {info['python']}")
    if len(set(args.seeds)) < 5:
        print(f"note: {len(set(args.seeds))} seed(s); a claim about accuracy needs at least 5")
    rows = []
    for name in args.only or list(CASES):
        for seed in args.seeds:
            for r in range(args.repeats):
                with tempfile.TemporaryDirectory(prefix="googlenet-bench-") as tmp:
                    extra = tuple(a for kv in args.set for a in ("--set", kv))
                    row = run_case(name, Path(tmp), seed, extra)
                row["repeat"] = r
                rows.append(row)
                print(f"  {row['command']:<34} seed {seed} run {r + 1}: test top-1 "
                      f"{row['test_top1']:.2f}%  wall {row['wall_s']:.1f}s  CPU "
                      f"{row['cpu_s']:.1f}s  (load average before: {row['load_before']:.2f})",
                      flush=True)
    print()
    print("| command | seeds | test top-1 (%), mean ± std | min | max | wall time (s), median [max] "
          "| CPU time (s) | target (every seed) | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for name in args.only or list(CASES):
        rs = [r for r in rows if r["case"] == name]
        acc = statistics.median(r["test_top1"] for r in rs)
        wall = statistics.median(r["wall_s"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        case = CASES[name]
        target = f">= {case['target_top1']:.0f}%" + (
            f" in <= {case['target_seconds']:.0f} s" if case["target_seconds"] else "")
        accs, walls = [r["test_top1"] for r in rs], [r["wall_s"] for r in rs]
        n = len(rs)
        mean = statistics.fmean(accs)
        std = statistics.stdev(accs) if n > 1 else 0.0
        met = min(accs) >= case["target_top1"] and (case["target_seconds"] is None
                                                    or wall <= case["target_seconds"])
        wall_s = f"{wall:.1f} [{max(walls):.1f}]" if n > 1 else f"{wall:.1f}"
        seeds = sorted({r["seed"] for r in rs})
        print(f"| `{rs[0]['command']}` | {len(seeds)} ({n} runs) | {mean:.2f} ± {std:.2f} | "
              f"{min(accs):.2f} | {max(accs):.2f} | {wall_s} | {cpu:.1f} | {target} | "
              f"{'yes' if met else 'NO'} |")
        summary.append({"case": name, "seeds": seeds, "mean_test_top1": mean,
                        "std_test_top1": std, "median_test_top1": acc,
                        "min_test_top1": min(accs), "max_test_top1": max(accs),
                        "median_wall_s": wall, "max_wall_s": max(walls), "runs": n, "met": met})
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": rows, "summary": summary},
                                        indent=2) + "\n")
    return 0 if all(s["met"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
