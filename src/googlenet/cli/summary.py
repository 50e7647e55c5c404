"""``googlenet summary``: Table 1 of the paper, regenerated from the built model."""

from __future__ import annotations

from ..models.googlenet import VARIANTS
from ..models.summary import naive_comparison, render, render_naive, table1


def add_arguments(p) -> None:
    p.add_argument("--variant", choices=sorted(VARIANTS), default="paper")
    p.add_argument("--size", type=int, default=224, help="input height and width in pixels (>= 32)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--stem", choices=["paper", "separable"], default="paper",
                   help="separable: the depthwise-separable 7x7 that reproduces Table 1's row 1")
    p.add_argument("--inception", choices=["reduced", "naive"], default="reduced",
                   help="naive: compare the naive module's cost with the reduced one, module by module")
    p.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text")


def run(args) -> int:
    from ..errors import UserError
    from ..models.googlenet import MIN_INPUT_SIZE

    if args.size < MIN_INPUT_SIZE:
        raise UserError(f"--size {args.size} is too small: GoogLeNet accepts {MIN_INPUT_SIZE} and larger")
    if args.num_classes < 1:
        raise UserError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.inception == "naive":
        print(render_naive(naive_comparison(size=args.size, variant=args.variant), args.format), end="")
        return 0
    result = table1(variant=args.variant, size=args.size, num_classes=args.num_classes,
                    stem=args.stem)
    print(render(result, args.format), end="")
    return 0
