"""GPU speed: training and inference rates of our variants against torchvision's GoogLeNet on one
GPU, each figure with its same-run reference; writes benchmarks/results/gpu.{md,json}.

    python benchmarks/gpu_bench.py                      # every section (~5 min on an H200)
    python benchmarks/gpu_bench.py --only lrn train     # some sections

Sections (img/s are medians of timed steps after a warm-up, timed with CUDA events):

    lrn       LRN forward+backward (the paper variant's two layers, 224 px shapes, batch 256):
              torch's local_response_norm against ours (models/lrn_gpu.py), with the error of each
              against a float64 reference on the GPU
    train     a training step on synthetic data already on the GPU (224 px, batch 256, bf16
              autocast, channels_last, AdamW, aux heads on): bn, paper, torchvision's GoogLeNet;
              eager, and compiled (torch.compile, default mode; the compile time reported)
    infer     inference batch 256 bf16 and batch 1 tf32/bf16: ours eager, CUDA-graph modes,
              torchvision eager and compiled
    pipeline  where the GPU input pipeline's time goes, stage by stage on real batches of the
              JPEG folder: the loader workers alone (no GPU), nvJPEG's batched decode, the
              per-sample crop + resize, and the whole GpuAugment call
    loader    `googlenet train --data FOLDER` on JPEGs (500x375, written first; bn, bf16, batch
              256, 3 epochs, cores - 1 loader workers): the GPU input pipeline (--loader gpu)
              and the CPU one, against the synthetic-data rate of the same model and settings
              (the train section's bn eager row)
    detect    detection training (`--task detect`, 128 px): the default recipe on this GPU
              (images/s and test AP50/mAP), against batch 16 in fp32, the previous GPU setting

Every section is optional and time-boxed; a failing section is reported, never loses the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SRC = ROOT.parent / "src"
sys.path.insert(0, str(SRC))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SECTIONS = ("lrn", "train", "infer", "pipeline", "loader", "detect")


# -- timing ---------------------------------------------------------------------------------------

def cuda_time(fn: Callable[[], Any], *, warmup: int = 3, iters: int = 10) -> list[float]:
    """Seconds per call of ``fn`` (each call timed with CUDA events), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / 1e3)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# -- sections -------------------------------------------------------------------------------------

def section_lrn(args: argparse.Namespace) -> list[dict[str, Any]]:
    from googlenet.models.lrn import local_response_norm

    rows = []
    for shape in ((256, 64, 56, 56), (256, 192, 56, 56)):
        for dtype in (torch.bfloat16, torch.float32):
            x = (torch.randn(shape, device="cuda") * 20).to(dtype).contiguous(
                memory_format=torch.channels_last).requires_grad_(True)
            g = torch.randn_like(x)
            ref = F.local_response_norm(x.detach().double(), 5, 1e-4, 0.75, 1.0)
            row: dict[str, Any] = {"shape": list(shape), "dtype": str(dtype).replace("torch.", "")}
            for name, fn in (("torch", F.local_response_norm), ("ours", local_response_norm)):
                def step(fn=fn):
                    y = fn(x, 5, 1e-4, 0.75, 1.0)
                    y.backward(g)
                    return y
                y = step()
                row[f"{name}_rel_err"] = ((y.double() - ref).abs().max() / ref.abs().max()).item()
                x.grad = None
                row[f"{name}_ms"] = 1e3 * med(cuda_time(step, warmup=2, iters=10))
                x.grad = None
            row["speedup"] = row["torch_ms"] / row["ours_ms"]
            rows.append(row)
            print(f"lrn {shape} {row['dtype']}: torch {row['torch_ms']:.2f} ms, ours "
                  f"{row['ours_ms']:.2f} ms ({row['speedup']:.1f}x); rel err torch "
                  f"{row['torch_rel_err']:.1e} ours {row['ours_rel_err']:.1e}", flush=True)
            del x, g, ref
    return rows


def _models(aux: bool = True) -> dict[str, Callable[[], nn.Module]]:
    import torchvision

    from googlenet.models.googlenet import GoogLeNet

    return {
        "bn": lambda: GoogLeNet(variant="bn", num_classes=1000, aux_logits=aux),
        "paper": lambda: GoogLeNet(variant="paper", num_classes=1000, aux_logits=aux),
        "torchvision": lambda: torchvision.models.googlenet(weights=None, aux_logits=aux,
                                                            init_weights=True),
    }


