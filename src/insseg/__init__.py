"""insseg: train, evaluate and predict instance-segmentation models (Mask R-CNN, RefineMask)."""

__version__ = "0.1.0"
