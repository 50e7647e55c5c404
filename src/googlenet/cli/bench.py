"""``googlenet bench``: inference speed of each mode against torchvision's GoogLeNet and the
runtimes a user would run it in, each runner timed alone in its own process."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..infer.modes import (
    DEFAULT_MODES, DEFAULT_PEERS, GPU_MODES, GPU_PEERS, MODES, PEERS,
)
from ..models.choices import VARIANTS
from . import deprecated_option

if TYPE_CHECKING:
    from ..models.googlenet import GoogLeNet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", nargs="+", default=[], metavar="SPEC",
                   help="trained weights (run dir, .safetensors, ...), at most one per variant; "
                        "variants without get random weights")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="our variants to time")
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=None,
                   help=f"modes to time; unset: {' '.join(DEFAULT_MODES)} on the CPU, "
                        f"{' '.join(GPU_MODES)} on a GPU (add 'compile' on the CPU for "
                        f"torch.compile; minutes to compile)")
    p.add_argument("--peers", nargs="*", choices=list(PEERS), default=None,
                   help=f"torchvision's model in these runtimes (eager, the reference, always); "
                        f"unset: {' '.join(DEFAULT_PEERS)} on the CPU, {' '.join(GPU_PEERS)} on "
                        f"a GPU")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per batch size first")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None,
                   help="unset: 1 32 on the CPU, 1 256 on a GPU")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7,
                   help="timed calls per row and batch size (median and min-max reported)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for torch and onnxruntime; unset: torch's, one per core")
    p.add_argument("--data", default=None,
                   help="images to time, calibrate and check on; unset: the built-in digits")
    p.add_argument("--agreement-images", type=int, default=256,
                   help="real images each mode of a trained model is compared with fp32 eager on "
                        "(test split, then val)")
    p.add_argument("--agreement-images-random", type=int, default=64,
                   help="the same for models with random weights (whose agreement says little)")
    p.add_argument("--calibration-count", type=int, default=256,
                   help="how many images (--data's train split) the int8 modes are calibrated "
                        "on (as --calibration-count of export and predict)")
    deprecated_option(p, "--calibration-images", "calibration_count", "--calibration-count N",
                      convert=int, metavar="N")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--peak-seconds", type=float, default=1.0,
                   help="time budget of each matmul-peak measurement")
    p.add_argument("--force-bf16", action="store_true",
                   help="time bf16 even where it is emulated (very slow without native bf16)")
    p.add_argument("--paired-rounds", type=int, default=5,
                   help="after the table, time our best mode and the best peer of each "
                        "precision class again, paired: both processes alive, taking turns for "
                        "this many rounds (0: skip); their ratio is the one drift cancels from")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write the results here")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.distributed import resolve_device
    from ..infer import fast
    from ..infer.bench import (
        isolated_rows, load_images, machine_info, matmul_peak, ratios_to_peers,
        realistic_random_init, results, torchvision_reference,
    )
    from ..models.googlenet import GoogLeNet

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    batch_sizes = args.batch_sizes or ([1, 256] if gpu else [1, 32])
    args.modes = args.modes or list(GPU_MODES if gpu else DEFAULT_MODES)
    args.peers = list(GPU_PEERS if gpu else DEFAULT_PEERS) if args.peers is None else args.peers
    _check_numbers(args, batch_sizes)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.out:
        from ..weights.io import check_writable_dir

        check_writable_dir(Path(args.out).parent, "--out")  # before minutes of timing
    log = (lambda s: print(s, file=sys.stderr, flush=True))

    info = machine_info(device)
    log(f"machine: {info['cpu']}, {info['cpus_available']} CPUs, flags {' '.join(info['cpu_flags'])}, "
        f"torch threads {info['torch_threads']}" + (f", GPU {info['gpu']}" if "gpu" in info else ""))
    log(f"versions: python {info['python']}, torch {info['torch']}, torchvision "
        f"{info['torchvision']}, onnxruntime {info.get('onnxruntime')}, onnx {info.get('onnx')}, "
        f"openvino {info.get('openvino')}, nncf {info.get('nncf')}")
    peaks = {dt: matmul_peak(getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dt]), device,
                             budget_s=args.peak_seconds) for dt in ("fp32", "bf16")}
    log(f"peak (square matmul): fp32 {peaks['fp32']['gflops']:.1f} GFLOP/s (n={peaks['fp32']['n']}), "
        f"bf16 {peaks['bf16']['gflops']:.1f} GFLOP/s (n={peaks['bf16']['n']})")

    models, pre, trained = _models(args, log)
    num_classes = next(iter(models.values()))[0].num_classes
    tv_source = models["torchvision"][0] if "torchvision" in models else realistic_random_init(
        GoogLeNet(variant="torchvision", num_classes=num_classes, aux_logits=False, init_weights=False))
    reference = torchvision_reference(tv_source).to(device)

    log(f"images: {args.data or 'digits'} at {args.image_size} px ({pre.note or 'preprocessed'})")
    n_agree = args.agreement_images if trained else args.agreement_images_random
    agree_x = load_images(args.data, ["test", "val"], max(n_agree, max(batch_sizes)), pre)
    calib_x = load_images(args.data, ["train"], args.calibration_count, pre)
    with torch.inference_mode():
        d = (reference(agree_x[:8].to(device)).cpu()
             - fast.prepare(tv_source, "eager", device=device)(agree_x[:8]).cpu()).abs().max().item()
    log(f"reference check: torchvision.models.googlenet with our torchvision variant's weights, "
        f"max |logit diff| {d:.2e} on 8 images")

    log("timing each runner in its own process (agreement with fp32 eager checked there):")
    with tempfile.TemporaryDirectory(prefix="googlenet-bench-") as work:
        rows, skipped = isolated_rows(
            models, args.modes, args.peers,
            inputs={"check": agree_x[:max(n_agree, max(batch_sizes))], "calibration": calib_x},
            device=device, image_size=args.image_size, batch_sizes=batch_sizes,
            repeats=args.repeats, warmup=args.warmup, threads=args.threads,
            force_bf16=args.force_bf16, n_random=args.agreement_images_random,
            reference_source=(tv_source, models.get("torchvision", (None, "random"))[1]),
            workdir=Path(work), log=log)
        res = results(rows, batch_sizes, peaks)
        ratios = [q for b in batch_sizes for q in ratios_to_peers(res, b)]
        if args.paired_rounds:
            _paired(rows, ratios, Path(work), args, log)
    doc = {"machine": info, "peak": peaks, "reference_check_max_abs_diff": d,
           "settings": {"batch_sizes": batch_sizes, "image_size": args.image_size,
                        "repeats": args.repeats, "data": args.data or "digits",
                        "agreement_images": min(len(agree_x), n_agree),
                        "agreement_images_random": args.agreement_images_random,
                        "calibration_images": len(calib_x),
                        "weights": args.weights,
                        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")}},
           "results": res, "skipped": skipped, "ratios_to_peers": ratios}
    _report(args, doc, rows, batch_sizes, log)
    return 0


def _check_numbers(args: argparse.Namespace, batch_sizes: list[int]) -> None:
    if any(b < 1 for b in batch_sizes) or args.repeats < 1 or args.agreement_images < 1 \
            or args.calibration_count < 1:
        raise UserError("--batch-sizes, --repeats, --agreement-images and --calibration-count "
                        "must be at least 1")
    if args.paired_rounds < 0:
        raise UserError(f"--paired-rounds {args.paired_rounds}: must be 0 or more")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup}: must be 0 or more")
    if args.image_size < 32:
        raise UserError(f"--image-size {args.image_size}: GoogLeNet needs 32 or more")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be at least 1")


def _models(args: argparse.Namespace, log) -> tuple[dict[str, tuple[GoogLeNet, str]], Any, dict]:
    """Trained models for the variants --weights gives, realistic random weights for the others;
    the preprocessing at --image-size; the trained LoadedWeights by variant."""
    from dataclasses import replace

    from ..data.datasets import default_preprocess
    from ..infer.bench import realistic_random_init
    from ..models.googlenet import GoogLeNet
    from ..sources import load_weights

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
    return models, pre, trained


def _paired(rows, ratios: list[dict[str, Any]], work: Path, args: argparse.Namespace,
            log) -> None:
    """Each (our best, best peer) pair of ``ratios`` timed again, paired (``head_to_head``):
    one pair of processes per pair of runners, for every batch size it is the pair of."""
    from ..infer.paired import head_to_head, paired_line

    by_key = {(r.variant, r.mode): r for r in rows}
    pairs: dict[tuple, list[dict[str, Any]]] = {}
    for q in ratios:
        pairs.setdefault((q["ours_key"], q["peer_key"]), []).append(q)
    log(f"paired: our best and the best peer of each precision, alive together, taking turns "
        f"({args.paired_rounds} rounds of {args.repeats} calls per batch size)")
    for (ours, peer), qs in pairs.items():
        try:
            got = head_to_head(by_key[ours], by_key[peer], work, [q["batch"] for q in qs],
                               rounds=args.paired_rounds, repeats=args.repeats)
        except RuntimeError as e:
            log(f"  {' '.join(ours)} vs {' '.join(peer)}: not paired: {e}")
            continue
        for q in qs:
            q["paired"] = got[q["batch"]]
            log("  " + paired_line(q))


def _report(args: argparse.Namespace, doc: dict[str, Any], rows, batch_sizes, log) -> None:
    """Print the tables and summary, add the summary, ratios and load warning to ``doc``,
    write --out, print --json."""
    from ..infer.bench import format_table, summary
    from ..infer.paired import paired_line

    res, info = doc["results"], doc["machine"]
    for b in batch_sizes:
        print(f"\nbatch {b}, {args.image_size}x{args.image_size}, median of {args.repeats}:",
              file=sys.stderr if args.json else sys.stdout)
        print(format_table([r for r in res if r["batch"] == b]), file=sys.stderr if args.json else sys.stdout)
        for line in summary(res, b):
            print(line, file=sys.stderr if args.json else sys.stdout)
    doc["summary"] = [line for b in batch_sizes for line in summary(res, b)]
    for q in doc["ratios_to_peers"]:
        if "paired" in q:
            line = paired_line(q)
            print(line, file=sys.stderr if args.json else sys.stdout)
            doc["summary"].append(line)
    from ..engine.logging import load_warning

    busy = max((r.process["load_before"][0] for r in rows), default=0.0)
    # torch's OpenMP threads spin at barriers: on an oversubscribed machine they lose far more
    # than onnxruntime's or OpenVINO's (measured: eager GoogLeNet 8x slower at 2 threads than at
    # 1 under a load of 5 on 2 cores), so the ratios lean against torch. (The timed process
    # itself adds to the load before the next one: half a CPU of margin.)
    warning = load_warning("while timing", "rerun on a quiet machine before trusting these "
                                           "numbers", load=busy, cpus=info["cpus_available"],
                           margin=0.5)
    if warning:
        doc["summary"].append(warning)
        log(warning)
    doc["machine"]["load_average_after"] = list(os.getloadavg())
    if args.out:
        from ..weights.io import atomic_write

        atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
        log(f"wrote {args.out}")
    if args.json:
        print(json.dumps(doc, indent=1))
