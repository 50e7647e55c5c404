"""Reading images: every mode and format users feed in ends up as 8-bit RGB with the right
pixel values, and every bad file becomes an ImageError that names it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, features

from googlenet.errors import UserError
from googlenet.data.imaging import IMAGE_EXTENSIONS, ImageError, list_images, load_image, to_rgb_image

RED = (255, 0, 0)
WHITE = (255, 255, 255)


def _pixels(path) -> np.ndarray:
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (8, 6)
    return np.asarray(img).astype(int)  # (6, 8, 3)


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


# -- modes and formats ----------------------------------------------------------------------------

@pytest.mark.parametrize("ext,kw,tol", [
    ("png", {}, 0), ("bmp", {}, 0), ("jpg", dict(quality=95), 3),
    ("webp", dict(lossless=True), 0),
])
def test_rgb_formats(tmp_path, ext, kw, tol):
    if ext == "webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    img = Image.new("RGB", (8, 6), (200, 100, 50))
    px = _pixels(_save(img, tmp_path / f"a.{ext}", **kw))
    assert np.abs(px - [200, 100, 50]).max() <= tol


def test_grayscale_L(tmp_path):
    px = _pixels(_save(Image.new("L", (8, 6), 77), tmp_path / "g.png"))
    assert (px == 77).all()  # replicated to the three channels


def test_grayscale_alpha_LA(tmp_path):
    img = Image.new("LA", (8, 6), (0, 255))
    img.putpixel((0, 0), (0, 0))  # fully transparent black -> the white background
    px = _pixels(_save(img, tmp_path / "la.png"))
    assert (px[0, 0] == 255).all() and (px[0, 1] == 0).all()


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (8, 6), 1)
    img.putpalette([0, 0, 0, *RED] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.info["transparency"] = 0  # palette index 0 (black) is transparent
    path = _save(img, tmp_path / "p.png", transparency=0)
    with Image.open(path) as reopened:
        assert reopened.mode == "P" and "transparency" in reopened.info
    px = _pixels(path)
    assert tuple(px[0, 0]) == WHITE  # transparent black composited on white, not black
    assert tuple(px[1, 1]) == RED


def test_rgba_composited_on_white(tmp_path):
    img = Image.new("RGBA", (8, 6), (*RED, 255))
    img.putpixel((0, 0), (*RED, 128))  # half-transparent red over white -> pink
    img.putpixel((1, 0), (0, 0, 0, 0))
    px = _pixels(_save(img, tmp_path / "rgba.png"))
    assert tuple(px[1, 1]) == RED
    assert np.abs(px[0, 0] - [255, 127, 127]).max() <= 1
    assert tuple(px[0, 1]) == WHITE


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as reopened:
        assert reopened.mode == "CMYK"
    assert np.abs(_pixels(path) - RED).max() <= 3  # no magenta, yellow, black ink: red


def test_16bit_png_scaled_not_saturated(tmp_path):
    """A 16-bit grey PNG spans 0-65535: 65535 must map to 255 and mid-grey to ~128, rather than
    everything above 255 clipping to white."""
    a = np.zeros((6, 8), dtype=np.uint16)
    a[0, :4] = [0, 1000, 32768, 65535]
    path = _save(Image.fromarray(a), tmp_path / "deep.png")
    with Image.open(path) as reopened:
        assert reopened.mode.startswith("I;16")
    px = _pixels(path)
    assert px[0, :4, 0].tolist() == [0, 4, 128, 255]
    assert (px[0, :4, 0] == px[0, :4, 2]).all()


def test_to_rgb_float_and_int_modes():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))  # "F" in [0, 1]
    assert np.asarray(to_rgb_image(f))[0, :, 0].tolist() == [0, 128, 255]
    i = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))  # "I" in 8-bit range
    assert np.asarray(to_rgb_image(i))[0, :, 0].tolist() == [0, 100, 255]


# -- bad files ------------------------------------------------------------------------------------

def _jpeg_bytes() -> bytes:
    import io

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    data = _jpeg_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=rf"^{path}: corrupt or truncated image"):
        load_image(path)


@pytest.mark.parametrize("content", [b"just some notes\n", b""], ids=["text", "empty"])
def test_not_an_image(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"^{path}: not an image file"):
        load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match=rf"^{tmp_path / 'nope.jpg'}: no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match=rf"^{tmp_path}: is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("limit", [100, 1000], ids=["over_2x_limit", "between_1x_and_2x"])
def test_decompression_bomb_refused(tmp_path, monkeypatch, limit):
    """Pillow raises above 2x MAX_IMAGE_PIXELS and only warns between 1x and 2x; both are
    refused (the image here has 64 * 24 = 1,536 pixels)."""
    path = _save(Image.new("RGB", (64, 24), RED), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError, match=rf"^{path}: refused, image is larger than Pillow's "
                                         rf"decompression-bomb limit of {limit:,} pixels"):
        load_image(path)


def test_image_error_is_a_user_error():
    assert issubclass(ImageError, UserError)  # the CLI prints it as one line, exit status 2


def test_list_images(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for name in ("b/c/z.JPG", "b/a.png", "x.webp", "notes.txt", "b/c/y.bmp", "w.jpeg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.jpg").mkdir()  # a directory with an image suffix is not an image
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["b/a.png", "b/c/y.bmp", "b/c/z.JPG", "w.jpeg", "x.webp"]
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp"} <= set(IMAGE_EXTENSIONS)
