"""A small hand-made COCO-format dataset with every form real files hold, and helpers to write such files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

H, W = 40, 60


def rect_mask(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    """bool mask of columns x0..x1-1 and rows y0..y1-1."""
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def rle_str(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}


def rle_list(mask: np.ndarray) -> dict[str, Any]:
    flat = mask.astype(np.uint8).ravel(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": [int(c) for c in counts]}


def polygon_of(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A rectangle polygon whose pycocotools rasterisation is columns x0..x1-1, rows y0..y1-1 (pycocotools
    fills pixel centres inside the outline drawn through pixel corners shifted by half a pixel)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write_image(path: Path, h: int = H, w: int = W, exif_orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if exif_orientation is None:
        im.save(path)
        return
    exif = Image.Exif()
    exif[0x0112] = exif_orientation
    im.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)  # stored sideways; upright is h x w


def every_form_dataset(root: Path) -> dict[str, Any]:
    """root/annotations/instances_val2017.json + root/val2017/: 4 images (one a negative, one in a sub-folder,
    one an EXIF-rotated JPEG), categories 5 and 12, every segmentation form, a crowd region, a degenerate
    polygon. Returns the JSON written."""
    images = [
        {"id": 42, "file_name": "a.png", "height": H, "width": W},
        {"id": 7, "file_name": "sub/dir/b.png", "height": H, "width": W},
        {"id": 1000, "file_name": "neg.png", "height": H, "width": W},
        {"id": 3, "file_name": "photo.jpg", "height": H, "width": W},
    ]
    for im in images:
        write_image(
            root / "val2017" / im["file_name"], exif_orientation=6 if im["file_name"].endswith(".jpg") else None
        )
    anns = [
        # a.png: a one-part polygon (cat 5), a two-part polygon (cat 12), an overlapping compressed RLE (cat 5)
        {"id": 901, "image_id": 42, "category_id": 5, "segmentation": [polygon_of(2, 2, 12, 10)], "iscrowd": 0},
        {
            "id": 17,
            "image_id": 42,
            "category_id": 12,
            "segmentation": [polygon_of(20, 5, 25, 15), polygon_of(30, 5, 35, 15)],
            "iscrowd": 0,
        },
        {"id": 18, "image_id": 42, "category_id": 5, "segmentation": rle_str(rect_mask(8, 6, 16, 14)), "iscrowd": 0},
        # b.png: an uncompressed RLE instance and an uncompressed RLE crowd region (cat 12)
        {"id": 5, "image_id": 7, "category_id": 12, "segmentation": rle_list(rect_mask(0, 0, 10, 10)), "iscrowd": 0},
        {"id": 6, "image_id": 7, "category_id": 12, "segmentation": rle_list(rect_mask(30, 20, 50, 35)), "iscrowd": 1},
        # b.png: a polygon of 2 points (draws nothing): skipped with a warning
        {"id": 8, "image_id": 7, "category_id": 5, "segmentation": [[1, 1, 5, 5]], "iscrowd": 0},
        # photo.jpg (EXIF): one instance
        {"id": 30, "image_id": 3, "category_id": 5, "segmentation": [polygon_of(10, 10, 20, 30)], "iscrowd": 0},
    ]
    for a in anns:
        seg = a["segmentation"]
        if isinstance(seg, list) and all(len(p) >= 6 for p in seg):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, H, W))
        elif isinstance(seg, list):
            continue  # the degenerate one: no area/bbox (computed by the reader)
        else:
            rle = mask_utils.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else seg
        a["area"] = float(mask_utils.area(rle))
        a["bbox"] = mask_utils.toBbox(rle).tolist()
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 12, "name": "dog"}, {"id": 5, "name": "person"}],
    }
    write_json(root / "annotations" / "instances_val2017.json", data)
    return data


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path
