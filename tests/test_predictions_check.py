"""Every bad entry of a predictions file is refused with one line naming the file, the image and the field."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from insseg.predictions import encode_masks, predictions_from_dict, read_predictions
from insseg.predictions_check import Findings, ImageEntry, PredictionsError, check_entries

SRC = "preds.json"


def payload() -> dict:
    """Two images (4x5 and 6x3), one category, one good detection each."""
    a = np.zeros((1, 4, 5), bool)
    a[0, 1:3, 1:4] = True
    b = np.zeros((1, 6, 3), bool)
    b[0, 2:5, 0:2] = True
    seg_a, seg_b = encode_masks(a)[0], encode_masks(b)[0]
    return {
        "info": {},
        "images": [
            {"id": 1, "file_name": "a.png", "height": 4, "width": 5},
            {"id": 2, "file_name": "b.png", "height": 6, "width": 3},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "score": 0.9, "bbox": [1, 1, 3, 2], "segmentation": seg_a},
            {"id": 2, "image_id": 2, "category_id": 7, "score": 0.8, "bbox": [0, 2, 2, 3], "segmentation": seg_b},
        ],
        "categories": [{"id": 7, "name": "person"}],
    }


def refused(data: dict) -> str:
    with pytest.raises(PredictionsError) as e:
        predictions_from_dict(data, SRC, "strict")
    return str(e.value)


def test_a_good_file_passes_and_reads_back():
    predictions = predictions_from_dict(payload(), SRC, "strict")
    assert [len(r) for r in predictions.images] == [1, 1]
    assert predictions.images[0].mask_array().sum() == 6


def test_nan_score():
    data = payload()
    data["annotations"][1]["score"] = float("nan")
    assert refused(data) == (
        "predictions file preds.json: image 'b.png', annotation 2: field 'score' is nan; it must be a finite number"
    )


def test_rle_size_not_the_images():
    data = payload()
    data["annotations"][0]["segmentation"]["size"] = [5, 4]
    assert refused(data) == (
        "predictions file preds.json: image 'a.png', annotation 1: field 'segmentation.size' is [5, 4], "
        "not the image's [height, width] [4, 5]"
    )


def test_box_outside_the_image():
    data = payload()
    data["annotations"][0]["bbox"] = [2, 1, 4.5, 2]  # x2 = 6.5 in a 5-pixel-wide image
    assert refused(data) == (
        "predictions file preds.json: image 'a.png', annotation 1: field 'bbox' is [2, 1, 4.5, 2], "
        "outside the 5x4 image (by more than a pixel)"
    )
    data["annotations"][0]["bbox"] = [-0.5, 0, 5.9, 4.5]  # within a pixel: accepted
    predictions_from_dict(data, SRC, "strict")


def test_box_not_finite_or_negative():
    data = payload()
    data["annotations"][0]["bbox"] = [1, 1, float("inf"), 2]
    assert refused(data).endswith("field 'bbox' is [1, 1, inf, 2]; it must be 4 finite numbers [x, y, width, height]")
    data["annotations"][0]["bbox"] = [3, 1, -1, 2]
    assert refused(data) == (
        "predictions file preds.json: image 'a.png', annotation 1: field 'bbox' is [3, 1, -1, 2]; "
        "its width and height must be >= 0"
    )


def test_unknown_category():
    data = payload()
    data["annotations"][1]["category_id"] = 3
    assert refused(data) == (
        "predictions file preds.json: image 'b.png', annotation 2: field 'category_id' is 3; known ids: 7"
    )


def test_unknown_image():
    data = payload()
    data["annotations"][1]["image_id"] = 9
    assert refused(data) == (
        "predictions file preds.json: annotation 2: field 'image_id' is 9, which is no image of the set"
    )


def test_duplicate_image():
    data = payload()
    data["images"].append({"id": 3, "file_name": "a.png", "height": 4, "width": 5})
    assert refused(data) == "predictions file preds.json: image 'a.png': field 'images' lists it twice (id 3)"
    data = payload()
    data["images"][1]["id"] = 1
    assert refused(data) == "predictions file preds.json: image 'a.png': field 'images' lists it twice (id 1)"


def test_undecodable_polygon():
    data = payload()
    data["annotations"][0]["segmentation"] = [[1, 1, 3, 1, 3]]  # odd number of coordinates
    assert refused(data) == (
        "predictions file preds.json: image 'a.png', annotation 1: field 'segmentation' is not a decodable polygon "
        "list (each polygon: at least 3 points as an even count of finite numbers)"
    )
    data["annotations"][0]["segmentation"] = [[1, 1, 3, 1, 3, 3]]  # a triangle decodes
    rec = predictions_from_dict(data, SRC, "strict").images[0]
    assert rec.mask_array().shape == (1, 4, 5) and rec.mask_array().any()


@pytest.mark.parametrize("counts", ["", "0", "1\x7f", "00i", [5, 5, 5, 5, 5]])
def test_undecodable_rle(counts):
    """Runs that do not add up to height x width would make pycocotools write past its buffer."""
    data = payload()
    data["annotations"][0]["segmentation"]["counts"] = counts
    assert refused(data) == (
        "predictions file preds.json: image 'a.png', annotation 1: field 'segmentation.counts' does not decode to "
        "a 4x5 mask (its runs must add up to height x width)"
    )


def test_many_rles_check_in_one_pass_against_pycocotools():
    """The vectorised counts parser agrees with pycocotools on random masks of random sizes."""
    rng = np.random.default_rng(0)
    images, entries, expected = {}, [], []
    for i in range(300):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        masks = rng.random((1, h, w)) < rng.random()
        rle = encode_masks(masks)[0]
        images[i] = ImageEntry(f"{i}.png", h, w)
        if i % 5 == 0:  # one run too many
            rle["counts"] += "1"
        expected.append(i % 5 != 0)
        entries.append({"image_id": i, "category_id": 1, "score": 0.5, "segmentation": rle})
    findings = Findings(SRC, "lenient")
    for entry, good in zip(entries, expected):
        if good:
            check_entries([entry], images, [1], findings, bbox_required=False)
        else:
            with pytest.raises(PredictionsError, match="does not decode"):
                check_entries([entry], images, [1], findings, bbox_required=False)
    with pytest.raises(PredictionsError, match=r"image '0.png', entry 0: field 'segmentation.counts'"):
        check_entries(entries, images, [1], findings, bbox_required=False)


def test_lenient_scores_the_file_with_one_warning_per_kind(tmp_path, caplog):
    data = payload()
    for ann in data["annotations"]:
        ann["score"] = float("nan")
    data["annotations"][0]["segmentation"]["size"] = [5, 4]
    path = tmp_path / SRC
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        predictions = read_predictions(path, "lenient")
    assert [len(r) for r in predictions.images] == [1, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "2 entries with this kind of problem (score)" in warnings[0]
    assert "1 entries with this kind of problem (RLE size)" in warnings[1]
    # What cannot be scored at all is refused even in lenient mode.
    broken = copy.deepcopy(data)
    broken["annotations"][1]["segmentation"]["counts"] = "0"
    path.write_text(json.dumps(broken))
    with pytest.raises(PredictionsError, match="does not decode"):
        read_predictions(path, "lenient")


def test_evaluate_refuses_the_file_with_exit_2_and_writes_nothing(tmp_path):
    """evaluate.py on a synthetic split with a NaN score in the file: one line, status 2, no metrics written."""
    from insseg.data import build_dataset
    from tests.test_evaluate import FAST, config, ground_truth_predictions

    cfg = config(tmp_path)
    build_dataset(cfg.data, "eval")
    predictions = ground_truth_predictions(cfg)
    data = predictions.to_dict()
    data["annotations"][0]["score"] = float("nan")
    name = next(im["file_name"] for im in data["images"] if im["id"] == data["annotations"][0]["image_id"])
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}:{root}"}
    args = [*FAST, f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = subprocess.run(
        [sys.executable, str(root / "evaluate.py"), *args, f"eval.predictions={path}", f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"predictions file {path}: image '{name}', annotation 1: field 'score' is nan" in proc.stdout + proc.stderr
    assert not (out / "metrics.json").exists() and not (out / "report.html").exists()


def test_a_coco_results_list_is_checked_against_the_dataset_images():
    from insseg.predictions_check import check_results_list

    data = payload()
    images = {1: ImageEntry("a.png", 4, 5), 2: ImageEntry("b.png", 6, 3)}
    entries = [{k: v for k, v in a.items() if k not in ("id", "bbox")} for a in data["annotations"]]
    check_results_list(entries, images, [7], "results.json")  # no bbox: fine in a results list
    entries[1]["score"] = float("inf")
    with pytest.raises(PredictionsError) as e:
        check_results_list(entries, images, [7], "results.json")
    assert str(e.value) == (
        "predictions file results.json: image 'b.png', entry 1: field 'score' is inf; it must be a finite number"
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("score", float("nan"), "field 'score' is nan; it must be a finite number"),
        ("bbox", [0, 0, 1e6, 10], "field 'bbox' is [0, 0, 1000000.0, 10], outside the"),
    ],
)
def test_a_results_list_through_evaluate_is_checked(tmp_path, field, value, message):
    """The COCO results list of tests/fixtures/boundary, one item broken: refused naming the image's file."""
    from tests.test_results_list import FIXTURE, _first_items, _write, coco_overrides, evaluate

    items = _first_items()
    items[0][field] = value
    path = _write(tmp_path, items)
    gt = json.loads((FIXTURE / "data" / "annotations" / "instances_val.json").read_text())
    name = next(im["file_name"] for im in gt["images"] if im["id"] == items[0]["image_id"])
    with pytest.raises(PredictionsError) as e:
        evaluate(tmp_path, "run", coco_overrides(tmp_path, path))
    assert str(e.value).startswith(f"predictions file {path}: image '{name}', entry 0: {message}")
    assert not (tmp_path / "run" / "metrics.json").exists()
