"""The commands users run, run on a GPU: one command for a GPU machine (at most ~8 minutes on one
GPU), writing a table of command, exit status, wall time and the figure each reports.

    python benchmarks/gpu_check.py                 # on a machine with CUDA
    python benchmarks/gpu_check.py --only train detect   # some steps

Each step is a separate process started as a user would type it (``python -m googlenet ...``;
torchrun for the multi-process step) in a fresh work folder, so each is timed alone:

    train           googlenet train                        (no flags: paper variant, digits)
    train-fp16      googlenet train --variant bn --amp fp16 (GradScaler)
    train-compile   googlenet train --variant bn --compile
    detect          googlenet train --task detect          (the default recipe, all epochs)
    detect-fp32     googlenet train --task detect --amp none  (its fp32 reference)
    detect-fp16     googlenet train --task detect --amp fp16 --epochs 3 --pretrain none
    eval            googlenet eval RUN  (train's run) ; eval-detect: the detection run
    predict         googlenet predict IMAGES --weights RUN ; predict-detect: the detection run
    export          googlenet export --weights RUN --format onnx (the export's own check)
    bench           googlenet bench --device cuda (small settings)
    experiment      googlenet experiment reduction --epochs 1
    torchrun        torchrun --standalone --nproc_per_node 1 -m googlenet train --variant bn
                    (one process: a NCCL process group and DDP)

Writes benchmarks/results/gpu-check.md (and .json) with the GPU's name and the versions. On a
machine without CUDA it says so and exits 0 before running anything (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SRC = ROOT.parent / "src"
TARGETS = {"train": "test top-1 >= 97%", "detect": "test AP50 >= 90, mAP >= 60"}


@dataclass
class Step:
    name: str
    argv: list[str]  # after `python -m googlenet` (or the full command for torchrun)
    metric: Callable[["Ctx", str], str]  # (context, stdout+stderr) -> the figure to report
    timeout: int = 300
    raw: bool = False  # argv is a whole command, not googlenet's arguments
    needs: Optional[str] = None  # a step whose success this one needs
    lane: int = 0  # 0: classification, 1: detection, 2: the fp32 detection reference (--lanes)


@dataclass
class Result:
    name: str
    command: str
    exit_code: Optional[int]
    wall_s: float
    metric: str
    tail: list[str] = field(default_factory=list)


class Ctx:
    """The work folder, and the run directories the steps made."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.runs: dict[str, Path] = {}

    def newest_run(self, cwd: Optional[Path] = None) -> Optional[Path]:
        runs = sorted(((cwd or self.work) / "runs").glob("*"), key=lambda p: p.stat().st_mtime)
        return runs[-1] if runs else None


def _results(run: Optional[Path]) -> dict[str, Any]:
    try:
        return json.loads((run / "results.json").read_text())  # type: ignore[operator]
    except (OSError, TypeError, ValueError):
        return {}


def _classify_metric(key: str) -> Callable[[Ctx, str], str]:
    def metric(ctx: Ctx, out: str) -> str:
        run = ctx.runs.get(key)
        r = _results(run)
        if "test_top1" not in r:
            return "no results.json"
        return (f"test top-1 {r['test_top1']:.2f}% ({r.get('epochs')} epochs, "
                f"{_img_s(run)} img/s last epoch)")
    return metric


def _detect_metric(key: str) -> Callable[[Ctx, str], str]:
    def metric(ctx: Ctx, out: str) -> str:
        run = ctx.runs.get(key)
        r = _results(run)
        if "test_map50" not in r:
            return "no results.json"
        m = re.findall(r"box ([0-9.]+)", out)
        return (f"test AP50 {r['test_map50']:.1f}, mAP {r['test_map']:.1f} ({r.get('epochs')} "
                f"epochs, {_img_s(run)} img/s last epoch" + (f", box loss {m[-1]}" if m else "")
                + ")")
    return metric


def _img_s(run: Optional[Path]) -> str:
    try:
        rows = (run / "metrics.csv").read_text().splitlines()  # type: ignore[operator]
        head = rows[0].split(",")
        last = dict(zip(head, rows[-1].split(",")))
        return f"{float(last['images_per_s']):.0f}"
    except (OSError, TypeError, KeyError, ValueError, IndexError):
        return "?"


def _json_metric(fmt: Callable[[Any], str]) -> Callable[[Ctx, str], str]:
    def metric(ctx: Ctx, out: str) -> str:
        start = out.find("{")
        try:
            return fmt(json.JSONDecoder().raw_decode(out[start:])[0])
        except (ValueError, KeyError, TypeError, IndexError):
            return "no JSON output"
    return metric


def _grep(pattern: str, what: str) -> Callable[[Ctx, str], str]:
    def metric(ctx: Ctx, out: str) -> str:
        found = re.findall(pattern, out)
        return f"{what}: {found[-1]}" if found else f"{what}: not found"
    return metric


