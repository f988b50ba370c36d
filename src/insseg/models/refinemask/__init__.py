"""RefineMask (CVPR 2021) R50-FPN in plain PyTorch: loads the official mmdetection checkpoint and reproduces
the official inference numerics. See ``docs/refinemask.md``."""

from .detector import COCO_CLASSES, RefineMaskDetector, build_refinemask, load_official_checkpoint

__all__ = ["RefineMaskDetector", "build_refinemask", "load_official_checkpoint", "COCO_CLASSES"]
