"""RefineMask (CVPR 2021) R50/R101-FPN in plain PyTorch: loads every released official mmdetection checkpoint
(COCO, LVIS, Cityscapes) and reproduces the official inference numerics. See ``docs/refinemask.md``."""

from .detector import COCO_CLASSES, RefineMaskDetector, build_refinemask, load_official_checkpoint
from .spec import RefineMaskSpec
from .zoo import VARIANTS

__all__ = [
    "RefineMaskDetector",
    "RefineMaskSpec",
    "VARIANTS",
    "build_refinemask",
    "load_official_checkpoint",
    "COCO_CLASSES",
]
