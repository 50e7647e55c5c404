"""Nothing lost, nothing silent, round two: detection datasets, weights files and exports under
hostile input. Each test feeds the exact input that once hung, exhausted memory, read outside
the dataset, lost a file or ended in an internal error (exit 70), and checks the answer: one line
naming the file, its own exit status, nothing read or written outside the given paths, and no
previous file lost. Every input is a tiny file the test writes; memory bombs are refused from
their numbers, never allocated."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.cli import main
from googlenet.data.detection import open_detection_dataset
from googlenet.errors import UserError

HAS_FIFO = hasattr(os, "mkfifo")
# A detection run's settings small enough for a CPU test (fp32: the same numbers everywhere).
DET = ["--task", "detect", "--image-size", "64", "--batch-size", "2", "--no-progress",
       "--amp", "none", "--set", "tensorboard=false", "--set", "fpn_channels=64",
       "--set", "head_convs=1", "--set", "det_score_thresh=0.0", "--set", "pretrain=none"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("GOOGLENET_DEBUG", None)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``googlenet ARGS`` in its own process: a hang fails the test after ``timeout`` s."""
    return subprocess.run([sys.executable, "-m", "googlenet", *args], env=_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _one_line(err: str) -> str:
    """The last line of stderr, which must be the only error line (no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


def _png(path: Path, w: int = 64, h: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _png_header(path: Path, w: int, h: int) -> Path:
    """A PNG that says it is ``w`` x ``h`` (1-bit grey) in a few bytes: a 1x1 PNG with its
    IHDR rewritten, so the bomb is in the header only and nothing large is ever allocated."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", w, h)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.fixture
def unblock():
    """``unblock(fifo)``: should anything open ``fifo`` after all (a regression), a separate
    process opens its other end after 20 s and closes it again, so the reader gets EOF (and the
    test a wrong answer) instead of hanging forever. A process, not a thread: safetensors' Rust
    reader blocks in open() holding the GIL, and no signal handler runs meanwhile either."""
    procs = []

    def start(fifo: Path) -> Path:
        # O_RDWR on a FIFO never blocks and releases any opener blocked on either side
        procs.append(subprocess.Popen(["sh", "-c", 'sleep 20 && exec 3<>"$0"', str(fifo)]))
        return fifo

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def alarm():
    """Fail instead of hanging forever if a FIFO is opened after all (Python's open() is
    interrupted by the handler's exception)."""
    def on_alarm(*_):
        raise TimeoutError("blocked: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# -- tiny datasets in the three layouts ------------------------------------------------------------

def yolo(root: Path, n: int = 4, splits=("train", "val")) -> Path:
    """PATH/images/{split}/*.png (64x64, one bright square each) + labels + classes.txt."""
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("red\ngreen\n")
    for k, split in enumerate(splits):
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((64, 64, 3), 20, np.uint8)
            img[10:40, 10:40, i % 2] = 230
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.39 0.39 0.47 0.47\n")
    return root


def coco(root: Path, images=None, annotations=None, categories=None, raw: str | None = None) -> Path:
    """PATH/annotations/instances_train.json + PATH/train/{a,b}.png (64x48)."""
    for name in ("a", "b"):
        _png(root / "train" / f"{name}.png")
    if images is None:
        images = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                  {"id": 2, "file_name": "b.png", "width": 64, "height": 48}]
    if annotations is None:
        annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 20],
                        "iscrowd": 0},
                       {"id": 2, "image_id": 2, "category_id": 2, "bbox": [8, 8, 20, 20],
                        "iscrowd": 0}]
    if categories is None:
        categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    text = raw if raw is not None else json.dumps(
        {"images": images, "annotations": annotations, "categories": categories})
    (root / "annotations" / "instances_train.json").write_text(text)
    return root


def _voc_xml(name: str = "a", objects: str | None = None, size: bool = True) -> str:
    objects = objects if objects is not None else (
        "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>25</xmax>"
        "<ymax>25</ymax></bndbox></object>")
    sz = "<size><width>64</width><height>48</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>{name}.png</filename>{sz}{objects}</annotation>"


def voc(root: Path, ids=("a", "b"), xml: dict | None = None) -> Path:
    """PATH/Annotations/*.xml + ImageSets/Main/train.txt + JPEGImages/*.png + classes.txt."""
    for i in ids:
        _png(root / "JPEGImages" / f"{i}.png")
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{i}.xml").write_text((xml or {}).get(i, _voc_xml(i)))
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("cat\ndog\n")
    return root


def _open(root: Path, **kw):
    return open_detection_dataset(root, "train", val_fraction=0, **kw)


# ==================================================================================================
# 1. A FIFO named like an image in a YOLO folder: refused by name, never opened
# ==================================================================================================

