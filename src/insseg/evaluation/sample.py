"""What the evaluation pass hands each evaluator for one image: :class:`ImageSample`.

The pass (:class:`~insseg.evaluation.evaluator.Evaluators`) builds one sample per image. What several evaluators
need is computed on the sample once, the first time one of them asks, and shared: the detections above
``eval.score_threshold`` (``kept``) and their masks, their one-to-one :class:`~insseg.evaluation.matching.ImageMatch`
with the ground truth and, with boundary metrics on, each matched pair's boundary IoU and F1. No evaluator
reads another's state, so any subset of evaluators, in any order, gives the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from insseg.config.eval_boundary import boundary_dilation_ratio
from insseg.data.annotations import Annotation
from insseg.evaluation.boundary import boundary_dilation, boundary_iou_f1
from insseg.evaluation.matching import ImageMatch, match_image
from insseg.predictions import ImagePrediction


@dataclass(frozen=True)
class MatchSettings:
    """How the pass matches: ``eval.score_threshold``, ``eval.void_as_background``, ``eval.class_aware_matching``,
    and the boundary dilation ratio of ``eval.boundary`` (None: no boundary metrics)."""

    score_threshold: float = 0.5
    void_as_background: bool = False
    class_aware: bool = False
    boundary_dilation_ratio: float | None = None

    @classmethod
    def from_config(cls, eval_cfg: Any) -> MatchSettings:
        return cls(
            float(eval_cfg.score_threshold),
            bool(eval_cfg.void_as_background),
            bool(eval_cfg.class_aware_matching),
            boundary_dilation_ratio(eval_cfg),
        )


class ImageSample:
    """One image as the evaluators see it: ``gt`` (its annotation), ``pred`` (every detection above the model's
    floor, in dataset labels) and, computed once on first use, ``kept``, ``kept_masks``, ``match`` and ``boundary``."""

    def __init__(self, gt: Annotation, pred: ImagePrediction, settings: MatchSettings | None = None) -> None:
        self.gt = gt
        self.pred = pred
        self.settings = settings or MatchSettings()

    @cached_property
    def kept(self) -> ImagePrediction:
        """The detections scoring above ``settings.score_threshold``."""
        return self.pred.above(self.settings.score_threshold)

    @cached_property
    def kept_masks(self) -> np.ndarray:
        """Bool [M, H, W] masks of :attr:`kept`."""
        return self.kept.mask_array()

    @cached_property
    def match(self) -> ImageMatch:
        """The one-to-one match of :attr:`kept` with the ground truth."""
        s = self.settings
        return match_image(self.gt, self.kept_masks, self.kept.labels, s.void_as_background, s.class_aware)

    @cached_property
    def boundary(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Boundary IoU and F1 (float64 [N]) of each ground-truth object with its matched prediction, 0 when it
        has none (as :attr:`match`'s ``iou``); the prediction counted as in the matching (ignored pixels cut out
        unless ``void_as_background``). None when boundary metrics are off."""
        ratio = self.settings.boundary_dilation_ratio
        if ratio is None:
            return None
        match, n = self.match, len(self.gt)
        iou, f1 = np.zeros(n), np.zeros(n)
        pairs = np.flatnonzero(match.matched >= 0)
        if pairs.size:
            pred = self.kept_masks[match.matched[pairs]]
            if not self.settings.void_as_background:
                pred = pred & ~self.gt.ignore()[None]
            dilation = boundary_dilation(int(self.gt.height), int(self.gt.width), ratio)
            iou[pairs], f1[pairs] = boundary_iou_f1(self.gt.masks()[pairs], pred, dilation)
        return iou, f1
