"""Images of any common kind as uint8 RGB arrays, and the list of files behind ``input=``.

:func:`load_image_rgb` turns JPEG, PNG (8- and 16-bit), grayscale, RGBA/LA (alpha dropped, not composited),
palette, CMYK and other Pillow-readable files, PIL images and numpy arrays into one ``uint8 [H, W, 3]`` RGB
array, with the EXIF orientation applied as a photo viewer would. Anything unreadable raises
:class:`~insseg.errors.ImageLoadError` naming the file and the reason.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from insseg.errors import ConfigError, ImageLoadError

# Suffixes a folder input picks up (case-insensitive). A glob or an explicit file is taken as given.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
)

ImageLike = str | os.PathLike | Image.Image | np.ndarray

_GLOB_CHARS = set("*?[")


def load_image_rgb(image: ImageLike) -> np.ndarray:
    """A path, PIL image or numpy array as a C-contiguous ``uint8 [H, W, 3]`` RGB array (a new, writable one,
    except for an array that already is uint8 [H, W, 3] and C-contiguous, which is returned as is).

    Paths and PIL images get their EXIF orientation applied. Arrays must be uint8 ``[H, W]``, ``[H, W, 3]``
    (taken as RGB) or ``[H, W, 4]`` (alpha dropped).
    """
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        name = getattr(image, "filename", "") or "<PIL image>"
        try:
            return _from_pil(image)
        except (OSError, ValueError) as e:
            raise ImageLoadError(name, _reason(e)) from None
    if isinstance(image, (str, os.PathLike)):
        return _from_path(Path(image))
    raise TypeError(f"expected a path, a PIL image or a numpy array, got {type(image).__name__}")


def _from_path(path: Path) -> np.ndarray:
    if not path.exists():
        raise ImageLoadError(path, "the file does not exist")
    if path.is_dir():
        raise ImageLoadError(path, "it is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            # Large photos trip Pillow's decompression-bomb warning long before its hard limit (2x).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return _from_pil(im)
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not an image, or an image format Pillow cannot identify") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(path, f"too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated, corrupt, unsupported mode
        raise ImageLoadError(path, _reason(e)) from None
    except MemoryError:
        raise ImageLoadError(path, "not enough memory to decode it") from None


# EXIF orientations 5-8 turn the picture a quarter: its displayed width is the stored height.
_QUARTER_TURNS = (5, 6, 7, 8)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as :func:`load_image_rgb` returns the image (EXIF orientation applied), read from the
    file header without decoding pixels."""
    h, w, orientation = _header(Path(path))
    return (w, h) if orientation in _QUARTER_TURNS else (h, w)


def stored_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as stored in the file, before any EXIF orientation."""
    h, w, _ = _header(Path(path))
    return h, w


def _header(path: Path) -> tuple[int, int, int]:
    try:
        with Image.open(path) as im:
            w, h = im.size
            try:
                orientation = int(im.getexif().get(0x0112, 1))
            except Exception:  # malformed EXIF: read as the loader does (unrotated)
                orientation = 1
            return h, w, orientation
    except FileNotFoundError:
        raise ImageLoadError(path, "the file does not exist") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise ImageLoadError(path, _reason(e)) from None


def _reason(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def _from_pil(im: Image.Image) -> np.ndarray:
    im = _apply_exif_orientation(im)
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (PNG/TIFF). Pillow's convert("RGB") clips at 255, so scale the range explicitly.
        arr = np.asarray(im).astype(np.float32)
        return _gray_to_rgb(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        scale = 255.0 if arr.size and float(arr.max()) <= 1.0 else 1.0
        return _gray_to_rgb(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8))
    if mode == "L":
        return _gray_to_rgb(np.asarray(im))
    if mode == "RGB":
        return np.array(im)  # a writable copy (np.asarray of a PIL image is read-only)
    if mode == "P":
        # Palette: the palette's colours; a transparency entry is ignored like any alpha channel.
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
    if im.mode in ("RGBA", "RGBa", "RGBX", "LA", "La", "PA"):
        bands = im.getbands()
        if bands[0] == "L":
            return _gray_to_rgb(np.asarray(im.getchannel("L")))
        return np.ascontiguousarray(np.asarray(im)[..., :3])
    # CMYK (Adobe-inverted JPEGs are handled by the decoder), YCbCr, LAB, HSV, 1-bit, ...
    return np.array(im.convert("RGB"))


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception:  # malformed EXIF must not make a readable image unreadable
        return im


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageLoadError("<array>", f"expected a uint8 array with values 0..255, got dtype {arr.dtype}")
    if arr.ndim == 2:
        out = _gray_to_rgb(arr)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        out = arr
    elif arr.ndim == 3 and arr.shape[2] == 4:
        out = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        out = _gray_to_rgb(arr[..., 0])
    else:
        raise ImageLoadError("<array>", f"expected shape [H, W], [H, W, 3] or [H, W, 4], got {list(arr.shape)}")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise ImageLoadError("<array>", f"the image is empty (shape {list(arr.shape)})")
    return np.ascontiguousarray(out)


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def input_root(input: str) -> Path:
    """The folder that input file names are taken relative to: a folder itself, a file's parent, or the
    fixed part of a glob (``photos/2024/*.jpg`` -> ``photos/2024``)."""
    path = Path(os.path.expanduser(input))
    if is_glob(input):
        fixed = []
        for part in path.parts:
            if is_glob(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")
    return path if path.is_dir() else path.parent


def expand_inputs(input: str | os.PathLike | None) -> list[Path]:
    """The image files behind ``input``: one file; a folder's images (sorted; files whose suffix is not in
    :data:`IMAGE_EXTENSIONS` are skipped; not recursive); or every file a glob matches (sorted; ``**``
    recurses). Raises :class:`~insseg.errors.ConfigError` when nothing matches."""
    if input is None or str(input).strip() == "":
        raise ConfigError(
            "no input given: pass input=<image file | folder | glob>, e.g. input=photos/ or input='photos/*.jpg'"
        )
    text = os.path.expanduser(str(input))
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ConfigError(
                f"input folder {path} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}; "
                "sub-folders are not searched: use a glob such as input='" + str(path / "**" / "*.jpg") + "')"
            )
        return files
    if is_glob(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not files:
            raise ConfigError(f"input glob '{text}' matches no files")
        return files
    raise ConfigError(f"input {path} does not exist (expected an image file, a folder or a glob such as '*.jpg')")
