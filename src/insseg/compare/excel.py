"""compare.xlsx: compare.json as tables (one row per comparison and metric, class or image)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from insseg.compare.result import excludes_zero
from insseg.utils.atomic import atomic_path

METRIC_HEADER = ["run B", "metric", "A", "B", "delta (B - A)", "95% low", "95% high", "interval excludes 0"]
CLASS_HEADER = ["run B", "class", "metric", "A", "B", "delta (B - A)", "95% low", "95% high", "num_gt"]
IMAGE_HEADER = (
    ["run B", "rank", "image", "mean IoU A", "mean IoU B", "delta"]
    + [f"{what} {run}" for run in ("A", "B") for what in ("true positives", "false positives", "missed")]
    + ["mean boundary IoU A", "mean boundary IoU B"]
)


def run_labels(n: int) -> list[str]:
    """The runs' short names: A, then B (two runs) or B, B2, B3, ..."""
    return ["A"] + [f"B{'' if k == 1 else k}" for k in range(1, n)]


def comparisons(result: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(run B's path, its comparison with run A) for every run after the first."""
    yield result["runs"][1], result
    for other in result.get("others", []):
        yield other["run"], other


def _ci(item: Mapping[str, Any]) -> list[Any]:
    ci = item.get("ci95")
    return [ci[0], ci[1]] if ci else [None, None]


def metric_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [METRIC_HEADER]
    for run, comp in comparisons(result):
        for name, item in comp["metrics"].items():
            rows.append([run, name, item["a"], item["b"], item["delta"], *_ci(item), excludes_zero(item)])
    return rows


def class_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [CLASS_HEADER]
    for run, comp in comparisons(result):
        for name, row in comp["per_class"].items():
            for key, item in (row or {}).items():
                if isinstance(item, Mapping):
                    rows.append([run, name, key, item["a"], item["b"], item["delta"], *_ci(item), row["num_gt"]])
    return rows


def image_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [IMAGE_HEADER]
    for run, comp in comparisons(result):
        for rank, e in enumerate(comp["images"]["most_different"], start=1):
            counts = [e[r][k] for r in ("a", "b") for k in ("true_positives", "false_positives", "missed")]
            boundary = [e[r].get("mean_boundary_iou") for r in ("a", "b")]
            row = [run, rank, e["image"], e["a"]["mean_iou"], e["b"]["mean_iou"], e["mean_iou_delta"]]
            rows.append([*row, *counts, *boundary])
    return rows


def run_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [["run", "path"]]
    rows += [[label, p] for label, p in zip(run_labels(len(result["runs"])), result["runs"])]
    rows += [[], ["images", result["num_images"]], ["resamples", result["resamples"]], ["seed", result["seed"]]]
    rows += [["settings that differ", d] for d in result.get("settings_differ", [])]
    return rows


def write_excel(path: Path, result: Mapping[str, Any]) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    sheets = {
        "metrics": metric_rows(result),
        "per_class": class_rows(result),
        "images": image_rows(result),
        "runs": run_rows(result),
    }
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(list(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
    with atomic_path(path) as tmp:
        wb.save(tmp)
    return path
