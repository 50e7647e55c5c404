"""Nothing lost, nothing silent: hostile and faulty inputs, each the exact input that once broke
something, each answered by one line, its own exit status, and the previous good file intact.

Run-directory locking, stale temp files, atomic outputs (disk full), memory bounds per image
(checked without allocating), FIFOs, EXIF orientation, out-of-range settings, NaN weights and
bad metadata, resume edge cases, and the command line's mapping of failures to exit codes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet import cli
from googlenet.cli import EXIT_CODES, main
from googlenet.data.crops import multi_crop
from googlenet.data.datasets import open_dataset
from googlenet.data.imaging import (
    MAX_RESIZED_PIXELS, ImageError, check_resized_size, list_images, load_image,
)
from googlenet.data.preprocess import MAX_CROP, Preprocess
from googlenet.engine.checkpoint import RunLock, RunLocked, remove_stale_temps
from googlenet.errors import FileSystemError, UserError
from googlenet.infer.bench import load_images
from googlenet.interop.export import check_images
from googlenet.models.googlenet import GoogLeNet
from googlenet.sources import load_weights
from googlenet.tasks import resolve_config
from googlenet.weights import io as wio
from googlenet.weights.io import atomic_write, check_writable_dir, save_weights

PRE = Preprocess(crop=32, resize=36)
SMALL = ["--epochs", "1", "--batch-size", "2", "--image-size", "32", "--no-progress",
         "--workers", "0", "--set", "tensorboard=false", "--set", "plots=false"]
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def _model(num_classes: int = 2) -> GoogLeNet:
    torch.manual_seed(0)
    return GoogLeNet(variant="bn", num_classes=num_classes, aux_logits=False, init_weights=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    save_weights(_model(), path, class_names=["a", "b"], preprocess=PRE)
    return path


@pytest.fixture(scope="module")
def digit_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dw") / "digits.safetensors"
    save_weights(_model(10), path, class_names=[str(i) for i in range(10)],
                 preprocess=Preprocess(crop=32, resize=32))
    return path


def _png(path: Path, w: int = 40, h: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _tiny_folder(root: Path, n_train: int = 4) -> Path:
    for split, n in (("train", n_train), ("val", 1)):
        for k, c in enumerate(("a", "b")):
            for i in range(n):
                _png(root / split / c / f"{i}.png", 36, 36, seed=10 * k + i)
    return root


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    return lines[-1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- 1. one process per run directory -----------------------------------------------------------

def test_run_lock_refuses_a_second_holder_naming_the_pid(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunLocked, match=rf"in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire()  # flock: a second open file conflicts, same process too
    with RunLock(tmp_path):  # released: free again
        pass
    assert RunLocked.exit_code == 4


@pytest.mark.slow
def test_second_training_in_a_run_directory_is_refused_while_the_first_finishes(tmp_path):
    data = _tiny_folder(tmp_path / "data")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "googlenet", "train", "--data", str(data), *SMALL]
    first = subprocess.Popen([*cmd, "--epochs", "3", "--out", str(run)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        log = run / "train.log"
        while time.time() < deadline and first.poll() is None:
            if log.exists() and "checkpoint: step" in log.read_text():
                break
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()
        # Hold the first still (its lock stays held) so the refusal cannot race its end.
        first.send_signal(signal.SIGSTOP)
        try:
            second = subprocess.run([*cmd, "--out", str(run)], env=_env(), capture_output=True,
                                    text=True, timeout=240)
            resumed = subprocess.run([sys.executable, "-m", "googlenet", "train", "--resume",
                                      str(run)], env=_env(), capture_output=True, text=True,
                                     timeout=240)
        finally:
            first.send_signal(signal.SIGCONT)
        for p in (second, resumed):
            assert p.returncode == 4, p.stderr
            assert f"in use by process {first.pid}" in _one_line(p.stderr)
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-2000:]
    assert (run / "model.safetensors").is_file()
    assert torch.load(run / "checkpoint-last.pt", weights_only=True)["run_state"]["epoch"] == 3


# -- 2. atomic outputs: a failed write leaves the previous file -----------------------------------

def _enospc(*a, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_disk_full_keeps_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("good")
    with pytest.raises(FileSystemError, match=rf"{target}: cannot write: No space left on "
                                              rf"device; free some space"):
        atomic_write(target, _enospc)
    assert target.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_gives_the_mode_a_plain_write_would(tmp_path):
    old = os.umask(0o027)
    try:
        new = atomic_write(tmp_path / "new.txt", lambda t: Path(t).write_text("x"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
        kept = tmp_path / "kept.txt"
        kept.write_text("x")
        kept.chmod(0o604)
        atomic_write(kept, lambda t: Path(t).write_text("y"))
        assert stat.S_IMODE(kept.stat().st_mode) == 0o604  # an existing file keeps its mode
    finally:
        os.umask(old)


def test_convert_disk_full_is_one_line_exit_4_and_old_file_survives(tmp_path, monkeypatch, capsys):
    from googlenet.interop import caffe

    src = GoogLeNet(variant="paper", num_classes=3, aux_logits=False, init_weights=True)
    model = caffe.write_caffemodel(tmp_path / "m.caffemodel", caffe.caffe_layers(src))
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"previous good file")
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", _enospc)
    assert main(["convert", "caffe", str(model), "--out", str(out)]) == 4
    line = _one_line(capsys.readouterr().err)
    assert line == f"googlenet convert: error: {out}: cannot write: No space left on device; " \
                   f"free some space and run again"
    assert out.read_bytes() == b"previous good file"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_eval_out_disk_full_and_eval_json(tmp_path, digit_weights, monkeypatch, capsys):
    out = tmp_path / "ev"
    args = ["eval", str(digit_weights), "--data", "digits", "--limit", "4", "--no-progress",
            "--device", "cpu"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is the JSON alone
    assert doc == json.loads((out / "results.json").read_text())
    assert doc["images"] == 4 and doc["rows"][0]["crops"] == 1 and "confusion" in doc
    assert "top-1" in captured.err
    good = (out / "results.json").read_text()
    monkeypatch.setattr(Path, "write_text", _enospc)
    assert main([*args, "--out", str(out)]) == 4
    assert "results.json: cannot write: No space left on device" in \
        _one_line(capsys.readouterr().err)
    assert (out / "results.json").read_text() == good
    assert not list(out.glob(".*.tmp"))


def test_export_disk_full_keeps_previous_file(tmp_path, monkeypatch):
    from googlenet.interop import export

    path = tmp_path / "m.torchscript.pt"
    path.write_bytes(b"previous good export")
    monkeypatch.setattr(torch.jit, "save", _enospc)
    with pytest.raises(FileSystemError, match="m.torchscript.pt: cannot write: No space left"):
        export.export_torchscript(_model().eval(), path, example=torch.randn(2, 3, 32, 32))
    assert path.read_bytes() == b"previous good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.torchscript.pt"]


def test_checkpoint_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from googlenet.engine.checkpoint import CheckpointWriter
    from googlenet.weights.records import TrainCheckpoint, WeightsMeta

    ck = TrainCheckpoint(meta=WeightsMeta(model_config={"num_classes": 2}),
                         model={"w": torch.ones(2)}, optimizer={}, scheduler={}, config={},
                         run_state={"epoch": 0, "epoch_step": 1, "step": 1})
    writer = CheckpointWriter(tmp_path, lambda *a, **kw: None)
    writer.submit(ck, best=False, note="")
    writer.wait()
    good = (tmp_path / "checkpoint-last.pt").read_bytes()
    monkeypatch.setattr(torch, "save", _enospc)
    writer.submit(ck, best=False, note="")
    with pytest.raises(FileSystemError, match="could not write a checkpoint.*No space left.*"
                                              "previous checkpoint is intact"):
        writer.wait()
    assert (tmp_path / "checkpoint-last.pt").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-last.pt"]


# -- 3. temp files of interrupted writes ----------------------------------------------------------

def test_stale_temps_removed_only_ours(tmp_path):
    ours = [tmp_path / ".checkpoint-last.pt.a1b2c3d4.tmp", tmp_path / ".model.safetensors.x_9.tmp",
            tmp_path / ".checkpoint-best.pt.link"]
    theirs = [tmp_path / ".notes.txt.abcd.tmp", tmp_path / "checkpoint-last.pt",
              tmp_path / "sub" / ".checkpoint-last.pt.a1b2c3d4.tmp"]
    for p in ours + theirs:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(ours)
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in ours)


# -- 4. memory per image is bounded, without allocating -----------------------------------------

def _strip(path: Path, w: int = 100_000, h: int = 1) -> Path:
    Image.new("L", (w, h)).save(path, optimize=True)
    return path


def test_100000x1_png_is_refused_from_its_header(tmp_path):
    p = _strip(tmp_path / "strip.png")
    assert p.stat().st_size < 1000  # a few hundred bytes asking for ~25 Gpixel once resized
    with pytest.raises(ImageError, match=r"strip.png: refused, 100000x1 pixels has an aspect "
                                         r"ratio over 100:1"):
        load_image(p)


def test_resized_size_bound_is_checked_before_resizing(monkeypatch):
    with pytest.raises(ImageError, match="Mpixel, over the limit"):
        check_resized_size(4000, 50, 4096)  # 80:1 is a fine ratio; 4096 x 327680 is not
    check_resized_size(4000, 3000, 256)

    def no_resize(*a, **kw):
        raise AssertionError("resized before the size check")

    # multi_crop imports torchvision's functional transforms when it runs (crops.py itself is
    # torch-free), so the patch goes on that module
    from torchvision.transforms.v2 import functional as TF

    monkeypatch.setattr(TF, "resize", no_resize)
    img = Image.new("RGB", (990, 10))
    with pytest.raises(ImageError, match="over the limit"):
        multi_crop(img, Preprocess(crop=2048, resize=4096), 1)
    with pytest.raises(ImageError, match="over the limit"):
        Preprocess(crop=2048, resize=4096).eval_transform()(img)
    assert 4096 * 4096 * 3 < MAX_RESIZED_PIXELS * 3  # a square image at the largest resize passes


def test_predict_skips_and_names_the_strip_and_classifies_the_rest(tmp_path, weights, capsys):
    good = _png(tmp_path / "good.png")
    strip = _strip(tmp_path / "strip.png")
    assert main(["predict", str(strip), str(good), "--weights", str(weights), "--json",
                 "--no-progress"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [p["file"] for p in doc["predictions"]] == [str(good)]
    assert doc["errors"][0]["file"] == str(strip) and "aspect ratio" in doc["errors"][0]["error"]
    assert "Traceback" not in captured.err


def test_training_folder_with_the_strip_skips_it(tmp_path):
    data = _tiny_folder(tmp_path / "d")
    _strip(data / "train" / "a" / "strip.png")
    ds = open_dataset(data, "train")
    assert [Path(f).name for f, _ in ds.skipped] == ["strip.png"]
    assert len(ds) == 8


def _raw_weights(path: Path, **meta_changes) -> Path:
    """A googlenet safetensors file whose metadata fields are replaced by ``meta_changes``
    (strings, written as they are: they may be bad JSON)."""
    from safetensors.torch import load_file, save_file

    src = path.parent / "src.safetensors"
    save_weights(_model(), src, class_names=["a", "b"], preprocess=PRE)
    meta = wio.read_metadata(src)
    meta.update(meta_changes)
    save_file(load_file(str(src)), str(path), metadata=meta)
    return path


@pytest.mark.parametrize("field,value,match", [
    ("preprocess", json.dumps({"crop": 100000, "resize": 100000}), "at most crop 2048"),
    ("preprocess", json.dumps([1, 2]), "saved preprocessing must be a mapping"),
    ("preprocess", "{not json", "metadata 'preprocess' is not valid JSON"),
    ("model_config", "{not json", "metadata 'model_config' is not valid JSON"),
    ("model_config", json.dumps({"variant": "bn", "num_classes": 1e9}),
     "num_classes = 1000000000.0 is not a whole number"),
    ("model_config", json.dumps({"variant": "bn", "num_classes": 10**9}),
     r"num_classes = 1000000000 is not a whole number in \[0, 100,000\]"),
    ("class_names", json.dumps(["a"]), "1 class names for a classifier of 2 classes"),
    ("class_names", json.dumps(["a", "b", "c"]), "3 class names for a classifier of 2"),
    ("class_names", json.dumps("ab"), "class names must be a list of strings, got str"),
    ("class_names", json.dumps([1, 2]), "class names must be a list of strings"),
])
def test_bad_weights_metadata_refused_at_load_naming_the_file(tmp_path, monkeypatch, field,
                                                              value, match, capsys):
    path = _raw_weights(tmp_path / "bad.safetensors", **{field: value})
    import googlenet.weights.io as io_mod

    def no_build(*a, **kw):
        raise AssertionError("the model was built from refused metadata")

    if field != "class_names":
        monkeypatch.setattr(io_mod, "build_model", no_build)
    with pytest.raises(UserError, match=match) as e:
        load_weights(path)
    assert str(e.value).startswith(str(path))
    assert main(["predict", str(_png(tmp_path / "x.png")), "--weights", str(path)]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"googlenet predict: error: {path}")


def test_preprocess_limits():
    for kw in ({"crop": 100000, "resize": 100000}, {"crop": 224, "resize": 10**6},
               {"crop": 2.5, "resize": 3}, {"crop": 224, "resize": 256, "mean": (float("nan"),)}):
        with pytest.raises(ValueError):
            Preprocess(**kw)
    Preprocess(crop=MAX_CROP, resize=MAX_CROP)


# -- 5. FIFOs and other non-regular files ---------------------------------------------------------

@pytest.fixture
def fifo(tmp_path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    p = tmp_path / "fifo" / "x.jpg"
    p.parent.mkdir()
    os.mkfifo(p)
    return p


@pytest.fixture
def alarm():
    """Fail instead of hanging forever if a FIFO is opened after all."""
    def on_alarm(*_):
        raise TimeoutError("blocked: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_fifo_refused_up_front(fifo, alarm, tmp_path, weights, capsys):
    with pytest.raises(ImageError, match=r"x.jpg: a FIFO \(named pipe\), not a regular file"):
        load_image(fifo)
    good = _png(tmp_path / "good.png")
    # given by name, and found in a folder: named, never silent, never a hang
    assert main(["predict", str(fifo), str(fifo.parent), str(good), "--weights", str(weights),
                 "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("good.png: ") == 1
    assert captured.err.count("FIFO") == 2 and "2 of 3 inputs failed" in captured.err
    with pytest.raises(UserError, match="none of the images could be read"):
        check_images(str(fifo), PRE, 4)  # export --check-images


# -- 6. EXIF orientation ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(tmp_path, fmt):
    a = np.zeros((20, 30, 3), np.uint8)  # (H, W): 30 wide, 20 high; a bright left column
    a[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / f"o.{fmt.lower()}"
    Image.fromarray(a).save(p, format=fmt, exif=exif.tobytes())
    img = load_image(p)
    assert img.size == (20, 30)  # displayed upright: 20 wide, 30 high
    top = np.asarray(img)[:5].mean()
    assert top > 200  # the bright left column is now the top row


# -- 7. settings: finite and in range --------------------------------------------------------------

def _numeric(hint) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = args[0]
    if typing.get_origin(base) is tuple:
        base = typing.get_args(base)[0]
    return base in (int, float)


def test_every_numeric_setting_has_a_range():
    from googlenet.settings import leaves
    from googlenet.tasks import schemas

    seen = 0
    for cls in schemas().all:
        numeric = [leaf for leaf in leaves(cls).values() if _numeric(leaf.hint)]
        assert len(numeric) > 25, cls
        assert [leaf.path for leaf in numeric if leaf.range is None] == [], cls
        for leaf in numeric:  # the defaults themselves are in range
            v = leaf.default
            for x in (v if isinstance(v, tuple) else (v,)):
                assert v is None or x in leaf.range, leaf.path
        seen += len(numeric)
    assert seen > 80


@pytest.mark.parametrize("key,value,accepted", [
    ("lr", "inf", "(0, 10]"), ("lr", "nan", "(0, 10]"), ("epochs", "inf", "[1, 1000000]"),
    ("epochs", "nan", "[1, 1000000]"), ("seed", "-1", "[0, 4294967295]"),
    ("seed", "1e23", "[0, 4294967295]"), ("dropout", "5", "[0, 1)"),
    ("label_smoothing", "2", "[0, 1)"), ("momentum", "-1", "[0, 1)"),
    ("lr_gamma", "-5", "(0, 1]"), ("crop_scale", "0.5,inf", "(0, 1]"),
    ("batch_size", "1e30", "[1, 65536]"),
])
def test_out_of_range_settings_are_refused_naming_key_and_range(key, value, accepted, capsys):
    with pytest.raises(UserError) as e:
        resolve_config(overrides={key: value})
    assert key in str(e.value) and accepted in str(e.value)
    assert main(["train", "--set", f"{key}={value}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("googlenet train: error: command line: ") and accepted in line


def test_saved_config_with_bad_values_is_refused():
    cfg = resolve_config().to_dict()
    cfg["optim"]["lr"] = float("inf")
    with pytest.raises(UserError, match=r"saved config: optim.lr = inf: must be a finite number"):
        resolve_config(base=cfg)
    flat = {"epochs": 3, "lr": float("inf")}  # a version-1 (flat) config, as earlier runs saved
    with pytest.raises(UserError, match=r"saved config: optim.lr = inf: must be a finite number"):
        resolve_config(base=flat)
    with pytest.raises(UserError, match=r"config version 9 is not one this googlenet reads"):
        resolve_config(base={**cfg, "version": 9})


# -- 8. weights with NaN/inf -----------------------------------------------------------------------

def test_nan_weights_refused_naming_the_tensor(tmp_path, capsys):
    m = _model()
    with torch.no_grad():
        m.fc.weight[0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_weights(m, path, class_names=["a", "b"], preprocess=PRE)
    with pytest.raises(UserError, match=r"nan.safetensors: tensor 'fc.weight' holds NaN"):
        load_weights(path)
    assert main(["predict", str(_png(tmp_path / "x.png")), "--weights", str(path)]) == 2
    assert "holds NaN" in _one_line(capsys.readouterr().err)


# -- 9. resume edge cases --------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_at_max_steps_trains_nothing_and_out_with_resume_is_refused(tmp_path, capsys):
    data = _tiny_folder(tmp_path / "d")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), *SMALL, "--epochs", "3", "--max-steps", "1",
                 "--out", str(run)]) == 0
    ck = run / "checkpoint-last.pt"
    before = torch.load(ck, weights_only=True)["run_state"]
    assert before["step"] == 1
    stale = run / ".checkpoint-last.pt.k3j4h5g6.tmp"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"partial")
    foreign = run / ".notes.md.abcd.tmp"
    foreign.write_bytes(b"not ours")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "already at max_steps=1" in capsys.readouterr().out
    assert torch.load(ck, weights_only=True)["run_state"]["step"] == before["step"]
    assert not stale.exists() and foreign.exists()
    assert main(["train", "--resume", str(run), "--out", str(tmp_path / "other")]) == 2
    assert "a resumed run stays in its own directory" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "other").exists()


def test_resume_of_checkpoint_without_run_state_or_config(tmp_path, capsys):
    from googlenet.weights.records import CHECKPOINT_FORMAT

    for missing in ("run_state", "config"):
        run = tmp_path / missing
        run.mkdir()
        state = {"format": CHECKPOINT_FORMAT, "version": 2, "model_config": {"num_classes": 2},
                 "model": {}, "optimizer": {}, "scheduler": {}, "run_state": {}, "config": {}}
        del state[missing]
        torch.save(state, run / "checkpoint-last.pt")
        assert main(["train", "--resume", str(run)]) == 2
        assert f"training checkpoint without ['{missing}']" in _one_line(capsys.readouterr().err)


# -- 10. the command line: one line, a distinct exit status ---------------------------------------

def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code in EXIT_CODES:
        assert f"\n  {code:<4} " in text
    assert len(set(EXIT_CODES)) == len(EXIT_CODES) == 8


@pytest.mark.parametrize("exc,code,text", [
    (OSError(errno.EACCES, "Permission denied", "/x/y"), 4, "error: /x/y: Permission denied"),
    (MemoryError(), 5, "error: out of memory"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 5, "out of memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                  "memory: you tried to allocate 80000000000 bytes"), 5, "out of memory"),
    (KeyboardInterrupt(), 130, "interrupted"),
    (TypeError("unsupported operand"), 70, "internal error: TypeError: unsupported operand"),
])
def test_failure_kinds_map_to_one_line_and_exit_code(monkeypatch, capsys, exc, code, text):
    from googlenet.cli import summary

    def boom(args):
        raise exc

    monkeypatch.setattr(summary, "run", boom)
    monkeypatch.delenv("GOOGLENET_DEBUG", raising=False)
    assert main(["summary"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and text in err and "Traceback" not in err
    with pytest.raises(type(exc)):  # --debug: the traceback
        main(["summary", "--debug"])


def _long(tmp_path: Path) -> Path:
    return tmp_path / ("n" * 300 + ".jpg")


def test_300_character_file_names(tmp_path, weights, digit_weights, capsys):
    long = _long(tmp_path)
    assert main(["predict", str(long), str(_png(tmp_path / "ok.png")), "--weights",
                 str(weights)]) == 1
    assert "File name too long" in capsys.readouterr().err
    assert main(["train", *SMALL, "--out", str(long)]) == 4
    assert "file name too long" in _one_line(capsys.readouterr().err)
    assert main(["eval", str(digit_weights), "--out", str(long)]) == 4
    assert "--out" in _one_line(capsys.readouterr().err)
    assert main(["predict", str(_png(tmp_path / "ok.png")), "--weights", str(long)]) in (2, 4)
    _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["train", "eval", "bench", "export"])
@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_that_is_a_file_or_under_a_file(tmp_path, digit_weights, capsys, command, where):
    f = tmp_path / "afile"
    f.write_text("keep me")
    out = f if where == "file" else f / "sub"
    if command == "bench":  # --out FILE.json: its folder must be writable
        out = out / "b.json" if where == "file" else f / "sub" / "b.json"
    argv = {"train": ["train", *SMALL, "--out", str(out)],
            "eval": ["eval", str(digit_weights), "--out", str(out)],
            "bench": ["bench", "--out", str(out), "--device", "cpu"],
            "export": ["export", "--weights", str(digit_weights), "--out", str(out / "m")]}[command]
    t0 = time.perf_counter()
    assert main(argv) == 4
    line = _one_line(capsys.readouterr().err)
    assert "is a file, not a folder" in line and str(f) in line
    assert f.read_text() == "keep me"
    assert time.perf_counter() - t0 < 30  # refused before the work, not after


def test_unwritable_out(tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if ROOT_USER:  # root writes anywhere: pretend the permission check says no
        monkeypatch.setattr(wio.os, "access", lambda p, mode: Path(p) != ro)
    else:
        ro.chmod(0o500)
    try:
        with pytest.raises(FileSystemError, match=r"permission denied \(cannot write in .*ro\)"):
            check_writable_dir(ro / "new" / "dir", "--out")
        assert main(["train", *SMALL, "--out", str(ro / "run")]) == 4
        assert "permission denied" in _one_line(capsys.readouterr().err)
    finally:
        ro.chmod(0o700)


def test_caffemodel_with_zero_classes(tmp_path, capsys):
    from googlenet.interop import caffe

    layers = caffe.caffe_layers(GoogLeNet(variant="paper", num_classes=3, aux_logits=False,
                                          init_weights=False))
    for layer in layers:
        if layer.name == "loss3/classifier":
            layer.blobs = [np.zeros((0, 1024), np.float32), np.zeros(0, np.float32)]
    path = caffe.write_caffemodel(tmp_path / "zero.caffemodel", layers)
    assert main(["convert", "caffe", str(path)]) == 2
    assert "'loss3/classifier' has 0 outputs" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "zero.safetensors").exists()


def test_bench_threads_zero(capsys):
    assert main(["bench", "--threads", "0", "--device", "cpu"]) == 2
    assert "--threads 0: must be at least 1" in _one_line(capsys.readouterr().err)


def test_bench_negative_paired_rounds(capsys):
    assert main(["bench", "--paired-rounds", "-1", "--device", "cpu"]) == 2
    assert "--paired-rounds -1: must be 0 or more" in _one_line(capsys.readouterr().err)


def test_device_defaults_to_auto_everywhere():
    for command in ("train", "eval", "predict", "bench"):
        p = cli.build_parser(command)
        d = p.parse_args({"train": [], "eval": ["w"], "predict": ["x", "--weights", "w"],
                          "bench": []}[command])
        assert getattr(d, "device", "auto") == "auto", command


# -- 11. the real cause; hidden files; bench on PATH/<class>/ --------------------------------------

def test_real_cause_not_no_such_file(tmp_path):
    f = tmp_path / "file.png"
    f.write_text("x")
    with pytest.raises(ImageError, match="Not a directory"):
        load_image(f / "x.jpg")
    with pytest.raises(UserError, match="Not a directory"):
        open_dataset(f / "data", "train")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their permissions")
def test_permission_denied_is_reported_as_such(tmp_path):
    d = tmp_path / "locked"
    _png(d / "x.png")
    d.chmod(0o000)
    try:
        with pytest.raises(ImageError, match="Permission denied"):
            load_image(d / "x.png")
    finally:
        d.chmod(0o700)


def test_hidden_files_are_skipped_not_failures(tmp_path):
    data = _tiny_folder(tmp_path / "d")
    (data / "train" / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (data / "train" / "a" / ".DS_Store.png").write_bytes(b"x")
    _png(data / "train" / "a" / ".thumbs" / "t.png")
    files = list_images(data / "train")
    assert len(files) == 8
    assert not any(p.name.startswith(".") or ".thumbs" in p.parts for p in files)
    ds = open_dataset(data, "train")
    assert len(ds) == 8 and ds.skipped == []


def test_bench_images_from_a_class_folder(tmp_path):
    data = tmp_path / "flat"
    for k, c in enumerate(("a", "b")):
        for i in range(3):
            _png(data / c / f"{i}.png", 36, 36, seed=k * 10 + i)
    x = load_images(str(data), ["test", "val"], 4, Preprocess(crop=32, resize=36))
    assert x.shape[0] >= 2 and x.shape[1:] == (3, 32, 32)  # val, since there is no test/
    with pytest.raises(UserError, match="no such folder"):
        load_images(str(tmp_path / "nowhere"), ["test", "val"], 4, PRE)
