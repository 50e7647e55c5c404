"""``googlenet experiment NAME``: the slide deck's claims, measured as ablations (argument
parsing only; the work is googlenet.experiments')."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..engine import config as config_lib
from ..tasks import resolve_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..experiments import EXPERIMENTS

    p.description = (
        "Reproduce the paper's claims as ablations: every arm is an ordinary training run per "
        "seed in OUT/runs/<arm>-seed<k>/ (resumable: run the same command again to continue), "
        "then OUT/report.md (tables: mean ± std over seeds, the paper's statement, a verdict), "
        "OUT/results.json and slide-ready PNG figures. Experiments: "
        + "; ".join(f"{n}: {e.title}" for n, e in EXPERIMENTS.items()) + "; all: every one.")
    p.add_argument("name", choices=[*EXPERIMENTS, "all"], help="which experiment")
    p.add_argument("--data", default=None, metavar="PATH|cifar10|cifar100",
                   help="image folder or cifar10/cifar100 (default: the built-in digits)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="K",
                   help="training seeds: each arm is trained once per seed")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per arm (default: each experiment's own, 1-5; see the report)")
    p.add_argument("--out", default="experiments", metavar="DIR",
                   help="experiment directory (runs/, report.md, results.json, figures)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each finished run's checkpoint-*.pt (about 125 MB each); by default "
                        "a finished run keeps model.safetensors, metrics and results only")
    p.add_argument("--replot", action="store_true",
                   help="draw the figures and write report.md again from OUT/results.json, "
                        "training nothing (NAME is ignored: every experiment there is drawn)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a training config key for every arm (an arm's own keys win), e.g. "
                        "--set max_steps=20 --set image_size=64 --set device=cuda")


def run(args: argparse.Namespace) -> int:
    from ..experiments import replot, run_experiment

    if args.replot:
        result = replot(args.out)
        print(f"report: {args.out}/report.md  (figures: "
              f"{', '.join(f for e in result['experiments'].values() for f in e['figures'])})")
        return 0

    user = config_lib.parse_set(args.set)
    resolve_config(None, user)  # unknown keys / bad values: one line, before any training
    typed = sys.argv[1:2] == ["experiment"]  # run as `googlenet experiment ...`, not from Python
    command = ("googlenet " + shlex.join(sys.argv[1:]) if typed
               else f"googlenet experiment {args.name}")
    result = run_experiment(args.name, out=args.out, seeds=args.seeds, epochs=args.epochs,
                            data=args.data, user=user, command=command,
                            keep_checkpoints=args.keep_checkpoints)
    print(f"\nreport: {args.out}/report.md  (data: {args.out}/results.json; figures: "
          f"{', '.join(f for e in result['experiments'].values() for f in e['figures'])})")
    for name, er in result["experiments"].items():
        for c in er["claims"]:
            print(f"  {name}/{c['key']}: {c['verdict']} ({c['why']})")
    return 0
