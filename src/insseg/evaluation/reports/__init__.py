"""Reports people look at: per-class AP, PR curves, confusion matrix, a TP/FP/missed gallery, report.html.

Each is an evaluator fed by the same pass as the metrics (:mod:`insseg.evaluation.evaluator`), switched by
``eval.reports.*``; they build on what the pass hands every evaluator (each image's one-to-one match, the COCO
results after the last image), so they stand alone and may come in any order. report.html is written last,
from the metrics and the files the others wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from insseg.evaluation.reports.confusion import ConfusionEvaluator
from insseg.evaluation.reports.gallery import GalleryEvaluator, ImageLoader
from insseg.evaluation.reports.html_report import write_html_report
from insseg.evaluation.reports.per_class import PerClassEvaluator, per_class_rows
from insseg.evaluation.reports.pr_curves import PRCurveEvaluator


def build_report_evaluators(
    reports: Any,
    class_names: Sequence[str],
    out_dir: str | Path | None,
    load_image: ImageLoader | None = None,
) -> list[Any]:
    """The report evaluators ``reports`` (``eval.reports``: per_class, pr_curves, confusion, gallery,
    gallery_seed) switches on. ``out_dir=None``: only those that write no files (per-class AP). The gallery
    needs ``load_image`` (``file_name -> uint8 [H, W, 3]``)."""
    evaluators: list[Any] = []
    if reports.per_class:
        evaluators.append(PerClassEvaluator())
    if out_dir is None:
        return evaluators
    out_dir = Path(out_dir)
    if reports.pr_curves:
        evaluators.append(PRCurveEvaluator(out_dir))
    if reports.confusion:
        evaluators.append(ConfusionEvaluator(class_names, out_dir))
    if reports.gallery > 0 and load_image is not None:
        evaluators.append(GalleryEvaluator(load_image, class_names, out_dir, reports.gallery, reports.gallery_seed))
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
