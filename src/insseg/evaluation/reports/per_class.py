"""Per-class AP: metrics.json's ``per_class`` block, read from pycocotools' own precision arrays.

For class k and IoU type t (segm, bbox, and boundary when ``eval.boundary`` is on), ``{t}_AP`` is the mean of
``eval["precision"][:, :, k, all areas, 100 dets]`` over its entries that are not -1, exactly as
``COCOeval.summarize`` averages over all classes; ``AP50`` and ``AP75`` take the one IoU threshold. A class
without ground truth has only -1 entries: its block is null. ``num_gt`` counts its ground-truth instances,
``num_predictions`` the detections COCO AP saw (every one above the model's floor).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools.cocoeval import COCOeval

from insseg.evaluation.coco import IOU_TYPES, CocoEvaluator, CocoResults, _clean, as_results, mean_valid
from insseg.evaluation.sample import ImageSample
from insseg.utils.logging import log

AP_KEYS = ("AP", "AP50", "AP75")
PER_CLASS_KEYS = tuple(f"{t}_{k}" for t in IOU_TYPES for k in AP_KEYS) + ("num_gt", "num_predictions")
BOUNDARY_KEYS = tuple(f"boundary_{k}" for k in AP_KEYS)


def per_class_keys(per_class: Mapping[str, Mapping[str, Any] | None]) -> tuple[str, ...]:
    """The columns of a ``per_class`` block: ``frequency`` first where the protocol gives one (LVIS: r, c, f),
    segm and bbox AP, boundary AP when it was scored, the counts, then any column a benchmark's evaluator added
    to the rows (Cityscapes: ``cityscapes_AP``, ``cityscapes_AP50``)."""
    has_frequency = any(row and "frequency" in row for row in per_class.values())
    scored = any(row and BOUNDARY_KEYS[0] in row for row in per_class.values())
    keys = PER_CLASS_KEYS[:-2] + (BOUNDARY_KEYS if scored else ()) + PER_CLASS_KEYS[-2:]
    keys = (("frequency",) if has_frequency else ()) + keys
    return keys + tuple(dict.fromkeys(k for row in per_class.values() for k in (row or {}) if k not in keys))


def precision_slice(ev: COCOeval, iou: float | None = None) -> np.ndarray:
    """``eval["precision"]`` at all areas and 100 detections: [T, R, K], or [1, R, K] at one IoU threshold
    (selected as ``summarize`` does). -1 marks entries without ground truth."""
    p = ev.params
    area = p.areaRngLbl.index("all")
    dets = p.maxDets.index(100)
    precision = ev.eval["precision"][:, :, :, area, dets]
    if iou is None:
        return precision
    t = np.where(np.isclose(p.iouThrs, iou))[0]
    if t.size != 1:
        raise ValueError(f"IoU threshold {iou} is not one of COCOeval's {p.iouThrs.tolist()}")
    return precision[t[0] : t[0] + 1]


def per_class_metrics(coco: CocoResults | CocoEvaluator) -> dict[str, dict[str, Any] | None]:
    """The ``per_class`` block (see the module docstring) of COCO results (or of a :class:`CocoEvaluator`,
    scored now if needed)."""
    coco = as_results(coco)
    num_gt, num_dt = coco.num_gt, coco.num_dt
    out: dict[str, dict[str, Any] | None] = {}
    for k, name in enumerate(coco.class_names):
        cat_id = coco.category_ids[k]
        if num_gt[cat_id] == 0 or not coco.evals:
            out[name] = None
            continue
        row: dict[str, Any] = {}
        for iou_type in coco.iou_types:
            ev = coco.evals[iou_type]
            col = ev.params.catIds.index(cat_id)
            for key, iou in zip(AP_KEYS, (None, 0.5, 0.75)):
                value = _clean(mean_valid(precision_slice(ev, iou)[:, :, col]))
                row[f"{iou_type}_{key}"] = None if math.isnan(value) else value
        row["num_gt"] = num_gt[cat_id]
        row["num_predictions"] = num_dt[cat_id]
        out[name] = row
    return out


def per_class_rows(per_class: Mapping[str, Mapping[str, Any] | None]) -> list[list[Any]]:
    """The table of the block: a header, then one row per class (None where undefined)."""
    keys = per_class_keys(per_class)
    rows: list[list[Any]] = [["class", *keys]]
    for name, row in per_class.items():
        rows.append([name, *((row or {}).get(k) for k in keys)])
    return rows


def format_table(per_class: Mapping[str, Mapping[str, Any] | None]) -> str:
    """A fixed-width text table for the log (``-`` where a value is undefined)."""
    rows = per_class_rows(per_class)
    width = max(len("class"), *(len(str(r[0])) for r in rows))

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [f"{rows[0][0]:<{width}}  " + "  ".join(f"{h:>15}" for h in rows[0][1:])]
    lines += [f"{str(r[0]):<{width}}  " + "  ".join(f"{cell(v):>15}" for v in r[1:]) for r in rows[1:]]
    return "\n".join(lines)


class PerClassEvaluator:
    """Adds ``per_class`` to the metrics and logs its table, from the pass's COCO results; it computes nothing
    per image."""

    needs_coco = True

    def reset(self) -> None:
        pass

    def process(self, sample: ImageSample) -> None:
        pass

    def evaluate(self, coco: CocoResults | None) -> dict[str, Any]:
        assert coco is not None
        per_class = per_class_metrics(coco)
        log.info(
            "per-class AP (all areas, 100 detections; - where the class has no ground truth):\n"
            + format_table(per_class)
        )
        return {"per_class": per_class}
