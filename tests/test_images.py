"""load_image_rgb on every image kind predict.py accepts, and expand_inputs' three input forms.

Every image is generated here with PIL (or OpenCV for the 16-bit RGB PNG PIL cannot write)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from insseg.errors import ConfigError, ImageLoadError
from insseg.io import expand_inputs, input_root, load_image_rgb

RED, GREEN, BLUE, WHITE = (230, 20, 20), (20, 200, 20), (20, 20, 230), (250, 250, 250)


def quadrants(h: int = 48, w: int = 80) -> np.ndarray:
    """An asymmetric pattern: every rotation and flip of it differs (red top-left, green top-right, ...)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = RED
    a[: h // 2, w // 2 :] = GREEN
    a[h // 2 :, : w // 2] = BLUE
    a[h // 2 :, w // 2 :] = WHITE
    return a


def close(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (JPEG is lossy)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def check_rgb(arr: np.ndarray, h: int, w: int) -> None:
    assert arr.dtype == np.uint8 and arr.shape == (h, w, 3) and arr.flags.c_contiguous


def test_rgb_png_is_exact_and_jpeg_close(tmp_path: Path) -> None:
    a = quadrants()
    Image.fromarray(a).save(tmp_path / "x.png")
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    png = load_image_rgb(tmp_path / "x.png")
    check_rgb(png, 48, 80)
    assert np.array_equal(png, a)
    assert png.flags.writeable
    jpg = load_image_rgb(str(tmp_path / "x.jpg"))
    check_rgb(jpg, 48, 80)
    assert close(jpg, a) < 6


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    gray = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image_rgb(tmp_path / "g16.png")
    check_rgb(out, 4, 4)
    assert out[0, :, 0].tolist() == [0, 64, 128, 255]  # Pillow's own convert("RGB") would give 0, 255, 255, 255
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_16bit_rgb_png(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    bgr = np.zeros((6, 10, 3), np.uint16)
    bgr[...] = (0, 257 * 10, 65535)  # OpenCV writes BGR: R=65535, G=2570, B=0
    assert cv2.imwrite(str(tmp_path / "rgb16.png"), bgr)
    out = load_image_rgb(tmp_path / "rgb16.png")
    check_rgb(out, 6, 10)
    assert out[0, 0].tolist() == [255, 10, 0]


def test_grayscale_and_one_bit(tmp_path: Path) -> None:
    g = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    out = load_image_rgb(tmp_path / "g.png")
    check_rgb(out, 6, 10)
    assert all(np.array_equal(out[..., c], g) for c in range(3))
    Image.fromarray(g > 100).save(tmp_path / "b.png")
    bits = load_image_rgb(tmp_path / "b.png")
    assert set(np.unique(bits).tolist()) == {0, 255}


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_not_composited(tmp_path: Path, mode: str) -> None:
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[...] = (10, 20, 30, 0)  # fully transparent: the colour must survive unchanged
    im = Image.fromarray(rgba, mode="RGBA").convert(mode)
    im.save(tmp_path / "a.png")
    out = load_image_rgb(tmp_path / "a.png")
    check_rgb(out, 5, 7)
    expected = [10, 20, 30] if mode == "RGBA" else [im.getpixel((0, 0))[0]] * 3
    assert out[2, 3].tolist() == expected


@pytest.mark.parametrize("transparency", [False, True])
def test_palette_png(tmp_path: Path, transparency: bool) -> None:
    p = Image.new("P", (6, 4))
    p.putpalette([0, 0, 0, 200, 10, 20, 5, 150, 250] + [0] * (768 - 9))
    p.putpixel((1, 1), 1)
    p.putpixel((2, 1), 2)
    if transparency:
        p.info["transparency"] = 1
    p.save(tmp_path / "p.png")
    out = load_image_rgb(tmp_path / "p.png")
    check_rgb(out, 4, 6)
    assert out[1, 1].tolist() == [200, 10, 20] and out[1, 2].tolist() == [5, 150, 250]
    assert out[0, 0].tolist() == [0, 0, 0]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    im = Image.new("CMYK", (32, 16), (255, 0, 0, 0))  # cyan
    im.paste((0, 255, 0, 0), (16, 0, 32, 16))  # magenta right half
    im.save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    out = load_image_rgb(tmp_path / "cmyk.jpg")
    check_rgb(out, 16, 32)
    assert close(out[:, :12], np.array([0, 255, 255], np.uint8)) < 12
    assert close(out[:, 20:], np.array([255, 0, 255], np.uint8)) < 12


# EXIF orientation -> how a viewer shows the stored pixels.
ORIENTATIONS = {
    3: lambda a: np.rot90(a, 2),  # rotated 180
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise to display (portrait photo from a phone)
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
    2: lambda a: a[:, ::-1],  # mirrored
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    stored = quadrants(48, 80)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "r.jpg", quality=95, exif=exif.tobytes())
    expected = ORIENTATIONS[orientation](stored)
    for source in (tmp_path / "r.jpg", Image.open(tmp_path / "r.jpg")):
        out = load_image_rgb(source)
        check_rgb(out, *expected.shape[:2])
        assert close(out, expected) < 6
        # ... and it is not any other orientation of the pattern.
        for other, fn in ORIENTATIONS.items():
            candidate = fn(stored)
            if other != orientation and candidate.shape == out.shape:
                assert close(out, candidate) > 40


def test_tiny_image(tmp_path: Path) -> None:
    a = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "t.png")
    assert np.array_equal(load_image_rgb(tmp_path / "t.png"), a)


def test_large_6000x4000_jpeg(tmp_path: Path) -> None:
    im = Image.new("RGB", (6000, 4000), (200, 30, 40))
    im.paste((10, 220, 30), (5000, 3000, 6000, 4000))
    im.save(tmp_path / "big.jpg", quality=70)
    out = load_image_rgb(tmp_path / "big.jpg")
    check_rgb(out, 4000, 6000)
    assert close(out[100:110, 100:110], np.array([200, 30, 40], np.uint8)) < 8
    assert close(out[3900:3910, 5900:5910], np.array([10, 220, 30], np.uint8)) < 8


def test_pil_and_array_inputs() -> None:
    a = quadrants(10, 12)
    assert load_image_rgb(a) is a  # already uint8 HxWx3 and contiguous: no copy
    assert np.array_equal(load_image_rgb(Image.fromarray(a)), a)
    assert np.array_equal(load_image_rgb(np.dstack([a, np.zeros((10, 12), np.uint8)])), a)
    gray = a[..., 0].copy()
    assert np.array_equal(load_image_rgb(gray), np.dstack([gray] * 3))
    with pytest.raises(ImageLoadError, match="uint8"):
        load_image_rgb(a.astype(np.float32) / 255)
    with pytest.raises(ImageLoadError, match="shape"):
        load_image_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError):
        load_image_rgb(42)  # type: ignore[arg-type]


def test_unreadable_files_name_path_and_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("not an image")
    buf = io.BytesIO()
    Image.fromarray(quadrants(64, 64)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    cases = {
        tmp_path / "notes.jpg": "not an image",
        tmp_path / "cut.jpg": "truncated",
        tmp_path / "missing.png": "does not exist",
        tmp_path: "folder",
    }
    for path, reason in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image_rgb(path)
        assert info.value.path == str(path) and reason in info.value.reason.lower()
        assert str(path) in str(info.value)


def test_expand_inputs_file_folder_glob(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPG", "c.jpeg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"")
    # A file is taken as given, whatever its suffix.
    assert expand_inputs(str(tmp_path / "notes.txt")) == [tmp_path / "notes.txt"]
    # A folder: its images (by suffix, case-insensitive), sorted, not recursive.
    assert [p.name for p in expand_inputs(str(tmp_path))] == ["a.JPG", "b.png", "c.jpeg"]
    # A glob: every matching file, sorted; ** recurses.
    assert [p.name for p in expand_inputs(str(tmp_path / "*"))] == ["a.JPG", "b.png", "c.jpeg", "notes.txt"]
    assert [p.name for p in expand_inputs(str(tmp_path / "**" / "*.png"))] == ["b.png", "d.png"]
    assert input_root(str(tmp_path / "**" / "*.png")) == tmp_path
    assert input_root(str(tmp_path)) == tmp_path
    assert input_root(str(tmp_path / "b.png")) == tmp_path


def test_expand_inputs_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no input given"):
        expand_inputs(None)
    with pytest.raises(ConfigError, match="does not exist"):
        expand_inputs(str(tmp_path / "nope.jpg"))
    with pytest.raises(ConfigError, match="holds no images"):
        expand_inputs(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="matches no files"):
        expand_inputs(str(tmp_path / "*.png"))
