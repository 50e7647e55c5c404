"""``googlenet predict`` on images the tests write: every kind of good image is classified (and
classified right: the same probabilities as the model on the preprocessed image), every bad file
gets one line naming it, the rest are still processed, and the exit status says so. Untrusted
checkpoints never run code."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet import cli
from googlenet.infer.bench import realistic_random_init
from googlenet.data.crops import multi_crop
from googlenet.data.imaging import load_image
from googlenet.models.googlenet import GoogLeNet
from googlenet.data.preprocess import Preprocess
from googlenet.weights import save_weights

NAMES = ["cat", "dog", "fish", "bird"]
PRE = Preprocess(crop=32, resize=36, mean=(0.5, 0.45, 0.4), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = realistic_random_init(GoogLeNet(variant="bn", num_classes=4, aux_logits=True,
                                            init_weights=False))
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    save_weights(model, path, class_names=NAMES, preprocess=PRE)
    return path, model


def _write_images(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    p = {k: root / name for k, name in {
        "rgb": "rgb.jpg", "gray": "gray.png", "rgba": "sub/rgba.png", "gray16": "gray16.png",
        "cmyk": "cmyk.jpg", "truncated": "truncated.jpg", "text": "text.jpg"}.items()}
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(p["rgb"], quality=95)
    Image.fromarray(rng.integers(0, 256, (45, 38), dtype=np.uint8), "L").save(p["gray"])
    Image.fromarray(rng.integers(0, 256, (36, 36, 4), dtype=np.uint8), "RGBA").save(p["rgba"])
    Image.fromarray(rng.integers(0, 65536, (40, 40), dtype=np.uint16)).save(p["gray16"])
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("CMYK").save(p["cmyk"])
    full = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full, "JPEG")
    p["truncated"].write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    p["text"].write_text("this is not a JPEG\n")
    return p


GOOD = ("rgb", "gray", "rgba", "gray16", "cmyk")
BAD = ("truncated", "text")


def _predict(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["predict", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return status, out, err


def test_images_of_every_kind_and_bad_files(tmp_path, weights, capsys):
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    assert Image.open(p["gray16"]).mode.startswith("I;16")  # really 16-bit
    missing = tmp_path / "missing.png"
    status, out, err = _predict(capsys, str(tmp_path / "imgs"), str(missing), "--weights", str(w),
                                "-k", "2")
    assert status == 1  # some inputs failed
    lines = out.splitlines()
    assert sorted(Path(ln.split(": ")[0]).name for ln in lines) == sorted(p[k].name for k in GOOD)
    for ln in lines:  # "FILE: name p%, name p%", most probable first
        (a, pa), (b, pb) = [part.rsplit(" ", 1) for part in ln.split(": ", 1)[1].split(", ")]
        assert a in NAMES and b in NAMES and a != b
        assert float(pa.rstrip("%")) >= float(pb.rstrip("%"))
    errors = [ln for ln in err.splitlines() if ln.startswith("googlenet predict: error:")]
    assert len(errors) == 3  # one line each, naming the file
    assert any(str(p["truncated"]) in e and "truncated" in e for e in errors)
    assert any(str(p["text"]) in e and "not an image" in e for e in errors)
    assert any(str(missing) in e and "no such file" in e for e in errors)
    assert "3 of 8 inputs failed" in err
    assert "preprocessing: resize shorter side to 36 (bilinear), center crop 32" in err


def test_json_and_probabilities_are_the_models(tmp_path, weights, capsys):
    w, model = weights
    p = _write_images(tmp_path / "imgs")
    status, out, err = _predict(capsys, str(p["rgb"]), str(p["gray16"]), str(p["text"]),
                                "--weights", str(w), "--json", "-k", "4")
    assert status == 1
    doc = json.loads(out)  # stdout is exactly one JSON document
    assert doc["variant"] == "bn" and doc["crops"] == 1 and doc["preprocess"]["crop"] == 32
    assert [Path(e["file"]).name for e in doc["errors"]] == ["text.jpg"]
    assert [Path(r["file"]).name for r in doc["predictions"]] == ["rgb.jpg", "gray16.png"]
    for r in doc["predictions"]:
        x = multi_crop(load_image(r["file"]), PRE, 1)  # (1, 3, 32, 32)
        with torch.inference_mode():
            want = model.eval()(x).softmax(-1)[0]
        got = {t["class"]: t["prob"] for t in r["top"]}
        assert sorted(got) == [0, 1, 2, 3] and [t["name"] for t in r["top"]] == \
            [NAMES[t["class"]] for t in r["top"]]
        for c, prob in got.items():
            assert prob == pytest.approx(want[c].item(), abs=1e-6)
        assert [t["prob"] for t in r["top"]] == sorted(got.values(), reverse=True)


@pytest.mark.parametrize("crops", [10, 144])
def test_multi_crop_averages_softmax(tmp_path, weights, capsys, crops):
    w, model = weights
    p = _write_images(tmp_path / "imgs")
    status, out, _ = _predict(capsys, str(p["rgb"]), "--weights", str(w), "--json", "-k", "4",
                              "--crops", str(crops), "--batch-size", "64")
    assert status == 0
    top = json.loads(out)["predictions"][0]["top"]
    x = multi_crop(load_image(p["rgb"]), PRE, crops)  # (crops, 3, 32, 32)
    with torch.inference_mode():
        want = model.eval()(x).softmax(-1).mean(0)
    for t in top:
        assert t["prob"] == pytest.approx(want[t["class"]].item(), abs=1e-6)


def test_all_good_exits_zero_and_folder_without_images_fails(tmp_path, weights, capsys):
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    status, out, _ = _predict(capsys, str(p["rgb"]), str(p["rgba"]), "--weights", str(w))
    assert status == 0 and len(out.splitlines()) == 2
    (tmp_path / "empty").mkdir()
    status, _, err = _predict(capsys, str(tmp_path / "empty"), "--weights", str(w))
    assert status == 1 and f"{tmp_path / 'empty'}: folder contains no images" in err


def test_decompression_bomb_is_refused(tmp_path, weights, capsys, monkeypatch):
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(bomb)  # 40,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # our good images are < 2,600 pixels
    status, out, err = _predict(capsys, str(bomb), str(p["rgb"]), "--weights", str(w))
    assert status == 1
    assert len(out.splitlines()) == 1 and "rgb.jpg" in out
    assert f"{bomb}: refused, image is larger than Pillow's decompression-bomb limit" in err


def test_int8_mode_calibrates_on_the_inputs(tmp_path, weights, capsys):
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    status, out, err = _predict(capsys, str(tmp_path / "imgs"), "--weights", str(w), "--mode", "int8",
                                "--json")
    assert status == 1  # the two bad files
    assert len(json.loads(out)["predictions"]) == len(GOOD)


def test_calibration_options_are_spelled_as_in_export(tmp_path, weights, capsys):
    """--calibration-images PATH / --calibration-count N, as `export` spells them; the old
    --calibration DIR still works, with a one-line deprecation warning."""
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    good = [str(p[k]) for k in GOOD]
    status, out, err = _predict(capsys, *good, "--weights", str(w), "--mode", "int8", "--json",
                                "--no-sheet", "--calibration-images", str(tmp_path / "imgs"),
                                "--calibration-count", "3")
    assert status == 0 and "deprecated" not in err
    status, out, err = _predict(capsys, *good, "--weights", str(w), "--mode", "int8", "--json",
                                "--no-sheet", "--calibration", str(tmp_path / "imgs"))
    assert status == 0 and len(json.loads(out)["predictions"]) == len(GOOD)
    assert "googlenet predict: warning: --calibration is deprecated; use --calibration-images PATH" in err
    # one batch-size default for predict and eval (the most crops in one forward pass)
    from googlenet.cli import build_parser

    assert (build_parser("predict").parse_args(["x", "--weights", "w"]).batch_size
            == build_parser("eval").parse_args(["w"]).batch_size == 256)


def test_contact_sheet_in_the_run_folder_or_out(tmp_path, weights, capsys):
    """A contact sheet of the images with their top-1 class and probability: in a fresh
    RUN/predict/ (predict-2/, ...: nothing overwritten), or in --out; none with --no-sheet."""
    w, _ = weights
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(Path(w).read_bytes())
    p = _write_images(tmp_path / "imgs")
    good = [str(p[k]) for k in GOOD]
    for i, where in enumerate(("predict", "predict-2")):
        status, out, err = _predict(capsys, *good, "--weights", str(run), "--json")
        assert status == 0, err
        sheet = run / where / "contact-sheet.png"
        assert f"contact sheet: {sheet}" in err and json.loads(out)["contact_sheet"] == str(sheet)
        w_px, h_px = Image.open(sheet).size
        assert w_px >= 600 and h_px >= 250
    status, _, err = _predict(capsys, *good, "--weights", str(run), "--out", str(tmp_path / "o"))
    assert status == 0 and (tmp_path / "o" / "contact-sheet.png").is_file()
    status, _, err = _predict(capsys, *good, "--weights", str(run), "--no-sheet")
    assert status == 0 and "contact sheet" not in err and not (run / "predict-3").exists()


def test_bad_arguments(tmp_path, weights, capsys):
    w, _ = weights
    p = _write_images(tmp_path / "imgs")
    for args, msg in ((["-k", "0"], "--topk 0"), (["--mode", "fp8"], "--mode fp8"),
                      (["--batch-size", "0"], "--batch-size 0")):
        status, _, err = _predict(capsys, str(p["rgb"]), "--weights", str(w), *args)
        assert status == 2 and msg in err and "Traceback" not in err


class _RunsCommand:
    """Unpickling this runs a shell command (touching a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_untrusted_checkpoint_never_runs_code(tmp_path, capsys, how):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"model_config": {"variant": "bn"}, "model": _RunsCommand(marker)}
    if how == "torch.save":
        torch.save(payload, evil)
    else:
        with open(evil, "wb") as f:
            pickle.dump(payload, f)
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(img)
    status, out, err = _predict(capsys, str(img), "--weights", str(evil))
    assert status == 2 and out == ""
    assert f"{evil}: refused to load" in err and "arbitrary code" in err
    assert "Traceback" not in err
    assert not marker.exists()
