"""Inference: the one inference loop, the :class:`Segmenter` API, overlays, and ``predict(cfg)`` behind
predict.py."""

from insseg.inference.loop import InferenceLoop
from insseg.inference.segmenter import Segmenter
from insseg.utils.overlay import draw_overlay, instance_colors

__all__ = ["InferenceLoop", "Segmenter", "draw_overlay", "instance_colors"]
