"""COCO run-length encoding of bool masks (what predictions.json, exported datasets and COCO AP store)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO RLEs (counts as str) for bool masks [N, H, W]."""
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.moveaxis(masks.astype(np.uint8), 0, -1)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles
