"""COCO-format instance data: the JSON's index and the reader (the checks are in ``coco_validation``).

The file is parsed once and indexed in one pass (annotations grouped per image, categories sorted by id, every
annotation's types checked), so a 5,000-image, 50,000-instance file is ready in seconds; masks are decoded per
image, on demand, from the forms real files use: polygons (one or several parts), compressed RLE (``counts`` a
string), uncompressed RLE (``counts`` a list). Class labels are 1-based positions in the categories sorted by
id, so ids need be neither contiguous nor 1-based; the file's ids travel with the data (``category_ids``,
``image_id``) into predictions.json and COCO AP.

Crowd regions (``iscrowd: 1``) are kept apart: never trained as instances, handled by pycocotools in COCO AP and
left out by the matching metrics. Instances with nothing to draw (no polygon of 3 points, an empty mask) are
skipped with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.data.annotations import RleAnnotation
from insseg.data.coco_validation import (
    annotation_problems,
    annotation_type_problem,
    image_type_problem,
    is_int,
    load_coco_json,
)
from insseg.data.problems import ERROR, Problem, log_warnings, raise_on_errors
from insseg.errors import DatasetError, ImageLoadError
from insseg.io.images import image_size, load_image_rgb, stored_size


@dataclass
class CocoIndex:
    """images: the file's image entries (in file order); anns: each image's annotations; problems found."""

    path: Path
    images: list[dict[str, Any]]
    anns: list[list[dict[str, Any]]]
    category_ids: list[int]
    class_names: list[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def num_annotations(self) -> int:
        return sum(len(a) for a in self.anns)


def index_coco(data: dict[str, Any], path: Path) -> CocoIndex:
    """Index a parsed file in one pass, collecting every problem (an entry with a wrong type is left out)."""
    problems: list[Problem] = []
    report = _reporter(problems, str(path))
    categories = _index_categories(data["categories"], report)
    images, position = _index_images(data["images"], report)
    anns: list[list[dict[str, Any]]] = [[] for _ in images]
    seen: set[Any] = set()
    for ann in data["annotations"]:
        bad = annotation_type_problem(ann)
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        if bad:
            report(ERROR, "bad_type" if "segmentation form" not in bad else "bad_segmentation", bad, ann_id)
        elif ann_id in seen:
            report(ERROR, "duplicate_id", "annotation id is used twice", ann_id)
        elif ann["image_id"] not in position:
            report(ERROR, "unknown_image", f"image_id {ann['image_id']} is not in 'images'", ann_id)
        elif ann["category_id"] not in categories:
            report(ERROR, "unknown_category", f"category_id {ann['category_id']} is not in 'categories'", ann_id)
        else:
            k = position[ann["image_id"]]
            found = annotation_problems(ann, images[k])
            for severity, kind, message in found:
                report(severity, kind, message, ann_id)
            if all(severity != ERROR for severity, _, _ in found):  # an RLE of another size cannot be drawn
                anns[k].append(ann)
        seen.add(ann_id)
    ids = sorted(categories)
    return CocoIndex(path, images, anns, ids, [categories[i] for i in ids], problems)


def _reporter(problems: list[Problem], src: str) -> Callable[..., None]:
    def report(severity: str, kind: str, message: str, ann_id: Any = None) -> None:
        problems.append(Problem(severity, kind, src, message, ann_id))

    return report


def _index_categories(entries: list[Any], report: Callable[..., None]) -> dict[int, str]:
    categories: dict[int, str] = {}
    for c in entries:
        if not isinstance(c, dict) or not is_int(c.get("id")) or not isinstance(c.get("name"), str):
            report(ERROR, "bad_category", f"category {c!r:.80} needs an integer 'id' and a string 'name'")
        elif c["id"] in categories:
            report(ERROR, "duplicate_id", f"category id {c['id']} is used twice")
        else:
            categories[c["id"]] = c["name"]
    if not entries:
        report(ERROR, "no_categories", "the file lists no categories")
    return categories


def _index_images(entries: list[Any], report: Callable[..., None]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    images: list[dict[str, Any]] = []
    position: dict[int, int] = {}
    for im in entries:
        bad = image_type_problem(im)
        if bad:
            report(ERROR, "bad_type", f"image {(im.get('id') if isinstance(im, dict) else im)!r:.80}: {bad}")
        elif im["id"] in position:
            report(ERROR, "duplicate_id", f"image id {im['id']} ({im['file_name']}) is used twice")
        else:
            position[im["id"]] = len(images)
            images.append(im)
    return images, position


def to_rle(seg: Any, height: int, width: int) -> dict[str, Any]:
    """One compressed RLE of a well-typed segmentation; polygon parts with fewer than 3 points are dropped."""
    if isinstance(seg, list):
        parts = [p for p in seg if len(p) >= 6]
        if not parts:
            return mask_utils.encode(np.zeros((height, width, 1), dtype=np.uint8, order="F"))[0]
        return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, height, width)
    return {"size": list(seg["size"]), "counts": seg["counts"]}


def gt_entry(ann: dict[str, Any], rle: dict[str, Any]) -> dict[str, Any]:
    """The file's entry as COCO AP takes it: as it is, except that a missing area or bbox is computed from the
    mask and polygon parts of fewer than 3 points (which pycocotools misreads or fails on) are dropped."""
    entry = dict(ann)
    seg = ann["segmentation"]
    if isinstance(seg, list) and any(len(p) < 6 for p in seg):
        parts = [p for p in seg if len(p) >= 6]
        entry["segmentation"] = parts if parts else {"size": rle["size"], "counts": rle["counts"]}
    if "area" not in entry:
        entry["area"] = float(mask_utils.area(rle))
    if "bbox" not in entry:
        entry["bbox"] = mask_utils.toBbox(rle).tolist()
    entry.setdefault("iscrowd", 0)
    return entry


class CocoReader:
    """The images of one COCO instances file. ``images_dir``: the folder ``file_name`` is relative to."""

    def __init__(self, json_path: str | Path, images_dir: str | Path) -> None:
        self.json_path = Path(json_path)
        self.root = Path(images_dir)
        self.index = index_coco(self._read_json(), self.json_path)
        self.class_names: tuple[str, ...] = tuple(self.index.class_names)
        self.category_ids: tuple[int, ...] = tuple(self.index.category_ids)
        self._label_of = {cid: k for k, cid in enumerate(self.category_ids, start=1)}
        self._warned_empty = False

    def _read_json(self) -> dict[str, Any]:
        """The parsed file (a subclass for a COCO dialect, such as LVIS, completes it here before indexing)."""
        return load_coco_json(self.json_path)

    def __len__(self) -> int:
        return len(self.index.images)

    def image_entry(self, index: int) -> dict[str, Any]:
        return self.index.images[index]

    def file_name(self, index: int) -> str:
        return self.index.images[index]["file_name"]

    def image_path(self, index: int) -> Path:
        return self.root / self.file_name(index)

    def image_id(self, index: int) -> int:
        return int(self.index.images[index]["id"])

    def load_image(self, index: int) -> np.ndarray:
        return load_image_rgb(self.image_path(index))

    def annotation(self, index: int, image_hw: tuple[int, int] | None = None) -> RleAnnotation:
        """The image's instances (non-crowd, non-empty) and crowd regions, decoded to RLE now."""
        im = self.index.images[index]
        h, w = im["height"], im["width"]
        if image_hw is not None and tuple(image_hw) != (h, w):
            raise DatasetError(self._size_message(index, tuple(image_hw)))
        rles, labels, crowd, ids, entries = [], [], [], [], []
        for ann in self.index.anns[index]:
            rle = to_rle(ann["segmentation"], h, w)
            entries.append(gt_entry(ann, rle))
            if ann.get("iscrowd", 0):
                crowd.append(rle)
            elif mask_utils.area(rle) > 0:
                rles.append(rle)
                labels.append(self._label_of[ann["category_id"]])
                ids.append(ann["id"])
            elif not self._warned_empty:
                self._warned_empty = True
                from insseg.utils.logging import log

                log.warning(
                    f"{self.json_path}: annotation id {ann['id']} has an empty mask and is skipped (further "
                    "empty masks are skipped silently; `python -m insseg.data.check` lists them all)"
                )
        return RleAnnotation(
            self.file_name(index),
            h,
            w,
            rles,
            np.asarray(labels, dtype=np.int64),
            crowd,
            image_id=int(im["id"]),
            coco_entries=entries,
            annotation_ids=ids,
            category_ids=self.category_ids,
        )

    def _size_message(self, index: int, image_hw: tuple[int, ...]) -> str:
        im, path = self.index.images[index], self.image_path(index)
        message = (
            f"image {path} is {image_hw[1]}x{image_hw[0]} but {self.json_path} gives image id {im['id']} "
            f"width {im['width']} and height {im['height']}"
        )
        if tuple(stored_size(path)) == (im["height"], im["width"]):
            message += (
                f"; that is the size as stored, but the image's EXIF orientation turns it to "
                f"{image_hw[1]}x{image_hw[0]} (as every viewer and this toolkit show it): annotate the upright "
                "image and give its size, or remove the orientation tag"
            )
        return message

    def file_problems(self, indices: list[int] | None = None) -> list[Problem]:
        """Missing or unreadable images, and sizes differing from the JSON (file headers only: fast)."""
        problems = []
        for i in range(len(self)) if indices is None else indices:
            path = self.image_path(i)
            try:
                hw = image_size(path)
            except ImageLoadError as e:
                kind = "missing_image" if not path.exists() else "unreadable_image"
                problems.append(
                    Problem(
                        ERROR, kind, str(path), f"image id {self.image_id(i)} listed in {self.json_path}: {e.reason}"
                    )
                )
                continue
            im = self.index.images[i]
            if hw != (im["height"], im["width"]):
                problems.append(Problem(ERROR, "size_mismatch", str(path), self._size_message(i, hw)))
        return problems

    def verify(self, indices: list[int] | None = None) -> None:
        """The fast check: the file's structure and types, and every image present at its stated size."""
        problems = self.index.problems + self.file_problems(indices)
        raise_on_errors(problems, f"COCO data {self.json_path} (images in {self.root})")
        log_warnings(problems, str(self.json_path))
