"""MkDocs hook: the parts of the docs that are generated from the code at build time, so they
cannot drift from it. A page asks for one with a marker on a line of its own:

    <!-- googlenet:cli -->            every command's argparse parser (googlenet.cli.COMMANDS)
    <!-- googlenet:config -->         every task's config (googlenet.tasks) section by section: each
                                      dotted key, its flat name, type, default, accepted values,
                                      the flag that sets it, and its comment in the source
    <!-- googlenet:recipes -->        the built-in recipes (engine/recipes/*.toml), key by key,
                                      with their [[case]] tables
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

TOP = ""  # the section of the top-level keys (``task``)


def _tasks() -> dict[str, type]:
    """Task unit name -> its config class (googlenet.tasks: classify, detect, rcnn), torch-free."""
    from googlenet import tasks

    classes = tasks.schemas().all
    return dict(zip(tasks.TASKS, classes))


def _source_comments(cls: type) -> dict[str, str]:
    """Field name -> description, for the fields declared in the body of ``cls`` itself: the
    trailing comment on the field's (last) line and the comment block right above it."""
    import inspect
    import textwrap

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER, tokenize.COMMENT):
            code_lines.add(tok.start[0])
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    out: dict[str, str] = {}
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        last = node.end_lineno or node.lineno
        trailing = comments.get(last, "") if last in code_lines else ""
        above: list[str] = []
        ln = node.lineno - 1
        while ln in comments and ln not in code_lines:
            above.insert(0, comments[ln])
            ln -= 1
        text = _strip_comment(trailing)
        note = " ".join(_strip_comment(c) for c in above)
        out[node.target.id] = f"{text} ({note})" if text and note else text or note
    return out


def _strip_comment(c: str) -> str:
    return c.lstrip("#").strip()


def _declared_in(cls: type, name: str) -> list[type]:
    """The classes of ``cls``'s MRO that declare the field ``name`` in their own body, nearest
    first (a subclass that redeclares a field, e.g. ``ClassifyConfig.task``, comes before the
    class it inherits the field from)."""
    return [c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {})]


def field_description(cls: type, name: str) -> str:
    """What the source says of the field ``name`` of the dataclass ``cls``: its
    ``metadata["help"]`` when it has one, else the comments of the nearest class in the MRO that
    declares the field with a comment (``DetectModel.variant``: ``ModelConfig``'s)."""
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if f is not None and f.metadata and f.metadata.get("help"):
        return str(f.metadata["help"])
    for owner in _declared_in(cls, name):
        text = _source_comments(owner).get(name, "")
        if text:
            return text
    return ""


def _section_class(cls: type, section: str) -> type:
    """The dataclass holding the leaves of ``section`` (dotted, "" for the top level) of ``cls``."""
    for part in section.split(".") if section else ():
        f = next(f for f in dataclasses.fields(cls) if f.name == part)
        cls = f.default_factory  # type: ignore[assignment]  (settings.section)
    return cls


def config_fields(cls: type) -> list[tuple[str, str, str]]:
    """``(section, dotted key, description)`` for every setting of the config class ``cls`` (a
    task's: ``ClassifyConfig``, ...), in ``googlenet.settings.leaves`` order. ``section`` is the
    key's dotted prefix (``optim``; "" for the top-level ``task``).

    The one place descriptions are read: from the section dataclass that declares the field
    (for an inherited field, the class in the section's MRO that declares it), its
    ``metadata["help"]`` or the comments beside and above it in the source."""
    from googlenet.settings import leaves

    out = []
    for path, leaf in leaves(cls).items():
        section = leaf.section
        name = path.rpartition(".")[2]
        out.append((section, path, field_description(_section_class(cls, section), name)))
    return out


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
    """Flat config key -> the `googlenet train` flag that sets it, and that flag's help text
    (the flags' destinations are the keys' flat aliases)."""
    from googlenet.cli import build_parser

    parser = build_parser("train")
    flags: dict[str, str] = {}
    helps: dict[str, str] = {}
    for a in parser._actions:
        if a.option_strings and a.help != argparse.SUPPRESS and a.dest not in flags:
            flags[a.dest] = a.option_strings[0]
            helps[a.dest] = _help_and_default(parser, a)[0]
    return flags, helps


