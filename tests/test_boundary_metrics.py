"""Boundary metrics through evaluate.py's pipeline (eval.boundary): Boundary AP, per-class boundary AP,
mean_boundary_iou and the Excel columns equal the official boundary-iou-api's figures on the shared fixture set
(tests/fixtures/boundary/official.json, scored from its COCO results list)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from insseg.config import compose_config
from insseg.evaluation.coco import STAT_NAMES
from insseg.evaluation.excel_report import BOUNDARY_COLUMNS, OBJECT_COLUMNS
from insseg.evaluation.pipeline import run_evaluation

FIXTURE = Path(__file__).parent / "fixtures" / "boundary"
OFFICIAL = json.loads((FIXTURE / "official.json").read_text())


def run(tmp_path: Path, name: str, *extra: str) -> dict:
    overrides = [
        "data=coco",
        f"data.root={FIXTURE / 'data'}",
        "data.eval_json=annotations/instances_val.json",
        "data.eval_images=val",
        "data.max_eval_images=null",
        "device=cpu",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"eval.predictions={FIXTURE / 'data' / 'results.json'}",
        "eval.cache=false",
        "eval.reports.gallery=0",
        "eval.reports.confusion=false",
        "eval.save_masks=false",
        *extra,
    ]
    return run_evaluation(compose_config("evaluate", overrides, output_dir=tmp_path / name))


@pytest.fixture(scope="module")
def boundary_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("boundary")
    return tmp / "on", run(tmp, "on")


def test_boundary_ap_and_per_class_equal_the_official_api(boundary_run):
    _, m = boundary_run
    want = OFFICIAL["boundary"]
    np.testing.assert_allclose(
        [m[f"boundary_{s}"] for s in STAT_NAMES], [want["stats"][s] for s in STAT_NAMES], atol=1e-12
    )
    for name, ap in want["per_class"].items():
        assert m["per_class"][name]["boundary_AP"] == pytest.approx(ap, abs=1e-12)
    assert m["boundary_AP"] < m["segm_AP"]  # the fixture's ragged and shifted masks: boundaries see more
    assert m["boundary_dilation_ratio"] == 0.02


def test_mean_boundary_iou_and_excel_columns_equal_the_official_per_object_figures(boundary_run):
    run_dir, m = boundary_run
    objects = OFFICIAL["objects"]
    assert m["mean_boundary_iou"] == pytest.approx(OFFICIAL["mean_boundary_iou"], abs=1e-12)
    assert m["mean_boundary_f1"] == pytest.approx(np.mean([o["boundary_f1"] for o in objects]), abs=1e-12)
    rows = list(load_workbook(run_dir / "metrics.xlsx", read_only=True)["objects"].iter_rows(values_only=True))
    assert list(rows[0]) == [*OBJECT_COLUMNS, *BOUNDARY_COLUMNS]
    got = {(r[0], r[2]): (r[12], r[13]) for r in rows[1:]}
    want = {(o["image"], o["object_index"]): (o["boundary_iou"], o["boundary_f1"]) for o in objects}
    assert got.keys() == want.keys()
    for key, (b_iou, b_f1) in want.items():
        assert got[key] == (pytest.approx(b_iou, abs=1e-12), pytest.approx(b_f1, abs=1e-12)), key
    per_class = [
        list(r)
        for r in load_workbook(run_dir / "metrics.xlsx", read_only=True)["per_class"].iter_rows(values_only=True)
    ]
    assert "boundary_AP" in per_class[0] and per_class[0][-2:] == ["num_gt", "num_predictions"]


def test_report_shows_boundary_beside_mask_ap(boundary_run):
    run_dir, _ = boundary_run
    html = (run_dir / "report.html").read_text()
    assert "boundary_AP" in html and "pr_curves/boundary.png" in html and "pr_curves/boundary_per_class.png" in html
    assert (run_dir / "pr_curves" / "boundary.png").is_file()
    curves = json.loads((run_dir / "pr_curves" / "pr_curves.json").read_text())
    assert np.mean(curves["boundary"]["all"]["IoU 0.50:0.95"]) == pytest.approx(
        OFFICIAL["boundary"]["stats"]["AP"], abs=1e-6
    )


def test_off_and_another_dilation_ratio(tmp_path, boundary_run):
    _, on = boundary_run
    off = run(tmp_path, "off", "eval.boundary=false")
    assert not [k for k in off if "boundary" in k] and off["segm_AP"] == on["segm_AP"]
    rows = list(load_workbook(tmp_path / "off" / "metrics.xlsx", read_only=True)["objects"].iter_rows(values_only=True))
    assert list(rows[0]) == list(OBJECT_COLUMNS)
    wide = run(tmp_path, "wide", "eval.boundary.dilation_ratio=0.2", "eval.reports.html=false")
    # a band of 0.2 x the diagonal covers most of each mask: boundary IoU approaches mask IoU
    assert wide["boundary_dilation_ratio"] == 0.2 and wide["mean_boundary_iou"] > on["mean_boundary_iou"]
    assert wide["segm_AP"] == on["segm_AP"]


def test_faster_coco_eval_backend_gives_the_official_boundary_ap(tmp_path):
    m = run(tmp_path, "fast", "eval.coco_backend=faster_coco_eval", "eval.reports.html=false")
    want = OFFICIAL["boundary"]["stats"]
    np.testing.assert_allclose([m[f"boundary_{s}"] for s in STAT_NAMES], [want[s] for s in STAT_NAMES], atol=1e-12)
