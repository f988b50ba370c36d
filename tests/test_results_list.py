"""``eval.predictions=`` with a COCO results list (pycocotools' loadRes input, detectron2's
coco_instances_results.json, mmdetection's results.segm.json): every number equals pycocotools on the same files
(tests/fixtures/boundary, official.json), equals the equivalent predictions.json, and bad files are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from insseg.config import compose_config
from insseg.errors import InssegError
from insseg.evaluation.coco import STAT_NAMES
from insseg.evaluation.pipeline import run_evaluation
from insseg.io.rle import segmentation_rle
from insseg.predictions import encode_masks

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "boundary"
OFFICIAL = json.loads((FIXTURE / "official.json").read_text())


def coco_overrides(tmp_path: Path, results: Path | str, data_root: Path = FIXTURE / "data") -> list[str]:
    return [
        "data=coco",
        f"data.root={data_root}",
        "data.eval_json=annotations/instances_val.json",
        "data.eval_images=val",
        "data.max_eval_images=null",
        "device=cpu",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"eval.predictions={results}",
        "eval.cache=false",
        "eval.reports.gallery=0",
    ]


def evaluate(tmp_path: Path, name: str, overrides: list[str]) -> dict:
    cfg = compose_config("evaluate", overrides, output_dir=tmp_path / name)
    return run_evaluation(cfg)


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("results_list")
    metrics = evaluate(tmp, "list", coco_overrides(tmp, FIXTURE / "data" / "results.json"))
    return tmp, metrics


def test_results_list_scores_as_pycocotools_on_the_same_files(fixture_run):
    _, m = fixture_run
    for iou_type in ("segm", "bbox"):
        official = OFFICIAL["pycocotools"][iou_type]
        ours = [m[f"{iou_type}_{s}"] for s in STAT_NAMES]
        np.testing.assert_allclose(ours, [official["stats"][s] for s in STAT_NAMES], atol=1e-12)
        for name, ap in official["per_class"].items():
            assert m["per_class"][name][f"{iou_type}_AP"] == pytest.approx(ap, abs=1e-12)
    objects = OFFICIAL["objects"]
    assert m["num_objects"] == len(objects) and m["num_images"] == 12
    assert m["mean_iou"] == pytest.approx(OFFICIAL["mean_iou"], abs=1e-12)


def test_matching_per_object_and_files_from_a_results_list(fixture_run):
    tmp, _ = fixture_run
    run = tmp / "list"
    rows = list(load_workbook(run / "metrics.xlsx", read_only=True)["objects"].iter_rows(values_only=True))[1:]
    official = {(o["image"], o["object_index"]): o["iou"] for o in OFFICIAL["objects"]}
    assert {(r[0], r[2]): pytest.approx(r[3], abs=1e-12) for r in rows} == official
    masks = {p.name for p in (run / "masks").iterdir()}
    assert "b101_predict.png" in masks and "b1137_predict.png" in masks  # b1137: no entry, predicted empty
    assert (run / "report.html").is_file() and (run / "pr_curves" / "segm.png").is_file()


def test_a_results_list_gives_the_same_metrics_as_its_predictions_json(fixture_run):
    tmp, _ = fixture_run
    again = evaluate(tmp, "json", coco_overrides(tmp, tmp / "list" / "predictions.json"))
    first = json.loads((tmp / "list" / "metrics.json").read_text())
    assert json.loads((tmp / "json" / "metrics.json").read_text()) == first
    assert again["segm_AP"] == first["segm_AP"]
    assert sorted(p.name for p in (tmp / "json" / "masks").iterdir()) == sorted(
        p.name for p in (tmp / "list" / "masks").iterdir()
    )


def test_segmentation_forms_give_the_same_rle():
    mask = np.zeros((30, 40), bool)
    mask[5:20, 8:30] = True
    rle = encode_masks(mask[None])[0]
    as_bytes = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, mask.flatten(order="F").astype(int), -1]))).tolist()
    uncompressed = {"size": [30, 40], "counts": runs}
    polygon = [[8, 5, 30, 5, 30, 20, 8, 20]]  # pixel corners: the rasterised polygon is the rectangle
    for seg in (rle, as_bytes, uncompressed, polygon):
        assert segmentation_rle(seg, 30, 40) == {"size": [30, 40], "counts": rle["counts"]}


def _write(tmp_path: Path, items) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(items))
    return path


def _first_items() -> list[dict]:
    return json.loads((FIXTURE / "data" / "results.json").read_text())[:3]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda items: [], r"is an empty list"),
        (lambda items: [*items, {**items[0], "image_id": 99999}], r"item 3 has image_id 99999, which the dataset"),
        (lambda items: [{**items[0], "category_id": 5}], r"item 0 has category_id 5, which the dataset does not"),
    ],
)
def test_refusals_name_the_file_and_write_nothing(tmp_path, change, message):
    path = _write(tmp_path, change(_first_items()))
    with pytest.raises(InssegError, match=f"results file {path}.*{message}"):
        evaluate(tmp_path, "run", coco_overrides(tmp_path, path))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_detection_only_file_is_refused_by_evaluate_py_with_one_line(tmp_path):
    items = [{k: v for k, v in item.items() if k != "segmentation"} for item in _first_items()]
    path = _write(tmp_path, items)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "evaluate.py"),
            *coco_overrides(tmp_path, path),
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert f"results file {path}" in errors[0] and "not instance segmentation" in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / "predictions.json").exists()


def test_voc_results_list_uses_the_export_coco_ids(tmp_path, voc_root):
    """A perfect results list written against ``export_coco``'s ids scores AP 1 on data=voc; the same list with
    two images' ids swapped does not."""
    from insseg.data.export_coco import main as export_main

    voc = ["data=voc", f"data.root={voc_root}", "data.max_eval_images=null", "device=cpu", "eval.cache=false"]
    voc += [f"paths.log_dir={tmp_path / 'logs'}", "eval.reports.gallery=0", "eval.save_masks=false"]
    assert export_main([*voc, f"out={tmp_path / 'coco'}"]) == 0
    exported = json.loads((tmp_path / "coco" / "annotations" / "instances_val2017.json").read_text())
    items = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 0.9}
        for a in exported["annotations"]
        if not a["iscrowd"]
    ]
    perfect = evaluate(tmp_path, "voc", [*voc, f"eval.predictions={_write(tmp_path, items)}"])
    assert perfect["segm_AP"] == 1.0 and perfect["num_images"] == len(exported["images"])
    a, b = exported["images"][0]["id"], exported["images"][1]["id"]
    swapped = [{**it, "image_id": {a: b, b: a}.get(it["image_id"], it["image_id"])} for it in items]
    (tmp_path / "swapped").mkdir()
    worse = evaluate(tmp_path, "swapped", [*voc, f"eval.predictions={_write(tmp_path / 'swapped', swapped)}"])
    assert worse["segm_AP"] < 1.0
