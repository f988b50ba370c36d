"""COCO AP of a model on a dataset, as the training loop runs it after each epoch: the same inference loop,
record and COCO evaluator as evaluate.py, so a checkpoint scores the same here and there."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.evaluate import score_records
from insseg.evaluation.evaluator import Evaluators
from insseg.inference.loop import InferenceLoop
from insseg.inference.sources import DatasetSource
from insseg.predictions import ImagePrediction
from insseg.utils.device import inference_precision


def evaluate_coco(
    model: torch.nn.Module,
    dataset: InstanceSegmentationDataset,
    device: torch.device,
    device_cfg: Any,
    print_freq: int = 50,
    void_as_background: bool = False,
    num_samples: int = 8,
) -> tuple[dict[str, float], list[tuple[torch.Tensor, ImagePrediction]]]:
    """bbox and segm AP over ``dataset``; also returns the first ``num_samples`` (image, prediction) pairs
    for overlays (image: float [3, H, W] in 0..1)."""
    loop = InferenceLoop(model, DatasetSource(dataset), device, inference_precision(device_cfg, device))
    samples: list[tuple[torch.Tensor, ImagePrediction]] = []
    bridge = bridge_classes(list(model.class_names), list(dataset.class_names))
    evaluators = Evaluators([CocoEvaluator(dataset.class_names, void_as_background)])
    metrics = score_records(dataset, _keep_samples(loop, dataset, samples, num_samples), evaluators, bridge, header="Eval:")
    return metrics, samples


def _keep_samples(
    records: Iterable[ImagePrediction], dataset: InstanceSegmentationDataset,
    samples: list[tuple[torch.Tensor, ImagePrediction]], limit: int,
) -> Iterator[ImagePrediction]:
    for i, rec in enumerate(records):
        if i < limit:
            image = torch.from_numpy(dataset.load_image(i)).permute(2, 0, 1).float().div_(255.0)
            samples.append((image, rec))
        yield rec
