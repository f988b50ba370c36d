"""The paired bootstrap over images: seeded draws, every metric of every run on each drawn multiset.

A resample draws ``n`` of the ``n`` evaluated images with replacement; it is kept as weights (how often each
image was drawn), the same for every run (paired). On each resample the COCO APs are re-accumulated from the
runs' :class:`~insseg.compare.accumulate.DetectionTable` s and the matching metrics are recomputed from per-image
sums (:class:`ImageSums`), exactly as :class:`~insseg.evaluation.matching.MatchingAccumulator` sums over images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from insseg.compare.accumulate import DetectionTable, ap_stats, per_class_ap
from insseg.evaluation.matching import ImageMatch

AP_STATS = ("AP", "AP50", "AP75")


def resample_weights(num_images: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, num_images] int64: how often each image is drawn in each resample (``numpy``'s
    ``default_rng(seed).integers(0, n, (resamples, n))``, counted)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_images, size=(resamples, num_images))
    offsets = (np.arange(resamples) * num_images)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * num_images)
    return counts.reshape(resamples, num_images).astype(np.int64)


@dataclass
class ImageSums:
    """Per image what the matching metrics sum: objects, predictions above the threshold, true positives,
    summed IoU and F1 of the objects, and the image's mean IoU / F1 with background."""

    objects: np.ndarray
    predictions: np.ndarray
    true_positives: np.ndarray
    iou: np.ndarray
    f1: np.ndarray
    iou_with_bg: np.ndarray
    f1_with_bg: np.ndarray
    boundary_iou: np.ndarray | None = None  # summed boundary IoU / F1 of the objects, when scored
    boundary_f1: np.ndarray | None = None

    @classmethod
    def from_matches(
        cls, matches: Sequence[ImageMatch], boundary: Sequence[tuple[float, float]] | None = None
    ) -> ImageSums:
        def col(f: Callable[[ImageMatch], float], dtype: type = np.float64) -> np.ndarray:
            return np.array([f(m) for m in matches], dtype=dtype)

        return cls(
            col(lambda m: m.num_objects, np.int64),
            col(lambda m: m.num_predictions, np.int64),
            col(lambda m: m.true_positives, np.int64),
            col(lambda m: float(m.iou.sum())),
            col(lambda m: float(m.f1.sum())),
            col(lambda m: m.mean_iou_with_bg),
            col(lambda m: m.mean_f1_with_bg),
            None if boundary is None else np.array([b[0] for b in boundary], np.float64),
            None if boundary is None else np.array([b[1] for b in boundary], np.float64),
        )

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The matching metrics of each resample ([R] per name) for weights [R, n]."""
        w = np.asarray(weights, np.float64)
        objects, predictions, tp = w @ self.objects, w @ self.predictions, w @ self.true_positives
        images = w.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predictions > 0, tp / np.maximum(predictions, 1), 0.0)
            recall = np.where(objects > 0, tp / np.maximum(objects, 1), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        out = {
            "mean_iou": w @ self.iou / np.maximum(objects, 1),
            "mean_f1": w @ self.f1 / np.maximum(objects, 1),
            "mean_iou_with_bg": w @ self.iou_with_bg / np.maximum(images, 1),
            "mean_f1_with_bg": w @ self.f1_with_bg / np.maximum(images, 1),
            "instance_precision": precision,
            "instance_recall": recall,
            "instance_f1": f1,
        }
        if self.boundary_iou is not None and self.boundary_f1 is not None:  # over all objects, as mean_iou
            out["mean_boundary_iou"] = w @ self.boundary_iou / np.maximum(objects, 1)
            out["mean_boundary_f1"] = w @ self.boundary_f1 / np.maximum(objects, 1)
        return out


def coco_distributions(
    tables: dict[str, DetectionTable], weights: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``{iou_type}_AP``/``AP50``/``AP75`` of each resample ([R], NaN where the multiset has no ground truth)
    and each category's AP per IoU type ([R, K])."""
    resamples = weights.shape[0]
    stats = {f"{t}_{s}": np.full(resamples, np.nan) for t in tables for s in AP_STATS}
    per_class = {t: np.full((resamples, table.num_categories), np.nan) for t, table in tables.items()}
    for r in range(resamples):
        for iou_type, table in tables.items():
            precision = table.precision(weights[r])
            for name, value in zip(AP_STATS, ap_stats(precision, table.iou_thrs)):
                stats[f"{iou_type}_{name}"][r] = value
            per_class[iou_type][r] = per_class_ap(precision)
    return stats, per_class


def interval(values: np.ndarray) -> list[float] | None:
    """The 2.5th and 97.5th percentiles (resamples where the metric is undefined left out); None when it is
    undefined in every one."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]
