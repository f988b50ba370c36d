"""TensorBoard output: loss terms and learning rate per iteration, AP per epoch, prediction overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.tensorboard import SummaryWriter

from insseg.inference.overlay import draw_overlay
from insseg.predictions import ImagePrediction, class_name


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
    """uint8 [3, H, W]: the predict.py overlay (:func:`insseg.inference.overlay.draw_overlay`) of a float
    [3, H, W] image."""
    rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    labels = [f"{class_name(class_names, int(k))} {s:.2f}" for k, s in zip(pred.labels, pred.scores)]
    drawn = draw_overlay(rgb, pred.mask_array(), pred.boxes, labels)
    return torch.from_numpy(drawn).permute(2, 0, 1)
