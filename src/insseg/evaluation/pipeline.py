"""The evaluation pipeline behind ``evaluate.py``: ``run_evaluation(cfg) -> metrics``, usable without Hydra.

1. Records (:class:`~insseg.predictions.ImagePrediction`): from ``eval.predictions`` (a predictions.json or a COCO
   results list),
   the prediction cache, or the inference loop (every detection above the model's floor, float32 unless
   ``device.amp=true``).
2. One pass (:func:`score_records`, :class:`~insseg.evaluation.evaluator.Evaluators`): each record meets its
   image's ground truth; the pass matches it once and hands the sample to every evaluator (matching, timing,
   metrics.xlsx rows, mask PNGs, the reports of ``eval.reports``), then scores COCO once and hands the results
   to each (COCO segm / bbox / boundary AP, per-class AP, PR curves). The pass and the evaluators a config asks
   for: :mod:`insseg.evaluation.dataset_pass`.
3. Files in ``cfg.paths.output_dir``: predictions.json, metrics.json, metrics.xlsx, masks/, pr_curves/,
   confusion_matrix.png, gallery/ and, last, report.html.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from insseg.data.dataset import InstanceSegmentationDataset
from insseg.data.lvis import LvisReader
from insseg.evaluation.cityscapes_eval import benchmark_evaluators
from insseg.evaluation.class_mapping import ClassBridge, bridge_classes
from insseg.evaluation.dataset_pass import build_evaluators, score_records
from insseg.evaluation.evaluator import Evaluators
from insseg.evaluation.excel_report import ExcelReport
from insseg.evaluation.lvis_evaluator import LvisEvaluator
from insseg.evaluation.record_sources import evaluation_records
from insseg.evaluation.reports import dataset_image_loader, report_sheets, write_html_report
from insseg.evaluation.split import eval_dataset
from insseg.models.checkpoint_settings import with_checkpoint_model
from insseg.models.factory import check_weights_available
from insseg.predictions import PredictionSet
from insseg.utils.atomic import atomic_write_json
from insseg.utils.device import resolve_device
from insseg.utils.distributed import DistInfo, barrier, cleanup, init_distributed
from insseg.utils.json_safe import json_safe
from insseg.utils.logging import ensure_console_logging, log

# The keys of metrics.json that the issue names, in this order; more follow.
HEADLINE = (
    "segm_AP",
    "segm_AP50",
    "segm_AP75",
    "bbox_AP",
    "bbox_AP50",
    "bbox_AP75",
    "boundary_AP",
    "boundary_AP50",
    "boundary_AP75",
    "mean_iou",
    "mean_f1",
    "mean_boundary_iou",
    "mean_iou_with_bg",
    "mean_f1_with_bg",
    "instance_precision",
    "instance_recall",
    "instance_f1",
    "num_images",
    "num_objects",
    "num_predictions",
)


def file_category_ids(bridge: ClassBridge, dataset_ids: Sequence[int]) -> list[int]:
    """The category id predictions.json gives each model label on COCO-format data: the file's id of the
    dataset class it is bridged to, so ``COCO(user_file).loadRes(...)`` needs no mapping; model classes without
    a counterpart get ids above the file's (COCOeval leaves them out, as we do)."""
    spare = max(dataset_ids, default=0)
    ids = []
    for label in bridge.dataset_label.tolist():
        if label > 0:
            ids.append(int(dataset_ids[label - 1]))
        else:
            spare += 1
            ids.append(spare)
    return ids


def log_bridge(bridge: ClassBridge, keep_unmapped: bool) -> None:
    if bridge.is_identity:
        return
    unmapped = bridge.unmapped
    log.info(
        f"model classes bridged to the dataset's by name; {len(unmapped)} without a counterpart "
        f"({'kept' if keep_unmapped else 'dropped'}): {', '.join(unmapped[:12])}{' ...' if len(unmapped) > 12 else ''}"
    )


def run_evaluation(cfg: DictConfig, explicit_model_keys: Collection[str] = ()) -> dict[str, Any]:
    """Evaluate and write predictions.json, metrics.json, metrics.xlsx, masks/ and the reports (report.html, ...)
    into ``cfg.paths.output_dir``.

    Returns the metrics as written to metrics.json (undefined COCO values are None there and here). Under
    torchrun every rank runs the model on its shard of the images and rank 0 scores and writes; the other
    ranks return an empty dict. A project checkpoint in ``model.weights`` runs with the model settings it was
    trained with, except ``explicit_model_keys`` (``min_size``, ...: given on the command line).
    """
    ensure_console_logging()
    if not cfg.eval.predictions:
        cfg = with_checkpoint_model(cfg, explicit_model_keys)
    dist_info = DistInfo() if cfg.eval.predictions else init_distributed(resolve_device(cfg.device))
    try:
        return _evaluate(cfg, dist_info)
    finally:
        cleanup(dist_info)


