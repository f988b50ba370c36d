"""Inference: the :class:`Segmenter` API, overlays, and ``predict(cfg)`` behind predict.py."""

from insseg.inference.overlay import draw_overlay, instance_colors
from insseg.inference.segmenter import Segmentation, Segmenter

__all__ = ["Segmenter", "Segmentation", "draw_overlay", "instance_colors"]
