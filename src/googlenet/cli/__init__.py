"""The ``googlenet`` command line: one thin module per subcommand (googlenet/cli/*.py),
imported only when used.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
Every expected kind of failure becomes one line, ``googlenet COMMAND: error: <message>``, and an
exit status of its own (``EXIT_CODES``, printed by ``googlenet --help``); a setting a
``UserError`` names in library terms (``key="device"``) is shown as the command's flag
(``--device``). ``--debug`` (or GOOGLENET_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from ..errors import FileSystemError, UserError

# Exit statuses: one per kind of failure, so scripts can tell them apart.
EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_FILESYSTEM, EXIT_OUT_OF_MEMORY, EXIT_INTERNAL, EXIT_INTERRUPTED = 4, 5, 70, 130
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_PARTIAL: "done, but some inputs failed (predict: unreadable images, each named; "
                  "export: a check did not match)",
    EXIT_BAD_INPUT: "bad input: an argument, setting, data or weights file (the message names it)",
    EXIT_DIVERGED: "training diverged: the loss became NaN/inf (the last good checkpoint is kept)",
    EXIT_FILESYSTEM: "file system: permission denied, disk full, name too long, not a "
                     "directory, a run directory in use (the message names the path)",
    EXIT_OUT_OF_MEMORY: "out of memory (CPU or GPU): lower --batch-size or the image size",
    EXIT_INTERNAL: "internal error (a bug): rerun with --debug and report the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a training run resumes with --resume",
}

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
    "weights": ("googlenet.cli.weights", "known pretrained weights: list them, download and verify"),
}


def _top_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(
        prog="googlenet",
        description="GoogLeNet (Inception v1, Szegedy et al. 2014) as published.",
        epilog="Run `googlenet COMMAND --help` for a command's options.\n\nexit status:\n"
               + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())
               + "\n\n--debug (or GOOGLENET_DEBUG=1) shows a traceback instead of the one-line "
                 "error.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"googlenet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in every --help, except where the help already says its default in
    its own words (e.g. "default: the built-in digits") and where it is None ("unset": the help
    says what happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default is None:
            return text
        return super()._get_help_string(action)


class _Deprecated(argparse.Action):
    """An old spelling of an option: still works (stores into the new option's ``dest``, through
    ``convert`` if given) and prints one line on stderr saying what to write instead."""

    def __init__(self, option_strings: list[str], dest: str, *, instead: str,
                 convert=None, **kw) -> None:  # noqa: ANN001
        super().__init__(option_strings, dest, **kw)
        self.instead, self.convert = instead, convert

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.instead}",
              file=sys.stderr)
        try:
            setattr(namespace, self.dest, self.convert(values) if self.convert else values)
        except ValueError:
            parser.error(f"argument {option_string}: invalid value {values!r}")


def deprecated_option(p: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, dest: str,
                      instead: str, convert=None, metavar: Optional[str] = None) -> None:  # noqa: ANN001
    """Add ``old`` (e.g. ``--calibration``) as a hidden, deprecated spelling that fills ``dest``;
    ``instead`` is what the warning tells the user to write."""
    p.add_argument(old, dest=dest, action=_Deprecated, instead=instead, convert=convert,
                   default=argparse.SUPPRESS, metavar=metavar, help=argparse.SUPPRESS)


def build_parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    p = argparse.ArgumentParser(prog=f"googlenet {command}", description=COMMANDS[command][1],
                                formatter_class=_DefaultsHelp)
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
    except BaseException as e:  # noqa: BLE001  every kind is mapped below
        if debug or isinstance(e, SystemExit):
            raise
        message, code = describe_failure(e, parser)
        if code == EXIT_PIPE:
            _silence_stdout()
            return code
        print(f"googlenet {argv[0]}: {message}", file=sys.stderr)
        return code


EXIT_PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`| head`); said by the shell


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _out_of_memory(e: BaseException) -> bool:
    import torch

    if isinstance(e, MemoryError) or isinstance(e, getattr(torch, "OutOfMemoryError", ())):
        return True
    # The CPU allocator raises a plain RuntimeError: "DefaultCPUAllocator: can't allocate memory"
    return isinstance(e, RuntimeError) and ("can't allocate memory" in str(e)
                                            or "out of memory" in str(e).lower())


def describe_failure(e: BaseException, parser: argparse.ArgumentParser) -> tuple[str, int]:
    """One line (``error: ...`` or ``interrupted``) and the exit status for an exception."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(e, UserError):
        return f"error: {_with_flag(e, parser)}", e.exit_code
    if isinstance(e, BrokenPipeError):
        return "", EXIT_PIPE
    if isinstance(e, OSError):
        names = [os.fsdecode(f) for f in (e.filename, e.filename2) if f is not None]
        where = " -> ".join(names) or "file system"
        return f"error: {where}: {e.strerror or e}", FileSystemError.exit_code
    if _out_of_memory(e):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return (f"error: out of memory ({first[:200]}); lower --batch-size (or the image "
                f"size, the number of crops, --workers)", EXIT_OUT_OF_MEMORY)
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return (f"internal error: {type(e).__name__}: {first} (a bug: run again with --debug for "
            f"the traceback, and please report it)", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
