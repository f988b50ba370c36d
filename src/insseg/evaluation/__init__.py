"""Evaluation: COCO AP, one-to-one mask matching metrics, reports, prediction cache and sweep summaries.

The building blocks take plain arguments and work without Hydra; :func:`insseg.evaluation.evaluate.evaluate`
is the config-driven pipeline behind ``evaluate.py``.
"""

from insseg.evaluation.coco import CocoEvaluator

__all__ = ["CocoEvaluator"]
