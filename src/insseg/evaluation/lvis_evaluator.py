"""LVIS AP (segm and bbox) as an evaluator fed one image at a time; on LVIS data it takes the COCO evaluator's
place (same ``segm_AP``/``bbox_AP`` keys, by the LVIS protocol).

Ground truth is the file's own: its image entries (with ``neg_category_ids`` and ``not_exhaustive_category_ids``),
its annotations as the reader hands them on, every category of the file with its ``frequency``. Detections are
every prediction (no score threshold) in dataset labels, at most the 300 best of each image (the cap the API
applies, done here already to keep memory flat; same stable order, so the same detections). The scoring is
lvis-api's (:mod:`insseg.evaluation.lvis_protocol`), so the numbers equal ``LVISEval`` run by hand on the file
and our results.

metrics: ``{segm,bbox}_{AP,AP50,AP75,APs,APm,APl,APr,APc,APf,AR300,ARs300,ARm300,ARl300}`` (NaN where undefined,
e.g. no rare category has ground truth) and, with ``per_class``, a ``per_class`` block: each class's AP, AP50 and
AP75 (from ``eval["precision"]`` at all areas), its ``frequency``, ``num_gt`` and ``num_predictions``.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from insseg.errors import InssegError
from insseg.evaluation.coco import IOU_TYPES, CocoResults, _clean, check_mask_size
from insseg.evaluation.lvis_protocol import MAX_DETS, run_lvis_eval
from insseg.evaluation.sample import ImageSample
from insseg.predictions import xyxy_to_xywh
from insseg.utils.logging import log

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR300", "ARs300", "ARm300", "ARl300")
_API_NAMES = {"AR300": "AR@300", "ARs300": "ARs@300", "ARm300": "ARm@300", "ARl300": "ARl@300"}
IMAGE_KEYS = ("id", "height", "width", "neg_category_ids", "not_exhaustive_category_ids", "coco_url", "file_name")


class LvisEvaluator:
    """LVIS segm and bbox AP over the images it is given. ``categories``: the file's category entries (``id``,
    ``name``, ``frequency``) sorted by id; label k is ``categories[k - 1]``."""

    needs_coco = False

    def __init__(self, categories: Sequence[dict[str, Any]], per_class: bool = True, max_dets: int = MAX_DETS):
        self.categories = [dict(c) for c in categories]
        self.class_names = [c["name"] for c in self.categories]
        self.category_ids = [int(c["id"]) for c in self.categories]
        self.per_class = per_class
        self.max_dets = max_dets
        self.reset()

    def reset(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.gt: list[dict[str, Any]] = []
        self.dt: list[dict[str, Any]] = []
        self.tables: dict[str, str] = {}
        self.evals: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.images)

    def process(self, sample: ImageSample) -> None:
        """Add one image: its ground truth and its best ``max_dets`` detections of dataset classes."""
        gt, pred = sample.gt, sample.pred
        entry = getattr(gt, "image_entry", None)
        if entry is None or gt.coco_entries is None:
            raise InssegError(f"{gt.file_name}: the LVIS protocol needs LVIS ground truth (data.layout=lvis)")
        self.images.append({k: entry[k] for k in IMAGE_KEYS if k in entry})
        self.gt.extend(gt.coco_entries)
        keep = (pred.labels >= 1) & (pred.labels <= len(self.categories))
        pred = pred.keep(keep)
        order = np.argsort(-pred.scores, kind="stable")[: self.max_dets]
        boxes = xyxy_to_xywh(pred.boxes).tolist()
        for k in order.tolist():
            rle = pred.rles[k]
            check_mask_size(rle, gt)
            self.dt.append(
                {
                    "image_id": int(entry["id"]),
                    "category_id": self.category_ids[int(pred.labels[k]) - 1],
                    "score": float(pred.scores[k]),
                    "bbox": boxes[k],
                    "segmentation": {"size": [gt.height, gt.width], "counts": _text(rle["counts"])},
                }
            )

    def results(self, iou_type: str) -> list[dict[str, Any]]:
        """The COCO results list lvis-api scores: segm without ``bbox`` (area from the mask), bbox without masks."""
        drop = "bbox" if iou_type == "segm" else "segmentation"
        return [{k: v for k, v in d.items() if k != drop} for d in self.dt]

    def ground_truth(self) -> dict[str, Any]:
        return {"images": self.images, "annotations": self.gt, "categories": self.categories}

    def evaluate(self, coco: CocoResults | None = None) -> dict[str, Any]:
        """The LVIS metrics (``coco``, the pass's COCO results, is not read: LVIS scores its own way)."""
        out: dict[str, Any] = {f"{t}_{s}": math.nan for t in IOU_TYPES for s in STAT_NAMES}
        if self.images and not self.dt:
            log.warning("LVIS protocol: no detections at all; lvis-api cannot score an empty result list (NaN)")
        if self.images and self.dt:
            for iou_type in IOU_TYPES:
                ev = run_lvis_eval(self.ground_truth(), self.results(iou_type), iou_type, self.max_dets)
                self.evals[iou_type] = ev
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    ev.print_results()
                self.tables[iou_type] = buf.getvalue().rstrip()
                for name in STAT_NAMES:
                    out[f"{iou_type}_{name}"] = _clean(float(ev.results[_API_NAMES.get(name, name)]))
        if self.per_class:
            out["per_class"] = self.per_class_metrics()
        return out

    def per_class_metrics(self) -> dict[str, dict[str, Any] | None]:
        """Each class's AP/AP50/AP75 per IoU type, frequency and counts; None for a class without ground truth."""
        num_gt = Counter(int(a["category_id"]) for a in self.gt)
        num_dt = Counter(int(d["category_id"]) for d in self.dt)
        out: dict[str, dict[str, Any] | None] = {}
        for cat in self.categories:
            if num_gt[cat["id"]] == 0 or not self.evals:
                out[cat["name"]] = None
                continue
            row: dict[str, Any] = {"frequency": cat.get("frequency")}
            for iou_type, ev in self.evals.items():
                col = ev.params.cat_ids.index(cat["id"])
                for key, iou in (("AP", None), ("AP50", 0.5), ("AP75", 0.75)):
                    row[f"{iou_type}_{key}"] = _class_ap(ev, col, iou)
            row["num_gt"], row["num_predictions"] = num_gt[cat["id"]], num_dt[cat["id"]]
            out[cat["name"]] = row
        return out


def _class_ap(ev: Any, col: int, iou: float | None) -> float | None:
    """The mean of ``eval["precision"][T, :, col, all areas]`` over entries that are not -1 (as ``_summarize``)."""
    p = ev.eval["precision"][:, :, col, ev.params.area_rng_lbl.index("all")]
    if iou is not None:
        p = p[np.isclose(ev.params.iou_thrs, iou)]
    valid = p[p > -1]
    return _clean(float(valid.mean())) if valid.size else None


def _text(counts: str | bytes) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts
