"""The ``googlenet`` command line: one thin module per subcommand (googlenet/cli/*.py),
imported only when used.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
A ``UserError`` anywhere becomes ``googlenet COMMAND: error: <message>`` and its exit status (2
for bad input), never a traceback; a setting it names in library terms (``key="device"``)
is shown as the command's flag (``--device``). ``--debug`` (or GOOGLENET_DEBUG=1) shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from ..errors import UserError

# name -> (module, one-line help). Keep in the order a new user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("googlenet.cli.train", "train a GoogLeNet (default: the paper's network on built-in digits)"),
    "eval": ("googlenet.cli.eval", "top-1/top-5 with 1, 10 or the paper's 144 crops; ensembles"),
    "predict": ("googlenet.cli.predict", "classify images or folders of images"),
    "experiment": ("googlenet.cli.experiment", "the paper's claims measured as ablations: report, tables, plots"),
    "summary": ("googlenet.cli.summary", "Table 1 of the paper, regenerated from the built model"),
    "export": ("googlenet.cli.export", "export to ONNX, TorchScript or torch.export, checked"),
    "bench": ("googlenet.cli.bench", "inference speed of each mode against torchvision's GoogLeNet"),
    "convert": ("googlenet.cli.convert", "convert BVLC Caffe's bvlc_googlenet.caffemodel to safetensors"),
}


def _top_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="googlenet",
        description="GoogLeNet (Inception v1, Szegedy et al. 2014) as published.",
        epilog="Run `googlenet COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"googlenet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def build_parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    p = argparse.ArgumentParser(prog=f"googlenet {command}", description=COMMANDS[command][1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    module.add_arguments(p)
    p.set_defaults(_run=module.run)
    return p


def _with_flag(e: UserError, parser: argparse.ArgumentParser) -> str:
    """The message, led by the flag of the setting it names (``key``), when the command has one."""
    key = getattr(e, "key", None)
    if key:
        for action in parser._actions:
            if action.dest == key and action.option_strings:
                return f"{action.option_strings[0]}: {e}"
    return str(e)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] not in COMMANDS:
        if not argv:
            top.print_help()
            return 2
        top.parse_args(argv)  # --help, --version, or an unknown command: argparse exits
        return 2
    parser = build_parser(argv[0])
    args = parser.parse_args(argv[1:])
    debug = args.debug or os.environ.get("GOOGLENET_DEBUG") == "1"
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        if debug:
            raise
        print(f"googlenet {argv[0]}: error: {_with_flag(e, parser)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"googlenet {argv[0]}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
