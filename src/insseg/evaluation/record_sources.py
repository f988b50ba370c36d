"""Where evaluate.py's records come from: ``eval.predictions`` (a predictions.json or a COCO results list), the
prediction cache, or a model run (streamed in one process, gathered from the shards under torchrun)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from omegaconf import DictConfig

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.evaluation.dataset_pass import PRINT_FREQ
from insseg.evaluation.prediction_cache import PredictionCache, cache_key_info
from insseg.evaluation.prediction_file import records_for_split
from insseg.evaluation.split import warn_if_split_differs
from insseg.inference.sharding import ShardSource, gather_in_order, shard_indices
from insseg.predictions import ImagePrediction, PredictionSet
from insseg.utils.device import configure_runtime, inference_precision, resolve_device
from insseg.utils.distributed import DistInfo, broadcast_object
from insseg.utils.logging import log
from insseg.utils.progress import MetricLogger
from insseg.utils.seed import seed_everything

Records = tuple[PredictionSet | None, Iterable[ImagePrediction], str]


@contextlib.contextmanager
def evaluation_records(
    cfg: DictConfig, dataset: InstanceSegmentationDataset, split: str, dist_info: DistInfo
) -> Iterator[Records]:
    """The predictions to score, as (the set that predictions.json is written from, the records in dataset
    order, where they came from: 'file', 'cache' or 'model'). In one process model records stream: each image
    is scored as soon as the model has it. Under torchrun the ranks' shards are gathered on rank 0; the other
    ranks get ``(None, [], ...)``."""
    if cfg.eval.predictions:
        log.info(f"evaluating predictions file {cfg.eval.predictions}")
        predictions = records_for_split(cfg.eval.predictions, dataset, cfg.model, cfg.eval.predictions_check)
        yield predictions, predictions.images, "file"
        return
    device = resolve_device(cfg.device)
    configure_runtime(cfg.device, device)
    precision = inference_precision(cfg.device, device)
    names = [dataset.file_name(i) for i in range(len(dataset))]
    cache = None
    if cfg.eval.cache and dist_info.is_main:
        cache = PredictionCache(
            cfg.paths.cache_dir, cache_key_info(cfg, split, names, dataset.class_names, device, precision)
        )
    with cache.lock() if cache is not None else contextlib.nullcontext():
        cached = cache.load() if cache is not None else None
        if broadcast_object(cached is not None, dist_info):
            if cached is not None and cache is not None:
                log.info(f"prediction cache hit: {cache.path}")
            yield cached, cached.images if cached is not None else [], "cache"
            return
        fresh, records = run_model(cfg, dataset, device, precision, dist_info)
        yield fresh, records, "model"
        if cache is not None and fresh is not None:
            cache.save(fresh)
            log.info(f"prediction cache written: {cache.path}")


def run_model(
    cfg: DictConfig, dataset: InstanceSegmentationDataset, device: Any, precision: str, dist_info: DistInfo
) -> tuple[PredictionSet | None, Iterable[ImagePrediction]]:
    from insseg.inference.loop import InferenceLoop
    from insseg.inference.sources import DatasetSource
    from insseg.models.factory import build_model

    seed_everything(cfg.seed)
    model = build_model(cfg.model, dataset_classes=dataset.class_names, fit_to_dataset=False).to(device)
    if dist_info.is_main:
        warn_if_split_differs(getattr(model, "training_config", None), cfg.data)
        log.info(
            f"running {cfg.model.name} on {len(dataset)} images ({device}, {precision}, batch "
            f"{cfg.eval.batch_size}, {dist_info.world_size} process(es))"
        )
    positions = shard_indices(len(dataset), dist_info)
    source = ShardSource(DatasetSource(dataset), positions) if dist_info.enabled else DatasetSource(dataset)
    loop = InferenceLoop(model, source, device, precision, cfg.eval.batch_size, cfg.eval.warmup_iters)
    info = {"score_threshold": None, "precision": precision, "model": cfg.model.name}
    fresh = PredictionSet(list(cast(Sequence[str], model.class_names)), info=info)
    if not dist_info.enabled:
        return fresh, collect_records(loop, fresh)
    start = time.perf_counter()
    shard = list(MetricLogger(enabled=dist_info.is_main).log_every(loop, PRINT_FREQ, header="inference shard"))
    gathered = gather_in_order(shard, positions, dist_info)
    if gathered is None:
        return None, []
    fresh.images, fresh.run_seconds = gathered, time.perf_counter() - start
    return fresh, gathered


def collect_records(records: Iterable[ImagePrediction], into: PredictionSet) -> Iterator[ImagePrediction]:
    """The records as they come, added to ``into``; ``into.run_seconds`` counts only the time spent producing
    them (not the scoring that consumes them in between)."""
    into.run_seconds = 0.0
    iterator = iter(records)
    while True:
        start = time.perf_counter()
        rec = next(iterator, None)
        into.run_seconds += time.perf_counter() - start
        if rec is None:
            return
        into.images.append(rec)
        yield rec
