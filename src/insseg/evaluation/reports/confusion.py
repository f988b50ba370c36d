"""Confusion matrix: ground-truth class x predicted class, from class-agnostic one-to-one matching.

Per image, the predictions scoring above ``score_threshold`` are paired one-to-one with the ground-truth
objects for the largest total mask IoU regardless of class (:func:`~insseg.evaluation.matching.match_image`,
void excluded as in the matching metrics); a pair with IoU >= 0.5 counts in cell (its object's class, its
prediction's class). An object without such a pair counts in its row's ``missed`` column; a prediction without
one counts in the ``background`` row (a false positive). Predictions of model classes the dataset lacks (kept
with ``eval.keep_unmapped``) get an ``unmapped`` column when there are any.

When the pass matches class-agnostically (the default, ``eval.class_aware_matching=false``), the sample's match
is used, so the matrix costs no extra matching; otherwise the kept detections are matched again here without
classes (same threshold and void handling).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from insseg.evaluation.matching import TP_IOU, ImageMatch, match_image
from insseg.evaluation.reports.plotting import pyplot, save_figure
from insseg.evaluation.sample import ImageSample
from insseg.utils.logging import log

FILE_NAME = "confusion_matrix.png"
MISSED, BACKGROUND, UNMAPPED = "missed", "background", "unmapped"
MAX_DRAWN_CLASSES = 100  # beyond this (LVIS) the PNG is not drawn: 0.32 inch a cell would make it gigapixels


def confusion_counts(match: ImageMatch, gt_labels: np.ndarray, pred_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [K + 1, K + 2] counts of one image. Rows: classes 1..K, then background; columns: classes 1..K,
    unmapped (label 0), missed. Labels are 1-based dataset labels (0: unmapped prediction)."""
    k = num_classes
    counts = np.zeros((k + 1, k + 2), np.int64)
    pred_col = np.where(np.asarray(pred_labels) >= 1, np.asarray(pred_labels) - 1, k).astype(np.int64)
    paired = np.zeros(len(pred_col), bool)
    for i, label in enumerate(np.asarray(gt_labels).tolist()):
        j = int(match.matched[i])
        if j >= 0 and match.iou[i] >= TP_IOU:
            counts[label - 1, pred_col[j]] += 1
            paired[j] = True
        else:
            counts[label - 1, k + 1] += 1
    np.add.at(counts[k], pred_col[~paired], 1)
    return counts


class ConfusionMatrix:
    """Counts summed over images, with the tables and the picture made from them."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.counts = np.zeros((len(self.class_names) + 1, len(self.class_names) + 2), np.int64)

    def add(self, counts: np.ndarray) -> None:
        self.counts += counts

    def labelled(self) -> tuple[list[str], list[str], np.ndarray]:
        """Row names, column names and counts, the ``unmapped`` column left out when empty."""
        rows = [*self.class_names, BACKGROUND]
        cols = [*self.class_names, UNMAPPED, MISSED]
        counts = self.counts
        if not counts[:, len(self.class_names)].any():
            keep = [c for c in range(len(cols)) if c != len(self.class_names)]
            cols, counts = [cols[c] for c in keep], counts[:, keep]
        return rows, cols, counts

    def normalised(self) -> np.ndarray:
        """Each row divided by its total (a class's objects; the background row by all false positives)."""
        _, _, counts = self.labelled()
        totals = counts.sum(axis=1, keepdims=True)
        return np.where(totals > 0, counts / np.maximum(totals, 1), 0.0)

    def sheet_rows(self) -> list[list[Any]]:
        """The xlsx sheet: the counts table, a blank row, the row-normalised table."""
        rows, cols, counts = self.labelled()
        corner = "ground truth \\ predicted"
        out: list[list[Any]] = [["counts"], [corner, *cols]]
        out += [[r, *map(int, c)] for r, c in zip(rows, counts)]
        out += [[], ["row-normalised"], [corner, *cols]]
        out += [[r, *(round(float(v), 6) for v in c)] for r, c in zip(rows, self.normalised())]
        return out

    def plot(self, path: Path) -> Path:
        """Counts and row-normalised side by side, as one PNG (numbers in the non-zero cells)."""
        rows, cols, counts = self.labelled()
        norm = self.normalised()
        plt = pyplot()
        # laid out in inches (tight_layout costs seconds with ~20 rotated labels per axis)
        cell, left, bottom, top = 0.32, 1.3, 1.1, 0.6
        grid_w, grid_h = len(cols) * cell, len(rows) * cell
        width, height = 2 * (left + grid_w) + 0.3, bottom + grid_h + top
        fig = plt.figure(figsize=(width, height))
        axes = [
            fig.add_axes(((k * (left + grid_w) + left) / width, bottom / height, grid_w / width, grid_h / height))
            for k in range(2)
        ]
        for ax, values, title, fmt in zip(axes, (counts, norm), ("counts", "row-normalised"), ("d", ".2f")):
            ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
            ax.set_yticks(range(len(rows)), rows, fontsize=7)
            ax.set_xlabel("predicted", fontsize=8)
            ax.set_ylabel("ground truth", fontsize=8)
            ax.set_title(title, fontsize=10)
            for (r, c), v in np.ndenumerate(values):
                if counts[r, c]:
                    ax.text(
                        c,
                        r,
                        format(v, fmt),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[r, c] > 0.6 else "black",
                    )
        fig.suptitle(f"pairs at IoU >= {TP_IOU}, class-agnostic one-to-one matching", fontsize=10)
        return save_figure(fig, path, tight=False)


class ConfusionEvaluator:
    """Accumulates the matrix per image (see the module docstring); writes ``confusion_matrix.png`` into
    ``out_dir`` when evaluated. Adds no metrics; the xlsx sheet comes from :attr:`matrix`."""

    def __init__(self, class_names: Sequence[str], out_dir: str | Path) -> None:
        self.class_names = list(class_names)
        self.out_dir = Path(out_dir)
        self.reset()

    def reset(self) -> None:
        self.matrix = ConfusionMatrix(self.class_names)

    def process(self, sample: ImageSample) -> None:
        gt, kept, s = sample.gt, sample.kept, sample.settings
        match = (
            match_image(gt, sample.kept_masks, kept.labels, s.void_as_background, class_aware=False)
            if s.class_aware
            else sample.match
        )
        self.matrix.add(confusion_counts(match, gt.labels, kept.labels, len(self.class_names)))

    def evaluate(self, coco: object = None) -> dict[str, Any]:
        if len(self.class_names) > MAX_DRAWN_CLASSES:  # LVIS's 1,203: a picture of gigapixels nobody can read
            log.info(
                f"confusion matrix of {len(self.class_names)} classes not drawn (more than {MAX_DRAWN_CLASSES}); "
                "its counts are in metrics.xlsx"
            )
            return {}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.matrix.plot(self.out_dir / FILE_NAME)
        return {}
