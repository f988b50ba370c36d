"""COCO AP of a model on a dataset, as the training loop runs it after each epoch: the same inference loop,
record and COCO evaluator as evaluate.py, so a checkpoint scores the same here and there. Under DDP every rank
runs the model on its shard of the images and rank 0 scores (call it on every rank). With ``report_dir`` the
report evaluators (per-class AP, PR curves, confusion matrix, gallery) run too and draw into it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.data.lvis import LvisReader
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.coco import CocoMetrics, CocoResults
from insseg.evaluation.dataset_pass import coco_evaluation, score_records
from insseg.evaluation.evaluator import Evaluators, needs_coco
from insseg.evaluation.lvis_evaluator import LvisEvaluator
from insseg.evaluation.matching import MatchingEvaluator
from insseg.evaluation.reports import build_report_evaluators, dataset_image_loader
from insseg.evaluation.sample import MatchSettings
from insseg.inference.loop import InferenceLoop, to_tensor
from insseg.inference.sharding import ShardSource, gather_in_order, shard_indices
from insseg.inference.sources import DatasetSource
from insseg.predictions import ImagePrediction
from insseg.utils.distributed import DistInfo, broadcast_object

Samples = list[tuple[torch.Tensor, ImagePrediction]]


@dataclass
class Evaluation:
    """One training-time evaluation: the metrics (the same on every rank; ``per_class`` when reported), and on
    rank 0 the first images with their predictions (for overlays) and the COCO results."""

    metrics: dict[str, Any]
    samples: Samples = field(default_factory=list)
    coco: CocoResults | None = None


def evaluate_coco(
    model: torch.nn.Module,
    dataset: InstanceSegmentationDataset,
    device: torch.device,
    eval_cfg: Any,
    dist_info: DistInfo = DistInfo(),
    report_dir: Path | None = None,
    precision: str = "float32",
    print_freq: int = 50,
    num_samples: int = 8,
) -> Evaluation:
    """bbox and segm AP over ``dataset`` with ``eval_cfg``'s settings (void, COCO backend, reports)."""
    positions = shard_indices(len(dataset), dist_info)
    source = ShardSource(DatasetSource(dataset), positions) if dist_info.enabled else DatasetSource(dataset)
    loop: Iterable[ImagePrediction] = InferenceLoop(model, source, device, precision)
    records = gather_in_order(list(loop), positions, dist_info) if dist_info.enabled else loop
    if records is None:
        return Evaluation(broadcast_object({}, dist_info))
    reports = build_report_evaluators(
        eval_cfg.reports, list(dataset.class_names), report_dir, dataset_image_loader(dataset)
    )
    matching = [MatchingEvaluator()] if report_dir is not None else []
    protocol: Any = CocoMetrics()
    if isinstance(dataset.reader, LvisReader):  # LVIS data: its own protocol (and per-class AP), as evaluate.py
        protocol = LvisEvaluator(dataset.reader.categories, eval_cfg.reports.per_class)
        reports = [e for e in reports if not needs_coco(e)]
    evaluators = Evaluators(
        [protocol, *matching, *reports],
        MatchSettings.from_config(eval_cfg),
        coco_evaluation(eval_cfg, list(dataset.class_names)),
    )
    samples: Samples = []
    bridge = bridge_classes(list(cast(Sequence[str], model.class_names)), list(dataset.class_names))
    kept = _keep_samples(records, dataset, samples, num_samples)
    metrics = score_records(dataset, kept, evaluators, bridge, header="Eval:", print_freq=print_freq)
    coco = evaluators.coco.results() if evaluators.coco is not None else None
    return Evaluation(broadcast_object(metrics, dist_info), samples, coco)


def _keep_samples(
    records: Iterable[ImagePrediction], dataset: InstanceSegmentationDataset, samples: Samples, limit: int
) -> Iterator[ImagePrediction]:
    for i, rec in enumerate(records):
        if i < limit:
            image = to_tensor(dataset.load_image(i), torch.device("cpu"))
            samples.append((image, rec))
        yield rec
