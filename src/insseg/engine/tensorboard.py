"""TensorBoard output: loss terms and learning rate per iteration, AP per epoch, prediction overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from insseg.predictions import ImagePrediction


class TensorBoardLogger:
    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self.writer = SummaryWriter(str(log_dir)) if enabled else None

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def overlays(self, samples: Sequence[tuple[torch.Tensor, ImagePrediction]], class_names: Sequence[str],
                 step: int, score_threshold: float = 0.5) -> None:
        if self.writer is None:
            return
        for k, (image, pred) in enumerate(samples):
            self.writer.add_image(f"predictions/{k}", render_overlay(image, pred.above(score_threshold), class_names), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def render_overlay(image: torch.Tensor, pred: ImagePrediction, class_names: Sequence[str]) -> torch.Tensor:
    """uint8 [3, H, W]: masks and labelled boxes drawn over a float [3, H, W] image."""
    canvas = (image.clamp(0, 1) * 255).to(torch.uint8)
    if len(pred) == 0:
        return canvas
    canvas = draw_segmentation_masks(canvas, torch.from_numpy(pred.masks), alpha=0.5)
    labels = [f"{class_names[int(l) - 1]} {s:.2f}" for l, s in zip(pred.labels, pred.scores)]
    return draw_bounding_boxes(canvas, torch.from_numpy(pred.boxes), labels=labels, width=2)