def _evaluate(cfg: DictConfig, dist_info: DistInfo) -> dict[str, Any]:
    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    if dist_info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.eval.predictions:
            check_weights_available(cfg.model)  # before any dataset download
        dataset, split = eval_dataset(cfg)  # rank 0 prepares (downloads or generates) the data first
    barrier(dist_info)
    if not dist_info.is_main:
        dataset, split = eval_dataset(cfg)
    with evaluation_records(cfg, dataset, split, dist_info) as (predictions, records, source):
        if predictions is None:
            return {}  # a rank other than 0: its shard went to rank 0
        bridge = bridge_classes(
            predictions.class_names, list(dataset.class_names), keep_unmapped=cfg.eval.keep_unmapped
        )
        log_bridge(bridge, cfg.eval.keep_unmapped)
        evaluators = build_evaluators(
            cfg.eval,
            list(dataset.class_names),
            out_dir,
            dataset_image_loader(dataset),
            lvis_categories=dataset.reader.categories if isinstance(dataset.reader, LvisReader) else None,
            benchmark=benchmark_evaluators(dataset, out_dir),
        )
        report = evaluators.get(ExcelReport)
        try:
            metrics = score_records(dataset, records, evaluators, bridge)
        except BaseException:
            report.discard()
            raise
    metrics = _finish_metrics(metrics, predictions, source, dist_info.world_size, cfg.eval.coco_backend)
    if dataset.category_ids is not None:
        predictions.category_ids = file_category_ids(bridge, dataset.category_ids)
    predictions.write(out_dir / "predictions.json")
    atomic_write_json(out_dir / "metrics.json", metrics)
    report.write(
        out_dir / "metrics.xlsx",
        metrics,
        OmegaConf.to_container(cfg, resolve=True),
        coco_tables=_protocol_tables(evaluators),
        notes=_notes(cfg, dataset, split, source),
        extra_sheets=report_sheets(evaluators, metrics),
    )
    if cfg.eval.reports.html:
        write_html_report(out_dir, metrics, cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    log.info(_summary_line(metrics, out_dir, time.perf_counter() - start))
    return metrics


def _protocol_tables(evaluators: Evaluators) -> dict[str, str] | None:
    """The printed summary tables of the AP protocol that ran (pycocotools', or lvis-api's on LVIS data)."""
    lvis = evaluators.get(LvisEvaluator)
    if lvis is not None:
        return lvis.tables
    return evaluators.coco.tables if evaluators.coco is not None else None


def _finish_metrics(
    metrics: dict[str, Any], predictions: PredictionSet, source: str, processes: int, coco_backend: str
) -> dict[str, Any]:
    """Headline keys first, then the rest, then where the predictions came from; NaN -> null."""
    out: dict[str, Any] = {k: metrics[k] for k in HEADLINE if k in metrics}
    out.update({k: v for k, v in metrics.items() if k not in out})
    out["precision"] = predictions.info.get("precision")
    out["predictions_score_threshold"] = predictions.info.get("score_threshold")
    out["lowest_score"] = predictions.lowest_score
    out["prediction_cache_hit"] = source == "cache"
    out["coco_backend"] = coco_backend
    out["processes"] = processes
    out["model_run_s"] = predictions.run_seconds  # wall time of the model run, warm-up included; null if not run
    return json_safe(out)


def _notes(cfg: DictConfig, dataset: InstanceSegmentationDataset, split: str, source: str) -> dict[str, str]:
    return {
        "predictions from": {"file": f"file {cfg.eval.predictions}", "cache": "prediction cache", "model": "model run"}[
            source
        ],
        "dataset": f"{cfg.data.name} ({dataset.reader.root}, split {split})",
        "timing": (
            "not measured (predictions from a file)"
            if source == "file"
            else "measured when the model ran "
            "(warm-up batches excluded; a cache hit reports the run that filled the cache)"
        ),
        "mean inference time for each object": "seconds: the image's data + model + postprocess time / its objects",
    }


def _summary_line(m: dict[str, Any], out_dir: Path, seconds: float) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    benchmark = f"Cityscapes AP {f(m['cityscapes_AP'])}  " if "cityscapes_AP" in m else ""
    return (
        f"segm AP {f(m['segm_AP'])}  bbox AP {f(m['bbox_AP'])}  {benchmark}mean IoU {f(m['mean_iou'])}  mean F1 "
        f"{f(m['mean_f1'])}  instance P/R/F1 {f(m['instance_precision'])}/{f(m['instance_recall'])}/"
        f"{f(m['instance_f1'])}  ({m['num_images']} images, {m['num_objects']} objects, {seconds:.1f} s)\n"
        f"results in {out_dir}"
    )


__all__ = ["run_evaluation", "eval_dataset", "build_evaluators", "score_records", "HEADLINE"]
