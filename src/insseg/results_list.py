"""COCO results lists as prediction records: what pycocotools' ``loadRes`` takes, detectron2 writes
(``coco_instances_results.json``), mmdetection writes (``results.segm.json``) and the COCO challenge accepts.

A results list is a JSON array of ``{"image_id", "category_id", "segmentation", "score"}`` with ``"bbox"``
(``[x, y, w, h]``) optional. ``segmentation`` is a compressed RLE (``counts`` a str or bytes), an uncompressed
RLE (``counts`` a list of runs) or polygons (a list of ``[x1, y1, x2, y2, ...]``), converted as pycocotools'
``annToRLE`` does; a missing ``bbox`` is ``toBbox`` of the mask, as ``loadRes`` does. The list names no files:
its ids are the dataset's COCO ids (:mod:`insseg.data.coco_ids`), and an image without any entry is an image
with no detection.

Refused, with one line naming the file: an empty list, an item without ``segmentation`` (a detection-only
results file is not instance segmentation), an ``image_id`` or ``category_id`` the dataset does not have.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.errors import InssegError
from insseg.io.rle import segmentation_rle
from insseg.predictions import ImagePrediction, PredictionSet, _xyxy_from_text

FORMAT = "coco results list"


@dataclass(frozen=True)
class ImageRef:
    """An image of the evaluated split as a results list refers to it: its COCO id, file name and size."""

    image_id: int
    file_name: str
    height: int
    width: int


def is_results_list_file(path: str | Path) -> bool:
    """Whether the JSON file at ``path`` is an array (a results list) rather than an object (predictions.json)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith("[")


def read_results_list(path: str | Path) -> list[dict[str, Any]]:
    """The items of a results list file; an empty list or a non-list is refused."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InssegError(f"results file {path} is not valid JSON: {e}") from None
    if not isinstance(items, list):
        raise InssegError(f"results file {path} is not a JSON array of results")
    if not items:
        raise InssegError(
            f"results file {path} is an empty list: it holds no detection at all (a model that found nothing "
            "still has nothing to score); check that the file is the one the model wrote"
        )
    return items


def results_to_predictions(
    items: Sequence[dict[str, Any]],
    source: str,
    images: Sequence[ImageRef],
    category_ids: Sequence[int],
    class_names: Sequence[str],
    known_image_ids: Collection[int] = (),
) -> PredictionSet:
    """One record per image of ``images`` (in that order; empty where the list has no entry) from ``items``.

    Labels are the dataset's: ``category_ids[k - 1]`` is label k. ``known_image_ids``: ids of the dataset
    outside ``images`` (another split), whose items are left out; any other id is refused.
    """
    label_of = {int(c): k for k, c in enumerate(category_ids, start=1)}
    position = {ref.image_id: n for n, ref in enumerate(images)}
    grouped: list[list[dict[str, Any]]] = [[] for _ in images]
    for k, item in enumerate(items):
        _check_item(item, k, source, label_of, position, known_image_ids)
        if int(item["image_id"]) in position:
            grouped[position[int(item["image_id"])]].append(item)
    names = list(class_names)
    records = [_record(ref, group, label_of, names) for ref, group in zip(images, grouped)]
    return PredictionSet(names, records, info={"format": FORMAT}, category_ids=[int(c) for c in category_ids])


def _check_item(
    item: Any,
    k: int,
    source: str,
    label_of: dict[int, int],
    position: dict[int, int],
    known_image_ids: Collection[int],
) -> None:
    where = f"results file {source}: item {k}"
    if not isinstance(item, dict):
        raise InssegError(f"{where} is not an object with image_id, category_id, segmentation and score")
    if "segmentation" not in item:
        raise InssegError(
            f"{where} (image_id {item.get('image_id')}) has no 'segmentation': this is a detection-only results "
            "file (boxes), which is not instance segmentation; give the results list with masks "
            "(detectron2: coco_instances_results.json of a mask model; mmdetection: results.segm.json)"
        )
    for key in ("image_id", "category_id", "score"):
        if key not in item:
            raise InssegError(f"{where} has no '{key}'")
    image_id, category_id = item["image_id"], item["category_id"]
    if image_id not in position and image_id not in known_image_ids:
        raise InssegError(f"{where} has image_id {image_id}, which the dataset does not have")
    if category_id not in label_of:
        raise InssegError(
            f"{where} has category_id {category_id}, which the dataset does not have (its ids: "
            f"{', '.join(str(c) for c in label_of)})"
        )


def _record(ref: ImageRef, items: list[dict[str, Any]], label_of: dict[int, int], names: list[str]) -> ImagePrediction:
    items = sorted(items, key=lambda a: -float(a["score"]))  # stable: ties keep the file's order, as COCOeval
    rles = [segmentation_rle(a["segmentation"], ref.height, ref.width) for a in items]
    xywh = np.array(
        [a["bbox"] if a.get("bbox") else mask_utils.toBbox(r).tolist() for a, r in zip(items, rles)], np.float64
    )
    return ImagePrediction(
        file_name=ref.file_name,
        height=ref.height,
        width=ref.width,
        boxes=_xyxy_from_text(xywh.reshape(-1, 4)),
        scores=np.array([a["score"] for a in items], dtype=np.float32),
        labels=np.array([label_of[int(a["category_id"])] for a in items], dtype=np.int64),
        rles=rles,
        class_names=names,
        image_id=ref.image_id,
    )
