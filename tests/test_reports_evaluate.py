"""The reports through run_evaluation(cfg) end to end, on generated VOC-layout data with known predictions."""

from __future__ import annotations

import json

import numpy as np
from openpyxl import load_workbook
from test_evaluate import config, ground_truth_predictions, record
from test_reports_pages import check_offline_page

from insseg.data import build_dataset
from insseg.evaluation.pipeline import run_evaluation

REPORT_FILES = (
    "report.html",
    "confusion_matrix.png",
    "pr_curves/segm.png",
    "pr_curves/bbox_per_class.png",
    "gallery/gallery.json",
)


def test_perfect_predictions_give_perfect_reports(tmp_path):
    """The ground truth as predictions: every class with objects has AP 1.0, the confusion matrix is diagonal
    with nothing missed and no background row, the gallery shows only true positives."""
    cfg = config(tmp_path, "data.layout=voc")
    path = tmp_path / "perfect.json"
    ground_truth_predictions(cfg).write(path)
    m = run_evaluation(config(tmp_path, "data.layout=voc", f"eval.predictions={path}", "eval.reports.gallery=2"))
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["per_class"] == m["per_class"]
    with_gt = {n: r for n, r in m["per_class"].items() if r is not None}
    assert with_gt and sum(r["num_gt"] for r in with_gt.values()) == m["num_objects"]
    assert all(r[k] == 1.0 for r in with_gt.values() for k in ("segm_AP", "segm_AP50", "bbox_AP75"))
    assert all(r["num_predictions"] == r["num_gt"] for r in with_gt.values())
    assert len(with_gt) < 20 and None in m["per_class"].values()  # 10 generated images miss some VOC classes

    confusion = [list(r) for r in load_workbook(out / "metrics.xlsx")["confusion"].iter_rows(values_only=True)]
    header, rows = confusion[1], {r[0]: r[1:] for r in confusion[2:23]}
    assert header[-1] == "missed" and len(header) == 22  # corner, 20 classes, missed
    for k, name in enumerate(header[1:-1]):
        expected = [0] * 21
        expected[k] = with_gt[name]["num_gt"] if name in with_gt else 0
        assert rows[name] == expected, name
    assert rows["background"] == [0] * 21

    for f in REPORT_FILES:
        assert (out / f).is_file(), f
    check_offline_page(out / "report.html")
    entries = json.loads((out / "gallery" / "gallery.json").read_text())
    # 3 images in the split: the 2 with objects are the "worst" (mean IoU 1), the empty one is the random pick
    assert [(e["group"], e["mean_iou"]) for e in entries] == [("worst", 1.0), ("worst", 1.0), ("random", None)]
    assert all(e["false_positives"] == 0 and e["missed"] == 0 for e in entries)


def test_reports_switched_off_write_nothing(tmp_path):
    cfg = config(tmp_path, "data.layout=voc")
    dataset = build_dataset(cfg.data, "eval")
    path = tmp_path / "preds.json"
    preds = ground_truth_predictions(cfg)
    # one image's predictions replaced by a wrong-class copy: the numbers must not depend on the switches
    ann = dataset.annotation(1)
    preds.images[1] = record(dataset.file_name(1), ann.masks(), (ann.labels % 20) + 1, class_names=preds.class_names)
    preds.write(path)
    on = run_evaluation(config(tmp_path, "data.layout=voc", f"eval.predictions={path}", out="on"))
    off = run_evaluation(
        config(
            tmp_path,
            "data.layout=voc",
            f"eval.predictions={path}",
            "eval.reports.per_class=false",
            "eval.reports.pr_curves=false",
            "eval.reports.confusion=false",
            "eval.reports.gallery=0",
            "eval.reports.html=false",
            out="off",
        )
    )
    assert "per_class" not in off and {k: v for k, v in on.items() if k != "per_class"} == off
    assert not any((tmp_path / "off" / f).exists() for f in (*REPORT_FILES, "pr_curves", "gallery"))
    assert load_workbook(tmp_path / "off" / "metrics.xlsx").sheetnames == ["objects", "images", "summary", "config"]
    # the wrong-class image: its objects are confused, class-agnostic pairs at IoU 1
    confusion = [
        list(r) for r in load_workbook(tmp_path / "on" / "metrics.xlsx")["confusion"].iter_rows(values_only=True)
    ]
    names = confusion[1][1:-1]
    off_diagonal = sum(v for r in confusion[2:22] for c, v in enumerate(r[1:-1]) if names[c] != r[0])
    assert off_diagonal == len(ann) > 0
    worst = [e for e in json.loads((tmp_path / "on" / "gallery" / "gallery.json").read_text()) if e["group"] == "worst"]
    assert np.isclose(worst[0]["mean_iou"], 1.0)  # class-agnostic matching: still IoU 1
