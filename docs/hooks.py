"""MkDocs hook: the parts of the docs that are generated from the code at build time, so they
cannot drift from it. A page asks for one with a marker on a line of its own:

    <!-- googlenet:cli -->            every command's argparse parser (googlenet.cli.COMMANDS)
    <!-- googlenet:config -->         TrainConfig's fields by section, with types, defaults,
                                      accepted values, the flag that sets each, and its comment
    <!-- googlenet:recipes -->        the built-in recipes (engine/recipes/*.toml), key by key
    <!-- googlenet:exit-codes -->     googlenet.cli.EXIT_CODES
    <!-- googlenet:layers -->         the import-linter layer contract in pyproject.toml
    <!-- googlenet:modules -->        every module of the package with its docstring's first sentence
    <!-- googlenet:modes -->          the fast inference modes (googlenet.infer.modes.MODES)
    <!-- googlenet:picture PATH | ALT | HOW -->
                                      the image PATH (relative to the page) when it exists, else
                                      a marked placeholder saying HOW to make it

Only modules that import no torch are read (the command line's parsers, the config, the exit
codes, the inference modes), so a build takes a second. ``python docs/hooks.py cli|config|...`` prints one block.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import io
import os
import re
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

MARKER = re.compile(r"^<!--\s*googlenet:([a-z-]+)(?:\s+(.*?))?\s*-->\s*$", re.M)
USAGE_COLUMNS = "100"  # argparse wraps usage lines to $COLUMNS


# -- markdown helpers -----------------------------------------------------------------------------

def _cell(text: Any) -> str:
    """Text for a markdown table cell, on one line. Outside its `code spans`: HTML-escaped (help
    texts say <class>), emphasis characters and pipes escaped. Inside them nothing is escaped:
    Python-Markdown shows code literally and does not split table cells on a pipe in code."""
    parts = re.split(r"(`[^`]+`)", " ".join(str(text).split()))
    return "".join(part if part.startswith("`") and part.endswith("`") and len(part) > 1
                   else html.escape(part, quote=False).replace("|", "\\|").replace("*", "\\*")
                   for part in parts)


def _code(text: Any) -> str:
    """A code span (for a table cell too: Python-Markdown does not split cells inside one)."""
    s = str(text)
    tick = "``" if "`" in s else "`"
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{tick}{pad}{s}{pad}{tick}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# -- the command line -----------------------------------------------------------------------------

_DEFAULT_AT_END = re.compile(r"\s*\(default:\s*(.*)\)\s*$", re.S)


def _option_name(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest)
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar
    if metavar is None and action.choices:
        return names  # the choices have their own column
    if metavar is None:
        metavar = action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    if action.nargs in ("+", "*"):
        metavar = f"{metavar} [...]" if action.nargs == "+" else f"[{metavar} ...]"
    elif action.nargs == "?":
        metavar = f"[{metavar}]"
    return f"{names} {metavar}"


def _help_and_default(parser: argparse.ArgumentParser, action: argparse.Action) -> tuple[str, str]:
    """The help text as ``--help`` prints it (defaults expanded by the parser's own formatter),
    with a trailing "(default: ...)" moved to its own column."""
    if action.help == argparse.SUPPRESS:
        return "", ""
    text = parser._get_formatter()._expand_help(action) if action.help is not None else ""
    m = _DEFAULT_AT_END.search(text)
    if m:
        return text[:m.start()].strip(), m.group(1).strip()
    return text.strip(), ""


def _choices(action: argparse.Action) -> str:
    if not action.choices or isinstance(action, argparse._SubParsersAction):
        return ""
    return ", ".join(_code(c) for c in action.choices)


def _parser_section(parser: argparse.ArgumentParser, level: int) -> list[str]:
    hashes = "#" * level
    out = []
    if parser.description:
        out += [_cell(parser.description).replace("\\*", "*"), ""]
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = USAGE_COLUMNS
    try:
        usage = parser.format_usage().strip()
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    out += ["```text", usage, "```", ""]
    subparsers: list[argparse._SubParsersAction] = []
    for group in parser._action_groups:
        rows = []
        for a in group._group_actions:
            if isinstance(a, argparse._SubParsersAction):
                subparsers.append(a)
                continue
            if isinstance(a, argparse._HelpAction):
                continue
            if a.help == argparse.SUPPRESS:
                instead = getattr(a, "instead", None)  # cli.deprecated_option's hidden spellings
                if instead:
                    rows.append([_code(_option_name(a)), "", "",
                                 _cell(f"deprecated spelling of {instead}: still accepted, with "
                                       f"a one-line warning")])
                continue
            text, default = _help_and_default(parser, a)
            rows.append([_code(_option_name(a)), _cell(default), _choices(a), _cell(text)])
        if rows:
            title = {"options": "Options", "positional arguments": "Arguments"}.get(
                group.title or "", (group.title or "").capitalize())
            out += [f"{hashes}# {title}", "", _table(["argument", "default", "choices", "what"], rows), ""]
    if parser.epilog:
        out += [_cell(parser.epilog), ""]
    for sp in subparsers:
        for name, sub in sp.choices.items():
            out += [f"{hashes}# `{sub.prog}`", ""] + _parser_section(sub, level + 1)
    return out


def render_cli() -> str:
    from googlenet.cli import COMMANDS, build_parser

    out = ["Every command, from its own argument parser (`googlenet COMMAND --help` prints the "
           "same). Every command also takes `--debug` (a traceback instead of the one-line error).",
           "", "| command | what |", "|---|---|"]
    out += [f"| [`googlenet {n}`](#googlenet-{n}) | {_cell(h)} |" for n, (_, h) in COMMANDS.items()]
    out.append("")
    for name in COMMANDS:
        out += [f"## `googlenet {name}` {{#googlenet-{name}}}", ""] + _parser_section(build_parser(name), 2)
    return "\n".join(out)


# -- the training config ----------------------------------------------------------------------------

_SECTION = re.compile(r"^#\s*--\s*(.+?)\s*-*\s*$")


def config_fields(cls: type) -> list[tuple[str, str, str]]:
    """``(section, field, description)`` for every field of the dataclass ``cls``, in order.

    The one place descriptions are read: a field's ``metadata["help"]`` when it has one, else
    the comments in its source, the trailing comment on its line and the comment block right
    above it (a ``# -- name ----`` line starts a section instead)."""
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    tree = ast.parse(source)
    body = tree.body[0].body  # type: ignore[attr-defined]
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    out: list[tuple[str, str, str]] = []
    section = ""
    line_sections = sorted((ln, _SECTION.match(c).group(1)) for ln, c in comments.items()
                           if ln not in code_lines and _SECTION.match(c))
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        name = node.target.id
        if name not in by_name:
            continue
        for ln, title in line_sections:
            if ln < node.lineno:
                section = title
        meta_help = by_name[name].metadata.get("help") if by_name[name].metadata else None
        if meta_help:
            out.append((section, name, str(meta_help)))
            continue
        trailing = comments.get(node.end_lineno or node.lineno, "") if (node.end_lineno or node.lineno) in code_lines else ""
        above: list[str] = []
        ln = node.lineno - 1
        while ln in comments and ln not in code_lines and not _SECTION.match(comments[ln]):
            above.insert(0, comments[ln])
            ln -= 1
        text = _strip_comment(trailing)
        note = " ".join(_strip_comment(c) for c in above)
        out.append((section, name, f"{text} ({note})" if text and note else text or note))
    return out


def _strip_comment(c: str) -> str:
    return c.lstrip("#").strip()


def _type_name(t: Any) -> str:
    args = typing.get_args(t)
    if type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or none"
    if typing.get_origin(t) is tuple:
        inner = _type_name(args[0])
        return f"{inner} list" if len(args) == 2 and args[1] is Ellipsis else f"({', '.join(_type_name(a) for a in args)})"
    return getattr(t, "__name__", str(t))


def _value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _train_flags() -> tuple[dict[str, str], dict[str, str]]:
    """Config key -> the `googlenet train` flag that sets it, and that flag's help text."""
    from googlenet.cli import build_parser

    parser = build_parser("train")
    flags: dict[str, str] = {}
    helps: dict[str, str] = {}
    for a in parser._actions:
        if a.option_strings and a.dest not in flags:
            flags[a.dest] = a.option_strings[0]
            helps[a.dest] = _help_and_default(parser, a)[0]
    return flags, helps


def render_config() -> str:
    from googlenet.engine import config as cfg

    hints = typing.get_type_hints(cfg.TrainConfig)
    fields = {f.name: f for f in dataclasses.fields(cfg.TrainConfig)}
    flags, flag_help = _train_flags()
    out: list[str] = []
    current: Optional[str] = None
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            out.extend([_table(["key", "type", "default", "accepted", "flag", "what"], rows), ""])
            rows.clear()

    for section, name, text in config_fields(cfg.TrainConfig):
        if section != current:
            flush()
            current = section
            out += [f"## {section[:1].upper() + section[1:]}", ""]
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        accepted = ""
        if name in cfg.CHOICES:
            accepted = ", ".join(_code(c) for c in cfg.CHOICES[name])
        elif name == "interpolations":
            accepted = "each of " + ", ".join(_code(c) for c in cfg.INTERPOLATIONS)
        elif name in cfg.RANGES:
            accepted = _code(cfg.RANGES[name]) + (" each" if isinstance(default, tuple) else "")
        flag = flags.get(name, "")
        if not text and flag:  # no comment in the source: what the flag's --help says
            text = flag_help.get(name, "")
        rows.append([_code(name), _cell(_type_name(hints[name])), _code(_value(default)), accepted,
                     _code(flag) if flag else "", _cell(text)])
    flush()
    return "\n".join(out)


def render_recipes() -> str:
    from googlenet.engine import config as cfg

    recipes = {name: cfg.read_recipe(name) for name in cfg.list_recipes()}
    keys: list[str] = [k for k in cfg.field_names()
                       if any(k in flat or any(k in t for t in tables.values())
                              for flat, tables in recipes.values())]
    defaults = cfg.TrainConfig()
    header = ["key", "typed default"] + [f"`{n}`" + (" (default)" if n == cfg.DEFAULT_RECIPE else "")
                                         for n in recipes]
    rows = []
    for k in keys:
        row = [_code(k), _code(_value(getattr(defaults, k)))]
        for flat, tables in recipes.values():
            cell = _code(_value(flat[k])) if k in flat else ""
            per = [f"{v}: {_code(_value(t[k]))}" for v, t in tables.items() if k in t]
            if per:
                cell = (cell + " " if cell else "") + "(" + ", ".join(per) + ")"
            row.append(cell)
        rows.append(row)
    return ("A blank cell: the recipe leaves the key at its typed default. `(bn: ...)`: the value "
            "a recipe's per-variant table sets when that variant is trained.\n\n"
            + _table(header, rows))


# -- exit statuses, layers, modules ----------------------------------------------------------------

def render_exit_codes() -> str:
    from googlenet.cli import EXIT_CODES

    return _table(["exit", "meaning"], [[str(c), _cell(w)] for c, w in EXIT_CODES.items()])


def render_layers() -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = data["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c.get("type") == "layers")["layers"]
    rows = [[str(i + 1), " \\| ".join(_code(p.strip()) for p in layer.split("|"))]
            for i, layer in enumerate(layers)]
    return _table(["layer (top imports below)", "packages (siblings do not import each other)"], rows)


_NOT_AN_END = ("al", "e.g", "i.e", "vs", "cf", "etc", "approx")


def _first_sentence(doc: str, most: int = 220) -> str:
    """The first sentence of a docstring's first paragraph (RST ``code`` as markdown `code`)."""
    para = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`")
    for m in re.finditer(r"\.(\s+)(?=[A-Z(`])", para):
        word = para[:m.start()].rsplit(" ", 1)[-1].lower()
        if word not in _NOT_AN_END:
            para = para[:m.start() + 1]
            break
    return para if len(para) <= most else para[:most].rsplit(" ", 1)[0] + " ..."


def render_modules() -> str:
    pkg = SRC / "googlenet"
    rows = []
    for path in sorted(pkg.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if not doc and path.name == "__init__.py":
            continue
        rows.append([_code(path.relative_to(ROOT).as_posix()), _cell(_first_sentence(doc))])
    for path in [ROOT / "hubconf.py", *sorted((ROOT / "benchmarks").glob("*.py"))]:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        rows.append([_code(path.relative_to(ROOT).as_posix()), _cell(_first_sentence(doc))])
    return _table(["file", "what it is (its docstring's first sentence)"], rows)


def render_modes() -> str:
    from googlenet.infer.modes import DEFAULT_MODES, GPU_MODES, MODES

    rows = [[_code(m.name), _cell(m.summary), m.precision, ", ".join(m.devices),
             "yes" if m.needs_calibration else "",
             ", ".join(w for w, modes in (("CPU", DEFAULT_MODES), ("GPU", GPU_MODES)) if m.name in modes)]
            for m in MODES.values()]
    return _table(["mode", "what", "tolerance class", "devices", "calibrated", "`bench` times it by default on"],
                  rows)


# -- pictures ------------------------------------------------------------------------------------

def render_picture(args: str, page_src: Optional[str], docs_dir: Optional[str]) -> str:
    parts = [p.strip() for p in (args or "").split("|")]
    path, alt, how = (parts + ["", "", ""])[:3]
    page_dir = Path(page_src or "index.md").parent
    if (Path(docs_dir or ROOT / "docs") / page_dir / path).is_file():
        return f"![{alt}]({path})"
    target = os.path.normpath(Path("docs") / page_dir / path)
    return (f'!!! note "Picture to come: {alt}"\n'
            f"    Not made yet: it needs a trained model. {how} writes `{target}`, and the page "
            f"shows it from the next build on.")


RENDERERS: dict[str, Callable[[], str]] = {
    "cli": render_cli, "config": render_config, "recipes": render_recipes,
    "exit-codes": render_exit_codes, "layers": render_layers, "modules": render_modules,
    "modes": render_modes,
}


def expand(markdown: str, page_src: Optional[str] = None, docs_dir: Optional[str] = None) -> str:
    def one(m: re.Match) -> str:
        name, args = m.group(1), m.group(2)
        if name == "picture":
            return render_picture(args, page_src, docs_dir)
        if name not in RENDERERS:
            raise ValueError(f"{page_src}: unknown marker googlenet:{name} (known: "
                             f"{', '.join([*RENDERERS, 'picture'])})")
        return RENDERERS[name]()

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # MkDocs hook
    return expand(markdown, page.file.src_uri, config["docs_dir"])


if __name__ == "__main__":
    print(RENDERERS[sys.argv[1]]() if len(sys.argv) > 1 else __doc__)
