"""Typed settings: the machinery every config section uses, and nothing about any one of them.

A config is a dataclass of *sections* (dataclasses themselves: ``RunConfig.optim``,
``ClassifyConfig.model``), each field declared with ``setting(default, range=..., choices=...,
alias=..., check=...)``. Its accepted values are the field's metadata, read by the one
validation below (``coerce``), so a section's owner declares them next to the field and no
second table can drift. A *leaf* is one field of a section, named by its dotted path
(``optim.lr``); ``alias`` is the flat name the same setting had before the config had sections
(``lr``), still accepted on the command line, in recipes and in saved configs.

Torch-free: ``googlenet train --help`` builds a config to show its defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Callable, Iterable, Mapping, Optional

from .errors import UserError

__all__ = ["Range", "UNIT", "PROB", "Leaf", "setting", "section", "leaves", "aliases", "coerce",
           "get_path", "set_path", "as_dict", "flatten", "to_toml", "describe", "unknown_key",
           "identity"]


@dataclass(frozen=True)
class Range:
    """Accepted values of a numeric setting: ``lo``..``hi``, each end open or closed."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        return (math.isfinite(v) and (self.lo < v if self.lo_open else self.lo <= v)
                and (v < self.hi if self.hi_open else v <= self.hi))

    def __str__(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else repr(float(x))

        return (f"{'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}"
                f"{')' if self.hi_open else ']'}")


UNIT, PROB = Range(0, 1), Range(0, 1, hi_open=True)  # [0, 1], [0, 1)


def setting(default: Any = dataclasses.MISSING, *, range: Optional[Range] = None,
            choices: Optional[Iterable[str]] = None, alias: Optional[str] = None,
            check: Optional[Callable[[Any], str]] = None, identity: bool = True) -> Any:
    """A field of a config section. ``range``: the accepted numbers (each value of a tuple);
    ``choices``: the accepted strings (each value of a tuple); ``alias``: the flat key of
    configs without sections (default: the field's name); ``check(value)``: what else is wrong
    with a value ("" when nothing); ``identity``: part of what a model section compares on
    ``--resume``/``--init`` (False for settings that do not change the network, e.g. ``init``)."""
    meta = {"range": range, "choices": tuple(choices) if choices is not None else None,
            "alias": alias, "check": check, "identity": identity}
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A field holding a section (a dataclass of settings), filled with its defaults."""
    return field(default_factory=cls, metadata={"section": True})


@dataclass(frozen=True)
class Leaf:
    """One setting of a config class: its dotted ``path``, type and declared checks."""

    path: str
    alias: str
    hint: Any
    default: Any
    range: Optional[Range]
    choices: Optional[tuple[str, ...]]
    check: Optional[Callable[[Any], str]]
    identity: bool

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def shown(self) -> str:
        """How messages name it: the dotted key, and the flat one where its name differs."""
        name = self.path.rpartition(".")[2]
        return self.path if self.alias == name else f"{self.path} ({self.alias})"


@functools.lru_cache(maxsize=None)
def leaves(cls: type) -> dict[str, Leaf]:
    """Every setting of the config class ``cls`` by dotted path, in declaration order."""
    out: dict[str, Leaf] = {}
    _walk(cls, "", out)
    return out


def _walk(cls: type, prefix: str, out: dict[str, Leaf]) -> None:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        path = prefix + f.name
        if f.metadata.get("section"):
            _walk(f.default_factory, path + ".", out)  # type: ignore[arg-type, misc]
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[path] = Leaf(path=path, alias=f.metadata.get("alias") or f.name, hint=hints[f.name],
                         default=default, range=f.metadata.get("range"),
                         choices=f.metadata.get("choices"), check=f.metadata.get("check"),
                         identity=f.metadata.get("identity", True))


def aliases(classes: Iterable[type]) -> dict[str, str]:
    """Flat key -> dotted path over every setting of ``classes`` (tests check that no flat key
    names two paths)."""
    return {leaf.alias: path for cls in classes for path, leaf in leaves(cls).items()}


def identity(obj: Any) -> dict[str, Any]:
    """A section's settings that define what it builds (``identity=True``), as plain values."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)
            if f.metadata.get("identity", True)}


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_path(obj: Any, path: str, value: Any) -> None:
    head, _, last = path.rpartition(".")
    setattr(get_path(obj, head) if head else obj, last, value)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def as_dict(obj: Any) -> dict[str, Any]:
    """A config as nested plain values (tuples as lists), sections as dicts."""
    return {f.name: as_dict(getattr(obj, f.name)) if is_dataclass(getattr(obj, f.name))
            else _plain(getattr(obj, f.name)) for f in fields(obj)}


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for k, v in nested.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unknown_key(key: str, known: Iterable[str], source: str) -> UserError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UserError(f"{source}: unknown config key {key!r}{hint} (known keys: "
                     f"`googlenet train --help-config`)")


