"""The COCO-scale scoring benchmark: its generated set, the parity check it asserts, and (slow) its runner.
No timing assertions: speed targets live in the printed figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import coco_scoring
from benchmarks.__main__ import main

pytest.importorskip("faster_coco_eval")


@pytest.fixture(scope="module")
def small_set():
    return coco_scoring.make_dataset(num_images=12, detections=30, seed=3)


def test_generated_set_has_coco_layout_and_exact_detection_counts(small_set):
    images, gt, dt = small_set["images"], small_set["gt"], small_set["dt"]
    assert len(images) == 12 and all(max(i["height"], i["width"]) == 640 for i in images)
    assert np.array_equal(np.bincount([a["image_id"] for a in dt], minlength=13)[1:], np.full(12, 30))
    assert sorted(a["id"] for a in gt) == list(range(1, len(gt) + 1))
    ann = dt[0]
    assert set(ann) >= {"id", "image_id", "category_id", "score", "bbox", "area", "segmentation", "iscrowd"}
    assert isinstance(ann["segmentation"]["counts"], str) and ann["area"] > 0
    assert {type(a["category_id"]) for a in gt + dt} == {int}
    assert coco_scoring.make_dataset(num_images=12, detections=30, seed=3) == small_set  # reproducible


def test_backends_agree_on_the_generated_set(small_set):
    ref = coco_scoring.score("pycocotools", small_set)[1]
    fast = coco_scoring.score("faster_coco_eval", small_set)[1]
    coco_scoring.check_identical(ref, fast)
    assert 0 < ref["segm_stats"][0] < 1 and 0 < ref["bbox_stats"][0] < 1  # non-trivial scores

    off = dict(fast)
    off["segm_precision"] = fast["segm_precision"].copy()
    cell = tuple(np.argwhere((off["segm_precision"] > 0) & (off["segm_precision"] < 1))[0])
    off["segm_precision"][cell] = np.nextafter(off["segm_precision"][cell], 2.0)
    with pytest.raises(AssertionError, match="segm: precision"):
        coco_scoring.check_identical(ref, off)


@pytest.mark.slow
def test_quick_run_reports_identical_results_and_writes_json(tmp_path, capsys):
    assert main(["coco_scoring", "--quick", "--out", str(tmp_path)]) == 0
    assert "identical results" in capsys.readouterr().out
    data = json.loads((tmp_path / "coco_scoring.json").read_text())
    assert data["raw"]["identical_results"] is True and data["quick"] is True
    headline = data["rows"][0]
    assert headline["target"] == ">= 3x" and headline["project"] > 0 and headline["baseline"] > 0
    assert all(p > 0 for p in data["raw"]["peak_rss_bytes"])
    assert not (tmp_path / "_work" / "coco_scoring").exists()
