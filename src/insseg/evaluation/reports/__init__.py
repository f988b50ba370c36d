"""Reports people look at: per-class AP, PR curves, confusion matrix, a TP/FP/missed gallery, report.html.

Each is an evaluator fed by the same pass as the metrics (:mod:`insseg.evaluation.evaluator`), switched by
``eval.reports.*``; they build on the :class:`CocoEvaluator`'s arrays and the :class:`MatchingEvaluator`'s
per-image result, so they must come after those two in the list. report.html is written last, from the
metrics and the files the others wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.matching import MatchingEvaluator
from insseg.evaluation.reports.confusion import ConfusionEvaluator
from insseg.evaluation.reports.gallery import GalleryEvaluator, ImageLoader
from insseg.evaluation.reports.html_report import write_html_report
from insseg.evaluation.reports.per_class import PerClassEvaluator, per_class_rows
from insseg.evaluation.reports.pr_curves import PRCurveEvaluator


def build_report_evaluators(
    reports: Any,
    class_names: Sequence[str],
    out_dir: str | Path | None,
    coco: CocoEvaluator | None,
    matching: MatchingEvaluator,
    load_image: ImageLoader | None = None,
) -> list[Any]:
    """The report evaluators ``reports`` (``eval.reports``: per_class, pr_curves, confusion, gallery,
    gallery_seed) switches on, to be put after ``coco`` and ``matching``. ``out_dir=None``: only those that
    write no files (per-class AP). The gallery needs ``load_image`` (``file_name -> uint8 [H, W, 3]``).
    ``coco=None`` (another protocol, e.g. LVIS, which reports its own per-class AP): no per-class AP or PR
    curves from COCO arrays."""
    evaluators: list[Any] = []
    if reports.per_class and coco is not None:
        evaluators.append(PerClassEvaluator(coco))
    if out_dir is None:
        return evaluators
    out_dir = Path(out_dir)
    if reports.pr_curves and coco is not None:
        evaluators.append(PRCurveEvaluator(coco, out_dir))
    if reports.confusion:
        evaluators.append(
            ConfusionEvaluator(class_names, out_dir, matching.score_threshold, matching.void_as_background, matching)
        )
    if reports.gallery > 0 and load_image is not None:
        evaluators.append(
            GalleryEvaluator(matching, load_image, class_names, out_dir, reports.gallery, reports.gallery_seed)
        )
    return evaluators


def dataset_image_loader(dataset: Any) -> ImageLoader:
    """``file_name -> image`` for a dataset with ``file_name(i)`` and ``load_image(i)`` (the gallery's loader)."""
    position = {dataset.file_name(i): i for i in range(len(dataset))}
    return lambda name: dataset.load_image(position[name])


def report_sheets(evaluators: Iterable[Any], metrics: Mapping[str, Any]) -> dict[str, list[list[Any]]]:
    """The extra metrics.xlsx sheets of the reports that ran: ``per_class`` and ``confusion``."""
    sheets: dict[str, list[list[Any]]] = {}
    if isinstance(metrics.get("per_class"), Mapping):
        sheets["per_class"] = per_class_rows(metrics["per_class"])
    for e in evaluators:
        if isinstance(e, ConfusionEvaluator):
            sheets["confusion"] = e.matrix.sheet_rows()
    return sheets


__all__ = [
    "build_report_evaluators",
    "dataset_image_loader",
    "report_sheets",
    "write_html_report",
    "PerClassEvaluator",
    "PRCurveEvaluator",
    "ConfusionEvaluator",
    "GalleryEvaluator",
]
