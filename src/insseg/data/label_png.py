"""Reading label PNGs (instance and class ids) with errors that name the file. Images themselves go through
the one image loader, :func:`insseg.io.images.load_image_rgb`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from insseg.errors import DatasetError


def read_index_png(path: Path) -> np.ndarray:
    """The raw indices of a label PNG (palette or grayscale), uint8 [H, W]; never converted to RGB."""
    arr = read_id_png(path)
    if arr.max(initial=0) > 255:
        raise DatasetError(f"mask {path} has ids above 255; expected 8-bit instance ids")
    return arr.astype(np.uint8)


def read_id_png(path: Path) -> np.ndarray:
    """The raw ids of a label PNG of any depth (8 or 16 bit, palette or grayscale: Cityscapes' instanceIds
    hold class id x 1000 + k), int32 [H, W]."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(
                    f"mask {path} is a {im.mode} image; expected a palette or grayscale PNG of instance ids"
                )
            arr = np.asarray(im)
    except DatasetError:
        raise
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from None
    return arr.astype(np.int32)
