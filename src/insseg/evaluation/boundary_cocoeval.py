"""Boundary AP: the COCOeval of either backend with the official API's ``iouType="boundary"`` IoU.

The evaluator is the backend's own segm COCOeval (so ``params.iouType`` reads ``"segm"``: pycocotools knows no
other mask type) whose ``computeIoU`` takes, for each non-crowd ground truth, the smaller of the mask IoU and
the Boundary IoU, as the official ``computeBoundaryIoU`` does; crowd columns keep the mask IoU. COCOeval asks
for the IoUs image by image; at an image's first request, the IoUs of all its categories are made at once: the
backend's own mask IoU of each category, then the boundaries of all the annotations that need one in one batch
(:func:`insseg.evaluation.boundary_rle.boundary_boxes`: from the RLE, within the bounding box), then the
boundary IoUs as exact pixel counts of those boxes (the same numbers as the official API's ``mask.iou`` of
boundary RLEs). Only the last images' IoUs are kept, so memory stays flat over a dataset.

Only where it can change a match: a pair whose mask IoU is below the lowest IoU threshold (0.5) can match at
no threshold whatever its boundary IoU (``evaluateImg`` pairs only IoUs >= the threshold), so its entry in
``ious`` keeps the mask IoU (the official stores the even lower minimum there), and a detection or ground
truth with no such pair gets no boundary at all. ``evalImgs``, ``eval`` and ``stats`` are the official
API's; on COCO-like data this skips most false positives' boundaries.

faster-coco-eval has a ``boundary`` iouType of its own; it is not used: its C++ boundary rounds the dilation
``ratio * diagonal`` down at halves where the official API rounds half to even (e.g. a 72x21 image: 1 pixel
instead of 2; 140x105: 3 instead of 4), and it decodes every mask over the whole image (slow at COCO scale).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from insseg.evaluation.boundary_rle import DEFAULT_DILATION_RATIO, boundary_boxes, boundary_dilation, box_ious
from insseg.evaluation.coco_backend import DEFAULT_BACKEND, coco_classes

_IMAGES_KEPT = 64  # IoUs kept for this many images at most


class _BoundaryIoU:
    """Mixin over a backend's COCOeval: ``computeIoU`` = min(mask IoU, Boundary IoU) for non-crowd ground
    truth (the official ``computeBoundaryIoU``)."""

    dilation_ratio: float
    iou_type = "boundary"

    def _boundary_init(self, dilation_ratio: float) -> None:
        self.dilation_ratio = float(dilation_ratio)
        # image id -> {category id: its IoUs}, the images computeIoU met last (it goes image by image)
        self._image_ious: OrderedDict[int, dict[int, Any]] = OrderedDict()
        self._lock = threading.Lock()  # faster-coco-eval runs computeIoU in threads

    def evaluate(self) -> None:
        with self._lock:
            self._image_ious.clear()  # the parameters may have changed since the last evaluate()
        super().evaluate()  # type: ignore[misc]

    def computeIoU(self, imgId: int, catId: int) -> Any:  # noqa: N802, N803 (COCOeval's names)
        found = self._image_ious.get(imgId)
        if found is None:
            found = self._prepare_image(imgId)
        ious = found.get(catId)  # None: no ground truth or no detection there
        return super().computeIoU(imgId, catId) if ious is None else ious  # type: ignore[misc]

    def _prepare_image(self, img_id: int) -> dict[int, Any]:
        """The IoUs of every category of the image with ground truth and detections (module docstring)."""
        with self._lock:
            found = self._image_ious.get(img_id)
            if found is None:
                found = self._image_ious[img_id] = self._boundary_ious(img_id)
                while len(self._image_ious) > _IMAGES_KEPT:  # memory stays flat over a dataset
                    self._image_ious.popitem(last=False)
            return found

    def _boundary_ious(self, img_id: int) -> dict[int, Any]:
        floor = min(self.params.iouThrs)  # type: ignore[attr-defined]
        groups, key = self._image_groups(img_id)
        out: dict[int, Any] = {}
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        todo: list[dict] = []  # the RLEs that need a boundary
        for cat_id, gt, dt in groups:
            ious = out[cat_id] = super().computeIoU(img_id, cat_id)  # type: ignore[misc]
            if len(ious) == 0:
                continue
            ious = out[cat_id] = np.array(ious, np.float64)
            crowd = np.array([bool(int(g.get("iscrowd", 0))) for g in gt])
            # Only pairs that can still match need the boundary (module docstring).
            live = (ious >= floor) & ~crowd[None, :]
            rows, cols = np.flatnonzero(live.any(axis=1)), np.flatnonzero(live.any(axis=0))
            if rows.size:
                blocks.append((ious, rows, cols, len(todo)))
                todo += [dt[i][key] for i in rows] + [gt[j][key] for j in cols]
        if todo:  # all of one image
            h, w = (int(v) for v in todo[0]["size"])
            boxes = boundary_boxes(todo, boundary_dilation(h, w, self.dilation_ratio))
            for ious, rows, cols, start in blocks:
                middle = start + rows.size
                block = np.ix_(rows, cols)
                ious[block] = np.minimum(ious[block], box_ious(boxes[start:middle], boxes[middle : middle + cols.size]))
        return out

    def _image_groups(self, img_id: int) -> tuple[list[tuple[int, list[dict], list[dict]]], str]:
        """(category id, ground truth, detections) of each category of the image with both, in the order of
        the backend's IoU matrix (detections by score, at most ``maxDets[-1]``), and the annotation key holding
        the RLE. Without categories, one group of id -1."""
        p = self.params  # type: ignore[attr-defined]
        cat_ids = p.catIds if p.useCats else [-1]
        if hasattr(self, "gt_dataset"):  # faster-coco-eval: one list per category, or one for all
            gts = self.gt_dataset.get_instances([img_id], p.catIds, bool(p.useCats))[0]
            dts = self.dt_dataset.get_instances([img_id], p.catIds, bool(p.useCats))[0]  # type: ignore[attr-defined]
            key = "rle"
        elif p.useCats:
            gts = [self._gts.get((img_id, c), []) for c in cat_ids]  # type: ignore[attr-defined]
            dts = [self._dts.get((img_id, c), []) for c in cat_ids]  # type: ignore[attr-defined]
            key = "segmentation"
        else:
            gts = [[g for c in p.catIds for g in self._gts.get((img_id, c), [])]]  # type: ignore[attr-defined]
            dts = [[d for c in p.catIds for d in self._dts.get((img_id, c), [])]]  # type: ignore[attr-defined]
            key = "segmentation"
        groups = []
        for cat_id, gt, dt in zip(cat_ids, gts, dts):
            if gt and dt:
                order = np.argsort([-d["score"] for d in dt], kind="mergesort")
                groups.append((cat_id, list(gt), [dt[i] for i in order[: p.maxDets[-1]]]))
        return groups, key


@functools.cache
def _boundary_class(backend: str) -> type:
    base = coco_classes(backend)[1]

    class BoundaryCOCOeval(_BoundaryIoU, base):  # type: ignore[misc, valid-type]
        """The backend's COCOeval scoring Boundary AP (insseg.evaluation.boundary_cocoeval)."""

        def __init__(self, cocoGt: Any, cocoDt: Any, dilation_ratio: float = DEFAULT_DILATION_RATIO) -> None:  # noqa: N803
            base.__init__(self, cocoGt, cocoDt, iouType="segm")  # type: ignore[misc]
            self._boundary_init(dilation_ratio)

    BoundaryCOCOeval.__qualname__ = BoundaryCOCOeval.__name__ = f"BoundaryCOCOeval_{backend}"
    return BoundaryCOCOeval


def boundary_cocoeval(
    coco_gt: Any, coco_dt: Any, dilation_ratio: float = DEFAULT_DILATION_RATIO, backend: str = DEFAULT_BACKEND
) -> Any:
    """A COCOeval of ``backend`` (``pycocotools`` | ``faster_coco_eval``) over the backend's COCO objects
    ``coco_gt`` and ``coco_dt`` whose ``evaluate()``, ``accumulate()``, ``summarize()``, ``stats``, ``eval`` and
    ``params`` give the official boundary-iou-api's Boundary AP (``iouType="boundary"``) at ``dilation_ratio``
    of each image's diagonal. Detections' area ranges use their ``area`` (CocoEvaluator: the mask's)."""
    return _boundary_class(backend)(coco_gt, coco_dt, dilation_ratio)
