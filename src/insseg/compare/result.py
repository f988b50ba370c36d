"""compare.json's content: per metric ``{a, b, delta, ci95}``, per class the AP deltas, per image who wins.

``a`` and ``b`` are each run's metrics.json values (the rebuild reproduces them: :func:`~insseg.compare.runs.
check_rebuilt`); ``delta = b - a``; ``ci95`` the 2.5th and 97.5th percentiles of ``b - a`` over the paired
resamples. Per-class APs are read from the same precision arrays as metrics.json's ``per_class`` block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from insseg.compare.bootstrap import ImageSums, coco_distributions, interval
from insseg.compare.runs import RunData
from insseg.evaluation.coco import _clean, mean_valid
from insseg.evaluation.reports.gallery import outcome

# The metrics compared, in this order (those a run's metrics.json lacks are left out).
COCO_METRICS = tuple(f"{t}_{s}" for t in ("segm", "bbox", "boundary") for s in ("AP", "AP50", "AP75"))
MATCHING_METRICS = (
    "mean_iou",
    "mean_f1",
    "mean_boundary_iou",
    "mean_boundary_f1",
    "mean_iou_with_bg",
    "mean_f1_with_bg",
    "instance_precision",
    "instance_recall",
    "instance_f1",
)
METRICS = COCO_METRICS + MATCHING_METRICS
TOP_IMAGES = 16


@dataclass
class Distributions:
    """One run's metrics on every resample: ``values[name]`` [R], ``per_class[iou_type]`` [R, K]."""

    values: dict[str, np.ndarray]
    per_class: dict[str, np.ndarray]


def distributions(run: RunData, weights: np.ndarray) -> Distributions:
    values, per_class = coco_distributions(run.tables, weights)
    values.update(ImageSums.from_matches(run.matches, run.boundary).metrics(weights))
    return Distributions(values, per_class)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def entry(a: Any, b: Any, deltas: np.ndarray) -> dict[str, Any]:
    """``{a, b, delta, ci95}``; delta and interval null when either value is undefined."""
    a, b = _number(a), _number(b)
    if a is None or b is None:
        return {"a": a, "b": b, "delta": None, "ci95": None}
    return {"a": a, "b": b, "delta": b - a, "ci95": interval(deltas)}


def excludes_zero(item: Mapping[str, Any]) -> bool:
    """Whether a metric's interval lies wholly on one side of 0 (the difference is not resampling noise)."""
    ci = item.get("ci95")
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def metric_block(a: RunData, b: RunData, da: Distributions, db: Distributions) -> dict[str, Any]:
    names = [m for m in METRICS if m in da.values and m in db.values and m in a.metrics and m in b.metrics]
    return {m: entry(a.metrics[m], b.metrics[m], db.values[m] - da.values[m]) for m in names}


def class_aps(run: RunData) -> dict[str, dict[str, float | None]]:
    """Each class's AP per IoU type on all images (NaN -> None), as metrics.json's ``per_class`` has it."""
    out: dict[str, dict[str, float | None]] = {}
    for iou_type, table in run.tables.items():
        precision = table.precision(np.ones(table.npig.shape[1], np.int64))
        for k, cat_id in enumerate(table.cat_ids):
            name = run.category_name(cat_id)
            value = _clean(mean_valid(precision[:, :, k]))
            out.setdefault(name, {})[f"{iou_type}_AP"] = None if math.isnan(value) else value
    return out


def per_class_block(a: RunData, b: RunData, da: Distributions, db: Distributions) -> dict[str, Any]:
    """``{class: {"segm_AP": {a, b, delta, ci95}, ..., "num_gt": n} or null}`` (null: no ground truth)."""
    aps_a, aps_b = class_aps(a), class_aps(b)
    out: dict[str, Any] = {}
    for iou_type, table in a.tables.items():
        if iou_type not in b.tables:
            continue
        for k, cat_id in enumerate(table.cat_ids):
            name = a.category_name(cat_id)
            num_gt = int(table.npig[k].sum())
            if num_gt == 0:
                out[name] = None
                continue
            row = out.setdefault(name, {})
            deltas = db.per_class[iou_type][:, k] - da.per_class[iou_type][:, k]
            row[f"{iou_type}_AP"] = entry(aps_a[name][f"{iou_type}_AP"], aps_b[name][f"{iou_type}_AP"], deltas)
            row["num_gt"] = num_gt
    return out


def _counts(run: RunData, index: int) -> dict[str, Any]:
    match = run.matches[index]
    o = outcome(match)
    out = {
        "mean_iou": match.mean_iou,
        "true_positives": len(o.tp_pred),
        "false_positives": len(o.fp),
        "missed": len(o.fn),
    }
    if run.boundary is not None:
        out["mean_boundary_iou"] = run.boundary[index][0] / match.num_objects if match.num_objects else None
    return out


def _wins(a: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """On how many images (with objects: both values defined) each run scores higher, and ties."""
    both = np.isfinite(a) & np.isfinite(b)
    return {
        "a": int(np.count_nonzero(both & (a > b))),
        "b": int(np.count_nonzero(both & (b > a))),
        "ties": int(np.count_nonzero(both & (a == b))),
        "images_with_objects": int(np.count_nonzero(both)),
    }


def _per_image(run: RunData, boundary: bool = False) -> np.ndarray:
    """Each image's mean over its objects of the matched IoU (or boundary IoU); NaN without objects."""
    n = np.array([m.num_objects for m in run.matches], np.float64)
    sums = np.array([b[0] for b in run.boundary or []] if boundary else [m.iou.sum() for m in run.matches])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)


def images_block(a: RunData, b: RunData, top: int = TOP_IMAGES) -> dict[str, Any]:
    """Wins by matched mean IoU and by mean boundary IoU (when both runs scored boundaries), and the ``top``
    images where the runs differ most: the largest |mean IoU difference|, then the largest difference in false
    positives."""
    iou_a, iou_b = _per_image(a), _per_image(b)
    has_gt = np.isfinite(iou_a) & np.isfinite(iou_b)
    diff = np.where(has_gt, iou_b - iou_a, 0.0)
    n = len(a.matches)
    counts_a, counts_b = [_counts(a, i) for i in range(n)], [_counts(b, i) for i in range(n)]
    fp_diff = [abs(cb["false_positives"] - ca["false_positives"]) for ca, cb in zip(counts_a, counts_b)]
    order = sorted(range(n), key=lambda i: (-abs(diff[i]), -fp_diff[i], i))[:top]
    names = a.prepared.file_names
    out: dict[str, Any] = {"wins_by_mean_iou": _wins(iou_a, iou_b)}
    if a.boundary is not None and b.boundary is not None:
        out["wins_by_boundary_iou"] = _wins(_per_image(a, True), _per_image(b, True))
    out["most_different"] = [
        {
            "index": i,
            "image": names[i],
            "mean_iou_delta": float(diff[i]) if has_gt[i] else None,
            "a": counts_a[i],
            "b": counts_b[i],
        }
        for i in order
    ]
    return out


def comparison(a: RunData, b: RunData, da: Distributions, db: Distributions, top: int) -> dict[str, Any]:
    return {
        "metrics": metric_block(a, b, da, db),
        "per_class": per_class_block(a, b, da, db),
        "images": images_block(a, b, top),
    }
