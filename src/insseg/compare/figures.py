"""compare.html's pictures, written into ``compare_files/`` beside it.

- ``per_class_<k>.png``: per-class AP deltas (B - A) as sorted horizontal bars with their 95% intervals, one
  panel per IoU type; solid where the interval excludes 0.
- ``pr_curves.png``: every run's all-class precision-recall curves (pycocotools' arrays, as pr_curves/ draws
  them) overlaid, one panel per IoU type: a colour per run, a line style per IoU setting.
- ``gallery_<k>/<image>.png``: an image drawn for run A and for run B side by side, true positives, false
  positives and missed objects coloured as in report.html's gallery (its own drawing code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from insseg.compare.result import excludes_zero
from insseg.compare.runs import RunData
from insseg.evaluation.reports.gallery import render
from insseg.evaluation.reports.plotting import pyplot, save_figure
from insseg.evaluation.reports.pr_curves import IOU_SETTINGS, pr_curve
from insseg.utils.atomic import atomic_path

DIR_NAME = "compare_files"
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")  # Okabe-Ito
LINE_STYLES = ("-", "--", ":")  # one per IOU_SETTINGS entry
GAP = 8  # white pixels between the two pictures of a pair


def per_class_chart(path: Path, per_class: Mapping[str, Any]) -> Path | None:
    """The sorted bar chart of the per-class AP deltas; None when no class has ground truth."""
    rows = {name: row for name, row in per_class.items() if row}
    iou_types = [k for k in next(iter(rows.values()), {}) if k.endswith("_AP")]
    if not iou_types:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(iou_types), figsize=(4.2 * len(iou_types), 1.2 + 0.28 * len(rows)), squeeze=False)
    for ax, key in zip(axes[0], iou_types):
        items = sorted(
            ((n, r[key]) for n, r in rows.items() if r[key]["delta"] is not None), key=lambda x: x[1]["delta"]
        )
        y = np.arange(len(items))
        deltas = np.array([it["delta"] for _, it in items])
        lo = np.array([it["ci95"][0] if it["ci95"] else d for (_, it), d in zip(items, deltas)])
        hi = np.array([it["ci95"][1] if it["ci95"] else d for (_, it), d in zip(items, deltas)])
        colors = [RUN_COLORS[1] if d > 0 else RUN_COLORS[0] for d in deltas]
        solid = [excludes_zero(it) for _, it in items]
        ax.barh(y, deltas, color=colors, alpha=1.0, height=0.7)
        for k, s in enumerate(solid):
            if not s:
                ax.barh(y[k], deltas[k], color="white", alpha=0.55, height=0.7)
        ax.hlines(y, lo, hi, color="#333", linewidth=0.9)  # the interval need not hold the observed delta
        ax.axvline(0, color="#666", linewidth=0.8)
        ax.set_yticks(y, [n for n, _ in items], fontsize=7)
        ax.set_title(f"{key}: B - A (95% interval)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def pr_overlay(path: Path, runs: Sequence[RunData], labels: Sequence[str]) -> Path | None:
    """Every run's all-class PR curves overlaid, one panel per IoU type the runs share."""
    iou_types = [t for t in runs[0].evals if all(t in r.evals for r in runs)]
    if not iou_types:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(iou_types), figsize=(5.2 * len(iou_types), 4.4), squeeze=False)
    for ax, iou_type in zip(axes[0], iou_types):
        for color, run, label in zip(RUN_COLORS * 4, runs, labels):
            ev = run.evals[iou_type]
            recall = ev.params.recThrs
            for style, (setting, iou) in zip(LINE_STYLES, IOU_SETTINGS.items()):
                curve = pr_curve(ev, iou)
                if curve is not None:
                    ax.plot(recall, curve, style, color=color, linewidth=1.4, label=f"{label} {setting}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{iou_type}: all classes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left")
    return save_figure(fig, path)


def _picture(run: RunData, index: int, image: np.ndarray) -> np.ndarray:
    cfg = run.prepared.cfg
    gt = run.prepared.dataset.annotation(index)
    return render(image, gt, run.kept(index), run.matches[index], run.prepared.class_names, cfg.eval.void_as_background)


def side_by_side(path: Path, a: RunData, b: RunData, index: int) -> Path:
    """Image ``index`` drawn for run A (left) and run B (right), as report.html's gallery draws it."""
    image = np.asarray(a.prepared.dataset.load_image(index))
    left, right = _picture(a, index, image), _picture(b, index, image)
    gap = np.full((left.shape[0], GAP, 3), 255, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(tmp, format="PNG")
    return path
