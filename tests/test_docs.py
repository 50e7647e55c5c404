"""The docs: the MkDocs site builds with --strict (a broken link, anchor or image, or a page left
out of the nav, fails it), its generated reference covers every command, option and config key,
and the README stays a front door whose quick-start commands are the ones CI runs."""

from __future__ import annotations

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


# Settings whose field has no comment in src/ and whose flag (if any) no help: the reference
# shows them without a description. The list must stay exact: a field that loses its comment
# fails the test below, and one that gets a comment must leave this list.
UNDESCRIBED: set[str] = set()


def _section_of_table(text: str) -> dict[str, list[tuple[str, str]]]:
    """The rendered reference -> key -> [(its section heading, its table row)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif m := re.match(r"\| `([a-z_.]+)` \|", line):
            out.setdefault(m.group(1), []).append((heading, line))
    return out


def test_config_reference_covers_every_key_with_a_description():
    from googlenet import tasks
    from googlenet.settings import leaves

    hooks = _hooks()
    classes = dict(zip(tasks.TASKS, tasks.schemas().all))
    assert set(classes) == {"classify", "detect", "rcnn"}

    # config_fields: every dotted key of each task's config class, in the right section, with the
    # comment of the section dataclass that declares it (inherited fields included)
    fields = {task: hooks.config_fields(cls) for task, cls in classes.items()}
    for task, cls in classes.items():
        assert [key for _, key, _ in fields[task]] == list(leaves(cls)), task
        for section, key, _ in fields[task]:
            assert section == key.rpartition(".")[0], (task, key)
    text_of = {(task, key): text for task, rows in fields.items() for _, key, text in rows}
    section_of = {(task, key): sec for task, rows in fields.items() for sec, key, _ in rows}
    assert section_of["classify", "optim.lr"] == "optim" and section_of["detect", "model.arch"] == "model"
    assert ("classify", "model.arch") not in section_of and ("rcnn", "rcnn.fg_fraction") in section_of
    assert text_of["classify", "optim.lr"] == "Caffe's base_lr"  # engine/config.py, trailing
    assert text_of["classify", "task"].startswith("which task trains")  # ClassifyConfig redeclares task
    assert "nvJPEG" in text_of["classify", "data.loader"]  # ClassifyData(DataConfig): two lines above
    assert "built-in set" in text_of["classify", "data.path"]  # inherited from DataConfig
    assert text_of["detect", "data.path"] == text_of["classify", "data.path"]
    # DetectModel(ModelConfig): the inherited width keeps ModelConfig's comments, trailing and above
    for task in classes:
        assert "Table 1" in text_of[task, "model.width"] and "Ablations" in text_of[task, "model.width"]
    assert "fcos" in text_of["detect", "model.arch"] and "stand-in" in text_of["rcnn", "rcnn.extra_proposals"]
    assert "scale" in text_of["detect", "augment.scale_jitter"]  # a comment block above

    # the rendered reference: every key of every task once per task, in its section's table, with
    # a description unless it is one of UNDESCRIBED (for those, neither a comment nor a flag help)
    text = hooks.render_config()
    rendered = _section_of_table(text)
    sections = hooks.config_sections()
    assert [s.name for s in sections][:5] == ["", "run", "optim", "average", "system"]
    assert {"model", "data", "augment", "loss", "rcnn"} <= {s.name for s in sections}
    undescribed = set()
    for task, cls in classes.items():
        for key, leaf in leaves(cls).items():
            rows = [r for s in sections if s.name == leaf.section for r in s.rows
                    if r.key == key and task in r.tasks]
            assert len(rows) == 1, (task, key)
            assert rows[0].defaults[task] == leaf.default
            if not rows[0].description:
                undescribed.add(key)
            heading = f"`[{leaf.section}]`" if leaf.section else "Top level"
            assert any(h.startswith(f"{heading} (") for h, _ in rendered[key]), (task, key, rendered.get(key))
    assert undescribed == UNDESCRIBED, "a field lost its comment, or UNDESCRIBED is stale"
    by_name = {s.name: s for s in sections}
    assert by_name["loss"].tasks == ["classify", "rcnn"] and by_name["rcnn"].tasks == ["rcnn"]
    assert by_name["optim"].tasks == list(classes)
    loader_row = rendered["data.loader"][0][1]
    assert "nvJPEG" in loader_row and "`--loader`" in loader_row and "| classify |" in loader_row
    assert "| `model.arch` |" in text and "| detect, rcnn |" in rendered["model.arch"][0][1]
    assert "| `data.path` | `data` |" in text and "| `optim.lr` |  |" in text  # the flat name column
    assert "`(0, 10]`" in rendered["optim.lr"][0][1]  # the declared range


def test_recipe_reference_shows_sections_and_cases():
    from googlenet.engine import config

    text = _hooks().render_recipes()
    for name in config.list_recipes():
        assert f"`{name}`" in text.splitlines()[2], name  # a column per recipe
    assert "`short` (default: classify)" in text and "`detect` (default: detect, rcnn)" in text
    lr = next(line for line in text.splitlines() if line.startswith("| `optim.lr` |"))
    assert 'model.variant = "bn": `0.002`' in lr  # short.toml's [[case]] for the bn variant
    assert "| `model.arch` |" in text and "| `augment.crop_scale` |" in text


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