def _accepted(leaf: Any) -> str:
    each = isinstance(leaf.default, tuple)
    if leaf.choices:
        return ("each of " if each else "") + ", ".join(_code(c) for c in leaf.choices)
    if leaf.range is not None:
        return _code(leaf.range) + (" each" if each else "")
    return ""


class ConfigRow:
    """One row of the config reference: a setting as one or more tasks declare it. (Plain
    classes, not dataclasses: the tests load this file as a module outside sys.modules.)"""

    def __init__(self, key: str, cells: tuple[str, ...], description: str) -> None:
        self.key = key
        self.cells = cells  # flat name, type, accepted, flag, what (the default is per task)
        self.defaults: dict[str, Any] = {}  # task -> its typed default
        self.description = description

    @property
    def tasks(self) -> list[str]:
        return list(self.defaults)


class ConfigSection:
    """One table of the config reference: a section and the tasks whose config has it."""

    def __init__(self, name: str) -> None:
        self.name = name  # "optim"; TOP for the top-level keys
        self.tasks: list[str] = []
        self.docs: dict[str, list[str]] = {}  # a section class's own docstring -> its tasks
        self.rows: list[ConfigRow] = []


def config_sections() -> list[ConfigSection]:
    """Every setting of every task's config class (googlenet.tasks), by section: the top level
    and the engine's sections first (every task has them), then the tasks' in the order they
    first appear. A setting that several tasks declare alike is one row listing those tasks;
    declared differently (another description, type, accepted values), it is one row each."""
    from googlenet.settings import leaves

    flags, flag_help = _train_flags()
    sections: dict[str, ConfigSection] = {}
    for task, cls in _tasks().items():
        for section, path, text in config_fields(cls):
            leaf = leaves(cls)[path]
            name = path.rpartition(".")[2]
            flag = flags.get(leaf.alias, "")
            if not text and flag:  # no comment in the source: what the flag's --help says
                text = flag_help.get(leaf.alias, "")
            cells = (_code(leaf.alias) if leaf.alias != name else "", _cell(_type_name(leaf.hint)),
                     _accepted(leaf), _code(flag) if flag else "", _cell(text))
            sec = sections.get(section)
            if sec is None:
                sec = sections[section] = ConfigSection(section)
            if task not in sec.tasks:
                sec.tasks.append(task)
                doc = inspect_doc(_section_class(cls, section)) if section else ""
                sec.docs.setdefault(doc, []).append(task)
            row = next((r for r in sec.rows if r.key == path and r.cells == cells), None)
            if row is None:
                row = ConfigRow(path, cells, text)
                sec.rows.append(row)
            row.defaults[task] = leaf.default
    return list(sections.values())


def inspect_doc(cls: type) -> str:
    """A section class's own docstring (not the one dataclass makes up, nor an inherited one)."""
    doc = cls.__dict__.get("__doc__") or ""
    return "" if doc.startswith(cls.__name__ + "(") else " ".join(doc.split())


def _tasks_text(tasks: list[str]) -> str:
    return ", ".join(tasks)


def _default_cell(row: ConfigRow) -> str:
    by_value: dict[str, list[str]] = {}
    for task, v in row.defaults.items():
        by_value.setdefault(_value(v), []).append(task)
    if len(by_value) == 1:
        return _code(next(iter(by_value)))
    return "; ".join(f"{_code(v)} ({_tasks_text(t)})" for v, t in by_value.items())