@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs here")
def test_fifo_in_yolo_images_is_skipped_and_named(tmp_path, alarm):
    data = yolo(tmp_path / "y")
    fifo = _fifo(data / "images" / "train" / "zz.jpg")
    ds = _open(data)
    assert len(ds) == 4
    assert [(f, why.split(",")[0]) for f, why in ds.skipped] == [(str(fifo), "a FIFO (named pipe)")]
    with pytest.raises(UserError, match=r"zz\.jpg: a FIFO \(named pipe\), not a regular file"):
        _open(data, strict=True)
    # a FIFO named like a label file is refused too (its image would train with no boxes)
    os.unlink(fifo)
    lbl = data / "labels" / "train" / "0.txt"
    lbl.unlink()
    _fifo(lbl)
    ds = _open(data)
    assert len(ds) == 3 and ds.skipped[0][0] == str(lbl) and "FIFO" in ds.skipped[0][1]


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs here")
def test_fifo_as_coco_image_and_voc_annotation(tmp_path, alarm):
    c = coco(tmp_path / "c", images=[{"id": 1, "file_name": "a.png"},
                                     {"id": 2, "file_name": "f.png"}])
    _fifo(c / "train" / "f.png")
    ds = _open(c)
    assert len(ds) == 1 and "f.png" in ds.skipped[0][0] and "FIFO" in ds.skipped[0][1]
    v = voc(tmp_path / "v")
    (v / "Annotations" / "b.xml").unlink()
    _fifo(v / "Annotations" / "b.xml")
    ds = _open(v)
    assert len(ds) == 1 and ds.skipped[0][0].endswith("b.xml") and "FIFO" in ds.skipped[0][1]


# ==================================================================================================
# 4. A YAML alias bomb as class names: refused from its type, never expanded
# ==================================================================================================

