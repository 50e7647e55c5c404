"""Inference benchmark: every fast mode of every variant against torchvision's GoogLeNet, batch 1
and 32 at 224x224, with top-1 agreement measured on a trained model over 540 real images.

    python benchmarks/bench_inference.py              # train once (cached), then benchmark
    python benchmarks/bench_inference.py --compile    # also torch.compile (minutes to compile)
    python benchmarks/bench_inference.py --device cuda  # GPU: batch 256, bf16 vs fp32 eager

Steps:
 1. A trained model for the agreement numbers: the ``torchvision`` variant trained on the built-in
    digits at 224 px (``googlenet train``, the short recipe cut to ``--train-epochs``), cached in
    benchmarks/results/cache/ (gitignored) and reused by later runs. Random weights would make
    "top-1 agreement" meaningless: their logits are near-ties. The other variants are timed with
    random weights (speed does not depend on the values; see googlenet/bench.py).
 2. ``googlenet bench`` with that run: the reference (torchvision.models.googlenet, eager fp32,
    holding the same trained weights) and each variant x mode, round-robin timed; agreement of
    the trained variant's modes over the digits test + val splits (360 + 180 = 540 images).
 3. Results: benchmarks/results/inference-<device>.json and a Markdown table next to it.
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
CACHE = RESULTS / "cache"


def train_once(run: Path, epochs: int) -> Path:
    if (run / "model.safetensors").is_file():
        print(f"using the cached trained run {run}", file=sys.stderr)
        return run
    cmd = [sys.executable, "-m", "googlenet", "train", "--variant", "torchvision",
           "--image-size", "224", "--epochs", str(epochs), "--set", "warmup_epochs=0.25",
           "--out", str(run), "--no-progress"]
    print("training once for the agreement numbers (cached afterwards):\n  " + " ".join(cmd),
          file=sys.stderr)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"trained in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return run


def raw_weights(run: Path) -> Path:
    """The run's final raw (not Polyak-averaged) weights as safetensors.

    Over a 2-epoch run the averaged weights lag far behind the raw ones (on the cached run:
    28.6% vs 91.7% digits accuracy), and agreement is only meaningful for a model that actually
    classifies, so the benchmark uses the raw weights."""
    from googlenet.weights import from_checkpoint, safe_torch_load, save_weights

    out = run / "model-raw.safetensors"
    if not out.is_file():
        ckpt = safe_torch_load(run / "checkpoint-last.pt")
        lw = from_checkpoint(ckpt, str(run), averaged=False)
        save_weights(lw.model, out, class_names=lw.class_names, preprocess=lw.preprocess)
    return out


def markdown(doc: dict) -> str:
    from googlenet.infer.bench import format_table

    m = doc["machine"]
    s = doc["settings"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpus_available']} CPUs (flags: {' '.join(m['cpu_flags'])}), "
        f"torch {m['torch']}, torchvision {m['torchvision']}, onnxruntime {m['onnxruntime']}, "
        f"{m['torch_threads']} threads" + (f", GPU {m['gpu']}" if "gpu" in m else "") + ".",
        f"Peak (square matmul, same run): fp32 {doc['peak']['fp32']['gflops']:.1f} GFLOP/s, "
        f"bf16 {doc['peak']['bf16']['gflops']:.1f} GFLOP/s.",
        f"{s['image_size']}x{s['image_size']}, median of {s['repeats']} round-robin repeats; "
        f"agreement over {s['agreement_images']} digits test/val images for trained weights, "
        f"{s['agreement_images_random']} for random ones.", ""]
    for b in s["batch_sizes"]:
        lines += [f"Batch {b}:", "", format_table([r for r in doc["results"] if r["batch"] == b]), ""]
    lines += [f"- {x}" for x in doc["summary"]]
    lines += [f"- skipped: {x['variant']} {x['mode']}: {x['reason']}" for x in doc["skipped"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--weights", default=None,
                   help="trained weights to use instead of the cached run's raw final weights")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--agreement-images", type=int, default=540)
    p.add_argument("--out", default=None, help="results JSON (default results/inference-DEVICE.json)")
    p.add_argument("--train-only", action="store_true", help="stop after step 1")
    args = p.parse_args()

    cuda = args.device.startswith("cuda")
    if args.weights:
        weights = Path(args.weights)
    else:
        weights = raw_weights(train_once(CACHE / "digits224-torchvision", args.train_epochs))
    if args.train_only:
        return 0
    out = Path(args.out) if args.out else RESULTS / f"inference-{'cuda' if cuda else 'cpu'}.json"
    modes = ["eager", "fold", "channels_last", "bf16"] if cuda else \
        ["eager", "fold", "channels_last", "bf16", "int8", "ort", "ort_int8", "ov", "ov_bf16",
         "ov_int8"]
    if args.compile:
        modes.append("compile")
    cmd = [sys.executable, "-m", "googlenet", "bench", "--weights", str(weights),
           "--modes", *modes, "--batch-sizes", *(["256"] if cuda else ["1", "32"]),
           "--repeats", str(args.repeats), "--agreement-images", str(args.agreement_images),
           "--device", args.device, "--out", str(out)]
    print("  " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    doc = json.loads(out.read_text())
    doc["settings"]["benchmark_command"] = " ".join(["python", "benchmarks/bench_inference.py"] + sys.argv[1:])
    out.write_text(json.dumps(doc, indent=1))
    md = out.with_suffix(".md")
    md.write_text(markdown(doc))
    print(f"wrote {out} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
