"""Precision-recall curves from pycocotools' own arrays: pr_curves/ in the run dir.

COCO's ``eval["precision"]`` holds, per IoU threshold, class, area range and detection cap, the interpolated
precision at 101 recall points (``params.recThrs``). A curve here is that row at all areas and 100 detections;
"all classes" averages the classes that have ground truth at each recall point, "0.50:0.95" also averages the
ten IoU thresholds, so the mean of a curve is exactly the AP that ``summarize`` (and ``per_class``) reports.

Files: ``{segm,bbox}.png`` (all classes, IoU 0.50, 0.75 and 0.50:0.95), ``{segm,bbox}_per_class.png`` (one
panel per class) and ``pr_curves.json`` (the arrays, to overlay two runs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from pycocotools.cocoeval import COCOeval

from insseg.data.annotations import InstanceAnnotation
from insseg.evaluation.coco import IOU_TYPES, CocoEvaluator
from insseg.evaluation.reports.per_class import precision_slice
from insseg.evaluation.reports.plotting import pyplot, save_figure
from insseg.predictions import ImagePrediction
from insseg.utils.atomic import atomic_write_json

# Curve label -> IoU threshold (None: the mean over 0.50:0.95).
IOU_SETTINGS: dict[str, float | None] = {"IoU 0.50": 0.5, "IoU 0.75": 0.75, "IoU 0.50:0.95": None}
DIR_NAME = "pr_curves"


def pr_curve(ev: COCOeval, iou: float | None, class_index: int | None = None) -> np.ndarray | None:
    """Precision at ``ev.params.recThrs`` for one class (index into ``params.catIds``) or all classes;
    None when no class in the selection has ground truth."""
    p = precision_slice(ev, iou)  # [T, R, K]
    if class_index is not None:
        p = p[:, :, class_index : class_index + 1]
    valid = p > -1
    counts = valid.sum(axis=(0, 2))
    if not counts.any():
        return None
    sums = np.where(valid, p, 0.0).sum(axis=(0, 2))
    return sums / np.maximum(counts, 1)


def all_curves(coco: CocoEvaluator) -> dict[str, Any]:
    """``{"recall": [...], "segm": {"all": {label: precision or None}, "classes": {name: {...}}}, "bbox": ...}``."""
    out: dict[str, Any] = {}
    for iou_type in IOU_TYPES:
        ev = coco.evals[iou_type]
        out["recall"] = ev.params.recThrs.tolist()
        entry: dict[str, Any] = {"all": {}, "classes": {}}
        for label, iou in IOU_SETTINGS.items():
            entry["all"][label] = _list(pr_curve(ev, iou))
        for k, cat_id in enumerate(ev.params.catIds):
            name = coco.class_names[cat_id - 1]
            entry["classes"][name] = {label: _list(pr_curve(ev, iou, k)) for label, iou in IOU_SETTINGS.items()}
        out[iou_type] = entry
    return out


def _list(curve: np.ndarray | None) -> list[float] | None:
    return None if curve is None else [round(float(v), 6) for v in curve]


def _draw(ax: Any, recall: list[float], curves: Mapping[str, list[float] | None], title: str, small: bool) -> None:
    drawn = False
    for label, precision in curves.items():
        if precision is None:
            continue
        ap = float(np.mean(precision))
        ax.plot(recall, precision, label=f"{label} (AP {ap:.3f})", linewidth=1.0 if small else 1.6)
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8, color="gray")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=8 if small else 11)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=5 if small else 8, loc="lower left")
    if not small:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")


def write_pr_curves(out_dir: str | Path, coco: CocoEvaluator) -> list[Path]:
    """Write the files of the module docstring into ``out_dir`` (after ``coco`` has been evaluated)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = all_curves(coco)
    recall = curves["recall"]
    plt = pyplot()
    written = [out_dir / "pr_curves.json"]
    atomic_write_json(written[0], curves, indent=None)
    for iou_type in IOU_TYPES:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        _draw(ax, recall, curves[iou_type]["all"], f"{iou_type}: all classes", small=False)
        written.append(save_figure(fig, out_dir / f"{iou_type}.png"))
        classes = curves[iou_type]["classes"]
        cols = min(5, max(1, len(classes)))
        rows = math.ceil(len(classes) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.3 * rows), squeeze=False, sharex=True, sharey=True)
        for ax, (name, by_iou) in zip(axes.flat, classes.items()):
            _draw(ax, recall, by_iou, name, small=True)
        for ax in list(axes.flat)[len(classes):]:
            ax.axis("off")
        fig.suptitle(f"{iou_type} precision (y) against recall (x), per class", fontsize=10)
        written.append(save_figure(fig, out_dir / f"{iou_type}_per_class.png"))
    return written


class PRCurveEvaluator:
    """Writes pr_curves/ when evaluated; put it after its :class:`CocoEvaluator`. Adds no metrics."""

    def __init__(self, coco: CocoEvaluator, out_dir: str | Path) -> None:
        self.coco = coco
        self.out_dir = Path(out_dir)

    def reset(self) -> None:
        pass

    def process(self, gt: InstanceAnnotation, pred: ImagePrediction) -> None:
        pass

    def evaluate(self) -> dict[str, Any]:
        if not len(self.coco):
            return {}
        if not self.coco.evals:
            self.coco.summarize()
        write_pr_curves(self.out_dir / DIR_NAME, self.coco)
        return {}
