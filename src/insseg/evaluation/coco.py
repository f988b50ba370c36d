"""COCO bbox and segm AP with pycocotools (or faster-coco-eval: ``backend``), and Boundary AP
(:mod:`insseg.evaluation.boundary`, with ``eval.boundary`` on): the dataset-level COCO evaluation, fed one image
at a time.

:class:`CocoEvaluator` collects ground truth and detections and scores them once; the evaluation pass
(:class:`~insseg.evaluation.evaluator.Evaluators`) runs one and hands its :class:`CocoResults` (the evaluated
``COCOeval`` per IoU type) to every evaluator: :class:`CocoMetrics` reports the summary numbers, the per-class and
PR-curve reports read the same arrays. It also works alone: ``process(gt, pred)`` per image, then ``evaluate()``.

Ground truth of COCO-format data is the user's own file as it is: their image ids, category ids, iscrowd,
areas and boxes (the annotation carries the file's entries), so the numbers equal ``COCOeval`` run by hand on
that file and our predictions.json. Other data (instance maps): one annotation per instance, ``segmentation``
its mask as an RLE, ``area`` its pixel count, ``bbox`` pycocotools' own ``toBbox`` of that RLE (the mask's pixel
extent: x2 is the last column + 1, the convention of COCO-trained weights and of our training targets),
``iscrowd`` 0. Categories are the dataset's classes (with the file's ids for COCO-format data); predictions
arrive in dataset labels (the class bridge ran before).

Void (VOC's 255 band) counts for neither side: it is in no ground-truth mask, and it is cut out of every
predicted mask before segm IoU, as the matching metrics do. ``void_as_background=True`` keeps predictions
whole (the old harness's behaviour, where void pixels were background). predictions.json stays raw.

Only RLEs are stored (a few hundred bytes per mask), so memory stays flat over a dataset.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from insseg.data.annotations import Annotation
from insseg.errors import InssegError
from insseg.evaluation.boundary_cocoeval import boundary_cocoeval
from insseg.evaluation.coco_backend import DEFAULT_BACKEND, coco_classes
from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImagePrediction, encode_masks, xyxy_to_xywh

IOU_TYPES = ("segm", "bbox")
BOUNDARY = "boundary"  # Boundary AP (insseg.evaluation.boundary), when a dilation ratio is given
ALL_IOU_TYPES = (*IOU_TYPES, BOUNDARY)
# pycocotools' 12 summary numbers, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _clean(value: float) -> float:
    """NaN for pycocotools' -1 (undefined); rounded to 12 decimals, which removes the ``np.spacing(1)`` that
    pycocotools adds to every precision denominator (so perfect predictions score exactly 1.0)."""
    return math.nan if value < 0 else round(float(value), 12)


def mean_valid(precision: np.ndarray) -> float:
    """``COCOeval.summarize``'s mean of a precision array: over the entries that are not -1; NaN when none."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else float("nan")


@dataclass
class CocoResults:
    """A scored COCO evaluation: ``stats`` (``segm_AP`` ...; NaN where undefined), ``evals`` (the evaluated
    ``COCOeval`` per IoU type; empty when there were no images), pycocotools' printed ``tables``, the classes
    with their category ids, and the ground-truth objects (non-crowd) and detections per category id."""

    stats: dict[str, float]
    evals: dict[str, Any]
    tables: dict[str, str]
    class_names: list[str]
    category_ids: list[int]
    num_gt: Counter[int] = field(default_factory=Counter)
    num_dt: Counter[int] = field(default_factory=Counter)
    num_gt_entries: int = 0  # every ground-truth annotation, crowd regions included

    @property
    def iou_types(self) -> tuple[str, ...]:
        return tuple(self.evals)


