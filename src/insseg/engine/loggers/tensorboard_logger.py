"""``logger=tensorboard`` (the default): loss terms and learning rate per iteration, epoch means, AP per
epoch (overall and per class), PR curves, prediction overlays, the config as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from insseg.engine.loggers.base import RunLogger
from insseg.evaluation.reports.tensorboard_summaries import tensorboard_per_class, tensorboard_pr_curves
from insseg.predictions import ImagePrediction, class_name
from insseg.utils.overlay import draw_overlay


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

    def log_overlays(
        self, samples: Sequence[tuple[torch.Tensor, ImagePrediction]], class_names: Sequence[str], epoch: int
    ) -> None:
        for k, (image, pred) in enumerate(samples):
            overlay = render_overlay(image, pred.above(self.score_threshold), class_names)
            self.writer.add_image(f"predictions/{k}", overlay, epoch)

    def log_evaluation(self, coco: Any, per_class: Mapping[str, Any] | None, epoch: int) -> None:
        if per_class:
            tensorboard_per_class(self.writer, per_class, epoch)
        if coco is not None:
            tensorboard_pr_curves(self.writer, coco, epoch)

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def render_overlay(image: torch.Tensor, pred: ImagePrediction, class_names: Sequence[str]) -> torch.Tensor:
    """uint8 [3, H, W]: the predict.py overlay (:func:`insseg.utils.overlay.draw_overlay`) of a float
    [3, H, W] image."""
    rgb = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    labels = [f"{class_name(class_names, int(k))} {s:.2f}" for k, s in zip(pred.labels, pred.scores)]
    drawn = draw_overlay(rgb, pred.mask_array(), pred.boxes, labels)
    return torch.from_numpy(drawn).permute(2, 0, 1)
