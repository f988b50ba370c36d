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


def segmentation_rle(seg: Any, height: int, width: int) -> dict[str, Any]:
    """A compressed RLE (``counts`` as str, ``size`` as ints) of a COCO segmentation, as pycocotools' ``annToRLE``:
    a compressed RLE as it is, an uncompressed RLE at its own size, polygons merged at the image's size."""
    if isinstance(seg, dict) and isinstance(seg.get("counts"), (str, bytes)):
        counts = seg["counts"]
        return {
            "size": [int(s) for s in seg["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
        }
    if isinstance(seg, dict):  # uncompressed RLE: runs at its own size
        rle = mask_utils.frPyObjects(seg, *[int(s) for s in seg["size"]])
    else:  # polygons at the image's size, merged into one mask
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
