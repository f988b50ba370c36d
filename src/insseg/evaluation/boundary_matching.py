"""``mean_boundary_iou`` and ``mean_boundary_f1``: the boundary agreement of the one-to-one matched pairs.

Per ground-truth object, the Boundary IoU (and boundary F1) of its matched prediction (the pass's
:attr:`~insseg.evaluation.sample.ImageSample.boundary`), 0 when it has none; the means are over all objects of
the dataset, as ``mean_iou`` is of the mask IoUs. Where ``mean_iou`` stays high while ``mean_boundary_iou``
falls, the masks are in the right place but their outlines are off.
"""

from __future__ import annotations

from insseg.evaluation.sample import ImageSample


class BoundaryMatchingEvaluator:
    """Means of the samples' per-object boundary IoU and F1 (only when the pass scores boundaries)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.num_objects = 0
        self.sum_iou = 0.0
        self.sum_f1 = 0.0
        self.dilation_ratio: float | None = None

    def process(self, sample: ImageSample) -> None:
        scores = sample.boundary
        if scores is None:
            return
        self.dilation_ratio = sample.settings.boundary_dilation_ratio
        self.num_objects += len(scores[0])
        self.sum_iou += float(scores[0].sum())
        self.sum_f1 += float(scores[1].sum())

    def evaluate(self, coco: object = None) -> dict[str, float | None]:
        if self.dilation_ratio is None:
            return {}
        n = max(self.num_objects, 1)
        return {
            "mean_boundary_iou": self.sum_iou / n,
            "mean_boundary_f1": self.sum_f1 / n,
            "boundary_dilation_ratio": self.dilation_ratio,
        }