def _count(pattern: str, what: str) -> Callable[[Ctx, str], str]:
    def metric(ctx: Ctx, out: str) -> str:
        found = [int(x) for x in re.findall(pattern, out)]
        return f"{sum(found)} {what.format(n=len(found))}"
    return metric


def _eval_json(r: Any) -> str:
    """`googlenet eval --json`: classification rows carry top1_acc, detection rows map50/map."""
    row = r["rows"][0]
    if "map50" in row:
        return f"AP50 {row['map50']:.1f}, mAP {row['map']:.1f} ({row['images']} images)"
    return f"top-1 {row['top1_acc']:.2f}% ({row['images']} images)"


def _predict_json(r: Any) -> str:
    return f"{len(r['predictions'])} images classified, {len(r.get('errors') or [])} failed"


def _bench_json(r: Any) -> str:
    """`googlenet bench --json`: ours against the best peer, per batch size and precision."""
    return "; ".join(f"b{x['batch']} {x['precision']}: {x['ours']} {x['ours_images_per_s']:.0f} "
                     f"img/s = {x['ratio']:.2f}x {x['peer']}" for x in r["ratios_to_peers"])


def steps(ctx: Ctx) -> list[Step]:
    w = ctx.work
    train_run = lambda: str(ctx.runs.get("train") or "")  # noqa: E731
    det_run = lambda: str(ctx.runs.get("detect") or "")  # noqa: E731
    images = str(w / "images")
    quiet = ["--no-progress"]
    return [
        Step("train", ["train"], _classify_metric("train"), 240),
        Step("train-fp16", ["train", "--variant", "bn", "--amp", "fp16", "--out", str(w / "fp16"),
                            *quiet], _classify_metric("train-fp16"), 240),
        Step("eval", ["eval", "{train}", "--json", *quiet], _json_metric(_eval_json), 120,
             needs="train"),
        Step("predict", ["predict", images, "--weights", "{train}", "--json", *quiet],
             _json_metric(_predict_json), 120, needs="train"),
        Step("export", ["export", "--weights", "{train}", "--format", "onnx", "--out",
                        str(w / "export"), "--name", "model"],
             _grep(r"(max \|logit diff\|[^\n]*)", "onnx"), 240, needs="train"),
        Step("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "1", "-m", "googlenet", "train", "--variant", "bn",
                          "--out", str(w / "torchrun"), *quiet],
             _classify_metric("torchrun"), 300, raw=True),
        Step("bench", ["bench", "--device", "cuda", "--variants", "bn", "--modes", "eager",
                       "cuda_graph_bf16", "--peers", "eager", "eager_bf16", "--batch-sizes", "1",
                       "256", "--repeats", "5", "--warmup", "3", "--paired-rounds", "0", "--json"],
             _json_metric(_bench_json), 300),
        Step("experiment", ["experiment", "reduction", "--epochs", "1", "--seeds", "0", "--out",
                            str(w / "experiment")],
             _grep(r"(wrote [^\n]*report[^\n]*)", "report"), 300),
        Step("train-compile", ["train", "--variant", "bn", "--compile", "--out",
                               str(w / "compiled"), *quiet], _classify_metric("train-compile"), 420),
        Step("detect", ["train", "--task", "detect"], _detect_metric("detect"), 600, lane=1),
        Step("eval-detect", ["eval", "{detect}", "--json", *quiet], _json_metric(_eval_json), 180,
             needs="detect", lane=1),
        Step("predict-detect", ["predict", images, "--weights", "{detect}", "--out",
                                str(w / "drawn"), *quiet],
             _count(r": (\d+) object\(s\)", "objects found in {n} images"), 120, needs="detect",
             lane=1),
        Step("detect-fp16", ["train", "--task", "detect", "--amp", "fp16", "--epochs", "3",
                             "--pretrain", "none", "--out", str(w / "detect-fp16"), *quiet],
             _detect_metric("detect-fp16"), 300, lane=1),
        Step("detect-fp32", ["train", "--task", "detect", "--amp", "none", "--out",
                             str(w / "detect-fp32"), *quiet], _detect_metric("detect-fp32"), 600,
             lane=2),
    ]


