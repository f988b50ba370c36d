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
            # masks_to_boxes boxes hold the last pixel index as x2, so mirror x about (width - 1).
            boxes[:, [0, 2]] = (width - 1) - target["boxes"][:, [2, 0]]
            # keep the 1-px minimum width used for training boxes
            boxes[:, 2] = torch.maximum(boxes[:, 2], boxes[:, 0] + 1)
            target["boxes"] = boxes
            target["masks"] = target["masks"].flip(-1)
        return image, target
