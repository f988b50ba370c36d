"""Training augmentation (the tutorial's: horizontal flip) applied to image, boxes and masks together."""

from __future__ import annotations

import torch


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        if self.p > 0 and torch.rand(()) < self.p:
            image = image.flip(-1)
            width = image.shape[-1]
            target = dict(target)
            boxes = target["boxes"].clone()
            # Pixel-extent boxes (x2 = last column + 1) mirror about the image width.
            boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
            target["masks"] = target["masks"].flip(-1)
        return image, target
