"""Evaluation: COCO AP, one-to-one mask matching metrics, reports, prediction cache and sweep summaries.

The building blocks take plain arguments and work without Hydra; :func:`insseg.evaluation.pipeline.run_evaluation`
is the config-driven pipeline behind ``evaluate.py`` (docs/evaluation.md).
"""

from insseg.evaluation.class_mapping import ClassBridge, bridge_classes
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.matching import ImageMatch, MatchingAccumulator, match_image

__all__ = ["CocoEvaluator", "ClassBridge", "bridge_classes", "ImageMatch", "MatchingAccumulator", "match_image"]
