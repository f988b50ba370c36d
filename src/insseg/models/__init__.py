"""Models: one factory for Mask R-CNN and RefineMask."""

from insseg.models.factory import build_model

__all__ = ["build_model"]
