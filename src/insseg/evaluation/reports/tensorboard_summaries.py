"""Training-time reports in TensorBoard: per-class AP per epoch and COCO's PR curve.

The trainer calls these with its ``SummaryWriter`` after each evaluation (see docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from insseg.evaluation.coco import ALL_IOU_TYPES, CocoEvaluator, CocoResults, as_results
from insseg.evaluation.reports.per_class import AP_KEYS
from insseg.evaluation.reports.pr_curves import pr_curve


def tensorboard_per_class(writer: Any, per_class: Mapping[str, Mapping[str, Any] | None], step: int) -> int:
    """``per_class/{segm,bbox}_{AP,AP50,AP75}/<class>`` scalars of the classes with ground truth; returns
    how many were written."""
    written = 0
    for name, row in per_class.items():
        for key in (f"{t}_{k}" for t in ALL_IOU_TYPES for k in AP_KEYS):
            value = None if row is None else row.get(key)
            if value is not None:
                writer.add_scalar(f"per_class/{key}/{name}", value, step)
                written += 1
    return written


def pr_curve_counts(precision: np.ndarray, recall: np.ndarray, num_gt: int) -> dict[str, np.ndarray]:
    """The counts ``add_pr_curve_raw`` wants for COCO's interpolated curve (precision at each recall point,
    recall ascending): TP = recall x objects, FP = TP (1 - p) / p, FN = objects - TP. TensorBoard reads its
    arrays in order of increasing threshold, i.e. decreasing recall, so they are reversed."""
    tp = recall * num_gt
    with np.errstate(divide="ignore", invalid="ignore"):
        fp = np.where(precision > 0, tp * (1 - precision) / precision, 0.0)
    rev = slice(None, None, -1)
    return {
        "true_positive_counts": tp[rev],
        "false_positive_counts": fp[rev],
        "true_negative_counts": np.zeros_like(tp),
        "false_negative_counts": (num_gt - tp)[rev],
        "precision": precision[rev],
        "recall": recall[rev],
    }


def tensorboard_pr_curves(writer: Any, coco: CocoResults | CocoEvaluator, step: int) -> int:
    """``pr/{segm,bbox}_IoU0.50``: all classes' curve at IoU 0.5 (after ``coco`` was evaluated); returns how
    many were written."""
    coco = as_results(coco)
    num_gt = coco.num_gt_entries
    written = 0
    for iou_type, ev in coco.evals.items():
        precision = pr_curve(ev, 0.5)
        if precision is None or num_gt == 0:
            continue
        recall = np.asarray(ev.params.recThrs, dtype=np.float64)
        counts = pr_curve_counts(precision, recall, num_gt)
        writer.add_pr_curve_raw(f"pr/{iou_type}_IoU0.50", global_step=step, num_thresholds=len(recall), **counts)
        written += 1
    return written
