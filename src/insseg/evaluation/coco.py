"""COCO bbox and segm AP with pycocotools (or faster-coco-eval: ``backend``), fed one image at a time.

Ground truth comes from the instance map: one annotation per instance, ``segmentation`` its mask as an RLE,
``area`` its pixel count, ``bbox`` its tight box as ``torchvision.ops.masks_to_boxes`` gives it (x2, y2 are
the last column and row indices, so ``w = x2 - x1``), ``iscrowd`` 0. VOC's void band (255) belongs to no
instance, so it is in no mask. Categories are the dataset's classes; predictions meet them by class name.

Only RLEs are stored (a few hundred bytes per mask), so memory stays flat over a dataset.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from insseg.data.annotations import InstanceAnnotation
from insseg.evaluation.coco_backend import DEFAULT_BACKEND, coco_classes
from insseg.errors import InssegError
from insseg.predictions import ImagePrediction, encode_masks, xyxy_to_xywh

IOU_TYPES = ("segm", "bbox")
# pycocotools' 12 summary numbers, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def tight_boxes_xywh(masks: np.ndarray) -> np.ndarray:
    """[N, 4] xywh boxes of bool masks [N, H, W] with masks_to_boxes' convention (w = x2 - x1)."""
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float64)
    for k, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size:
            boxes[k] = (cols[0], rows[0], cols[-1] - cols[0], rows[-1] - rows[0])
    return boxes


def _clean(value: float) -> float:
    """NaN for pycocotools' -1 (undefined); rounded to 12 decimals, which removes the ``np.spacing(1)`` that
    pycocotools adds to every precision denominator (so perfect predictions score exactly 1.0)."""
    return math.nan if value < 0 else round(float(value), 12)


class CocoEvaluator:
    """Streams images in with :meth:`add`, scores them with :meth:`summarize`.

    ``class_names``: the dataset's classes (category id k + 1 is ``class_names[k]``). ``backend``: which COCO
    implementation scores (:mod:`insseg.evaluation.coco_backend`); kept in :attr:`backend`.
    """

    def __init__(self, class_names: Sequence[str], backend: str = DEFAULT_BACKEND) -> None:
        self.class_names = list(class_names)
        self.backend = backend
        self._coco, self._cocoeval = coco_classes(backend)
        self._category_of = {name: k + 1 for k, name in enumerate(self.class_names)}
        self.images: list[dict[str, Any]] = []
        self.gt: list[dict[str, Any]] = []
        self.dt: list[dict[str, Any]] = []  # one record per detection: bbox and segm share it
        self.tables: dict[str, str] = {}
        self._evals: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.images)

    def add(
        self, annotation: InstanceAnnotation, prediction: ImagePrediction, prediction_class_names: Sequence[str]
    ) -> None:
        """Add one image: its ground truth and every prediction (no score threshold).

        ``prediction_class_names``: the name of each prediction label (label k means name k - 1); predictions
        whose name is not a dataset class are dropped.
        """
        image_id = len(self.images) + 1
        h, w = int(annotation.height), int(annotation.width)
        self.images.append({"id": image_id, "file_name": annotation.file_name, "height": h, "width": w})

        if len(annotation):
            masks = annotation.masks()
            rles = encode_masks(masks)
            areas = masks.reshape(masks.shape[0], -1).sum(1)
            boxes = tight_boxes_xywh(masks)
            del masks
            for label, rle, area, box in zip(annotation.labels.tolist(), rles, areas.tolist(), boxes.tolist()):
                self.gt.append(
                    {
                        "id": len(self.gt) + 1,
                        "image_id": image_id,
                        "category_id": int(label),
                        "segmentation": rle,
                        "area": float(area),
                        "bbox": box,
                        "iscrowd": 0,
                    }
                )

        if len(prediction):
            categories = [
                self._category_of.get(prediction_class_names[label - 1], 0) if 0 < label <= len(prediction_class_names) else 0
                for label in prediction.labels.tolist()
            ]
            keep = [k for k, c in enumerate(categories) if c > 0]
            if keep:
                pred = prediction.keep(np.array(keep, dtype=np.int64))
                rles = pred.get_rles()
                boxes = xyxy_to_xywh(pred.boxes)
                for k, (rle, box, score) in enumerate(zip(rles, boxes.tolist(), pred.scores.tolist())):
                    if list(rle["size"]) != [h, w]:
                        raise InssegError(
                            f"a predicted mask of {annotation.file_name} is {rle['size'][1]}x{rle['size'][0]} but "
                            f"the image is {w}x{h}; masks must be at the image's original size"
                        )
                    self.dt.append(
                        {
                            "image_id": image_id,
                            "category_id": categories[keep[k]],
                            "score": float(score),
                            "bbox": box,
                            "segmentation": {"size": [h, w], "counts": rle["counts"]},
                        }
                    )

    def _coco_gt(self) -> Any:
        gt = self._coco()
        gt.dataset = {
            "images": list(self.images),
            "annotations": list(self.gt),
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(self.class_names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt

    def _coco_dt(self, gt: Any, iou_type: str) -> Any:
        """The results object, built directly (``loadRes`` fails on an empty list and takes box areas)."""
        anns = []
        for k, d in enumerate(self.dt):
            ann = {"id": k + 1, "image_id": d["image_id"], "category_id": d["category_id"], "score": d["score"], "iscrowd": 0}
            if iou_type == "segm":
                ann["segmentation"] = d["segmentation"]
                ann["area"] = float(mask_utils.area(d["segmentation"]))
                ann["bbox"] = d["bbox"]
            else:
                ann["bbox"] = d["bbox"]
                ann["area"] = float(d["bbox"][2] * d["bbox"][3])
            anns.append(ann)
        dt = self._coco()
        dt.dataset = {"images": gt.dataset["images"], "annotations": anns, "categories": gt.dataset["categories"]}
        with contextlib.redirect_stdout(io.StringIO()):
            dt.createIndex()
        return dt

    def summarize(self) -> dict[str, float]:
        """``segm_AP``, ``segm_AP50``, ..., ``bbox_ARl`` (0..1; NaN where COCO leaves it undefined, e.g. no
        ground truth of that size). pycocotools' printed tables are kept in :attr:`tables`."""
        results: dict[str, float] = {}
        if not self.images:
            return {f"{t}_{s}": math.nan for t in IOU_TYPES for s in STAT_NAMES}
        gt = self._coco_gt()
        for iou_type in IOU_TYPES:
            dt = self._coco_dt(gt, iou_type)
            ev = self._cocoeval(gt, dt, iouType=iou_type)
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            self.tables[iou_type] = "\n".join(line for line in buf.getvalue().splitlines() if "Average" in line)
            self._evals[iou_type] = ev
            for name, value in zip(STAT_NAMES, ev.stats.tolist()):
                results[f"{iou_type}_{name}"] = _clean(value)
        return results

    def per_class_ap(self) -> dict[str, dict[str, float]]:
        """AP (IoU 0.50:0.95, all areas, 100 detections) per class and IoU type, after :meth:`summarize`;
        NaN for classes without ground truth."""
        out: dict[str, dict[str, float]] = {}
        for iou_type, ev in self._evals.items():
            precision = ev.eval["precision"]  # [T, R, K, A, M]
            per_class = {}
            for k, cat_id in enumerate(ev.params.catIds):
                p = precision[:, :, k, 0, -1]
                p = p[p > -1]
                per_class[self.class_names[cat_id - 1]] = _clean(float(p.mean())) if p.size else math.nan
            out[iou_type] = per_class
        return out
