"""Designed cases for the report tests: ground truth and predictions built from rectangles, with known answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from insseg.data.annotations import InstanceAnnotation
from insseg.predictions import ImagePrediction, encode_masks

Rect = tuple[int, int, int, int]  # y1, x1, y2, x2 (end exclusive)


def rect_mask(h: int, w: int, r: Rect) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r[0] : r[2], r[1] : r[3]] = True
    return m


def annotation(name: str, h: int, w: int, objects: Sequence[tuple[Rect, int]]) -> InstanceAnnotation:
    """Objects (rectangle, class label) painted in order as instance ids 1, 2, ..."""
    instance_map = np.zeros((h, w), np.uint8)
    for k, (r, _) in enumerate(objects, start=1):
        instance_map[rect_mask(h, w, r)] = k
    ids = np.arange(1, len(objects) + 1, dtype=np.int64)
    return InstanceAnnotation(name, h, w, instance_map, ids, np.array([c for _, c in objects], np.int64))


def prediction(
    name: str, h: int, w: int, dets: Sequence[tuple[Rect, int, float]], class_names: Sequence[str]
) -> ImagePrediction:
    """Detections (rectangle, dataset label, score); boxes are the rectangles' pixel extents."""
    dets = sorted(dets, key=lambda d: -d[2])
    masks = np.stack([rect_mask(h, w, r) for r, _, _ in dets]) if dets else np.zeros((0, h, w), bool)
    boxes = np.array([[r[1], r[0], r[3], r[2]] for r, _, _ in dets], np.float32).reshape(-1, 4)
    return ImagePrediction(
        name,
        h,
        w,
        boxes,
        np.array([s for _, _, s in dets], np.float32),
        np.array([c for _, c, _ in dets], np.int64),
        encode_masks(masks),
        class_names=list(class_names),
    )