class CocoEvaluator:
    """bbox and segm AP of every prediction (no score threshold) over the images it is given.

    ``class_names``: the dataset's classes; label k is category id ``category_ids[k - 1]``: 1..K, or the file's
    own ids, which COCO-format ground truth brings along. ``backend``: which COCO
    implementation scores (:mod:`insseg.evaluation.coco_backend`); kept in :attr:`backend`.
    ``boundary_dilation_ratio``: also Boundary AP (``boundary_AP`` ...: the official boundary-iou-api's COCOeval
    with ``iouType="boundary"``, on the segm detections) at this ratio of the image diagonal; None: not.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        void_as_background: bool = False,
        backend: str = DEFAULT_BACKEND,
        boundary_dilation_ratio: float | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.category_ids = list(range(1, len(self.class_names) + 1))
        self.void_as_background = void_as_background
        self.backend = backend
        self.boundary_dilation_ratio = boundary_dilation_ratio
        self.iou_types = IOU_TYPES + ((BOUNDARY,) if boundary_dilation_ratio is not None else ())
        self._coco, self._cocoeval = coco_classes(backend)
        self.reset()

    def reset(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.gt: list[dict[str, Any]] = []
        self.dt: list[dict[str, Any]] = []  # one record per detection: bbox and segm share it
        self.tables: dict[str, str] = {}
        self.evals: dict[str, Any] = {}
        self.stats: dict[str, float] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def process(self, gt: Annotation, pred: ImagePrediction) -> None:
        """Add one image: its ground truth and every prediction whose label is a dataset class."""
        self.stats = None
        h, w = int(gt.height), int(gt.width)
        if gt.coco_entries is not None:  # the user's file, as it is
            assert gt.image_id is not None  # a COCO file's annotation carries its image id
            image_id = int(gt.image_id)
            self.gt.extend(gt.coco_entries)
            if gt.category_ids:
                self.category_ids = list(gt.category_ids)
        else:
            image_id = len(self.images) + 1
            self.gt.extend(ground_truth_entries(gt, image_id, len(self.gt) + 1))
        self.images.append({"id": image_id, "file_name": gt.file_name, "height": h, "width": w})
        keep = (pred.labels >= 1) & (pred.labels <= len(self.class_names))
        if not keep.any():
            return
        pred = pred.keep(keep)
        rles = pred.rles
        void = None if self.void_as_background else gt.void()
        if void is not None and void.any():
            rles = encode_masks(pred.mask_array() & ~void[None])
        for rle, box, score, label in zip(
            rles, xyxy_to_xywh(pred.boxes).tolist(), pred.scores.tolist(), pred.labels.tolist()
        ):
            check_mask_size(rle, gt)
            self.dt.append(
                {
                    "image_id": image_id,
                    "category_id": self.category_ids[int(label) - 1],
                    "score": float(score),
                    "bbox": box,
                    "segmentation": {"size": [h, w], "counts": rle["counts"]},
                }
            )

    def evaluate(self) -> dict[str, float]:
        """``segm_AP``, ``segm_AP50``, ..., ``bbox_ARl`` (0..1; NaN where COCO leaves it undefined)."""
        return self.summarize()

    def results(self) -> CocoResults:
        """The scored evaluation (scoring now unless :meth:`summarize` already ran on these images)."""
        stats = self.stats if self.stats is not None else self.summarize()
        return CocoResults(
            dict(stats),
            dict(self.evals),
            dict(self.tables),
            list(self.class_names),
            list(self.category_ids),
            Counter(int(a["category_id"]) for a in self.gt if not a.get("iscrowd")),  # crowd regions are no objects
            Counter(int(d["category_id"]) for d in self.dt),
            len(self.gt),
        )

    def _coco_gt(self) -> Any:
        gt = self._coco()
        gt.dataset = {
            "images": list(self.images),
            "annotations": list(self.gt),
            "categories": [{"id": i, "name": n} for i, n in zip(self.category_ids, self.class_names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        return gt

    def _coco_dt(self, gt: Any, iou_type: str) -> Any:
        """The results object, built directly (``loadRes`` fails on an empty list and takes box areas)."""
        anns = []
        for k, d in enumerate(self.dt):
            ann = {
                "id": k + 1,
                "image_id": d["image_id"],
                "category_id": d["category_id"],
                "score": d["score"],
                "iscrowd": 0,
            }
            if iou_type != "bbox":  # segm and boundary: the mask, its area
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
        """``segm_AP``, ``segm_AP50``, ..., ``bbox_ARl`` (and ``boundary_*``; 0..1; NaN where COCO leaves it
        undefined, e.g. no ground truth of that size). pycocotools' printed tables are kept in :attr:`tables`."""
        results: dict[str, float] = {}
        if not self.images:
            self.stats = {f"{t}_{s}": math.nan for t in self.iou_types for s in STAT_NAMES}
            return dict(self.stats)
        gt = self._coco_gt()
        for iou_type in self.iou_types:
            dt = self._coco_dt(gt, iou_type)
            if iou_type == BOUNDARY and self.boundary_dilation_ratio is not None:
                ev = boundary_cocoeval(gt, dt, self.boundary_dilation_ratio, backend=self.backend)
            else:
                ev = self._cocoeval(gt, dt, iouType=iou_type)
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            self.tables[iou_type] = "\n".join(line for line in buf.getvalue().splitlines() if "Average" in line)
            self.evals[iou_type] = ev
            for name, value in zip(STAT_NAMES, ev.stats.tolist()):
                results[f"{iou_type}_{name}"] = _clean(value)
        self.stats = dict(results)
        return results


def as_results(coco: CocoEvaluator | CocoResults) -> CocoResults:
    """The results of an evaluator (scored now if needed), or the results themselves."""
    return coco.results() if isinstance(coco, CocoEvaluator) else coco


class CocoMetrics:
    """The evaluator reporting COCO's summary numbers (``segm_AP`` ... ``bbox_ARl``) from the pass's results."""

    needs_coco = True

    def reset(self) -> None:
        pass

    def process(self, sample: ImageSample) -> None:
        pass

    def evaluate(self, coco: CocoResults | None) -> dict[str, float]:
        assert coco is not None
        return dict(coco.stats)


def check_mask_size(rle: dict[str, Any], gt: Annotation) -> None:
    """Refuse a predicted mask that is not at the image's original size (COCO and LVIS score at that size)."""
    h, w = int(gt.height), int(gt.width)
    if list(rle["size"]) != [h, w]:
        raise InssegError(
            f"a predicted mask of {gt.file_name} is {rle['size'][1]}x{rle['size'][0]} but the image is "
            f"{w}x{h}; masks must be at the image's original size"
        )


def ground_truth_entries(gt: Annotation, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """COCO annotations of one image's instances (RLE, pixel-count area, ``toBbox`` box, iscrowd 0)."""
    if not len(gt):
        return []
    rles = encode_masks(gt.masks())
    areas = mask_utils.area(rles).tolist()
    boxes = mask_utils.toBbox(rles).tolist()
    return [
        {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": int(label),
            "segmentation": rle,
            "area": float(area),
            "bbox": box,
            "iscrowd": 0,
        }
        for k, (label, rle, area, box) in enumerate(zip(gt.labels.tolist(), rles, areas, boxes))
    ]