YAML_BOMB = """names: &a [x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def test_yaml_alias_bomb_as_class_names_is_refused_fast(tmp_path):
    data = yolo(tmp_path / "y")
    (data / "classes.txt").unlink()
    # 9^9 = 387 million strings if expanded: the names are the nested lists, not strings
    (data / "data.yaml").write_text(YAML_BOMB.replace("names: &a", "a: &a") + "names: [*h, *h]\n")
    t = time.perf_counter()
    with pytest.raises(UserError, match=r"data\.yaml: class name 0 is a list, not a string"):
        _open(data)
    assert time.perf_counter() - t < 5
    assert main(["train", "--data", str(data), *DET, "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,match", [
    ("names:\n  0: cat\n  x: dog\n", r"'names:' keys must be the class indices 0\.\.1"),
    ("names:\n  0: cat\n  2: dog\n", r"'names:' keys must be the class indices"),
    ("- cat\n- dog\n", "must be a mapping with a 'names:' entry, got a list"),
    ("names: [cat, null]\n", "class name 1 is a NoneType, not a string"),
    ("names: [cat, no]\n", "class name 1 is a bool, not a string"),  # YAML 1.1's Norway problem
    ("names: []\n", "names no classes"),
    ("names: " + "[" * 1100 + "]" * 1100 + "\n", "not usable YAML|not valid YAML"),
    (b"names: [caf\xe9]\n", "not UTF-8 text"),
])
def test_yolo_yaml_of_the_wrong_shape_is_exit_2(tmp_path, capsys, text, match):
    data = yolo(tmp_path / "y")
    (data / "classes.txt").unlink()
    y = data / "data.yaml"
    y.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError, match=match):
        _open(data)
    assert main(["train", "--data", str(data), *DET, "--out", str(tmp_path / "run")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("googlenet train: error: --data: ") and str(data) in line


@pytest.mark.parametrize("layout", ["yolo", "voc"])
def test_class_lists_not_utf8_or_empty(tmp_path, layout):
    root = yolo(tmp_path / "y") if layout == "yolo" else voc(tmp_path / "v")
    (root / "classes.txt").write_bytes(b"cat\n\xff\xfedog\n")
    with pytest.raises(UserError, match=r"classes\.txt: the class list is not UTF-8 text"):
        _open(root)
    (root / "classes.txt").write_text("\n\n")
    with pytest.raises(UserError, match="names no classes"):
        _open(root)


# ==================================================================================================
# 7. Paths that lead out of the dataset folder are never read
# ==================================================================================================

def test_coco_file_names_outside_the_dataset_are_skipped_and_named(tmp_path, monkeypatch):
    outside = _png(tmp_path / "outside.jpg")
    root = tmp_path / "a" / "b" / "c" / "d"
    c = coco(root, images=[{"id": 1, "file_name": "a.png"},
                           {"id": 2, "file_name": "../../../../outside.jpg"},
                           {"id": 3, "file_name": str(outside)},
                           {"id": 4, "file_name": "/etc/passwd"}])
    opened = []
    import googlenet.data.imaging as imaging

    real = imaging.read_image_size
    monkeypatch.setattr(imaging, "read_image_size", lambda p: opened.append(str(p)) or real(p))
    import googlenet.data.detection_formats.checks as fmt

    monkeypatch.setattr(fmt, "read_image_size", imaging.read_image_size)
    ds = _open(c)
    assert [Path(r.file).name for r in ds.records] == ["a.png"]
    assert len(ds.skipped) == 3
    for (file, why), name in zip(ds.skipped, ("../../../../outside.jpg", str(outside), "/etc/passwd")):
        assert file.endswith("instances_train.json")
        assert f"file_name: {name!r} resolves outside the dataset folder {c} " in why
    assert opened == [str(c / "train" / "a.png")]  # nothing outside was even looked at
    with pytest.raises(UserError, match="resolves outside the dataset folder"):
        _open(c, strict=True)


def test_voc_filename_and_imagesets_line_outside_the_dataset(tmp_path):
    (tmp_path / "x.xml").write_text(_voc_xml("x"))  # would parse as an annotation of the dataset
    _png(tmp_path / "x.png")
    root = voc(tmp_path / "ds" / "v", xml={"b": _voc_xml("../../../b")})
    listing = root / "ImageSets" / "Main" / "train.txt"
    listing.write_text("a\nb\n../../../x\n")
    ds = _open(root)
    assert [Path(r.file).name for r in ds.records] == ["a.png"]
    why = dict((Path(f).name, w) for f, w in ds.skipped)
    assert "image '../../../x': '../../../x.xml' resolves outside the dataset" in why["train.txt"]
    assert "<filename>: '../../../b.png' resolves outside the dataset folder" in why["b.xml"]


def test_symlinked_image_folder_inside_the_dataset_still_works(tmp_path):
    real = tmp_path / "elsewhere"
    c = coco(tmp_path / "c")
    os.rename(c / "train", real)
    os.symlink(real, c / "train")
    assert len(_open(c)) == 2


# ==================================================================================================
# 11 + 12. Malformed annotation files: exit 2 naming the file, or the entry skipped and named
# ==================================================================================================

IMG = [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}]
CAT = [{"id": 1, "name": "cat"}]


def _ann(**kw):
    return [dict({"id": 9, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]}, **kw)]


@pytest.mark.parametrize("kw,why", [
    (dict(annotations=_ann(bbox=["a", 1, 2, 3])), "annotation id 9: bbox must be [x, y, width, height] numbers"),
    (dict(annotations=_ann(bbox=[None, 1, 2, 3])), "annotation id 9: bbox must be"),
    (dict(annotations=_ann(image_id=[1])), "annotation id 9: image_id [1] is not in 'images'"),
    (dict(annotations=_ann(iscrowd="0")), "annotation id 9: iscrowd must be 0 or 1, got '0'"),
    (dict(annotations=_ann(category_id={"a": 1})), "annotation id 9: category_id {'a': 1} is not in"),
    (dict(annotations=["x"]), "annotations[0] is a str, not an object"),
    (dict(images=["a.png"]), "images[0] is a str, not an object"),
    (dict(images=[dict(IMG[0], height="abc")]), "image id 1: height 'abc' and width 64 must be whole numbers"),
    (dict(images=[dict(IMG[0], height=float("nan"))]), "image id 1: height nan"),
    (dict(images=[dict(IMG[0], id=[1])]), "images[0]: 'id' must be a whole number or a string"),
])
def test_coco_entries_of_the_wrong_type_are_skipped_and_named(tmp_path, kw, why):
    args = dict(images=IMG, annotations=[], categories=CAT)
    args.update(kw)
    c = coco(tmp_path / "c", **args)
    ds = _open(c)
    assert ds.num_boxes() == 0 and len(ds.skipped) >= 1
    file, msg = ds.skipped[0]
    assert file.endswith("instances_train.json") and msg.startswith(why), ds.skipped
    with pytest.raises(UserError, match="instances_train.json: "):
        _open(c, strict=True)


@pytest.mark.parametrize("kw,match", [
    (dict(categories=[{"name": "cat"}]), r"categories\[0\] needs an 'id'"),
    (dict(categories=[{"id": 1, "name": "a"}, {"id": "2", "name": "b"}]), "mix numbers and strings"),
    (dict(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]), r"category ids \[1\] are listed more than once"),
    (dict(categories=["cat"]), r"categories\[0\] is a str, not an object"),
    (dict(categories=[]), "names no classes"),
    (dict(raw=json.dumps({"images": "a.png", "categories": CAT})), "not a COCO annotation file"),
    (dict(raw=json.dumps({"images": IMG, "categories": "cat"})), "not a COCO annotation file"),
    (dict(raw=json.dumps({"images": IMG, "categories": CAT, "annotations": {"1": {}}})),
     "'annotations' must be a list, got a dict"),
    (dict(raw="[" * 100_000 + "]" * 100_000), "nested too deeply"),
    (dict(raw='{"images": [], "categories": [], "x": ' + "9" * 5000 + "}"), "not valid JSON"),
    (dict(raw='{"images": []}'.encode("utf-16").decode("latin-1")), "not UTF-8 text|not valid JSON"),
])
def test_coco_files_of_the_wrong_shape_are_exit_2(tmp_path, capsys, kw, match):
    args = dict(images=IMG, annotations=[], categories=CAT)
    args.update(kw)
    c = coco(tmp_path / "c", **args)
    with pytest.raises(UserError, match=match):
        _open(c)
    assert main(["train", "--data", str(c), *DET, "--out", str(tmp_path / "run")]) == 2
    assert "instances_train.json" in _one_line(capsys.readouterr().err) or "names no classes" in match


def test_coco_duplicate_image_ids_are_named_and_skipped(tmp_path):
    c = coco(tmp_path / "c", images=[{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
             annotations=_ann())
    (c / "train" / "c.png").write_bytes((c / "train" / "a.png").read_bytes())
    ds = _open(c)
    assert len(ds) == 0  # neither a.png nor b.png can own annotation 9
    assert "image id 1 is listed 2 times" in ds.skipped[0][1]


@pytest.mark.parametrize("xml,why", [
    ("<annotation>text</annotation>", "not a VOC annotation"),
    ("<a>" * 5000 + "</a>" * 5000, "nested too deeply"),
])
def test_voc_annotation_of_the_wrong_shape_is_skipped_and_named(tmp_path, xml, why):
    root = voc(tmp_path / "v", xml={"b": xml})
    ds = _open(root)
    assert len(ds) == 1 and Path(ds.skipped[0][0]).name == "b.xml" and why in ds.skipped[0][1]
    with pytest.raises(UserError, match=r"b\.xml: .*" + why):
        _open(root, strict=True)


def test_voc_object_without_elements_and_imagesets_not_utf8_or_twice(tmp_path, capsys):
    root = voc(tmp_path / "v", xml={"b": _voc_xml("b", objects="<object>x</object>")})
    ds = _open(root)
    assert len(ds) == 2 and ds.num_boxes() == 1
    assert ds.skipped == [(str(root / "Annotations" / "b.xml"),
                           "object 0: <object> without <name>/<bndbox> elements; skipped")]
    listing = root / "ImageSets" / "Main" / "train.txt"
    listing.write_text("a\nb\na\n")
    ds = _open(root)
    assert len(ds) == 2 and ("line 3: image 'a' is listed again; used once" in
                             [w for _, w in ds.skipped])
    listing.write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(UserError, match=r"train\.txt: the split list is not UTF-8 text"):
        _open(root)
    assert main(["train", "--data", str(root), *DET, "--out", str(tmp_path / "run")]) == 2
    assert "train.txt" in _one_line(capsys.readouterr().err)


def test_images_that_are_not_images_or_bombs_are_skipped_and_named(tmp_path, capsys):
    # VOC without <size>: the header is read, and /etc/passwd-like text is no image (exit 2 or
    # a skip, never exit 4 "file system")
    root = voc(tmp_path / "v", xml={"b": _voc_xml("b", size=False)})
    (root / "JPEGImages" / "b.png").write_text("root:x:0:0:root:/root:/bin/bash\n")
    ds = _open(root)
    assert len(ds) == 1 and ds.skipped[0][1] == "not an image file (or a format Pillow cannot read)"
    # YOLO: a 30000x30000 PNG is refused from its header, never decoded
    data = yolo(tmp_path / "y")
    _png_header(data / "images" / "train" / "big.png", 30000, 30000)
    ds = _open(data)
    assert len(ds) == 4 and "decompression-bomb limit" in ds.skipped[0][1]
    with pytest.raises(UserError, match=r"big\.png: refused, image is larger than Pillow"):
        _open(data, strict=True)


# ==================================================================================================
# 20 (YOLO). Hidden files are not images: never counted, never stop --strict
# ==================================================================================================

def test_macos_resource_forks_in_yolo_folders_are_not_failures(tmp_path):
    data = yolo(tmp_path / "y")
    (data / "images" / "train" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (data / "labels" / "train" / "._0.txt").write_bytes(b"\x00\x05\x16\x07")
    ds = _open(data, strict=True)
    assert len(ds) == 4 and ds.skipped == []


# ==================================================================================================
# 9 (+ 1, 20). One truncated image, a FIFO and a resource fork in a training folder: the run
# finishes (a loader worker too), each named once in one line; no matplotlib warning on stderr
# ==================================================================================================

@pytest.mark.slow
def test_detection_training_skips_a_truncated_image_in_a_loader_worker(tmp_path):
    data = yolo(tmp_path / "y")
    good = (data / "images" / "train" / "3.png").read_bytes()
    bad = data / "images" / "train" / "3.png"
    bad.write_bytes(good[: len(good) // 2])  # the header is intact: caught only when decoded
    if HAS_FIFO:
        _fifo(data / "images" / "train" / "zz.jpg")
    (data / "images" / "train" / "._1.png").write_bytes(b"\x00\x05\x16\x07")
    run = tmp_path / "run"
    p = _cli("train", "--data", str(data), *DET, "--epochs", "1", "--workers", "1",
             "--out", str(run), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr
    skips = [ln for ln in p.stderr.splitlines() if "3.png" in ln]
    assert skips and all(ln.startswith("googlenet: skipping unreadable image: ") for ln in skips)
    assert "corrupt or truncated image" in skips[0]
    log = (run / "train.log").read_text()
    assert ("zz.jpg" in log) == HAS_FIFO and "._1.png" not in log
    assert (run / "model.safetensors").is_file() and (run / "curves.png").is_file()


# ==================================================================================================
# 10. SIGKILL of a trainer whose DataLoader worker outlives it: an immediate --resume works
# ==================================================================================================

def _class_folder(root: Path) -> Path:
    for split, n in (("train", 6), ("val", 1)):
        for k, c in enumerate(("a", "b")):
            for i in range(n):
                _png(root / split / c / f"{i}.png", 36, 36, seed=10 * k + i)
    return root


@pytest.mark.slow
def test_immediate_resume_after_sigkill_with_a_loader_worker_alive(tmp_path):
    data = _class_folder(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--epochs", "1", "--batch-size", "2", "--image-size", "32",
            "--no-progress", "--workers", "1", "--checkpoint-every", "2",
            "--set", "tensorboard=false", "--set", "plots=false"]
    proc = subprocess.Popen([sys.executable, "-m", "googlenet", "train", *args, "--out", str(run)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log, deadline = run / "train.log", time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and "checkpoint: step" in log.read_text():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        listing = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")  # Linux
        children = listing.read_text().split() if listing.exists() else None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # the loader worker lives on for a few seconds (it polls for its parent's death)
        alive = [c for c in children or [] if Path(f"/proc/{c}").exists()]
        resumed = _cli("train", "--resume", str(run), "--no-progress", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    if children is not None:
        assert alive, "no loader worker outlived the trainer: the test would prove nothing"
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "in use by" not in resumed.stderr and "resumed from" in resumed.stdout
    assert (run / "model.safetensors").is_file()


def test_run_lock_waits_for_a_dead_holder_and_refuses_a_live_one(tmp_path):
    from googlenet.engine.checkpoint import RunLock, RunLocked

    # A holder that writes a dead PID into the lock file and lets go after 1 s (as a process
    # whose lock outlives it for a moment): acquire waits instead of refusing.
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'999999999\\n'); print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / ".lock"), "1"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    t = time.perf_counter()
    with RunLock(tmp_path):
        assert 0.3 < time.perf_counter() - t < 8
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    holder.wait(timeout=30)
    # a live holder is refused at once, naming it
    (tmp_path / ".lock").write_text("")
    live = subprocess.Popen([sys.executable, "-c", code.replace("b'999999999\\n'",
                                                                "str(os.getpid()).encode()"),
                             str(tmp_path / ".lock"), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "locked"
        t = time.perf_counter()
        with pytest.raises(RunLocked, match=f"in use by process {live.pid}"):
            RunLock(tmp_path).acquire()
        assert time.perf_counter() - t < 2
    finally:
        live.kill()
        live.wait()
    # this process: a second lock of the same directory is refused, and refusing it does not
    # drop the first (closing any descriptor of a file drops a process's record locks)
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match=f"in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire()
        nb = code.replace("fcntl.LOCK_EX)", "fcntl.LOCK_EX | fcntl.LOCK_NB)")
        other = subprocess.run([sys.executable, "-c", nb, str(tmp_path / ".lock"), "0"],
                               capture_output=True, text=True, timeout=30)
        assert other.returncode != 0 and "locked" not in other.stdout  # still held


# ==================================================================================================
# Weights files: 2 (FIFO), 5 + 16 (unbounded or unusable detector settings), 13 (task against
# config, deep nesting), 17 (config.json against the tensors), 19 (torch.hub and a detector)
# ==================================================================================================

def _detector_weights(path: Path, **meta_changes) -> Path:
    """A tiny FCOS detector's weights (2 classes, 64 px), metadata fields replaced by
    ``meta_changes`` (JSON-encoded unless given as str)."""
    from safetensors.torch import load_file, save_file

    from googlenet.models.detection import GoogLeNetDetector
    from googlenet.weights import io as wio
    from googlenet.weights.io import save_weights

    src = path.parent / "det-src.safetensors"
    if not src.exists():
        torch.manual_seed(0)
        m = GoogLeNetDetector(arch="fcos", num_classes=2, variant="bn", min_size=64, max_size=64,
                              fpn_channels=64, head_convs=1)
        save_weights(m, src, class_names=["red", "green"], task="detect")
    meta = wio.read_metadata(src)
    for k, v in meta_changes.items():
        if k == "model_config" and isinstance(v, dict):
            v = {**json.loads(meta["model_config"]), **v}
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    save_file(load_file(str(src)), str(path), metadata=meta)
    return path


def _classifier_weights(path: Path, **meta_changes) -> Path:
    from safetensors.torch import load_file, save_file

    from googlenet.models.googlenet import GoogLeNet
    from googlenet.weights import io as wio
    from googlenet.weights.io import save_weights

    torch.manual_seed(0)
    save_weights(GoogLeNet(variant="bn", num_classes=2, aux_logits=False), path,
                 class_names=["a", "b"])
    if meta_changes:
        meta = wio.read_metadata(path)
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta_changes.items()})
        save_file(load_file(str(path)), str(path), metadata=meta)
    return path


@pytest.fixture
def never_built(monkeypatch):
    """Fail if a model is built from refused metadata (the bound must come first)."""
    import googlenet.weights.io as io_mod

    def no_build(*a, **kw):
        raise AssertionError("the model was built from refused metadata")

    monkeypatch.setattr(io_mod, "build_model", no_build)


@pytest.mark.parametrize("change,match", [
    ({"fpn_channels": 10**6}, r"fpn_channels = 1000000 is not a whole number in \[64, 1,024\]"),
    ({"fpn_channels": 96.5}, "fpn_channels = 96.5 is not a whole number"),
    ({"fpn_channels": 80}, "fpn_channels = 80 is not a multiple of 32"),
    ({"head_convs": 10**5}, "head_convs = 100000 is not a whole number in"),
    ({"min_size": 10**6, "max_size": 10**6}, "is not a whole number in \\[32, 4,096\\]"),
    ({"max_size": 10**6}, "max_size = 1000000 is not a whole number"),
    ({"num_classes": 10**9}, r"num_classes = 1000000000 is not a whole number in \[1, 100,000\]"),
    ({"image_std": [0, 0, 0]}, r"image_std = \[0, 0, 0\] is not 3 finite numbers .* divides by zero"),
    ({"image_mean": [0.5, 0.5]}, "image_mean = \\[0.5, 0.5\\] is not 3 finite numbers"),
    ({"score_thresh": float("nan")}, "score_thresh = nan is not a finite number in \\[0, 1\\]"),
    ({"nms_thresh": 2}, "nms_thresh = 2 is not a finite number in \\[0, 1\\]"),
    ({"detections_per_img": 10**9}, r"detections_per_img = 1000000000 is not a whole number in \[1, 10,000\]"),
    ({"detections_per_img": -1}, "detections_per_img = -1 is not a whole number"),
    ({"anchor_scale": float("inf")}, "anchor_scale = inf is not a finite number"),
    ({"transform_input": "yes"}, "transform_input = 'yes' is not true or false"),
])
def test_detector_settings_in_weights_are_bounded_before_building(tmp_path, capsys, never_built,
                                                                  change, match):
    from googlenet.sources import load_weights

    path = _detector_weights(tmp_path / "bad.safetensors", model_config=change)
    with pytest.raises(UserError, match=match) as e:
        load_weights(path)
    assert str(e.value).startswith(f"{path}: model config ")
    assert main(["predict", str(_png(tmp_path / "x.png")), "--weights", str(path)]) == 2
    assert _one_line(capsys.readouterr().err).startswith(f"googlenet predict: error: {path}: ")


@pytest.mark.parametrize("make,changes,match", [
    ("classifier", {"task": "detect"}, "task 'detect' contradicts the model config, which is a classifier's"),
    ("detector", {"task": "classify"}, "task 'classify' contradicts the model config, which is a detector's"),
    ("classifier", {"task": "segment"}, "task 'segment' is not one of"),
    ("classifier", {"model_config": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
    ("classifier", {"model_config": '{"variant": "bn", "num_classes": ' + "9" * 5000 + "}"},
     "metadata 'model_config' is not valid JSON"),
    ("classifier", {"model_config": {"variant": "bn", "num_classes": 2, "width": 1e9}},
     "width = 1000000000.0 is not a finite number in"),
])
def test_weights_metadata_contradictions_are_exit_2_naming_the_file(tmp_path, capsys, never_built,
                                                                    make, changes, match):
    path = tmp_path / "bad.safetensors"
    if make == "detector":
        _detector_weights(path, **changes)
    else:
        _classifier_weights(path, **changes)
    for cmd in (["eval", str(path)], ["export", "--weights", str(path), "-o", str(tmp_path / "e")],
                ["predict", str(_png(tmp_path / "x.png")), "--weights", str(path)]):
        assert main(cmd) == 2, cmd
        line = _one_line(capsys.readouterr().err)
        assert f"error: {path}: " in line and re.search(match, line), line
    assert not (tmp_path / "e.onnx").exists()


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs here")
@pytest.mark.parametrize("cmd", ["predict", "eval", "export", "train"])
def test_fifo_as_weights_file_is_refused_without_opening_it(tmp_path, capsys, unblock, cmd):
    fifo = unblock(_fifo(tmp_path / "w.safetensors"))
    img = _png(tmp_path / "x.png")
    argv = {"predict": ["predict", str(img), "--weights", str(fifo)],
            "eval": ["eval", str(fifo)],
            "export": ["export", "--weights", str(fifo), "-o", str(tmp_path / "e")],
            "train": ["train", "--init", str(fifo), "--epochs", "1", "--out", str(tmp_path / "r"),
                      "--set", "max_steps=1", "--no-progress"]}[cmd]
    assert main(argv) == 2
    assert _one_line(capsys.readouterr().err).endswith(
        f"{fifo}: a FIFO (named pipe), not a regular file; refused (reading it could block)")


def test_torch_hub_refuses_detection_weights_for_a_classifier_entry(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hubconf_under_test", root / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    path = _detector_weights(tmp_path / "det.safetensors")
    with pytest.raises(UserError, match="'detect' weights of a GoogLeNetDetector, not a GoogLeNet"):
        hubconf.googlenet_bn(weights=str(path))
    with pytest.raises(UserError, match=r"num_classes=1000000000: must be a whole number"):
        hubconf.googlenet_bn(weights=str(_classifier_weights(tmp_path / "c.safetensors")),
                             num_classes=10**9)


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory) -> Path:
    """A save_pretrained folder of a 2-class classifier (model.safetensors, config.json)."""
    hub = pytest.importorskip("googlenet.interop.hub")
    from googlenet.sources import load_weights

    tmp = tmp_path_factory.mktemp("hub")
    model = hub.GoogLeNet.from_loaded(load_weights(_classifier_weights(tmp / "c.safetensors")))
    model.save_pretrained(tmp / "repo")
    return tmp / "repo"


def _copy(repo: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(repo, to))


def test_hub_config_json_must_agree_with_the_weights(tmp_path, monkeypatch, hub_repo):
    hub = pytest.importorskip("googlenet.interop.hub")
    repo = _copy(hub_repo, tmp_path / "repo")
    cfg = json.loads((repo / "config.json").read_text())
    with monkeypatch.context() as m:
        m.setattr(hub.GoogLeNet, "reset_classifier",
                  lambda *a: pytest.fail("the trained classifier was replaced"))
        for value in (10**9, 0):  # 1e9: 4 TB; 0: an Identity head instead of the trained one
            (repo / "config.json").write_text(json.dumps({**cfg, "num_classes": value}))
            with pytest.raises(UserError, match=rf"config.json: does not match .*num_classes "
                                                rf"{value} there, 2 in the weights"):
                hub.GoogLeNet.from_pretrained(repo)
    # only an explicit argument resets the head (test_ecosystem: num_classes=3), and it is
    # bounded before anything is read
    with pytest.raises(UserError, match="num_classes=1000000000: must be a whole number"):
        hub.GoogLeNet.from_pretrained(repo, num_classes=10**9)


@pytest.mark.parametrize("text,match", [
    ("{not json", "config.json: not valid JSON"),
    ("[1, 2]", "config.json: must be a JSON object of the model config, got a list"),
    (b"{\"a\": \"\xff\"}", "config.json: not UTF-8 text"),
    ("[" * 100_000 + "]" * 100_000, "config.json: nested too deeply"),
    ("fifo", "config.json: a FIFO"),
])
def test_hub_malformed_config_json_is_one_user_error(tmp_path, hub_repo, unblock, text, match):
    hub = pytest.importorskip("googlenet.interop.hub")
    repo = _copy(hub_repo, tmp_path / "repo")
    cfg = repo / "config.json"
    cfg.unlink()
    if text == "fifo":
        if not HAS_FIFO:
            pytest.skip("no FIFOs here")
        unblock(_fifo(cfg))
    else:
        cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UserError, match=match):
        hub.GoogLeNet.from_pretrained(repo)


# ==================================================================================================
# 3 + 20. The weights cache: a FIFO .part (or final file) is refused, not hashed; a cache under a
# file is exit 4 (file system), as the README's table says
# ==================================================================================================

def _known(tmp_path: Path):
    import dataclasses
    import hashlib

    from googlenet.sources.registry import BVLC_GOOGLENET

    payload = b"weights" * 100
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    return dataclasses.replace(BVLC_GOOGLENET, name="tiny", url=src.as_uri(), filename="tiny.bin",
                               sha256=hashlib.sha256(payload).hexdigest(),
                               sha1=hashlib.sha1(payload).hexdigest())


@pytest.mark.skipif(not HAS_FIFO, reason="no FIFOs here")
@pytest.mark.parametrize("which", ["tiny.bin.part", "tiny.bin"])
def test_fifo_in_the_weights_cache_is_refused(tmp_path, alarm, unblock, which):
    from googlenet.errors import FileSystemError
    from googlenet.sources import registry

    cache = tmp_path / "cache"
    fifo = unblock(_fifo(cache / which))
    with pytest.raises(FileSystemError, match=rf"{which}: a FIFO \(named pipe\), not a regular "
                                              rf"file; .*remove it from the weights cache"):
        registry.download(_known(tmp_path), cache, progress=False)
    assert FileSystemError.exit_code == 4 and fifo.exists()


def test_weights_download_cache_under_a_file_is_exit_4(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["weights", "download", "bvlc", "--cache", str(blocker / "sub"),
                 "--no-progress"]) == 4
    line = _one_line(capsys.readouterr().err)
    assert "cannot write the weights cache there" in line and str(blocker) in line
    assert blocker.read_text() == "not a folder"


# ==================================================================================================
# Detection eval: 6 (streamed, not the whole split in memory), 14 (skipped files reported),
# 20 (one eval per --out at a time)
# ==================================================================================================

@pytest.fixture
def det_weights(tmp_path):
    return _detector_weights(tmp_path / "det.safetensors")


def test_detection_eval_streams_batch_by_batch(tmp_path, det_weights, monkeypatch, capsys):
    import googlenet.tasks.detect.evaluation as det
    from googlenet.data.detection import FileDetectionDataset

    data = yolo(tmp_path / "y", n=6, splits=("train", "test"))
    loads, seen = [], []
    real_load, real_run = FileDetectionDataset.load, det.run_detector
    monkeypatch.setattr(FileDetectionDataset, "load", lambda self, i: loads.append(i) or real_load(self, i))

    def run(model, images, *a, **kw):
        seen.append((len(loads), len(images)))
        return real_run(model, images, *a, **kw)

    monkeypatch.setattr(det, "run_detector", run)
    assert main(["eval", str(det_weights), "--data", str(data), "--batch-size", "2"]) == 0
    # the k-th forward pass has decoded 2k images at most: one batch in memory, not the split
    assert seen == [(2, 2), (4, 2), (6, 2)]
    assert "6 images" in capsys.readouterr().out


def test_detection_eval_reports_what_it_skipped(tmp_path, det_weights, capsys):
    data = yolo(tmp_path / "y", n=4, splits=("train", "test"))
    (data / "labels" / "test" / "1.txt").write_text("7 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")
    img = data / "images" / "test" / "2.png"
    img.write_bytes(img.read_bytes()[:-60])  # truncated: found only when decoded
    out = tmp_path / "ev"
    assert main(["eval", str(det_weights), "--data", str(data), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 file(s) or annotation(s) skipped" in text
    assert f"{data / 'labels' / 'test' / '1.txt'}: line 1: class 7 is not one of the 2" in text
    assert f"{img}: corrupt or truncated image" in text
    doc = json.loads((out / "results.json").read_text())
    assert [Path(s["file"]).name for s in doc["skipped"]] == ["1.txt", "2.png"]
    assert doc["rows"][0]["images"] == 3
    md = (out / "results.md").read_text()
    assert "Skipped (2 files or annotations, not scored)" in md and "2.png" in md
    assert main(["eval", str(det_weights), "--data", str(data), "--strict"]) == 2
    assert "1.txt: line 1: class 7" in _one_line(capsys.readouterr().err)


def test_two_evals_into_one_out_folder_do_not_mix(tmp_path, det_weights, capsys):
    data = yolo(tmp_path / "y", n=2, splits=("train", "test"))
    out = tmp_path / "ev"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode()); print('locked', flush=True)\n"
            "time.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", code, str(out / ".lock")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        assert main(["eval", str(det_weights), "--data", str(data), "--out", str(out)]) == 4
        assert f"in use by process {other.pid}" in _one_line(capsys.readouterr().err)
    finally:
        other.kill()
        other.wait()
    assert (out / "results.json").read_text() == '{"earlier": true}'
    assert main(["eval", str(det_weights), "--data", str(data), "--out", str(out)]) == 0


# ==================================================================================================
# 8. Detection predict --out never writes over an input, and gives each input its own drawing
# ==================================================================================================

def test_detection_predict_out_never_overwrites_inputs(tmp_path, det_weights, capsys):
    out = tmp_path / "out"
    inputs = [_png(out / "x.png", seed=1), _png(tmp_path / "a" / "x.jpg", seed=2),
              _png(tmp_path / "b" / "x.png", seed=3)]
    before = [p.read_bytes() for p in inputs]
    assert main(["predict", *map(str, inputs), "--weights", str(det_weights), "--json",
                 "--score-thresh", "0", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    drawn = [Path(p["drawn"]) for p in doc["predictions"]]
    assert [p.name for p in drawn] == ["x-2.png", "x-3.png", "x-4.png"]
    assert [p.read_bytes() for p in inputs] == before  # the input in --out is intact
    assert sorted(p.name for p in out.iterdir()) == ["contact-sheet.png", "x-2.png", "x-3.png",
                                                     "x-4.png", "x.png"]
    for p in drawn:  # enlarged (x11: 512 px or more on the shorter side), labels readable
        assert Image.open(p).size == (704, 528)
    # an input called contact-sheet.png in --out is not replaced by the contact sheet
    sheet_input = _png(out / "contact-sheet.png", seed=4)
    before = sheet_input.read_bytes()
    assert main(["predict", str(sheet_input), "--weights", str(det_weights), "--json",
                 "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["predictions"][0]["drawn"] == str(out / "contact-sheet-2.png")  # its drawing
    assert doc["contact_sheet"] == str(out / "contact-sheet-3.png")  # neither of those
    assert sheet_input.read_bytes() == before


# ==================================================================================================
# 18 + 20. Export arguments that cannot be honoured are refused before anything is traced
# ==================================================================================================

@pytest.fixture
def no_trace(monkeypatch):
    import googlenet.interop.export as ex

    def boom(*a, **kw):
        raise AssertionError("traced before the arguments were checked")

    for name in ("export_onnx", "export_detector_onnx", "export_program", "export_torchscript",
                 "export_precision"):
        monkeypatch.setattr(ex, name, boom)  # the command imports them from there when it runs


@pytest.mark.parametrize("which,extra,code,match", [
    ("classifier", ["--opset", "1000000"], 2, "--opset: opset 1000000: use 17 to "),
    ("detector", ["--opset", "1000000"], 2, "--opset: opset 1000000: use 11 to "),
    ("detector", ["--precision", "int8"], 2, "--precision: --precision int8: a detector exports fp32 ONNX only"),
    ("detector", ["--format", "torchscript"], 2, "--format: a detector exports to ONNX only"),
    ("classifier", ["--precision", "fp16", "--format", "torchscript"], 2,
     "--format: --precision fp16 writes onnx files, not torchscript"),
    ("detector", ["-o", "{file}/sub/model"], 4, "--out {file}/sub: {file} is a file, not a folder"),
])
def test_export_arguments_refused_up_front(tmp_path, capsys, det_weights, no_trace, which,
                                           extra, code, match):
    weights = det_weights if which == "detector" else _classifier_weights(tmp_path / "c.safetensors")
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    extra = [a.replace("{file}", str(blocker)) for a in extra]
    out = [] if "-o" in extra else ["-o", str(tmp_path / "m")]
    assert main(["export", "--weights", str(weights), *out, *extra]) == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("googlenet export: error: " + match.replace("{file}", str(blocker))), line
    assert not list(tmp_path.glob("m*")) and not list(tmp_path.glob("**/*.onnx"))
    assert blocker.read_text() == "keep"


def test_missing_calibration_images_are_named_as_such(tmp_path, capsys, monkeypatch):
    import googlenet.interop.export as ex

    monkeypatch.setattr(ex, "export_precision", lambda *a, **kw: pytest.fail("exported"))
    weights = _classifier_weights(tmp_path / "c.safetensors")
    assert main(["export", "--weights", str(weights), "--precision", "int8", "-o",
                 str(tmp_path / "m"), "--calibration-images", str(tmp_path / "nope"),
                 "--check-count", "2"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"googlenet export: error: --calibration-images {tmp_path / 'nope'}: none of the images "
        f"could be read")