def _train_rate(make: Callable[[], nn.Module], *, batch: int, compile_: bool,
                steps: int) -> dict[str, Any]:
    model = make().cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)  # the short recipe's
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    net = torch.compile(model) if compile_ else model

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = net(x)
        logits = out[0] if isinstance(out, tuple) else out
        loss = F.cross_entropy(logits.float(), y)
        if isinstance(out, tuple) and len(out) == 3 and out[1] is not None:
            loss = loss + 0.3 * (F.cross_entropy(out[1].float(), y) + F.cross_entropy(out[2].float(), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    times = cuda_time(step, warmup=3, iters=steps)
    del model, opt, net
    torch.cuda.empty_cache()
    return {"img_s": batch / med(times), "first_step_s": first}


def section_train(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for compile_ in ((False, True) if not args.no_compile else (False,)):
        for name, make in _models().items():
            if args.train_models and name not in args.train_models:
                continue
            r = _train_rate(make, batch=256, compile_=compile_, steps=10 if compile_ else 15)
            r.update(model=name, compiled=compile_)
            rows.append(r)
            print(f"train {name} {'compiled' if compile_ else 'eager'}: {r['img_s']:.0f} img/s "
                  f"(first step {r['first_step_s']:.1f} s)", flush=True)
    return rows


def section_infer(args: argparse.Namespace) -> list[dict[str, Any]]:
    from googlenet.infer import fast

    rows = []
    models = {k: v() for k, v in _models(aux=False).items()}
    for batch in (256, 1, 8):
        x = torch.randn(batch, 3, 224, 224, device="cuda")
        for name, model in models.items():
            model = model.cuda().eval()
            runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
            if name == "torchvision":
                cl = model.to(memory_format=torch.channels_last)

                def tv_eager(x, bf16, m=cl):
                    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                                enabled=bf16):
                        return m(x.contiguous(memory_format=torch.channels_last))
                runners["eager tf32"] = lambda x: tv_eager(x, False)
                runners["eager bf16"] = lambda x: tv_eager(x, True)
                if not args.no_compile:
                    comp = torch.compile(cl)

                    def tv_comp(x, bf16, m=comp):
                        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                                    enabled=bf16):
                            return m(x.contiguous(memory_format=torch.channels_last))
                    runners["compiled tf32"] = lambda x: tv_comp(x, False)
                    runners["compiled bf16"] = lambda x: tv_comp(x, True)
            else:
                for mode in ("channels_last", "bf16", "cuda_graph", "cuda_graph_bf16"):
                    runners[mode] = fast.prepare(model, mode, device="cuda")
            for label, fn in runners.items():
                try:
                    t0 = time.perf_counter()
                    fn(x)
                    torch.cuda.synchronize()
                    first = time.perf_counter() - t0
                    times = cuda_time(lambda: fn(x), warmup=3, iters=20)
                    r = {"model": name, "runner": label, "batch": batch,
                         "img_s": batch / med(times), "ms": 1e3 * med(times), "first_call_s": first}
                except Exception as e:  # noqa: BLE001
                    r = {"model": name, "runner": label, "batch": batch, "error": repr(e)[:200]}
                rows.append(r)
                print(f"infer b{batch} {name} {label}: " + (f"{r['img_s']:.0f} img/s ({r['ms']:.2f} ms)"
                      if "img_s" in r else r["error"]), flush=True)
    return rows


def _write_jpegs(folder: Path, n: int, classes: int = 10) -> None:
    """n JPEGs of 500x375 (ImageNet's typical size) in ``classes`` class folders, in processes."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(_jpeg_batch, [(str(folder), c, n // classes) for c in range(classes)]))


def _jpeg_batch(job: tuple[str, int, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, c, n = job
    rng = np.random.default_rng(c)
    d = Path(folder) / f"class{c}"
    d.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:375, 0:500]
    for i in range(n):
        base = (np.sin(xx / (20 + 5 * c)) * 60 + np.cos(yy / (15 + i % 7)) * 60 + 120)
        img = np.stack([base, base * 0.8 + 30 * c, 255 - base], -1) + rng.normal(0, 12, (375, 500, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{i}.jpg", quality=90)


def _jpeg_folder(args: argparse.Namespace) -> Path:
    data = Path(args.work) / "jpegs"
    if not data.exists():
        t0 = time.perf_counter()
        _write_jpegs(data, args.jpegs)
        print(f"wrote {args.jpegs} JPEGs in {time.perf_counter() - t0:.0f} s", flush=True)
    return data


def section_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from googlenet.data import gpu_pipeline as gp
    from googlenet.data.datasets import open_dataset
    from googlenet.engine.sampling import SeededDataset, SeededSampler

    train = open_dataset(str(_jpeg_folder(args)), "train", verify=False, val_fraction=0.05)
    params = gp.AugmentParams(size=224, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
                              interpolations=("bilinear", "box", "nearest", "bicubic"), hflip=0.5,
                              brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0,
                              pca_lighting=0.1)
    ds = SeededDataset(gp.EncodedImages(train, params))
    base = torch.utils.data.DistributedSampler(ds, num_replicas=1, rank=0, seed=0, drop_last=True)
    sampler = SeededSampler(base, 0)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, sampler=sampler, drop_last=True,
                                         num_workers=args.workers, collate_fn=gp.encoded_collate,
                                         pin_memory=True, prefetch_factor=4)
    t0, batches = time.perf_counter(), []
    for b in loader:
        batches.append(b)
    out: dict[str, Any] = {"workers_img_s": 256 * len(batches) / (time.perf_counter() - t0)}
    aug = gp.GpuAugment(params, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), files=train.files)
    dev = torch.device("cuda", torch.cuda.current_device())
    b = batches[0]
    payloads = gp.split_payloads(b[0], b[1], b[2])
    out["decode_img_s"] = 256 / med(cuda_time(lambda: aug.decode(payloads, b[5].tolist(), dev)))
    imgs = aug.decode(payloads, b[5].tolist(), dev)
    out["crop_resize_img_s"] = 256 / med(cuda_time(
        lambda: torch.stack([aug._crop_resize(i, p) for i, p in zip(imgs, b[3])])))
    it = iter(batches * 3)
    out["augment_img_s"] = 256 / med(cuda_time(lambda: aug(next(it), dev), iters=8))
    print("pipeline: " + ", ".join(f"{k} {v:.0f}" for k, v in out.items()), flush=True)
    return out


def _run_cli(argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, float]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "googlenet", *argv], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -1, out, time.perf_counter() - t0


def _epoch_rates(run: Path) -> list[float]:
    rows = (run / "metrics.csv").read_text().splitlines()
    head = rows[0].split(",")
    return [float(dict(zip(head, r.split(",")))["images_per_s"]) for r in rows[1:]]


def section_loader(args: argparse.Namespace, synthetic: Optional[float]) -> list[dict[str, Any]]:
    work = Path(args.work)
    data = _jpeg_folder(args)
    rows = []
    for loader in ("gpu", "cpu"):
        out = work / f"run-{loader}"
        argv = ["train", "--data", str(data), "--variant", "bn", "--amp", "bf16", "--batch-size",
                "256", "--epochs", "3", "--no-progress", "--out", str(out), "--workers",
                str(args.workers), "--loader", loader, "--set", "val_fraction=0.05", "--set",
                "eval_every=3", "--set", "tensorboard=false", "--set", "plots=false"]
        code, log, wall = _run_cli(argv, work, args.loader_timeout)
        r: dict[str, Any] = {"loader": loader, "exit": code, "wall_s": wall}
        if code == 0:
            rates = _epoch_rates(out)
            r.update(epoch_img_s=rates, best_img_s=max(rates))
            if synthetic:
                r["ratio_to_synthetic"] = max(rates) / synthetic
        else:
            r["tail"] = log.strip().splitlines()[-8:]
        rows.append(r)
        print(f"loader {loader}: " + (f"{r.get('epoch_img_s')} img/s per epoch" if code == 0
                                       else f"exit {code}: {r['tail']}"), flush=True)
    return rows


def section_detect(args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(args.work)
    rows = []
    for label, extra in (("default recipe", []),
                         ("batch 16 fp32 (before)", ["--batch-size", "16", "--amp", "none",
                                                     "--epochs", "2", "--pretrain", "none"])):
        out = work / f"detect-{len(rows)}"
        code, log, wall = _run_cli(["train", "--task", "detect", "--no-progress", "--out",
                                    str(out), *extra], work, args.detect_timeout)
        r: dict[str, Any] = {"setting": label, "exit": code, "wall_s": wall}
        if code == 0:
            res = json.loads((out / "results.json").read_text())
            rates = _epoch_rates(out)
            r.update(img_s=max(rates), test_map50=res.get("test_map50"), test_map=res.get("test_map"),
                     epochs=res.get("epochs"))
        else:
            r["tail"] = log.strip().splitlines()[-8:]
        rows.append(r)
        print(f"detect {label}: " + (f"{r['img_s']:.0f} img/s, AP50 {r['test_map50']}, mAP "
                                     f"{r['test_map']} in {wall:.0f} s" if code == 0 else
                                     f"exit {code}: {r['tail']}"), flush=True)
    return rows


# -- report ---------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    import torchvision

    p = torch.cuda.get_device_properties(0)
    return {"gpu": f"{p.name} ({p.total_memory / 2**30:.0f} GiB)", "torch": torch.__version__,
            "cuda": str(torch.version.cuda), "cudnn": str(torch.backends.cudnn.version()),
            "torchvision": torchvision.__version__, "python": platform.python_version(),
            "cpu_cores": str(os.cpu_count())}


def report(doc: dict[str, Any], path: Path) -> None:
    lines = ["# GPU speed", "", "Written by `python benchmarks/gpu_bench.py`; every ratio is "
             "against a reference timed in the same run.", "",
             "| " + " | ".join(f"{k}: {v}" for k, v in doc["machine"].items()) + " |", ""]
    s = doc["sections"]
    if "lrn" in s and isinstance(s["lrn"], list):
        lines += ["## LRN forward+backward (channels_last, batch 256)", "",
                  "| shape | dtype | torch (ms) | ours (ms) | speed-up | rel. error torch / ours |",
                  "|---|---|---:|---:|---:|---|"]
        lines += [f"| {r['shape']} | {r['dtype']} | {r['torch_ms']:.2f} | {r['ours_ms']:.2f} | "
                  f"{r['speedup']:.1f}x | {r['torch_rel_err']:.1e} / {r['ours_rel_err']:.1e} |"
                  for r in s["lrn"]]
        lines.append("")
    if "train" in s and isinstance(s["train"], list):
        ref = {(r["model"], r["compiled"]): r["img_s"] for r in s["train"]}
        lines += ["## Training step, synthetic data on the GPU (224 px, batch 256, bf16, "
                  "channels_last, aux heads)", "",
                  "| model | eager img/s | compiled img/s | compiled/eager | first compiled step (s) |",
                  "|---|---:|---:|---:|---:|"]
        for name in ("bn", "paper", "torchvision"):
            e, c = ref.get((name, False)), ref.get((name, True))
            first = next((r["first_step_s"] for r in s["train"] if r["model"] == name and r["compiled"]), None)
            lines.append(f"| {name} | {e or 0:.0f} | {c or 0:.0f} | "
                         f"{(c / e if c and e else float('nan')):.2f} | {first or float('nan'):.0f} |")
        if ref.get(("paper", False)) and ref.get(("bn", False)):
            lines.append(f"\npaper / bn, eager: {ref[('paper', False)] / ref[('bn', False)]:.2f}x"
                         + (f"; compiled: {ref[('paper', True)] / ref[('bn', True)]:.2f}x"
                            if ref.get(("paper", True)) and ref.get(("bn", True)) else "")
                         + (f"; ours (bn) compiled / torchvision compiled: "
                            f"{ref[('bn', True)] / ref[('torchvision', True)]:.2f}x"
                            if ref.get(("bn", True)) and ref.get(("torchvision", True)) else ""))
        lines.append("")
    if "infer" in s and isinstance(s["infer"], list):
        lines += ["## Inference (224 px)", "", "| batch | model | runner | img/s | ms/batch |",
                  "|---:|---|---|---:|---:|"]
        lines += [f"| {r['batch']} | {r['model']} | {r['runner']} | {r.get('img_s', 0):.0f} | "
                  f"{r.get('ms', float('nan')):.2f} |" for r in s["infer"]]
        lines.append("")
    for name in ("pipeline", "loader", "detect"):
        if name in s and (isinstance(s[name], list) or "error" not in s[name]):
            lines += [f"## {name}", "", "```", json.dumps(s[name], indent=1), "```", ""]
    for name, v in s.items():
        if isinstance(v, dict) and "error" in v:
            lines += [f"## {name}: failed", "", "```", v["error"], "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(doc, indent=1))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=SECTIONS)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--jpegs", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                    help="loader workers of the loader runs (the issue's: 15 of 16 cores)")
    ap.add_argument("--train-models", nargs="+", choices=("bn", "paper", "torchvision"),
                    help="the train section's models (default: all three)")
    ap.add_argument("--loader-timeout", type=float, default=240)
    ap.add_argument("--detect-timeout", type=float, default=300)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=str(RESULTS / "gpu.md"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device here; nothing to time")
        return 0
    args.work = args.work or tempfile.mkdtemp(prefix="gpu-bench-")
    torch.backends.cudnn.benchmark = True
    doc: dict[str, Any] = {"machine": machine(), "sections": {}}
    print(doc["machine"], flush=True)
    for name in args.only or SECTIONS:
        t0 = time.perf_counter()
        try:
            if name == "loader":
                train = doc["sections"].get("train") or []
                syn = next((r["img_s"] for r in train if r["model"] == "bn" and not r["compiled"]), None)
                res: Any = section_loader(args, syn)
            else:
                res = globals()[f"section_{name}"](args)
        except Exception as e:  # noqa: BLE001  one failed section keeps the others
            traceback.print_exc()
            res = {"error": f"{type(e).__name__}: {e}"[:2000]}
        doc["sections"][name] = res
        doc.setdefault("seconds", {})[name] = time.perf_counter() - t0
        torch.cuda.empty_cache()
        report(doc, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
