"""``logger=tensorboard`` (the default): loss terms and learning rate per iteration, epoch means, AP per
epoch, prediction overlays, the config as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from insseg.engine.run_logger import RunLogger
from insseg.predictions import ImagePrediction


class TensorBoardLogger(RunLogger):
    def __init__(self, log_dir: Path, score_threshold: float = 0.5) -> None:
        self.writer = SummaryWriter(str(log_dir))
        self.score_threshold = score_threshold

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()), 0)

    def log_step(self, values: Mapping[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_epoch(self, values: Mapping[str, float], epoch: int) -> None:
        self.log_step(values, epoch)

    def log_overlays(self, samples: Sequence[tuple[torch.Tensor, ImagePrediction]], class_names: Sequence[str],
                     epoch: int) -> None:
        for k, (image, pred) in enumerate(samples):
            overlay = render_overlay(image, pred.above(self.score_threshold), class_names)
            self.writer.add_image(f"predictions/{k}", overlay, epoch)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def render_overlay(image: torch.Tensor, pred: ImagePrediction, class_names: Sequence[str]) -> torch.Tensor:
    """uint8 [3, H, W]: masks and labelled boxes drawn over a float [3, H, W] image."""
    canvas = (image.clamp(0, 1) * 255).to(torch.uint8)
    if len(pred) == 0:
        return canvas
    canvas = draw_segmentation_masks(canvas, torch.from_numpy(pred.masks), alpha=0.5)
    labels = [f"{class_names[int(l) - 1]} {s:.2f}" for l, s in zip(pred.labels, pred.scores)]
    return draw_bounding_boxes(canvas, torch.from_numpy(pred.boxes), labels=labels, width=2)
