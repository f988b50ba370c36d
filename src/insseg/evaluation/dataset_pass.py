"""The one pass over a dataset's records, and the evaluators that evaluate.py's config asks for.

:func:`score_records` runs :class:`~insseg.evaluation.evaluator.Evaluators` over a dataset (evaluate.py and
training-time evaluation alike); :func:`build_evaluators` assembles evaluate.py's from ``cfg.eval``;
:func:`coco_evaluation` is the pass's COCO evaluation (segm, bbox and, with ``eval.boundary`` on, boundary).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from pathlib import Path
from typing import Any

from insseg.config.eval_boundary import boundary_dilation_ratio
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import InssegError
from insseg.evaluation.boundary_matching import BoundaryMatchingEvaluator
from insseg.evaluation.class_mapping import ClassBridge
from insseg.evaluation.coco import CocoEvaluator, CocoMetrics
from insseg.evaluation.evaluator import Evaluators, needs_coco
from insseg.evaluation.excel_report import ExcelReport
from insseg.evaluation.lvis_evaluator import LvisEvaluator
from insseg.evaluation.mask_export import MaskExporter
from insseg.evaluation.matching import MatchingEvaluator
from insseg.evaluation.reports import build_report_evaluators
from insseg.evaluation.reports.gallery import ImageLoader
from insseg.evaluation.sample import MatchSettings
from insseg.evaluation.timing import TimingEvaluator
from insseg.predictions import ImagePrediction
from insseg.utils.progress import MetricLogger

PRINT_FREQ = 20


def build_evaluators(
    eval_cfg: Any,
    dataset_classes: list[str],
    out_dir: Path | None,
    load_image: ImageLoader | None = None,
    lvis_categories: list[dict[str, Any]] | None = None,
    benchmark: Sequence[Any] = (),
) -> Evaluators:
    """evaluate.py's pass and evaluators; ``out_dir=None`` leaves out the ones that write files. The gallery
    needs ``load_image``. ``lvis_categories`` (LVIS data: the file's categories): the LVIS protocol replaces COCO
    AP, and the reports drawn from COCO's arrays (per-class AP, PR curves) are left out (it gives its own
    per-class AP). ``benchmark``: a protocol scored beside COCO AP (Cityscapes:
    :func:`~insseg.evaluation.cityscapes_eval.benchmark_evaluators`)."""
    settings = MatchSettings.from_config(eval_cfg)
    boundary = settings.boundary_dilation_ratio is not None
    protocol: Any = (
        CocoMetrics() if lvis_categories is None else LvisEvaluator(lvis_categories, eval_cfg.reports.per_class)
    )
    evaluators: list[Any] = [protocol, MatchingEvaluator(), TimingEvaluator()]
    evaluators += [BoundaryMatchingEvaluator()] if boundary else []
    if out_dir is not None:
        evaluators.append(ExcelReport(boundary))
        if eval_cfg.save_masks:
            evaluators.append(MaskExporter(out_dir / "masks"))
    reports = build_report_evaluators(eval_cfg.reports, dataset_classes, out_dir, load_image)
    evaluators += [e for e in reports if lvis_categories is None or not needs_coco(e)]
    evaluators += benchmark
    return Evaluators(evaluators, settings, coco_evaluation(eval_cfg, dataset_classes))


def coco_evaluation(eval_cfg: Any, dataset_classes: Sequence[str]) -> CocoEvaluator:
    """The pass's COCO evaluation with ``eval_cfg``'s void handling, backend and boundary setting."""
    return CocoEvaluator(
        dataset_classes, eval_cfg.void_as_background, eval_cfg.coco_backend, boundary_dilation_ratio(eval_cfg)
    )


def score_records(
    dataset: InstanceSegmentationDataset,
    records: Iterable[ImagePrediction],
    evaluators: Evaluators,
    bridge: ClassBridge,
    header: str = "evaluate",
    print_freq: int = PRINT_FREQ,
) -> dict[str, Any]:
    """The one pass: every record meets its image's ground truth and every evaluator; returns their metrics."""
    position = {dataset.file_name(i): i for i in range(len(dataset))}
    evaluators.reset()
    total = len(records) if isinstance(records, Sized) else len(dataset)
    for rec in MetricLogger().log_every(records, print_freq, header=header, total=total):
        i = position[rec.file_name]
        gt = dataset.annotation(i)
        if gt.image_id is not None:  # COCO-format data: predictions.json carries the file's own image ids
            rec.image_id = gt.image_id
        if (rec.height, rec.width) != (gt.height, gt.width):
            raise InssegError(
                f"predictions for {rec.file_name} are {rec.width}x{rec.height} but the image is "
                f"{gt.width}x{gt.height}; predictions must be at the image's original size"
            )
        evaluators.process(gt, bridge.to_dataset(rec))
    return evaluators.evaluate()
