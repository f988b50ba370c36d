"""A synthetic LVIS v1 set in the real layout: ``annotations/lvis_v1_{train,val}.json`` and the JPEGs in
``train2017/`` and ``val2017/``, found through each image's ``coco_url`` (no ``file_name``), as the real files are.

The scenes are the COCO generator's (:mod:`insseg.data.synthetic`: non-overlapping ellipses and rectangles as
polygons or RLEs). What LVIS adds is written too: categories with ``frequency`` r/c/f (ellipse f, rectangle c,
"tag" r: the rectangles of every fifth image, "unicorn" r: never annotated, only verified absent), per image
``neg_category_ids`` (categories verified absent: a detection of one is a false positive) and
``not_exhaustive_category_ids`` (every fourth image with objects: its first category is not exhaustively
annotated), and some validation images taken from ``train2017/`` (LVIS v1 val draws on both COCO folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from insseg.data.synthetic import (
    COCO_CATEGORIES,
    _coco_annotation,
    _coco_image,
    _save_coco_image,
    _write_coco_json,
)

LVIS_CATEGORIES = (
    {"id": 1, "name": "ellipse", "frequency": "f", "synset": "ellipse.n.01"},
    {"id": 2, "name": "rectangle", "frequency": "c", "synset": "rectangle.n.01"},
    {"id": 3, "name": "tag", "frequency": "r", "synset": "tag.n.01"},
    {"id": 4, "name": "unicorn", "frequency": "r", "synset": "unicorn.n.01"},
)
_SHAPE_CATEGORY = {COCO_CATEGORIES[0]["id"]: 1, COCO_CATEGORIES[1]["id"]: 2}
URL = "http://images.cocodataset.org"


def _lvis_annotations(i: int, anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scene's objects as LVIS annotations (no crowd regions in LVIS): shapes to categories, the rectangles
    of every fifth image to the rare "tag"."""
    out = []
    for ann in anns:
        if ann["iscrowd"]:
            continue
        category = _SHAPE_CATEGORY[ann["category_id"]]
        if category == 2 and i % 5 == 4:
            category = 3
        out.append({"category_id": category, "segmentation": ann["segmentation"], "rle": ann["rle"]})
    return out


def _image_entry(i: int, image_id: int, folder: str, hw: tuple[int, ...], anns: list[dict[str, Any]]) -> dict:
    present = sorted({a["category_id"] for a in anns})
    absent = [c["id"] for c in LVIS_CATEGORIES if c["id"] not in present]
    negatives = absent if i % 2 == 0 else [c for c in absent if c == 4]
    not_exhaustive = present[:1] if i % 4 == 1 else []
    return {
        "id": image_id,
        "height": int(hw[0]),
        "width": int(hw[1]),
        "coco_url": f"{URL}/{folder}/{image_id:012d}.jpg",
        "flickr_url": f"http://farm.example/{image_id}.jpg",
        "license": 1,
        "date_captured": "2013-11-14 16:28:13",
        "neg_category_ids": negatives,
        "not_exhaustive_category_ids": not_exhaustive,
    }


def _write_split(root: Path, split: str, scenes: list[tuple[int, np.ndarray, list]], first_id: int) -> None:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, (i, image, anns) in enumerate(scenes):
        image_id = first_id + 7 * n
        folder = "train2017" if split == "train" or n % 3 == 2 else "val2017"
        _save_coco_image(image, root / folder / f"{image_id:012d}.jpg", exif_rotated=False)
        lvis_anns = _lvis_annotations(i, anns)
        images.append(_image_entry(i, image_id, folder, image.shape[:2], lvis_anns))
        for ann in lvis_anns:
            annotations.append(_coco_annotation(len(annotations) + 1, image_id, ann))
    categories = []
    for c in LVIS_CATEGORIES:
        used = [a for a in annotations if a["category_id"] == c["id"]]
        count = len({a["image_id"] for a in used})
        categories.append({**c, "image_count": count, "instance_count": len(used), "synonyms": [c["name"]]})
    licenses = [{"id": 1, "name": "synthetic", "url": ""}]
    path = root / "annotations" / f"lvis_v1_{split}.json"
    _write_coco_json(path, "insseg synthetic LVIS v1 data", licenses, images, annotations, categories)


def generate_lvis(
    root: str | Path,
    num_images: int = 24,
    height: int = 160,
    width: int = 224,
    max_objects: int = 3,
    seed: int = 0,
    val_fraction: float = 0.34,
) -> Path:
    """Write the LVIS v1 layout at ``root`` (see the module docstring); the first image of each split has no
    objects."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    counter = [0]
    num_val = max(1, int(round(num_images * val_fraction)))
    scenes = []
    for i in range(num_images):
        image, anns = _coco_image(rng, i, i in (0, num_val), height, width, max_objects, counter)
        scenes.append((i, image, anns))
    _write_split(root, "val", scenes[:num_val], first_id=9)
    _write_split(root, "train", scenes[num_val:], first_id=100009)
    return root
