"""metrics.xlsx: the harness's exact object columns, the other sheets, atomic writing."""

from __future__ import annotations

import numpy as np
import pytest
from openpyxl import load_workbook

from insseg.evaluation.excel_report import OBJECT_COLUMNS, ExcelReport, flatten
from insseg.evaluation.matching import ImageMatch
from insseg.predictions import ImageTiming

HARNESS_COLUMNS = [
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
]


def image_match(name: str, ious: list[float], f1s: list[float], bg_iou: float = 0.9, bg_f1: float = 0.95) -> ImageMatch:
    n = len(ious)
    return ImageMatch(
        file_name=name,
        num_objects=n,
        num_predictions=n + 1,
        iou=np.array(ious, float),
        f1=np.array(f1s, float),
        matched=np.arange(n),
        pred_matched=np.array(list(range(n)) + [-1]),
        bg_iou=bg_iou,
        bg_f1=bg_f1,
    )


def write_report(path, timing=None):
    timing = ImageTiming(0.01, 0.2, 0.03) if timing is None else timing
    report = ExcelReport()
    report.add_image(image_match("a.png", [0.5, 1.0], [0.6, 1.0]), 40, 50, timing)
    report.add_image(image_match("empty.png", [], []), 30, 30, timing)
    report.add_image(image_match("c.png", [0.25], [0.4]), 20, 20, None)
    report.write(
        path,
        {"segm_AP": 0.5, "mean_iou": 0.58, "bbox_APl": None},
        {"eval": {"score_threshold": 0.5}, "model": {"name": "maskrcnn", "weights": None}},
        coco_tables={"segm": " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"},
        extra_sheets={"per_class": [["class", "segm_AP"], ["person", 0.5]]},
        notes={"timing": "measured"},
    )


def test_objects_sheet_has_the_harness_columns_and_one_row_per_object(tmp_path):
    assert list(OBJECT_COLUMNS) == HARNESS_COLUMNS
    path = tmp_path / "metrics.xlsx"
    write_report(path)
    wb = load_workbook(path)
    assert wb.sheetnames == ["objects", "images", "summary", "config", "per_class"]
    rows = list(wb["objects"].iter_rows(values_only=True))
    assert list(rows[0]) == HARNESS_COLUMNS
    assert len(rows) == 1 + 3  # two objects of a.png, none of empty.png, one of c.png
    a1, a2, c1 = (dict(zip(HARNESS_COLUMNS, r)) for r in rows[1:])
    # As the original harness wrote them: the image's stem, objects counted from 0.
    assert (a1["image name"], a1["num objects"], a1["object index"]) == ("a", 2, 0)
    assert a2["object index"] == 1 and a2["iou"] == 1.0 and a2["f1-score"] == 1.0
    assert a1["mean iou"] == pytest.approx(0.75) and a1["mean f1-score"] == pytest.approx(0.8)
    assert a1["mean inference time for each object"] == pytest.approx(0.24 / 2)  # seconds
    assert a1["bg iou"] == 0.9 and a1["bg f1-score"] == 0.95
    assert a1["mean iou with bg"] == pytest.approx((0.5 + 1.0 + 0.9) / 3)
    assert a1["mean f1-score with bg"] == pytest.approx((0.6 + 1.0 + 0.95) / 3)
    assert c1["mean inference time for each object"] is None  # no timing (predictions from a file)


def test_images_summary_and_config_sheets(tmp_path):
    path = tmp_path / "metrics.xlsx"
    write_report(path)
    wb = load_workbook(path)
    images = list(wb["images"].iter_rows(values_only=True))
    header = images[0]
    assert [r[0] for r in images[1:]] == ["a.png", "empty.png", "c.png"]
    empty = dict(zip(header, images[2]))
    assert empty["num objects"] == 0 and empty["mean iou"] is None and empty["mean iou with bg"] == pytest.approx(0.9)
    assert dict(zip(header, images[1]))["total ms"] == pytest.approx(240.0)
    summary = {r[0]: r[1] for r in wb["summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["segm_AP"] == 0.5 and summary["mean_iou"] == 0.58 and summary["timing"] == "measured"
    assert "bbox_APl" in summary and summary["bbox_APl"] is None
    assert list(wb["per_class"].iter_rows(values_only=True)) == [("class", "segm_AP"), ("person", 0.5)]
    assert any("Average Precision" in str(r[0]) for r in wb["summary"].iter_rows(values_only=True) if r)
    config = {r[0]: r[1] for r in wb["config"].iter_rows(values_only=True)}
    assert config["eval.score_threshold"] == 0.5 and config["model.name"] == "maskrcnn"


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "metrics.xlsx"
    write_report(path)
    before = path.read_bytes()
    report = ExcelReport()

    def broken_save(filename):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(report.wb, "save", broken_save)
    with pytest.raises(OSError):
        report.write(path, {}, {})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.xlsx"]


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == [("a.b", 1), ("a.c.d", [1, 2]), ("e", None)]
