"""Validation of a COCO instances file: the top-level structure, each entry's types and segmentation form,
and each annotation against its image (RLE size, polygons too short to draw, boxes outside the image).

Problems are reported, not raised, one at a time by the indexer (``insseg.data.coco.index_coco``), so one pass
lists them all; only a file that cannot be parsed at all raises here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from insseg.data.problems import ERROR, WARNING
from insseg.errors import DatasetError

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


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES


def _numbers(values: list[Any]) -> bool:
    """Every value an int or a float (checked at C speed: the file's polygons hold millions of numbers)."""
    return set(map(type, values)) <= _NUMBER_TYPES


def image_type_problem(im: Any) -> str | None:
    if not isinstance(im, dict):
        return "an image entry must be an object"
    if not is_int(im.get("id")):
        return "'id' must be an integer"
    if not isinstance(im.get("file_name"), str) or not im["file_name"]:
        return "'file_name' must be a non-empty string"
    for key in ("height", "width"):
        if not is_int(im.get(key)) or im[key] <= 0:
            return f"'{key}' must be a positive integer (got {im.get(key)!r})"
    return None


def annotation_type_problem(ann: Any) -> str | None:
    """Why ``ann`` cannot be read at all (a wrong type, an unknown segmentation form), or None."""
    if not isinstance(ann, dict):
        return f"an annotation must be an object, got {ann!r:.60}"
    for key in ("id", "image_id", "category_id"):
        if not is_int(ann.get(key)):
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
        if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size)):
            return f"an RLE segmentation's 'size' must be [height, width] (got {size!r:.40})"
        if isinstance(counts, str) or (isinstance(counts, list) and set(map(type, counts)) <= {int}):
            return None
        return f"an RLE segmentation's 'counts' must be a string or a list of integers (got {counts!r:.40})"
    return (
        "unknown segmentation form: expected polygons (a list of [x1, y1, ...] lists) or an RLE "
        f"({{'size': [h, w], 'counts': ...}}), got {seg!r:.60}"
    )


def annotation_problems(ann: dict[str, Any], im: dict[str, Any]) -> list[tuple[str, str, str]]:
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
