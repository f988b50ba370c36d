"""COCO AP of a model on a dataset, as the training loop runs it after each epoch."""

from __future__ import annotations

from typing import Any

import torch

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.engine.progress import MetricLogger
from insseg.predictions import ImagePrediction
from insseg.utils.device import autocast


@torch.inference_mode()
def evaluate_coco(
    model: torch.nn.Module,
    dataset: InstanceSegmentationDataset,
    device: torch.device,
    device_cfg: Any,
    print_freq: int = 50,
    verbose: bool = True,
) -> tuple[dict[str, float], list[tuple[torch.Tensor, ImagePrediction]]]:
    """bbox and segm AP over ``dataset``; also returns the first few (image, prediction) pairs for overlays."""
    from insseg.evaluation.coco import CocoEvaluator

    was_training = model.training
    model.eval()
    evaluator = CocoEvaluator(dataset.class_names)
    samples: list[tuple[torch.Tensor, ImagePrediction]] = []
    logger = MetricLogger(enabled=verbose)
    for i in logger.log_every(range(len(dataset)), print_freq, header="Eval:"):
        image, _ = dataset[i]
        with autocast(device_cfg, device):
            output = model([image.to(device)])[0]
        pred = ImagePrediction.from_model_output(output)
        evaluator.add(dataset.annotation(i), pred, model.class_names)
        if len(samples) < 8:
            samples.append((image, pred))
    model.train(was_training)
    return evaluator.summarize(), samples
