"""Detection on the built-in digits-detect, as a user runs it, next to torchvision's small detector.

    python benchmarks/train_detect.py                  # the full benchmark (a quiet machine)
    python benchmarks/train_detect.py --tiny           # a seconds-long check that it all runs

Steps (one process each, as typed by a user, so each is timed alone; Selective Search's cache
points at a fresh folder, so proposal time is counted):
 1. ``googlenet train --task detect`` (the defaults: recipe ``detect``, FCOS on a GoogLeNet-bn FPN,
    128 px) in a fresh directory: test COCO mAP@[.5:.95] and AP50 from the run's results.json,
    the wall time of the whole command (interpreter start to exit) and its CPU time.
    Target: AP50 >= 90 and mAP >= 60 within 600 s wall on a 2-core CPU.
 1b. The paper's pipeline, ``googlenet train --task detect --arch rcnn --epochs RCNN_EPOCHS``
    (Selective Search proposals classified by GoogLeNet-bn, §8): its test mAP, AP50, proposal
    recall at IoU 0.5 (the paper's "coverage") and proposals per image.
 1c. Seconds per image of each trained detector on the test split: ``googlenet eval RUN --json``
    (500 canvases, batch 8, Selective Search recomputed for R-CNN), wall time / images.
 2. Only with ``--train-reference`` (~15 min more): the same data, the same engine settings, with torchvision's
    ``fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)`` (random init,
    num_classes 11) trained by a plain torchvision loop for the same number of epochs: its test
    mAP and wall time, for reference.
 3. Inference speed (img/s, median of ``--repeats`` timed passes after a warm-up, eval mode, fp32,
    128 px canvases) of both at batch 1 and 8, each model timed in its own process.

Writes benchmarks/results/detect-cpu.{json,md}, naming the machine, torch/torchvision versions and
the load average before each step (on a shared machine wall times mean little).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
TARGET = {"map50": 90.0, "map": 60.0, "seconds": 600.0}


def machine() -> dict[str, str]:
    import torch
    import torchvision

    from googlenet.infer.bench import cpu_model

    cpu = cpu_model()
    return {"cpu": cpu, "cores": str(os.cpu_count()), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "threads": str(torch.get_num_threads()),
            "python": platform.python_version(), "platform": platform.platform()}


def _timed(cmd: list[str], **kw) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, GOOGLENET_CACHE=str(cache))  # proposals: a cold cache per step


def train_googlenet(work: Path, extra: list[str], name: str = "googlenet-detect") -> dict[str, Any]:
    run = work / name
    cmd = [sys.executable, "-m", "googlenet", "train", "--task", "detect", "--out", str(run),
           "--no-progress", *extra]
    load = os.getloadavg()[0]
    print(f"[load {load:.1f}] {' '.join(cmd[1:])}", file=sys.stderr)
    wall, cpu = _timed(cmd, env=_env(work / f"cache-{name}"))
    res = json.loads((run / "results.json").read_text())
    split = res["eval_split"]
    out = {"run": str(run), "map": res[f"{split}_map"], "map50": res[f"{split}_map50"],
           "map75": res[f"{split}_map75"], "wall_s": wall, "cpu_s": cpu,
           "epochs": res["epochs"], "split": split, "load_before": load}
    for key in ("proposal_recall50", "proposals_per_image"):  # R-CNN only
        if f"{split}_{key}" in res:
            out[key] = res[f"{split}_{key}"]
    return out


def seconds_per_image(work: Path, run: str, limit: Optional[int]) -> dict[str, float]:
    """``googlenet eval RUN`` on the test split, timed as a user runs it (a cold proposal cache)."""
    cmd = [sys.executable, "-m", "googlenet", "eval", run, "--json", "--batch-size", "8"]
    if limit:
        cmd += ["--limit", str(limit)]
    print(f"[load {os.getloadavg()[0]:.1f}] {' '.join(cmd[1:])}", file=sys.stderr)
    t = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True,
                          env=_env(work / f"cache-eval-{Path(run).name}"))
    wall = time.perf_counter() - t
    doc = json.loads(done.stdout)
    n = _images_in(doc) or (limit or 500)
    return {"wall_s": wall, "images": n, "s_per_image": wall / n}


def _images_in(doc: Any) -> Optional[int]:
    """The image count ``googlenet eval --json`` reports, wherever it sits in the document."""
    if isinstance(doc, dict):
        if isinstance(doc.get("images"), int):
            return doc["images"]
        for v in doc.values():
            n = _images_in(v)
            if n:
                return n
    elif isinstance(doc, list):
        for v in doc:
            n = _images_in(v)
            if n:
                return n
    return None


# -- the torchvision reference, run in a child process (``--child``) ----------------------------

def _tv_model(num_classes: int):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    # Same input handling as ours: 128 px, no resizing beyond that.
    return fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                 num_classes=num_classes + 1, min_size=128,
                                                 max_size=128)


def child_train_torchvision(out: Path, epochs: int, tiny: bool) -> None:
    """A plain torchvision training loop (AdamW + cosine, as our recipe) on digits-detect."""
    import torch

    from googlenet.data.detection import (detection_collate, detection_eval_transforms,
                                          detection_train_transforms, open_detection_dataset)
    from googlenet.models.detection import to_image, to_model_targets
    from googlenet.tasks.detect.task import evaluate_detections, predict

    torch.manual_seed(0)
    train = open_detection_dataset(None, "train", transforms=detection_train_transforms(128, hflip=0.0))
    test = open_detection_dataset(None, "test", transforms=detection_eval_transforms(128))
    if tiny:
        train = torch.utils.data.Subset(train, range(16))
        test = torch.utils.data.Subset(test, range(8))
    classes = (train.dataset if tiny else train).classes
    loader = torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, drop_last=True,
                                         collate_fn=detection_collate)
    model = _tv_model(len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * len(loader),
                                                pct_start=0.05)
    dev = torch.device("cpu")
    for _ in range(epochs):
        model.train()
        for images, targets in loader:
            loss = sum(model([to_image(i, dev) for i in images], to_model_targets(targets, dev)).values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
    preds, gts = [], []
    for images, targets in torch.utils.data.DataLoader(test, batch_size=16, collate_fn=detection_collate):
        preds += predict(model, images, dev)
        gts += targets
    res = evaluate_detections(preds, gts, [str(c) for c in classes])
    out.write_text(json.dumps(res))


def child_speed(which: str, run: str, batch: int, repeats: int, out: Path) -> None:
    import torch

    torch.manual_seed(0)
    if which == "googlenet":
        from googlenet.sources import load_weights

        model = load_weights(run).model.eval()
    else:
        model = _tv_model(10).eval()
    images = [torch.rand(3, 128, 128) for _ in range(batch)]
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            t = time.perf_counter()
            model(images)
            if i >= 2:  # two warm-up passes
                times.append(time.perf_counter() - t)
    out.write_text(json.dumps({"img_s": batch / statistics.median(times),
                               "spread": [batch / max(times), batch / min(times)]}))


def speed(which: str, run: str, batch: int, repeats: int, work: Path) -> dict[str, float]:
    out = work / f"speed-{which}-{batch}.json"
    subprocess.run([sys.executable, __file__, "--child", "speed", which, run, str(batch),
                    str(repeats), str(out)], check=True)
    return json.loads(out.read_text())


def markdown(doc: dict) -> str:
    g, r, t = doc["googlenet"], doc["rcnn"], doc["torchvision"]
    m = doc["machine"]
    lines = [f"# Detection on digits-detect (CPU){' — TINY CHECK, not a result' if doc['tiny'] else ''}",
             "", f"Machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']}, torchvision "
             f"{m['torchvision']}. One run each, each in its own process; load average before "
             f"the runs: {doc['load_before']:.1f} (before each step: googlenet "
             f"{g['load_before']:.1f}, R-CNN {r['load_before']:.1f}).", "",
             "| model | epochs | test AP50 | test mAP@[.5:.95] | train+eval wall (s) | CPU (s) | "
             "s/image (eval) | img/s b1 | img/s b8 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| `googlenet train --task detect` (FCOS, GoogLeNet-bn FPN) | {g['epochs']} | "
             f"{g['map50']:.1f} | {g['map']:.1f} | {g['wall_s']:.0f} | {g['cpu_s']:.0f} | "
             f"{g['eval']['s_per_image']:.3f} | {g['speed_b1']['img_s']:.1f} | "
             f"{g['speed_b8']['img_s']:.1f} |",
             f"| `--arch rcnn` (§8: Selective Search + GoogLeNet-bn region classifier) | "
             f"{r['epochs']} | {r['map50']:.1f} | {r['map']:.1f} | {r['wall_s']:.0f} | "
             f"{r['cpu_s']:.0f} | {r['eval']['s_per_image']:.3f} | | |",
             (f"| torchvision fasterrcnn_mobilenet_v3_large_320_fpn (random init, same epochs) | "
              f"{g['epochs']} | {t['map50']:.1f} | {t['map']:.1f} | {t['wall_s']:.0f} | "
              f"{t['cpu_s']:.0f} | | {t['speed_b1']['img_s']:.1f} | {t['speed_b8']['img_s']:.1f} |"
              if "map" in t else
              f"| torchvision fasterrcnn_mobilenet_v3_large_320_fpn (random weights; not trained, "
              f"--train-reference) | | | | | | | {t['speed_b1']['img_s']:.1f} | "
              f"{t['speed_b8']['img_s']:.1f} |"),
             "", f"R-CNN proposals (Selective Search, fast, base_k = inc_k = 300): recall at IoU "
             f"0.5 {r.get('proposal_recall50', float('nan')):.1f}% with "
             f"{r.get('proposals_per_image', float('nan')):.0f} proposals per test image. "
             f"s/image: `googlenet eval RUN` wall time over the test split (start-up included; "
             f"R-CNN's Selective Search recomputed).", "",
             f"Target: AP50 >= {TARGET['map50']:.0f} and mAP >= {TARGET['map']:.0f} within "
             f"{TARGET['seconds']:.0f} s wall: **{'met' if doc['target_met'] else 'not met'}**.",
             "", "Command: `python benchmarks/train_detect.py`"]
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "train":
            child_train_torchvision(Path(rest[0]), int(rest[1]), rest[2] == "1")
        else:
            child_speed(rest[0], rest[1], int(rest[2]), int(rest[3]), Path(rest[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="a few steps and images: checks the script only")
    p.add_argument("--repeats", type=int, default=20, help="timed inference passes per setting")
    p.add_argument("--train-reference", action="store_true",
                   help="also train torchvision's detector for the same epochs (adds ~15 min on "
                        "2 cores); without it only its inference speed is measured")
    p.add_argument("--rcnn-epochs", type=int, default=3,
                   help="epochs of the R-CNN region classifier (each epoch: 16 regions of each "
                        "of the 2,000 training canvases)")
    p.add_argument("--out", default=str(RESULTS / "detect-cpu"), help="PREFIX for .json/.md")
    args = p.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="train-detect-") as tmp:
        work = Path(tmp)
        extra = (["--max-steps", "2", "--batch-size", "2", "--set", "eval_every=100"]
                 if args.tiny else [])
        g = train_googlenet(work, extra)
        r = train_googlenet(work, ["--arch", "rcnn", "--epochs", str(args.rcnn_epochs), *extra],
                            name="googlenet-rcnn")
        limit = 16 if args.tiny else None
        g["eval"] = seconds_per_image(work, g["run"], limit)
        r["eval"] = seconds_per_image(work, r["run"], limit)
        epochs = 1 if args.tiny else int(g["epochs"])
        t: dict[str, Any] = {}
        if args.train_reference or args.tiny:
            out = work / "tv.json"
            print(f"[load {os.getloadavg()[0]:.1f}] torchvision fasterrcnn_mobilenet_v3_large_320_fpn, "
                  f"{epochs} epochs", file=sys.stderr)
            wall, cpu = _timed([sys.executable, __file__, "--child", "train", str(out), str(epochs),
                                "1" if args.tiny else "0"])
            t = dict(json.loads(out.read_text()), wall_s=wall, cpu_s=cpu)
        reps = 2 if args.tiny else args.repeats
        for b in (1, 8):
            g[f"speed_b{b}"] = speed("googlenet", g["run"], b, reps, work)
            t[f"speed_b{b}"] = speed("torchvision", "", b, reps, work)
    met = g["map50"] >= TARGET["map50"] and g["map"] >= TARGET["map"] and g["wall_s"] <= TARGET["seconds"]
    doc = {"tiny": args.tiny, "machine": machine(), "load_before": load, "googlenet": g,
           "rcnn": r, "torchvision": t, "target": TARGET, "target_met": met}
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.json").write_text(json.dumps(doc, indent=2) + "\n")
    Path(f"{prefix}.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
