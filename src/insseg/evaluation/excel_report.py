"""metrics.xlsx: the per-object table of the original RefineMask-on-VOC harness, plus images, summary, config.

The ``objects`` sheet has the harness's twelve columns, then (with ``eval.boundary`` on) ``boundary iou`` and
``boundary f1-score`` of each object with its matched prediction (0 when unmatched, as ``iou``).

Rows are streamed into a write-only workbook as images are evaluated, so the report costs no memory per image;
the file is written atomically at the end.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from insseg.evaluation.matching import ImageMatch
from insseg.evaluation.sample import ImageSample
from insseg.evaluation.timing import per_object_ms
from insseg.predictions import ImageTiming
from insseg.utils.atomic import atomic_path

# Exactly the original harness's columns, in its order.
OBJECT_COLUMNS = (
    "image name",
    "num objects",
    "object index",
    "iou",
    "mean iou",
    "f1-score",
    "mean f1-score",
    "mean inference time for each object",
    "bg iou",
    "mean iou with bg",
    "bg f1-score",
    "mean f1-score with bg",
)
BOUNDARY_COLUMNS = ("boundary iou", "boundary f1-score")
IMAGE_COLUMNS = (
    "image name",
    "height",
    "width",
    "num objects",
    "num predictions",
    "matched",
    "true positives",
    "mean iou",
    "mean f1-score",
    "bg iou",
    "bg f1-score",
    "mean iou with bg",
    "mean f1-score with bg",
    "data ms",
    "model ms",
    "postprocess ms",
    "total ms",
    "ms per object",
)
SHEETS = ("objects", "images", "summary", "config")


def _cell_value(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``a.b.c`` keys, lists as their string form."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


class ExcelReport:
    """Evaluator streaming a row per object and per image (from the sample's one-to-one match), then ``write``
    once with the merged metrics. ``boundary``: add the :data:`BOUNDARY_COLUMNS` (from the sample's boundary
    scores)."""

    def __init__(self, boundary: bool = False) -> None:
        self.boundary = boundary
        self.wb: Workbook | None = None
        self.reset()

    def reset(self) -> None:
        if self.wb is not None:
            self.discard()
        self.wb = Workbook(write_only=True)
        self.sheets = {name: self.wb.create_sheet(name) for name in SHEETS}
        self._header("objects", OBJECT_COLUMNS + (BOUNDARY_COLUMNS if self.boundary else ()))
        self._header("images", IMAGE_COLUMNS)
        self.num_object_rows = 0

    def process(self, sample: ImageSample) -> None:
        boundary = sample.boundary if self.boundary else None
        self.add_image(sample.match, sample.gt.height, sample.gt.width, sample.pred.timing, boundary)

    def evaluate(self, coco: object = None) -> dict[str, Any]:
        return {}

    def _header(self, sheet: str, columns: tuple[str, ...]) -> None:
        self._header_row(self.sheets[sheet], columns)

    @staticmethod
    def _header_row(ws: Any, columns: Sequence[Any]) -> None:
        ws.freeze_panes = "A2"
        row = []
        for c in columns:
            cell = WriteOnlyCell(ws, value=c)
            cell.font = Font(bold=True)
            row.append(cell)
        ws.append(row)

    def add_image(
        self,
        match: ImageMatch,
        height: int,
        width: int,
        timing: ImageTiming | None = None,
        boundary: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """One row per ground-truth object in ``objects``; one row in ``images``. Times in seconds per object
        (``mean inference time for each object``) and milliseconds in ``images``. ``boundary``: each object's
        boundary IoU and F1 (the two last columns of a report made with ``boundary=True``)."""
        n = match.num_objects
        name = Path(match.file_name).stem  # as the original harness wrote it
        per_obj = per_object_ms(timing, n)
        per_obj_s = None if per_obj is None else per_obj / 1000
        for k in range(n):
            self.sheets["objects"].append(
                [
                    name,
                    n,
                    k,
                    float(match.iou[k]),
                    match.mean_iou,
                    float(match.f1[k]),
                    match.mean_f1,
                    per_obj_s,
                    match.bg_iou,
                    match.mean_iou_with_bg,
                    match.bg_f1,
                    match.mean_f1_with_bg,
                    *(() if boundary is None else (float(boundary[0][k]), float(boundary[1][k]))),
                ]
            )
        self.num_object_rows += n
        t = timing.to_dict() if timing is not None else {}
        ms = [None if timing is None else 1000 * t[s] for s in ("data", "model", "postprocess")]
        self.sheets["images"].append(
            [
                match.file_name,
                height,
                width,
                n,
                match.num_predictions,
                match.num_matched,
                match.true_positives,
                match.mean_iou,
                match.mean_f1,
                match.bg_iou,
                match.bg_f1,
                match.mean_iou_with_bg,
                match.mean_f1_with_bg,
                *ms,
                None if timing is None else 1000 * timing.total,
                per_obj,
            ]
        )

    def write(
        self,
        path: str | Path,
        metrics: Mapping[str, Any],
        config: Mapping[str, Any],
        coco_tables: Mapping[str, str] | None = None,
        notes: Mapping[str, Any] | None = None,
        extra_sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None,
    ) -> None:
        """Fill ``summary`` and ``config`` and save. ``extra_sheets``: more sheets (name -> rows, the first
        row a bold header), after ``config``: the reports' ``per_class`` and ``confusion``."""
        wb = self.wb
        assert wb is not None  # made by reset()
        for name, rows in (extra_sheets or {}).items():
            ws = wb.create_sheet(name)
            for k, row in enumerate(rows):
                if k == 0:
                    self._header_row(ws, row)
                else:
                    ws.append([_cell_value(v) for v in row])
        summary = self.sheets["summary"]
        summary.append(["metric", "value"])
        for key, value in metrics.items():
            if not isinstance(value, Mapping):  # nested blocks (per_class) have their own sheet
                summary.append([key, _cell_value(value)])
        for key, value in (notes or {}).items():
            summary.append([key, _cell_value(value)])
        for iou_type, table in (coco_tables or {}).items():
            summary.append([])
            summary.append([f"pycocotools {iou_type}"])
            for line in table.splitlines():
                summary.append([line.strip()])
        cfg = self.sheets["config"]
        cfg.append(["key", "value"])
        for key, value in flatten(config):
            cfg.append([key, _cell_value(value)])
        try:
            with atomic_path(path) as tmp:
                wb.save(tmp)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Release the streamed sheets' temporary files without writing a report (after an error)."""
        for ws in self.wb.worksheets if self.wb is not None else []:
            with contextlib.suppress(Exception):  # best effort: an error is already on its way
                ws.close()
