"""Fastest GoogLeNet on this machine, measured honestly: every runner alone in its own process
(``googlenet bench``), our fast modes against the runtimes a user would pick for
torchvision's GoogLeNet (torch eager, torch.compile, onnxruntime, OpenVINO fp32/bf16, OpenVINO +
NNCF int8), per precision class, batch 32 (7 timed calls) and batch 1 (30 timed calls), the
whole comparison run twice to show the run-to-run spread.

    python benchmarks/bench_isolated.py                # full size: run it on a quiet machine
    python benchmarks/bench_isolated.py --tiny         # 64 px, batch 2, 1 repeat: a smoke check

Weights: the trained, cached digits run of bench_inference.py for the torchvision variant (so
agreement means something; ``--weights`` to use others, ``--random`` for none), its agreement with
fp32 eager over all 540 digits test + val images (``--agreement-images``); the other variants
random. After each table, our best mode and the best peer of each precision class are timed
again paired (``googlenet bench --paired-rounds``, default 5 rounds): both processes alive,
taking turns, so the machine's drift cancels from their ratio. Writes
benchmarks/results/isolated-cpu.json (both runs' full results) and .md (per batch
and precision: our best / the best peer in each run, and the spread).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
MODES = ["eager", "fold", "channels_last", "bf16", "int8", "ort", "ort_int8", "ov", "ov_bf16",
         "ov_int8"]
PEERS = ["eager", "compile", "ort", "ov", "ov_bf16", "ov_int8"]


def bench(batch: int, repeats: int, args: argparse.Namespace, out: Path,
          weights: list[str]) -> dict:
    cmd = [sys.executable, "-m", "googlenet", "bench", "--modes", *args.modes,
           "--peers", *args.peers, "--batch-sizes", str(batch), "--repeats", str(repeats),
           "--image-size", str(args.image_size), "--out", str(out)]
    cmd += ["--weights", *weights] if weights else []
    cmd += ["--variants", *args.variants] if args.variants else []
    cmd += ["--agreement-images", str(args.agreement_images), *args.extra]
    print("  " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def args_rounds(runs: list[list[dict]]) -> int:
    return runs[0][0]["settings"]["args"].get("paired_rounds", 0)


def markdown(runs: list[list[dict]], command: str) -> str:
    from googlenet.infer.bench import format_table

    m = runs[0][0]["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpus_available']} CPUs, flags {' '.join(m['cpu_flags'])} "
        f"(oneDNN native bf16: {m['native_bf16']}; OpenVINO CPU capabilities: "
        f"{m.get('openvino_cpu_capabilities')}); torch {m['torch']}, onnxruntime "
        f"{m.get('onnxruntime')}, openvino {m.get('openvino')}, nncf {m.get('nncf')}; "
        f"{m['torch_threads']} threads. No GPU was used or measured.",
        f"Command: `{command}`. Every row timed alone in its own process; median and min-max "
        f"of the timed calls; {len(runs)} runs of the whole comparison.", "",
        "## Ours / best peer, per batch and precision", "",
        "Separate: the two rows of the tables below, timed in their own processes one after the "
        "other. Paired: the same two runners timed again with both processes alive, taking turns "
        f"for {args_rounds(runs)} rounds (AB BA ...), the median of the rounds' ratios (rounds' "
        "min-max in brackets); a drift of the machine's speed hits both sides of a round alike.",
        "",
        "| batch | precision | ours | peer | "
        + " | ".join(f"run {i + 1} separate | run {i + 1} paired" for i in range(len(runs)))
        + " | spread, separate | spread, paired |",
        "|---|---|---|---|" + "---|---|" * len(runs) + "---|---|"]
    keyed: dict[tuple[int, str], list[dict]] = {}
    for run in runs:
        for doc in run:
            for q in doc["ratios_to_peers"]:
                keyed.setdefault((q["batch"], q["precision"]), []).append(q)
    for (b, prec), qs in sorted(keyed.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        ratios = [q["ratio"] for q in qs]
        paired = [q["paired"]["ratio"] for q in qs if "paired" in q]
        cells = []
        for q in qs:
            h = q.get("paired")
            cells += [f"{q['ratio']:.2f}x", f"{h['ratio']:.2f}x ({h['ratio_min']:.2f}-"
                      f"{h['ratio_max']:.2f})" if h else "-"]
        lines.append(f"| {b} | {prec} | {qs[0]['ours']} | {qs[0]['peer']} | " + " | ".join(cells)
                     + f" | {min(ratios):.2f}-{max(ratios):.2f} | "
                     + (f"{min(paired):.2f}-{max(paired):.2f} |" if paired else "- |"))
    for i, run in enumerate(runs):
        for doc in run:
            b = doc["settings"]["batch_sizes"][0]
            load = [doc["machine"]["load_average"][0], doc["machine"]["load_average_after"][0]]
            lines += ["", f"## Run {i + 1}, batch {b} ({doc['settings']['repeats']} timed calls; "
                      f"1-min load {load[0]:.2f} before, {load[1]:.2f} after)", "",
                      format_table(doc["results"]), ""]
            lines += [f"- {x}" for x in doc["summary"]]
            lines += [f"- skipped: {x['variant']} {x['mode']}: {x['reason']}" for x in doc["skipped"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2, help="whole comparisons, for the spread")
    p.add_argument("--repeats-32", type=int, default=7)
    p.add_argument("--repeats-1", type=int, default=30)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--modes", nargs="+", default=MODES)
    p.add_argument("--peers", nargs="+", default=PEERS)
    p.add_argument("--variants", nargs="+", default=None)
    p.add_argument("--weights", default=None, help="trained weights for the torchvision variant")
    p.add_argument("--random", action="store_true", help="random weights everywhere")
    p.add_argument("--tiny", action="store_true",
                   help="smoke check: 64 px, batch 2 and 1, 1 repeat, one run, few modes")
    p.add_argument("--agreement-images", type=int, default=540,
                   help="real images the trained model's modes are checked on (the issue: >= 500)")
    p.add_argument("--out", default=str(RESULTS / "isolated-cpu.json"))
    p.add_argument("extra", nargs="*", help="after --: more `googlenet bench` arguments")
    args = p.parse_args()
    batches = [(32, args.repeats_32), (1, args.repeats_1)]
    if args.tiny:
        args.runs, args.image_size, args.random = 1, 64, True
        batches = [(2, 1), (1, 1)]
        args.variants = args.variants or ["torchvision", "paper"]
        args.modes = ["fold", "ov", "ov_bf16", "ov_int8"] if args.modes == MODES else args.modes
        args.peers = ["ov", "ov_bf16", "ov_int8"] if args.peers == PEERS else args.peers
        args.extra += ["--agreement-images-random", "4", "--calibration-count", "4",
                       "--peak-seconds", "0.05", "--warmup", "1"]
    weights: list[str] = []
    if args.weights:
        weights = [args.weights]
    elif not args.random:
        sys.path.insert(0, str(ROOT))
        from bench_inference import CACHE, raw_weights, train_once

        weights = [str(raw_weights(train_once(CACHE / "digits224-torchvision", 2)))]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: list[list[dict]] = []
    t = time.perf_counter()
    for i in range(args.runs):
        runs.append([bench(b, r, args, out.with_name(f"{out.stem}.run{i + 1}.b{b}.json"), weights)
                     for b, r in batches])
    command = " ".join(["python", "benchmarks/bench_isolated.py", *sys.argv[1:]])
    out.write_text(json.dumps({"command": command, "runs": runs,
                               "seconds": time.perf_counter() - t}, indent=1))
    for run in runs:
        for doc in run:
            Path(doc["settings"]["args"]["out"]).unlink(missing_ok=True)
    out.with_suffix(".md").write_text(markdown(runs, command))
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