def render_config() -> str:
    every = list(_tasks())
    out: list[str] = []
    for sec in config_sections():
        title = f"`[{sec.name}]`" if sec.name else "Top level"
        which = "every task" if sec.tasks == every else _tasks_text(sec.tasks)
        out += [f"## {title} ({which}) {{#{sec.name or 'top-level'}}}", ""]
        for doc, tasks in sec.docs.items():
            if doc:
                out += [(f"{_tasks_text(tasks)}: " if tasks != sec.tasks else "") + _cell(doc), ""]
        per_row = any(r.tasks != sec.tasks for r in sec.rows)
        header = ["key", "flat name", "type", "default", "accepted", "flag", "what"]
        rows = []
        for r in sec.rows:
            alias, type_, accepted, flag, what = r.cells
            row = [_code(r.key), alias, type_, _default_cell(r), accepted, flag, what]
            if per_row:
                row.append("all" if r.tasks == sec.tasks else _tasks_text(r.tasks))
            rows.append(row)
        out += [_table(header + (["tasks"] if per_row else []), rows), ""]
    return "\n".join(out)


def _default_recipes() -> dict[str, list[str]]:
    """Recipe -> the tasks that train with it when no --recipe is given: each unit's
    ``TaskUnit(recipe=...)`` in tasks/*/unit.py, read from the source (the units import torch)."""
    from googlenet.engine import config as cfg

    out: dict[str, list[str]] = {}
    for task in _tasks():
        path = SRC / "googlenet" / "tasks" / task / "unit.py"
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            kw = next((k for k in getattr(node, "keywords", []) if k.arg == "recipe"), None)
            if isinstance(node, ast.Call) and kw is not None:
                if isinstance(kw.value, ast.Constant):
                    out.setdefault(str(kw.value.value), []).append(task)
                elif isinstance(kw.value, ast.Name) and kw.value.id == "DEFAULT_RECIPE":
                    out.setdefault(cfg.DEFAULT_RECIPE, []).append(task)
    return out


def _case_label(when: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {_value(v)}" for k, v in when.items())


def render_recipes() -> str:
    from googlenet import tasks
    from googlenet.engine import config as cfg

    schemas = tasks.schemas()
    recipes = {name: cfg.read_recipe(name, schemas) for name in cfg.list_recipes()}
    sections = config_sections()
    order = list(dict.fromkeys(r.key for sec in sections for r in sec.rows))
    rows_of = {r.key: r for sec in sections for r in sec.rows}
    used = {k for base, cases in recipes.values() for k in [*base, *(k for _, s in cases for k in s)]}
    keys = [k for k in order if k in used] + sorted(used - set(order))
    default_for = _default_recipes()
    header = ["key", "typed default"] + [f"`{n}`" + (f" (default: {_tasks_text(default_for[n])})"
                                                     if n in default_for else "")
                                         for n in recipes]
    rows = []
    for k in keys:
        row = [_code(k), _default_cell(rows_of[k]) if k in rows_of else ""]
        for base, cases in recipes.values():
            cell = _code(_value(base[k])) if k in base else ""
            per = [f"{_cell(_case_label(when))}: {_code(_value(s[k]))}" for when, s in cases if k in s]
            if per:
                cell = (cell + " " if cell else "") + "(" + "; ".join(per) + ")"
            row.append(cell)
        rows.append(row)
    cases = [f"- `{n}`: " + "; ".join(f"when {_code(_case_label(when))}, "
                                     + ", ".join(f"{_code(k)} = {_code(_value(v))}" for k, v in s.items())
                                     for when, s in c)
             for n, (_, c) in recipes.items() if c]
    return ("A recipe sets keys section by section (`[optim]` `lr = 0.001`, i.e. `optim.lr`); its "
            "`[[case]]` tables apply on top when their `when` matches the run's settings (`when = "
            "{\"model.variant\" = \"bn\"}`). A blank cell: the recipe leaves the key at its typed "
            "default. `(model.variant = \"bn\": ...)`: the value a case sets when it matches.\n\n"
            + _table(header, rows)
            + ("\n\nThe cases, recipe by recipe:\n\n" + "\n".join(cases) if cases else ""))


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
