"""Boundary AP: the COCOeval of either backend with the official API's ``iouType="boundary"`` IoU.

The evaluator is the backend's own segm COCOeval (so ``params.iouType`` reads ``"segm"``: pycocotools knows no
other mask type) whose ``computeIoU`` takes, for each non-crowd ground truth, the smaller of the mask IoU and
the Boundary IoU, as the official ``computeBoundaryIoU`` does; crowd columns keep the mask IoU. Each
annotation's boundary is computed once (:func:`insseg.evaluation.boundary_rle.boundary_rles`, from its RLE,
within its bounding box), only for the annotations that meet a detection of their class in their image, and
the boundary IoUs come from pycocotools' ``mask.iou`` on the boundary RLEs, as in the official API.

faster-coco-eval has a ``boundary`` iouType of its own; it is not used: its C++ boundary rounds the dilation
``ratio * diagonal`` down at halves where the official API rounds half to even (e.g. a 72x21 image: 1 pixel
instead of 2; 140x105: 3 instead of 4), and it decodes every mask over the whole image (slow at COCO scale).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.evaluation.boundary_rle import DEFAULT_DILATION_RATIO, boundary_dilation, boundary_rles
from insseg.evaluation.coco_backend import DEFAULT_BACKEND, coco_classes


class _BoundaryIoU:
    """Mixin over a backend's COCOeval: ``computeIoU`` = min(mask IoU, Boundary IoU) for non-crowd ground
    truth (the official ``computeBoundaryIoU``)."""

    dilation_ratio: float
    iou_type = "boundary"

    def _boundary_init(self, dilation_ratio: float) -> None:
        self.dilation_ratio = float(dilation_ratio)
        self._boundaries: dict[int, dict[str, Any]] = {}  # id(annotation) -> its boundary RLE

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

    def _boundaries_of(self, anns: list[dict], key: str) -> list[dict[str, Any]]:
        todo = [a for a in anns if id(a) not in self._boundaries]
        if todo:
            h, w = (int(v) for v in todo[0][key]["size"])
            for ann, rle in zip(
                todo, boundary_rles([a[key] for a in todo], boundary_dilation(h, w, self.dilation_ratio))
            ):
                self._boundaries[id(ann)] = rle
        return [self._boundaries[id(a)] for a in anns]

    def computeIoU(self, imgId: int, catId: int) -> Any:  # noqa: N802, N803 (COCOeval's names)
        ious = super().computeIoU(imgId, catId)  # type: ignore[misc]
        if len(ious) == 0:
            return ious
        gt, dt, key = self._pair(imgId, catId)
        keep = [j for j, g in enumerate(gt) if not int(g.get("iscrowd", 0))]
        if not keep:
            return ious
        g_b = self._boundaries_of([gt[j] for j in keep], key)
        d_b = self._boundaries_of(dt, key)
        b_ious = np.asarray(mask_utils.iou(d_b, g_b, [0] * len(g_b)), np.float64).reshape(len(dt), len(keep))
        ious = np.array(ious, np.float64)
        ious[:, keep] = np.minimum(ious[:, keep], b_ious)
        return ious


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
