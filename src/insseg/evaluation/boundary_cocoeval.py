"""Boundary AP: the COCOeval of either backend with the official API's ``iouType="boundary"`` IoU.

The evaluator is the backend's own segm COCOeval (so ``params.iouType`` reads ``"segm"``: pycocotools knows no
other mask type) whose ``computeIoU`` takes, for each non-crowd ground truth, the smaller of the mask IoU and
the Boundary IoU, as the official ``computeBoundaryIoU`` does; crowd columns keep the mask IoU. Each
annotation's boundary is computed once, from its RLE and within its bounding box, for all the annotations of an
image that need one at once (:func:`insseg.evaluation.boundary_rle.boundary_boxes`); the boundary IoUs are the
exact pixel counts of those boxes, the same numbers as the official API's ``mask.iou`` of boundary RLEs. Only
the last images' boundaries are kept, so memory stays flat over a dataset.

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
from pycocotools import mask as mask_utils

from insseg.evaluation.boundary_rle import (
    DEFAULT_DILATION_RATIO,
    BoundaryBox,
    boundary_boxes,
    boundary_dilation,
    box_ious,
)
from insseg.evaluation.coco_backend import DEFAULT_BACKEND, coco_classes

_IMAGES_KEPT = 64  # boundaries kept for this many images at most


class _BoundaryIoU:
    """Mixin over a backend's COCOeval: ``computeIoU`` = min(mask IoU, Boundary IoU) for non-crowd ground
    truth (the official ``computeBoundaryIoU``)."""

    dilation_ratio: float
    iou_type = "boundary"

    def _boundary_init(self, dilation_ratio: float) -> None:
        self.dilation_ratio = float(dilation_ratio)
        # image id -> {id(annotation): its boundary}, the images computeIoU met last (it goes image by image)
        self._boundaries: OrderedDict[int, dict[int, BoundaryBox]] = OrderedDict()
        self._lock = threading.Lock()  # faster-coco-eval runs computeIoU in threads

    def _image_groups(self, img_id: int) -> tuple[list[tuple[list[dict], list[dict]]], str]:
        """(ground truth, detections) of each category of one image, as ``_pair`` gives them."""
        p = self.params  # type: ignore[attr-defined]
        if not p.useCats:
            gt, dt, key = self._pair(img_id, -1)
            return [(gt, dt)], key
        if hasattr(self, "gt_dataset"):  # one call for all categories
            gts = self.gt_dataset.get_instances([img_id], p.catIds, True)[0]
            dts = self.dt_dataset.get_instances([img_id], p.catIds, True)[0]  # type: ignore[attr-defined]
            key = "rle"
        else:
            gts = [self._gts.get((img_id, c), []) for c in p.catIds]  # type: ignore[attr-defined]
            dts = [self._dts.get((img_id, c), []) for c in p.catIds]  # type: ignore[attr-defined]
            key = "segmentation"
        groups = []
        for gt, dt in zip(gts, dts):
            if gt and dt:
                order = np.argsort([-d["score"] for d in dt], kind="mergesort")
                groups.append((list(gt), [dt[i] for i in order[: p.maxDets[-1]]]))
        return groups, key

    def _prepare_image(self, img_id: int) -> None:
        """Boundaries of every annotation of the image that may meet one at mask IoU >= the lowest threshold,
        in one batch: the pair's boxes overlap and min(area) / max(area) >= that threshold (IoU is at most
        that ratio). computeIoU computes any other boundary it needs on its own."""
        with self._lock:
            if img_id in self._boundaries:
                self._boundaries.move_to_end(img_id)
                return
            self._boundaries[img_id] = {}
            while len(self._boundaries) > _IMAGES_KEPT:  # memory stays flat over a dataset
                self._boundaries.popitem(last=False)
            floor = min(self.params.iouThrs)  # type: ignore[attr-defined]
            groups, key = self._image_groups(img_id)
            todo: list[dict] = []
            for gt, dt in groups:
                gt = [g for g in gt if not int(g.get("iscrowd", 0))]
                if gt:
                    rows, cols = _candidates([d[key] for d in dt], [g[key] for g in gt], floor)
                    todo += [dt[i] for i in rows] + [gt[j] for j in cols]
            self._boundaries_of(img_id, todo, key)

    def _pair(self, img_id: int, cat_id: int) -> tuple[list[dict], list[dict], str]:
        """Ground truth and detections of one (image, category) in the order of the backend's IoU matrix, and
        the annotation key holding the RLE."""
        p = self.params  # type: ignore[attr-defined]
        if hasattr(self, "gt_dataset"):  # faster-coco-eval
            cats = [cat_id] if p.useCats else p.catIds
            gt = self.gt_dataset.get_instances([img_id], cats, bool(p.useCats))[0][0]
            dt = self.dt_dataset.get_instances([img_id], cats, bool(p.useCats))[0][0]  # type: ignore[attr-defined]
            key = "rle"
        else:
            if p.useCats:
                gt, dt = self._gts[img_id, cat_id], self._dts[img_id, cat_id]  # type: ignore[attr-defined]
            else:
                gt = [g for c in p.catIds for g in self._gts[img_id, c]]  # type: ignore[attr-defined]
                dt = [d for c in p.catIds for d in self._dts[img_id, c]]  # type: ignore[attr-defined]
            key = "segmentation"
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        return list(gt), [dt[i] for i in order[: p.maxDets[-1]]], key

    def _boundaries_of(self, img_id: int, anns: list[dict], key: str) -> list[BoundaryBox]:
        known = self._boundaries.get(img_id)
        if known is None:  # dropped already (threads far apart): computed again
            known = {}
        todo = list({id(a): a for a in anns if id(a) not in known}.values())
        if todo:  # all of one image
            h, w = (int(v) for v in todo[0][key]["size"])
            dilation = boundary_dilation(h, w, self.dilation_ratio)
            for ann, found in zip(todo, boundary_boxes([a[key] for a in todo], dilation)):
                known[id(ann)] = found
        return [known[id(a)] for a in anns]

    def computeIoU(self, imgId: int, catId: int) -> Any:  # noqa: N802, N803 (COCOeval's names)
        ious = super().computeIoU(imgId, catId)  # type: ignore[misc]
        if len(ious) == 0:
            return ious
        self._prepare_image(imgId)
        gt, dt, key = self._pair(imgId, catId)
        ious = np.array(ious, np.float64)
        crowd = np.array([bool(int(g.get("iscrowd", 0))) for g in gt])
        # Only pairs that can still match need the boundary (module docstring).
        live = (ious >= min(self.params.iouThrs)) & ~crowd[None, :]  # type: ignore[attr-defined]
        rows, cols = np.flatnonzero(live.any(axis=1)), np.flatnonzero(live.any(axis=0))
        if not rows.size:
            return ious
        g_b = self._boundaries_of(imgId, [gt[j] for j in cols], key)
        d_b = self._boundaries_of(imgId, [dt[i] for i in rows], key)
        b_ious = box_ious(d_b, g_b)
        block = np.ix_(rows, cols)
        ious[block] = np.minimum(ious[block], b_ious)
        return ious


def _candidates(dt: list[dict], gt: list[dict], floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Detections and ground truth (RLEs) of the pairs that can reach mask IoU ``floor``: IoU is at most
    min(box intersection, smaller area) / larger area (each mask lies in its box)."""
    da, ga = mask_utils.area(dt).astype(np.float64), mask_utils.area(gt).astype(np.float64)
    db, gb = mask_utils.toBbox(dt), mask_utils.toBbox(gt)
    inter = np.ones((len(dt), len(gt)))
    for a in (0, 1):  # the boxes' overlap along x, then y
        lo = np.maximum(db[:, None, a], gb[None, :, a])
        hi = np.minimum(db[:, None, a] + db[:, None, a + 2], gb[None, :, a] + gb[None, :, a + 2])
        inter *= np.maximum(hi - lo, 0)
    bound = np.minimum(inter, np.minimum(da[:, None], ga[None])) / np.maximum(np.maximum(da[:, None], ga[None]), 1)
    meet = bound >= floor * (1 - 1e-9)
    return np.flatnonzero(meet.any(axis=1)), np.flatnonzero(meet.any(axis=0))


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
