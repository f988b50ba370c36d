"""The evaluation pipeline behind ``evaluate.py``: ``evaluate(cfg) -> metrics``, usable without Hydra.

1. Predictions: from ``eval.predictions`` (a predictions.json), from the prediction cache, or by running the
   model (batched, AMP on CUDA, timed); every detection above the model's own floor is kept.
2. Per image, streamed: COCO AP accumulation (every prediction), one-to-one matching (score >
   ``eval.score_threshold``), a row per object in metrics.xlsx, mask PNGs.
3. Files in ``cfg.paths.output_dir``: predictions.json, metrics.json, metrics.xlsx, masks/.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from insseg.data import build_dataset
from insseg.data.annotations import InstanceAnnotation
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import ConfigError, InssegError
from insseg.models.factory import check_weights_available
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.excel_report import ExcelReport
from insseg.evaluation.mask_export import export_masks
from insseg.evaluation.matching import MatchingAccumulator, match_image
from insseg.evaluation.prediction_cache import PredictionCache, cache_key_info, round_trip
from insseg.evaluation.sources import ImageRecord, PredictionSet, from_file, progress, run_model
from insseg.evaluation.timing import TimingStats
from insseg.predictions import PredictionsWriter
from insseg.utils.atomic import atomic_write_json
from insseg.utils.device import configure_runtime, resolve_device
from insseg.utils.logging import ensure_console_logging, log
from insseg.utils.seed import seed_everything

# The keys of metrics.json that the issue names, in this order; more follow.
HEADLINE = (
    "segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75",
    "mean_iou", "mean_f1", "mean_iou_with_bg", "mean_f1_with_bg",
    "instance_precision", "instance_recall", "instance_f1", "num_images", "num_objects", "num_predictions",
)
PENNFUDAN_SPLITS = {"train": "train", "test": "eval", "val": "eval", "eval": "eval"}


def eval_dataset(cfg: DictConfig) -> tuple[InstanceSegmentationDataset, str]:
    """The dataset to evaluate and its split's name: ``eval.split`` or the dataset's evaluation split."""
    split = cfg.eval.split
    if cfg.data.layout == "voc":
        data_cfg = cfg.data
        if split is not None:
            data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
            data_cfg.eval_split = split
        return build_dataset(data_cfg, "eval"), data_cfg.eval_split
    if split is None:
        return build_dataset(cfg.data, "eval"), "test"
    if split not in PENNFUDAN_SPLITS:
        raise ConfigError(
            f"config key 'eval.split' is '{split}'; for the {cfg.data.name} dataset use train or test (or null)"
        )
    which = PENNFUDAN_SPLITS[split]
    return build_dataset(cfg.data, which), "train" if which == "train" else "test"


def _predictions(cfg: DictConfig, dataset: InstanceSegmentationDataset, split: str) -> tuple[PredictionSet, str]:
    """The predictions and where they came from: 'file', 'cache' or 'model'."""
    if cfg.eval.predictions:
        log.info(f"evaluating predictions file {cfg.eval.predictions}")
        return from_file(cfg.eval.predictions, dataset), "file"
    device = resolve_device(cfg.device)
    configure_runtime(cfg.device, device)
    cache = None
    if cfg.eval.cache:
        names = [dataset.file_name(i) for i in range(len(dataset))]
        cache = PredictionCache(cfg.paths.cache_dir, cache_key_info(cfg, split, names, dataset.class_names, device))
    with cache.lock() if cache is not None else contextlib.nullcontext():
        if cache is not None:
            cached = cache.load()
            if cached is not None:
                log.info(f"prediction cache hit: {cache.path}")
                return cached, "cache"
        from insseg.models.factory import build_model

        seed_everything(cfg.seed)
        model = build_model(cfg.model, dataset_classes=dataset.class_names, fit_to_dataset=False)
        log.info(f"running {cfg.model.name} on {len(dataset)} images ({device}, batch {cfg.eval.batch_size})")
        fresh = run_model(model, dataset, device, cfg.device, cfg.eval.batch_size, cfg.eval.warmup_iters)
        del model
        if cache is not None:
            cache.save(fresh)
            log.info(f"prediction cache written: {cache.path}")
    return round_trip(fresh), "model"


class Scorer:
    """Every per-image consumer of one evaluation (COCO AP, matching, timing, report rows, PNGs, the
    predictions file) behind one ``process(annotation, record)``, as detectron2's evaluators are."""

    def __init__(self, cfg: DictConfig, dataset_classes: list[str], model_classes: list[str], out_dir: Path) -> None:
        self.e = cfg.eval
        self.bridge = bridge_classes(model_classes, dataset_classes, keep_unmapped=self.e.keep_unmapped)
        if not self.bridge.is_identity:
            unmapped = self.bridge.unmapped
            log.info(
                f"model classes bridged to the dataset's by name; {len(unmapped)} without a counterpart "
                f"({'kept' if self.e.keep_unmapped else 'dropped'}): {', '.join(unmapped[:12])}"
                f"{' ...' if len(unmapped) > 12 else ''}"
            )
        self.coco = CocoEvaluator(dataset_classes, self.e.coco_backend)
        self.matching = MatchingAccumulator()
        self.timing = TimingStats()
        self.report = ExcelReport()
        self.writer = PredictionsWriter(model_classes)
        self.masks_dir = out_dir / "masks"

    def process(self, ann: InstanceAnnotation, rec: ImageRecord) -> None:
        if (rec.height, rec.width) != (ann.height, ann.width):
            raise InssegError(
                f"predictions for {rec.file_name} are {rec.width}x{rec.height} but the image is "
                f"{ann.width}x{ann.height}; predictions must be at the image's original size"
            )
        self.writer.add(rec.file_name, rec.height, rec.width, rec.prediction)
        self.coco.add(ann, rec.prediction, self.bridge.names_for_dataset)
        kept = self.bridge.to_dataset(rec.prediction.above(self.e.score_threshold))
        masks = kept.get_masks(ann.height, ann.width)
        match = match_image(ann, masks, kept.labels, self.e.void_as_background, self.e.class_aware_matching)
        self.matching.add(match)
        self.timing.add(rec.timing, len(ann))
        self.report.add_image(match, ann.height, ann.width, rec.timing)
        if self.e.save_masks:
            export_masks(self.masks_dir, rec.file_name, match, masks, kept.scores)

    def metrics(self, source: str) -> dict[str, Any]:
        coco = self.coco.summarize()
        matching = self.matching.summary()
        metrics: dict[str, Any] = {k: coco[k] if k in coco else matching[k] for k in HEADLINE}
        for part in (coco, matching, self.timing.summary()):
            metrics.update({k: v for k, v in part.items() if k not in metrics})
        metrics["score_threshold"] = float(self.e.score_threshold)
        metrics["prediction_cache_hit"] = source == "cache"
        metrics["coco_backend"] = self.coco.backend
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate and write predictions.json, metrics.json, metrics.xlsx and masks/ into ``cfg.paths.output_dir``.

    Returns the metrics as written to metrics.json (undefined COCO values are None there and here).
    """
    ensure_console_logging()
    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.eval.predictions:
        check_weights_available(cfg.model)  # before any dataset download
    dataset, split = eval_dataset(cfg)
    preds, source = _predictions(cfg, dataset, split)
    scorer = Scorer(cfg, list(dataset.class_names), preds.class_names, out_dir)
    try:
        bar = progress(len(preds.records), "evaluate")
        for index, rec in zip(preds.indices, preds.records):
            scorer.process(dataset.annotation(index), rec)
            bar.update(1)
        bar.close()
    except BaseException:
        scorer.report.discard()
        raise

    metrics = scorer.metrics(source)
    scorer.writer.write(out_dir / "predictions.json")
    atomic_write_json(out_dir / "metrics.json", metrics)
    notes = {
        "predictions from": {"file": f"file {cfg.eval.predictions}", "cache": "prediction cache", "model": "model run"}[source],
        "dataset": f"{cfg.data.name} ({dataset.reader.root}, split {split})",
        "timing": (
            "measured when the model ran (warm-up excluded; a cache hit reports the run that filled the cache)"
            if scorer.timing.num_images else "not measured (predictions from a file)"
        ),
        "mean inference time for each object": "seconds: the image's preprocess + model + postprocess time / its objects",
    }
    scorer.report.write(
        out_dir / "metrics.xlsx",
        metrics,
        OmegaConf.to_container(cfg, resolve=True),
        coco_tables=scorer.coco.tables,
        per_class_ap=scorer.coco.per_class_ap(),
        notes=notes,
    )
    log.info(_summary_line(metrics, out_dir, time.perf_counter() - start))
    return metrics


def _summary_line(m: dict[str, Any], out_dir: Path, seconds: float) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    return (
        f"segm AP {f(m['segm_AP'])}  bbox AP {f(m['bbox_AP'])}  mean IoU {f(m['mean_iou'])}  mean F1 "
        f"{f(m['mean_f1'])}  instance P/R/F1 {f(m['instance_precision'])}/{f(m['instance_recall'])}/"
        f"{f(m['instance_f1'])}  ({m['num_images']} images, {m['num_objects']} objects, {seconds:.1f} s)\n"
        f"results in {out_dir}"
    )


__all__ = ["evaluate", "eval_dataset", "Scorer", "HEADLINE"]
