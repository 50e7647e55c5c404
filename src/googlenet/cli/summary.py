"""``googlenet summary``: Table 1 of the paper, regenerated from the built model, as text or as
a picture for slides (``--format svg|png``: the network as Figure 3; with ``--inception naive``
one module naive vs reduced, as Figure 2)."""

from __future__ import annotations

from pathlib import Path

from ..models.choices import VARIANTS

FORMATS = ("text", "markdown", "csv", "json", "svg", "png")
_SUFFIX = {".svg": "svg", ".png": "png", ".json": "json", ".csv": "csv", ".md": "markdown",
           ".txt": "text"}


def add_arguments(p) -> None:
    p.add_argument("--variant", choices=sorted(VARIANTS), default="paper")
    p.add_argument("--size", type=int, default=224, help="input height and width in pixels (>= 32)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--stem", choices=["paper", "separable"], default="paper",
                   help="separable: the depthwise-separable 7x7 that reproduces Table 1's row 1")
    p.add_argument("--inception", choices=["reduced", "naive"], default="reduced",
                   help="naive: compare the naive module's cost with the reduced one, module by module")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="svg/png: a 16:9 picture (the network as Figure 3; with --inception naive, "
                        "one module naive vs reduced as Figure 2). Default: from --out's suffix, "
                        "else text")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write to FILE (atomically) instead of stdout; svg/png default to "
                        "summary.svg / summary.png (summary-naive.* with --inception naive)")
    p.add_argument("--module", default="inception_3a", metavar="NAME",
                   help="the module drawn by --inception naive --format svg|png")


def _format(args) -> str:
    if args.format:
        return args.format
    return _SUFFIX.get(Path(args.out).suffix.lower(), "text") if args.out else "text"


def run(args) -> int:
    from ..errors import UserError
    from ..models.googlenet import MIN_INPUT_SIZE, TABLE1
    from ..models.summary import naive_comparison, render, render_naive, table1
    from ..weights.io import atomic_write

    if args.size < MIN_INPUT_SIZE:
        raise UserError(f"--size {args.size} is too small: GoogLeNet accepts {MIN_INPUT_SIZE} and larger")
    if args.num_classes < 1:
        raise UserError(f"--num-classes must be >= 1, got {args.num_classes}")
    fmt = _format(args)
    if fmt in ("svg", "png"):
        from ..models import figure

        modules = [s.name for s in TABLE1 if not isinstance(s, str)]
        if args.module not in modules:
            raise UserError(f"--module {args.module}: choose one of {', '.join(modules)}")
        if args.inception == "naive":
            fig = figure.inception_figure(module=args.module, variant=args.variant, size=args.size)
        else:
            fig = figure.network_figure(variant=args.variant, size=args.size,
                                        num_classes=args.num_classes, stem=args.stem)
        out = Path(args.out or f"summary{'-naive' if args.inception == 'naive' else ''}.{fmt}")
        atomic_write(out, lambda tmp: figure.save_figure(fig, tmp, fmt))
        print(f"wrote {out}")
        return 0
    if args.inception == "naive":
        text = render_naive(naive_comparison(size=args.size, variant=args.variant), fmt)
    else:
        text = render(table1(variant=args.variant, size=args.size, num_classes=args.num_classes,
                             stem=args.stem), fmt)
    if args.out:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
