"""Precision-recall curves from pycocotools' own arrays: pr_curves/ in the run dir.

COCO's ``eval["precision"]`` holds, per IoU threshold, class, area range and detection cap, the interpolated
precision at 101 recall points (``params.recThrs``). A curve here is that row at all areas and 100 detections;
"all classes" averages the classes that have ground truth at each recall point, "0.50:0.95" also averages the
ten IoU thresholds, so the mean of a curve is exactly the AP that ``summarize`` (and ``per_class``) reports.

Files: ``{segm,bbox,boundary}.png`` (all classes, IoU 0.50, 0.75 and 0.50:0.95; boundary when ``eval.boundary``
is on), ``{segm,bbox,boundary}_per_class.png`` (one panel per class) and ``pr_curves.json`` (the arrays, to
overlay two runs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.cocoeval import COCOeval

from insseg.evaluation.coco import CocoEvaluator, CocoResults, as_results
from insseg.evaluation.reports.per_class import precision_slice
from insseg.evaluation.reports.plotting import pyplot, save_figure
from insseg.evaluation.sample import ImageSample
from insseg.utils.atomic import atomic_write_json

# Curve label -> IoU threshold (None: the mean over 0.50:0.95).
IOU_SETTINGS: dict[str, float | None] = {"IoU 0.50": 0.5, "IoU 0.75": 0.75, "IoU 0.50:0.95": None}
DIR_NAME = "pr_curves"
COLORS = ("tab:blue", "tab:orange", "tab:green")  # one per IOU_SETTINGS entry


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


def all_curves(coco: CocoResults | CocoEvaluator) -> dict[str, Any]:
    """``{"recall": [...], "segm": {"all": {label: precision or None}, "classes": {name: {...}}}, "bbox": ...}``."""
    coco = as_results(coco)
    out: dict[str, Any] = {}
    for iou_type in coco.iou_types:
        ev = coco.evals[iou_type]
        out["recall"] = ev.params.recThrs.tolist()
        entry: dict[str, Any] = {"all": {}, "classes": {}}
        for label, iou in IOU_SETTINGS.items():
            entry["all"][label] = _list(pr_curve(ev, iou))
        for k, cat_id in enumerate(ev.params.catIds):
            name = coco.class_names[coco.category_ids.index(cat_id)]
            entry["classes"][name] = {label: _list(pr_curve(ev, iou, k)) for label, iou in IOU_SETTINGS.items()}
        out[iou_type] = entry
    return out


def _list(curve: np.ndarray | None) -> list[float] | None:
    return None if curve is None else [round(float(v), 6) for v in curve]


def _draw_all(ax: Any, recall: list[float], curves: Mapping[str, list[float] | None], title: str) -> None:
    for label, precision in curves.items():
        if precision is not None:
            ax.plot(recall, precision, label=f"{label} (AP {np.mean(precision):.3f})", linewidth=1.6)
    if not any(p is not None for p in curves.values()):
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", color="gray")
    else:
        ax.legend(fontsize=8, loc="lower left")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.grid(alpha=0.3)


def _draw_small(
    ax: Any, x0: float, y0: float, recall: np.ndarray, curves: Mapping[str, list[float] | None], name: str
) -> None:
    """One class's panel as a unit square at (x0, y0) of a shared, axis-less Axes: a frame, a grid line at
    0.5, its curves, and the name with its APs. (A matplotlib Axes per class costs ~0.1 s each to draw.)"""
    ax.plot([x0, x0 + 1, x0 + 1, x0, x0], [y0, y0, y0 + 1, y0 + 1, y0], color="#888", linewidth=0.6)
    ax.plot([x0, x0 + 1], [y0 + 0.5, y0 + 0.5], color="#ddd", linewidth=0.5)
    ax.plot([x0 + 0.5, x0 + 0.5], [y0, y0 + 1], color="#ddd", linewidth=0.5)
    aps = []
    for color, precision in zip(COLORS, curves.values()):
        if precision is not None:
            ax.plot(x0 + recall, y0 + np.asarray(precision) * 0.98, color=color, linewidth=1.0)
            aps.append(f"{np.mean(precision):.2f}")
    text = f"{name}\nAP {' / '.join(aps)}" if aps else f"{name}\nno ground truth"
    ax.text(x0 + 0.04, y0 + 0.05, text, fontsize=7, color="black" if aps else "gray")


def write_pr_curves(out_dir: str | Path, coco: CocoResults | CocoEvaluator) -> list[Path]:
    """Write the files of the module docstring into ``out_dir``."""
    coco = as_results(coco)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = all_curves(coco)
    recall = curves["recall"]
    plt = pyplot()
    written = [out_dir / "pr_curves.json"]
    atomic_write_json(written[0], curves, indent=None)
    for iou_type in coco.iou_types:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        _draw_all(ax, recall, curves[iou_type]["all"], f"{iou_type}: all classes")
        written.append(save_figure(fig, out_dir / f"{iou_type}.png"))
        written.append(_per_class_figure(plt, recall, curves[iou_type]["classes"], iou_type, out_dir))
    return written


def _per_class_figure(plt: Any, recall: list[float], classes: Mapping[str, Any], iou_type: str, out_dir: Path) -> Path:
    cols = min(5, max(1, len(classes)))
    rows = math.ceil(len(classes) / cols)
    width, height = max(2.1 * cols, 5.6), 1.9 * rows + 0.8
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.01, 0.01, 2.1 * cols / width - 0.02, 1 - 0.85 / height))
    r = np.asarray(recall)
    for k, (name, by_iou) in enumerate(classes.items()):
        _draw_small(ax, (k % cols) * 1.1, -(k // cols) * 1.1, r, by_iou, name)
    ax.set(xlim=(-0.05, cols * 1.1 - 0.05), ylim=(-(rows - 1) * 1.1 - 0.05, 1.05))
    ax.axis("off")
    fig.text(
        0.01,
        1 - 0.1 / height,
        f"{iou_type}: precision (0..1, y) against recall (0..1, x) per class",
        fontsize=10,
        va="top",
    )
    handles = [plt.Line2D([], [], color=c) for c in COLORS]
    fig.legend(
        handles,
        list(IOU_SETTINGS),
        loc="upper left",
        bbox_to_anchor=(0.0, 1 - 0.38 / height),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    return save_figure(fig, out_dir / f"{iou_type}_per_class.png", tight=False)


class PRCurveEvaluator:
    """Writes pr_curves/ from the pass's COCO results when evaluated. Adds no metrics."""

    needs_coco = True

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def reset(self) -> None:
        pass

    def process(self, sample: ImageSample) -> None:
        pass

    def evaluate(self, coco: CocoResults | None) -> dict[str, Any]:
        assert coco is not None
        if not coco.evals:
            return {}
        write_pr_curves(self.out_dir / DIR_NAME, coco)
        return {}
