"""Models: one factory for Mask R-CNN and RefineMask."""

from insseg.models.factory import build_model, check_weights_available

__all__ = ["build_model", "check_weights_available"]
