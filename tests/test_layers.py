"""The architecture stays the one in docs/design.md: import-linter's layer contracts (pyproject.toml)
hold, and no function grows past ~80 lines."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "googlenet"


def test_import_layers_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports not installed: pip install -e '.[test]' (import-linter)")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "broken" not in r.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_no_function_over_80_lines():
    long = []
    for f in SRC.rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if n.end_lineno - n.lineno + 1 > 80:
                    long.append(f"{f.relative_to(SRC)}:{n.lineno} {n.name} "
                                f"({n.end_lineno - n.lineno + 1} lines)")
    assert not long, "split these functions: " + "; ".join(long)


def test_long_modules_say_why():
    """A module over 500 lines states the reason in its docstring ("Why one module")."""
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        if text.count("\n") > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "Why one module" in doc, f"{f.relative_to(SRC)}: over 500 lines, no reason given"
