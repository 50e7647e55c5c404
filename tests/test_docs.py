"""The docs: the MkDocs site builds with --strict (a broken link, anchor or image, or a page left
out of the nav, fails it), its generated reference covers every command, option and config key,
and the README stays a front door whose quick-start commands are the ones CI runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL_AND_TRAIN = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && googlenet train"
TEST_COMMAND = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && '
                "python -m pytest -n 2 -q")
README_MAX_LINES = 250


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.fail("mkdocs / mkdocs-material not installed: pip install -e '.[test]' (or '.[docs]')")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                        str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "googlenet-train" in cli and "--data-root" in cli  # the hook filled the page


def test_cli_reference_covers_every_command_and_option():
    from googlenet.cli import COMMANDS, build_parser

    text = _hooks().render_cli()
    for name in COMMANDS:
        assert f"## `googlenet {name}`" in text
        for action in build_parser(name)._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text or f", {option}" in text, (name, option)


def test_config_reference_covers_every_key_with_a_description():
    from googlenet.engine import config

    hooks = _hooks()
    rows = hooks.config_fields(config.TrainConfig)
    assert [name for _, name, _ in rows] == [f.name for f in dataclasses.fields(config.TrainConfig)]
    assert all(section for section, _, _ in rows)
    text_of = {name: text for _, name, text in rows}
    # the description is the field's comment in engine/config.py: trailing, the block above, or both
    assert text_of["task"].startswith("what is trained")
    assert "nvJPEG" in text_of["loader"]  # a two-line comment above the field
    assert "multiplier" in text_of["width"] and "Ablations" in text_of["width"]
    section_of = {name: section for section, name, _ in rows}
    assert section_of["arch"].startswith("detection") and section_of["lr"] == "optimisation"
    text = hooks.render_config()
    for _, name, _ in rows:
        assert f"| `{name}` |" in text


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    blocks = _bash_blocks(text)
    assert len(blocks) >= 2
    assert blocks[0].strip() == INSTALL_AND_TRAIN and "\n" not in blocks[0].strip()
    assert blocks[1].strip() == TEST_COMMAND and "\n" not in blocks[1].strip()


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci and "python -m pytest -n 2 -q" in ci


def test_readme_links_resolve():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert targets
    missing = []
    for target in targets:
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        assert not target.startswith("#"), f"{target}: link to the docs page, not a README anchor"
        if not (ROOT / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, missing