def coerce(leaf: Leaf, value: Any, source: str) -> Any:
    """Check/convert ``value`` (from TOML, or a string from the command line) to ``leaf``'s type
    and declared values; a UserError naming the key and what it accepts otherwise."""
    hint = leaf.hint
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    key = leaf.shown

    def bad(why: str = "") -> UserError:
        accepted = f"; accepted: {leaf.range}" if leaf.range else ""
        return UserError(f"{source}: {key} = {value!r} is not a valid "
                         f"{getattr(base, '__name__', str(base))}{why}{accepted}")

    if isinstance(value, str) and value.strip().lower() in ("none", "null", "") and optional:
        return None
    if value is None:
        if optional:
            return None
        raise bad()
    if typing.get_origin(base) is tuple:
        args = typing.get_args(base)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad()
        out = tuple(_scalar(args[0], x, bad) for x in items
                    if not (isinstance(x, str) and not x.strip()))
        if len(args) == 2 and args[1] is not Ellipsis and len(out) != len(args):
            raise bad(f" (expected {len(args)} values)")
        result: Any = out
    else:
        result = _scalar(base, value, bad)
    _validate(leaf, result, source)
    return result


def _scalar(typ: Any, value: Any, bad: Callable[..., UserError]) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise bad(" (use true or false)")
    if typ is int:
        return _int(value, bad)
    if typ is float:
        if isinstance(value, bool):
            raise bad()
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise bad() from None
    if typ is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad()
        return str(value).strip()
    raise bad()


def _int(value: Any, bad: Callable[..., UserError]) -> int:
    if isinstance(value, bool):
        raise bad()
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())  # exact, however large ("12345678901234567890")
    except ValueError:
        pass
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise bad() from None
    if not math.isfinite(f):
        raise bad(" (not a finite number)")
    if f != int(f):
        raise bad()
    return int(f)


def _validate(leaf: Leaf, v: Any, source: str) -> None:
    def fail(why: str) -> None:
        raise UserError(f"{source}: {leaf.shown} = {v!r}: {why}")

    values = v if isinstance(v, tuple) else (v,)
    if leaf.choices is not None and v is not None:
        if isinstance(v, tuple):
            if not v or any(x not in leaf.choices for x in v):
                fail(f"each must be one of {list(leaf.choices)}")
        elif v not in leaf.choices:
            fail(f"choose one of {list(leaf.choices)}")
    if leaf.range is not None and v is not None and not all(x in leaf.range for x in values):
        kind = "a whole number" if isinstance(values[0], int) else "a finite number"
        fail(f"must be {kind} in {leaf.range}" + (" (each value)" if isinstance(v, tuple) else ""))
    if leaf.check is not None and v is not None and (why := leaf.check(v)):
        fail(why)


def to_toml(d: Mapping[str, Any]) -> str:
    """Nested plain values -> TOML text: top-level keys, then one ``[table]`` per section
    (None values are written as comments)."""
    lines = [_toml_line(k, v) for k, v in d.items() if not isinstance(v, Mapping)]
    for name, table in d.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{name}]"] + [_toml_line(k, v) for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_line(k: str, v: Any) -> str:
    return f"# {k} = (none)" if v is None else f"{k} = {_toml_value(v)}"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _type_name(t: Any) -> str:
    args = typing.get_args(t)
    if type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or none"
    if typing.get_origin(t) is tuple:
        return "list of " + _type_name(args[0])
    return getattr(t, "__name__", str(t))


def describe(cfg: Any) -> str:
    """Every setting of ``cfg`` grouped by section: its key (and flat alias), type, value, the
    typed default beside it where they differ, and its choices; for ``--help-config``."""
    rows: list[str] = []
    current = None
    for path, leaf in leaves(type(cfg)).items():
        if leaf.section != current:
            current = leaf.section
            rows.append(f"[{current}]" if current else "(top level)")
        name = path.rpartition(".")[2]
        shown = name if leaf.alias == name else f"{name} ({leaf.alias})"
        value = _plain(get_path(cfg, path))
        note = f"  (default {_plain(leaf.default)!r})" if value != _plain(leaf.default) else ""
        choice = f"  {{{', '.join(leaf.choices)}}}" if leaf.choices else ""
        rows.append(f"  {shown:<34} {_type_name(leaf.hint):<15} {value!r}{note}{choice}")
    return "\n".join(rows)