def _env(threads: int) -> dict[str, str]:
    """A command's environment: this source tree first, and its share of the cores (lanes side
    by side would otherwise each start one thread per core: on 16 cores, 3 lanes made every
    command twice as slow)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_step(step: Step, ctx: Ctx, threads: int) -> Result:
    argv = [a.format(train=str(ctx.runs.get("train") or ""), detect=str(ctx.runs.get("detect") or ""))
            for a in step.argv]
    cmd = argv if step.raw else [sys.executable, "-m", "googlenet", *argv]
    shown = " ".join(["googlenet", *argv] if not step.raw else
                     ["torchrun", *argv[argv.index("--standalone"):]]).replace(str(ctx.work) + "/", "")
    cwd = ctx.work / step.name  # each command's own folder: default run directories apart
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(threads), capture_output=True, text=True,
                              timeout=step.timeout)
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        code = None
        out = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")) \
            + ((e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
    wall = time.perf_counter() - t0
    if code == 0:  # the run directory it made: --out's, else the default one in its folder
        out_dir = argv[argv.index("--out") + 1] if "--out" in argv else None
        run_dir = Path(out_dir) if out_dir else ctx.newest_run(cwd)
        if run_dir is not None and (run_dir / "results.json").is_file():
            ctx.runs[step.name] = run_dir
    try:
        metric = step.metric(ctx, out) if code == 0 else "-"
    except Exception as e:  # noqa: BLE001  a report of a report: never lose the table
        metric = f"(metric unreadable: {e})"
    return Result(step.name, shown, code, wall, metric, out.strip().splitlines()[-15:])


def machine() -> dict[str, str]:
    import torch
    import torchvision

    props = torch.cuda.get_device_properties(0)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        smi = "?"
    return {"gpu": f"{props.name} ({props.total_memory / 2**30:.0f} GiB, "
                   f"{props.multi_processor_count} SMs)",
            "driver": smi, "torch": torch.__version__, "cuda": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()), "torchvision": torchvision.__version__,
            "python": platform.python_version(), "cpu_cores": str(os.cpu_count())}


def write_report(results: list[Result], info: dict[str, str], path: Path, total: float,
                 lanes: int) -> None:
    how = ("each command alone" if lanes == 1 else
           f"{lanes} lanes side by side on the one GPU (classification | detection | fp32 "
           f"detection), so wall times include sharing it")
    lines = ["# GPU check: the commands users run, on a GPU", "",
             f"Written by `python benchmarks/gpu_check.py --lanes {lanes}` (one process per "
             f"command, in a fresh work folder; {how}).", "",
             "| " + " | ".join(f"{k}: {v}" for k, v in info.items()) + " |", "",
             "| step | command | exit | wall (s) | figure |", "|---|---|---|---|---|"]
    for r in results:
        code = "timeout" if r.exit_code is None else str(r.exit_code)
        lines.append(f"| {r.name} | `{r.command}` | {code} | {r.wall_s:.1f} | {r.metric} |")
    ok = sum(r.exit_code == 0 for r in results)
    lines += ["", f"{ok} of {len(results)} commands exited 0; {total:.0f} s in all. Targets: "
              + "; ".join(f"{k}: {v}" for k, v in TARGETS.items()) + ".", ""]
    failed = [r for r in results if r.exit_code != 0]
    for r in failed:
        lines += [f"## {r.name}: the end of its output", "", "```", *r.tail, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(
        {"machine": info, "total_s": total, "results": [asdict(r) for r in results]}, indent=2))


def _sample_images(folder: Path, n: int = 8) -> None:
    from googlenet.data.datasets import open_dataset

    folder.mkdir(parents=True, exist_ok=True)
    test = open_dataset(None, "test")
    for i in range(n):
        test.load(i)[0].resize((64, 64)).save(folder / f"digit{i}.png")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    ap.add_argument("--work", help="work folder (default: a new temporary one)")
    ap.add_argument("--out", default=str(RESULTS / "gpu-check.md"), help="the report")
    ap.add_argument("--lanes", type=int, choices=(1, 2, 3), default=3,
                    help="3: the detection commands, the fp32 detection run and the others side "
                         "by side on the GPU (the whole check in under 8 minutes on an H200); "
                         "1: every command alone, one after another")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}); nothing to check here. Run it on a machine with "
              f"a GPU.")
        return 0
    sys.path.insert(0, str(SRC))
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(work)
    _sample_images(work / "images")
    info = machine()
    print(f"gpu_check: {info['gpu']}, torch {info['torch']}, work folder {work}", flush=True)
    todo = [s for s in steps(ctx) if not args.only or s.name in args.only]
    done: dict[str, Result] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()

    def lane(items: list[Step]) -> None:
        for step in items:
            if step.needs and step.needs not in ctx.runs:
                r = Result(step.name, step.name, None, 0.0, f"skipped: {step.needs} failed")
            else:
                r = run_step(step, ctx, max(1, (os.cpu_count() or 1) // args.lanes))
            with lock:
                done[step.name] = r
                print(f"{r.name:<15} exit {r.exit_code}  {r.wall_s:6.1f} s  {r.metric}", flush=True)
                if r.exit_code != 0:
                    print("\n".join("    " + t for t in r.tail), flush=True)
                write_report([done[s.name] for s in todo if s.name in done], info, Path(args.out),
                             time.perf_counter() - t0, args.lanes)

    lanes = [[s for s in todo if s.lane % args.lanes == k] for k in range(args.lanes)]
    threads = [threading.Thread(target=lane, args=(items,)) for items in lanes if items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [done[s.name] for s in todo]
    total = time.perf_counter() - t0
    write_report(results, info, Path(args.out), total, args.lanes)
    print(f"wrote {args.out} ({total:.0f} s)")
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
