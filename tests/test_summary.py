"""`googlenet summary`: Table 1 regenerated from the model, checked against the paper and against
values computed independently from the widths."""

import csv
import io
import json

import pytest

from googlenet.cli import main
from googlenet.models.googlenet import TABLE1, InceptionSpec
from googlenet.models.summary import PAPER_TABLE1, naive_comparison, render, table1


def reduced_weights(c_in: int, s: InceptionSpec, k5: int = 5) -> int:
    """Weights of a reduced inception module, from its widths (no biases)."""
    return (c_in * s.n1x1 + c_in * s.n3x3red + 9 * s.n3x3red * s.n3x3
            + c_in * s.n5x5red + k5 * k5 * s.n5x5red * s.n5x5 + c_in * s.pool_proj)


@pytest.fixture(scope="module")
def paper_table():
    return table1(variant="paper", size=224)


def test_every_row_output_and_widths_equal_the_paper(paper_table):
    rows = paper_table["rows"]
    assert len(rows) == len(PAPER_TABLE1) == 19
    for row, paper in zip(rows, PAPER_TABLE1):
        assert row.output == paper.output, row.type
        assert row.widths == paper.widths, row.type
        assert row.depth == paper.depth, row.type
        if paper.patch:
            assert row.patch == paper.patch, row.type


def test_params_and_ops_equal_values_computed_from_widths(paper_table):
    rows = {r.type: r for r in paper_table["rows"]}
    c_in, hw = 192, 28 * 28
    for spec in TABLE1:
        if isinstance(spec, str):
            hw //= 4
            continue
        row = rows[f"inception ({spec.name.split('_')[1]})"]
        w = reduced_weights(c_in, spec)
        assert row.params == w, spec.name
        assert row.ops == w * hw, spec.name
        c_in = spec.out_channels(c_in)
    assert rows["linear"].params == 1024 * 1000
    conv = [r for r in paper_table["rows"] if r.type == "convolution"]
    assert conv[0].params == 7 * 7 * 3 * 64 and conv[0].ops == 9408 * 112 * 112
    assert conv[1].params == 64 * 64 + 9 * 64 * 192 == 114_688
    assert conv[1].ops == 114_688 * 56 * 56


def test_paper_inconsistencies_are_flagged_and_explained(paper_table):
    flagged = {i for i, r in enumerate(paper_table["rows"]) if r.flags}
    assert flagged == {0, 9, 13}  # row 1, inception 4c, inception 5a
    rows = paper_table["rows"]
    assert "separable" in rows[0].note and "2,712" in rows[0].note
    assert "497.5K" in rows[9].note and rows[9].params == 509_440
    assert "1018K" in rows[13].note and rows[13].params == 1_042_432
    assert all(not r.note for i, r in enumerate(rows) if i not in flagged)


def test_separable_stem_matches_row_one_exactly():
    rows = table1(stem="separable")["rows"]
    assert rows[0].params == 2712
    assert rows[0].ops == 2712 * 112 * 112  # 34.0M
    assert round(rows[0].ops / 1e6, 1) == 34.0
    assert not rows[0].flags and "2,712" in rows[0].note


def test_totals(paper_table):
    t = paper_table["totals"]
    assert t["params_with_biases"] == 6_998_552
    assert abs(t["multiply_adds"] - 1.58e9) / 1.58e9 < 0.01
    assert t["depth"] == 22
    assert t["params_with_biases_and_aux"] > t["params_with_biases"]
    assert t["multiply_adds_aux"] > 0


def test_torchvision_variant_departures_are_reported():
    result = table1(variant="torchvision")
    assert result["totals"]["params_with_biases"] == 6_624_904  # torchvision's own count
    rows = result["rows"]
    assert rows[12].patch == "2x2/2" and "patch" in rows[12].flags
    assert "3x3 conv in the '5x5' branch" in rows[5].note
    assert rows[16].type == "dropout (20%)"


def test_naive_module_costs():
    res = naive_comparison(size=224)
    first = res["rows"][0]
    assert first["module"] == "inception_3a" and first["input"] == [28, 28, 192]
    assert first["naive_same_input"] == {"weights": 387_072, "multiply_adds": 387_072 * 784,
                                         "out_channels": 416}
    assert round(first["naive_same_input"]["multiply_adds"] / 1e6, 1) == 303.5
    assert first["reduced"] == {"weights": 163_328, "multiply_adds": 163_328 * 784,
                                "out_channels": 256}
    # the naive network widens: each module's input is the previous naive output
    outs = [r["naive_network"]["out_channels"] for r in res["rows"]]
    ins = [r["naive_network"]["in_channels"] for r in res["rows"]]
    assert ins[1:] == outs[:-1] and outs[-1] == 4944
    assert res["whole_network"]["naive"] > 10 * res["whole_network"]["reduced"]


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv", "json"])
def test_formats(paper_table, fmt):
    out = render(paper_table, fmt)
    if fmt == "json":
        data = json.loads(out)
        assert data["totals"]["params_with_biases"] == 6_998_552
        assert len(data["rows"]) == 19
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert len(rows) == 20 and rows[0][0] == "type"
    else:
        assert "inception (4c)" in out and "6,998,552" in out and "463K" in out


def test_cli(capsys):
    assert main(["summary", "--format", "json", "--size", "64"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["output"] == [32, 32, 64]
    assert main(["summary", "--inception", "naive"]) == 0
    out = capsys.readouterr().out
    assert "387,072" in out and "303.5M" in out and "416" in out


def test_cli_bad_size(capsys):
    assert main(["summary", "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert "--size 16" in err and "32" in err
