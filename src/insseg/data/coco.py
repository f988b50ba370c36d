"""COCO-format instance data: the JSON's index, its problems, and the reader.

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

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.data.annotations import RleAnnotation
from insseg.data.problems import ERROR, WARNING, Problem, log_warnings, raise_on_errors
from insseg.errors import DatasetError, ImageLoadError
from insseg.io.images import image_size, load_image_rgb, stored_size

TOP_LEVEL_KEYS = ("images", "annotations", "categories")
_NUMBER_TYPES = frozenset((int, float))  # by exact type: bool is not a number here


def load_coco_json(path: Path) -> dict[str, Any]:
    """The parsed file, or a :class:`DatasetError` naming the file and, for malformed JSON, line and column."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"COCO annotation file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"COCO annotation file {path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read COCO annotation file {path}: {e}") from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"COCO annotation file {path} holds a {type(data).__name__}; expected an object with keys "
            f"{', '.join(TOP_LEVEL_KEYS)}"
        )
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise DatasetError(
                f"COCO annotation file {path} has no top-level '{key}' key; a COCO instances file has "
                f"{', '.join(TOP_LEVEL_KEYS)}"
            )
        if not isinstance(data[key], list):
            raise DatasetError(
                f"COCO annotation file {path}: top-level '{key}' is a {type(data[key]).__name__}; expected a list"
            )
    return data


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
        bad = _annotation_type_problem(ann)
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
            found = _annotation_problems(ann, images[k])
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
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
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
        bad = _image_type_problem(im)
        if bad:
            report(ERROR, "bad_type", f"image {(im.get('id') if isinstance(im, dict) else im)!r:.80}: {bad}")
        elif im["id"] in position:
            report(ERROR, "duplicate_id", f"image id {im['id']} ({im['file_name']}) is used twice")
        else:
            position[im["id"]] = len(images)
            images.append(im)
    return images, position


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES


def _numbers(values: list[Any]) -> bool:
    """Every value an int or a float (checked at C speed: the file's polygons hold millions of numbers)."""
    return set(map(type, values)) <= _NUMBER_TYPES


def _image_type_problem(im: Any) -> str | None:
    if not isinstance(im, dict):
        return "an image entry must be an object"
    if not _is_int(im.get("id")):
        return "'id' must be an integer"
    if not isinstance(im.get("file_name"), str) or not im["file_name"]:
        return "'file_name' must be a non-empty string"
    for key in ("height", "width"):
        if not _is_int(im.get(key)) or im[key] <= 0:
            return f"'{key}' must be a positive integer (got {im.get(key)!r})"
    return None


def _annotation_type_problem(ann: Any) -> str | None:
    """Why ``ann`` cannot be read at all (a wrong type, an unknown segmentation form), or None."""
    if not isinstance(ann, dict):
        return f"an annotation must be an object, got {ann!r:.60}"
    for key in ("id", "image_id", "category_id"):
        if not _is_int(ann.get(key)):
            return f"'{key}' must be an integer (got {ann.get(key)!r:.40})"
    if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd"), float):
        return f"'iscrowd' must be 0 or 1 (got {ann.get('iscrowd')!r:.40})"
    if "area" in ann and not _is_number(ann["area"]):
        return f"'area' must be a number (got {ann['area']!r:.40})"
    bbox = ann.get("bbox")
    if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and _numbers(bbox)):
        return f"'bbox' must be a list of 4 numbers [x, y, width, height] (got {bbox!r:.60})"
    return _segmentation_problem(ann.get("segmentation"))


def _segmentation_problem(seg: Any) -> str | None:
    if isinstance(seg, list):
        if not all(isinstance(part, list) and _numbers(part) for part in seg):
            return (
                "unknown segmentation form: a polygon segmentation must be a list of parts, each a list of numbers "
                f"[x1, y1, x2, y2, ...] (got {seg!r:.60})"
            )
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        size, counts = seg["size"], seg["counts"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            return f"an RLE segmentation's 'size' must be [height, width] (got {size!r:.40})"
        if isinstance(counts, str) or (isinstance(counts, list) and set(map(type, counts)) <= {int}):
            return None
        return f"an RLE segmentation's 'counts' must be a string or a list of integers (got {counts!r:.40})"
    return (
        "unknown segmentation form: expected polygons (a list of [x1, y1, ...] lists) or an RLE "
        f"({{'size': [h, w], 'counts': ...}}), got {seg!r:.60}"
    )


def _annotation_problems(ann: dict[str, Any], im: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Problems of a well-typed annotation against its image: (severity, kind, message)."""
    out: list[tuple[str, str, str]] = []
    h, w = im["height"], im["width"]
    seg = ann["segmentation"]
    if isinstance(seg, list):
        short = [len(p) // 2 for p in seg if len(p) < 6]
        if not seg:
            out.append((WARNING, "few_points", "an empty polygon list; the instance is skipped"))
        elif short:
            out.append(
                (
                    WARNING,
                    "few_points",
                    f"{len(short)} polygon part(s) with fewer than 3 points "
                    f"({', '.join(map(str, short))} point(s)); they draw nothing and are skipped",
                )
            )
    else:
        if list(seg["size"]) != [h, w]:
            out.append(
                (ERROR, "rle_size", f"RLE size {seg['size']} differs from its image's [height, width] [{h}, {w}]")
            )
        elif isinstance(seg["counts"], list) and sum(seg["counts"]) != h * w:
            out.append(
                (
                    ERROR,
                    "rle_counts",
                    f"uncompressed RLE counts sum to {sum(seg['counts'])}, not height x width = {h * w}",
                )
            )
    for key in ("area", "bbox"):
        if key not in ann:
            out.append((WARNING, f"missing_{key}", f"no '{key}'; computed from the mask (COCOeval needs it)"))
    bbox = ann.get("bbox")
    if bbox is not None and (bbox[0] < 0 or bbox[1] < 0 or bbox[0] + bbox[2] > w + 0.5 or bbox[1] + bbox[3] > h + 0.5):
        out.append((WARNING, "box_outside", f"bbox {bbox} reaches outside the {w}x{h} image"))
    if bbox is not None and (bbox[2] <= 0 or bbox[3] <= 0):
        out.append((WARNING, "empty_box", f"bbox {bbox} has no area"))
    return out


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
