"""COCO AP of a model on a dataset, as the training loop runs it after each epoch: the same inference loop,
record and COCO evaluator as evaluate.py, so a checkpoint scores the same here and there. Under DDP every rank
runs the model on its shard of the images and rank 0 scores (call it on every rank)."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.engine.distributed import DistInfo, broadcast_object
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.evaluate import score_records
from insseg.evaluation.evaluator import Evaluators
from insseg.inference.loop import InferenceLoop
from insseg.inference.sharding import ShardSource, gather_in_order, shard_indices
from insseg.inference.sources import DatasetSource
from insseg.predictions import ImagePrediction
from insseg.utils.device import inference_precision

Samples = list[tuple[torch.Tensor, ImagePrediction]]


def evaluate_coco(
    model: torch.nn.Module,
    dataset: InstanceSegmentationDataset,
    device: torch.device,
    device_cfg: Any,
    print_freq: int = 50,
    void_as_background: bool = False,
    num_samples: int = 8,
    dist_info: DistInfo = DistInfo(),
) -> tuple[dict[str, float], Samples]:
    """bbox and segm AP over ``dataset`` (the same on every rank); also returns, on rank 0, the first
    ``num_samples`` (image, prediction) pairs for overlays (image: float [3, H, W] in 0..1)."""
    positions = shard_indices(len(dataset), dist_info)
    source = ShardSource(DatasetSource(dataset), positions) if dist_info.enabled else DatasetSource(dataset)
    records: Iterable[ImagePrediction] = InferenceLoop(model, source, device, inference_precision(device_cfg, device))
    if dist_info.enabled:
        records = gather_in_order(list(records), positions, dist_info)
    metrics: dict[str, float] = {}
    samples: Samples = []
    if records is not None:
        bridge = bridge_classes(list(model.class_names), list(dataset.class_names))
        evaluators = Evaluators([CocoEvaluator(dataset.class_names, void_as_background)])
        kept = _keep_samples(records, dataset, samples, num_samples)
        metrics = score_records(dataset, kept, evaluators, bridge, header="Eval:", print_freq=print_freq)
    return broadcast_object(metrics, dist_info), samples


def _keep_samples(records: Iterable[ImagePrediction], dataset: InstanceSegmentationDataset, samples: Samples,
                  limit: int) -> Iterator[ImagePrediction]:
    for i, rec in enumerate(records):
        if i < limit:
            image = torch.from_numpy(dataset.load_image(i)).permute(2, 0, 1).float().div_(255.0)
            samples.append((image, rec))
        yield rec
