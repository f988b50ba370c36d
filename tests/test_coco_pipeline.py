"""COCO-format data end to end: train, evaluate and predict on a generated COCO 2017-layout folder (polygons of
one and two parts, compressed and uncompressed RLE, crowd regions, category ids 3 and 7, negatives, sub-folders,
an EXIF photo), and our numbers against COCOeval run by hand on the user's file and our predictions.json."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.data.synthetic import generate_coco
from insseg.engine.trainer import run_training
from insseg.evaluation.coco import STAT_NAMES
from insseg.evaluation.pipeline import run_evaluation
from insseg.inference.predict_pipeline import run_prediction
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

SMALL = [
    "experiment=smoke",
    "device=cpu",
    "device.num_threads=1",
    "model.min_size=64",
    "model.max_size=96",
    "model.detections_per_img=8",
    "data.max_train_images=null",
    "data.max_eval_images=null",
]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_coco(tmp_path_factory.mktemp("coco") / "mycoco", num_images=12, height=64, width=80)


def _cfg(name: str, tmp: Path, root: Path, *overrides: str, out: str = "out"):
    base = ["data=coco", f"data.root={root}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]
    return compose_config(name, [*SMALL, *base, *overrides], output_dir=tmp / out)


def _by_hand(gt_file: Path, predictions_file: Path) -> dict[str, float]:
    """What a user runs: COCO(their file).loadRes(our predictions), segm without boxes (mask areas, as detectron2)."""
    anns = json.loads(predictions_file.read_text())["annotations"]
    stats = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        for iou_type in ("segm", "bbox"):
            res = [{k: v for k, v in a.items() if not (iou_type == "segm" and k == "bbox")} for a in anns]
            ev = COCOeval(gt, gt.loadRes(res) if res else COCO(), iouType=iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats.update({f"{iou_type}_{n}": (None if v == -1 else v) for n, v in zip(STAT_NAMES, ev.stats.tolist())})
    return stats


def _assert_same(ours: dict, theirs: dict) -> None:
    for key, value in theirs.items():
        assert (ours[key] is None) == (value is None), key
        if value is not None:
            assert ours[key] == pytest.approx(value, abs=1e-9), key


def _shifted_predictions(dataset, seed: int = 0) -> PredictionSet:
    """Every non-crowd instance shifted a little (falling scores) and one false positive per image, in the
    dataset's classes and the file's ids: a predictions file as another tool would write it."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        masks = [np.roll(m, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2))) for m in ann.masks()]
        fp = np.zeros((ann.height, ann.width), bool)
        fp[:6, :6] = True
        masks, labels = masks + [fp], list(ann.labels) + [1]
        stack = np.stack(masks)
        boxes = []
        for m in stack:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        scores = np.sort(rng.uniform(0.3, 1.0, len(masks)))[::-1].astype(np.float32)
        images.append(
            ImagePrediction(
                dataset.file_name(i),
                ann.height,
                ann.width,
                np.asarray(boxes, np.float32),
                scores,
                np.asarray(labels, np.int64),
                encode_masks(stack),
                class_names=list(dataset.class_names),
                image_id=dataset.image_id(i),
            )
        )
    return PredictionSet(
        list(dataset.class_names), images, info={"score_threshold": None}, category_ids=list(dataset.category_ids)
    )


def test_predictions_file_scores_as_cocoeval_by_hand(tmp_path: Path, coco_root: Path) -> None:
    gt_file = coco_root / "annotations" / "instances_val2017.json"
    dataset = build_dataset(_cfg("evaluate", tmp_path, coco_root).data, "eval")
    assert dataset.category_ids == (3, 7) and any(dataset.annotation(i).crowd_rles for i in range(len(dataset)))
    predictions = _shifted_predictions(dataset)
    predictions.write(tmp_path / "theirs.json")
    metrics = run_evaluation(_cfg("evaluate", tmp_path, coco_root, f"eval.predictions={tmp_path / 'theirs.json'}"))
    assert 0.2 < metrics["segm_AP"] < 0.95 and 0.2 < metrics["bbox_AP"] < 0.95  # not a trivial 0 or 1
    _assert_same(metrics, _by_hand(gt_file, tmp_path / "theirs.json"))
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())  # ours: the same ids, no mapping
    assert sorted(im["id"] for im in written["images"]) == sorted(
        im["id"] for im in json.loads(gt_file.read_text())["images"]
    )
    assert {c["id"] for c in written["categories"]} == {3, 7}
    _assert_same(metrics, _by_hand(gt_file, tmp_path / "out" / "predictions.json"))
    assert metrics["num_objects"] == sum(len(dataset.annotation(i)) for i in range(len(dataset)))


def test_train_then_evaluate_and_predict_agree_with_cocoeval(tmp_path: Path, coco_root: Path) -> None:
    gt_file = coco_root / "annotations" / "instances_val2017.json"
    trained = run_training(_cfg("train", tmp_path, coco_root, "train.epochs=1", out="train"))
    weights = tmp_path / "train" / "checkpoints" / "best.pt"
    assert weights.is_file() and set(trained) >= {"segm_AP", "bbox_AP"}

    metrics = run_evaluation(
        _cfg(
            "evaluate",
            tmp_path,
            coco_root,
            f"model.weights={weights}",
            "eval.cache=false",
            "model.box_score_thresh=0.0",
            out="eval",
        )
    )
    # training-time evaluation (same loop, record, evaluator) gave the same AP on the same images
    for key in ("segm_AP", "bbox_AP", "segm_AR100"):
        assert metrics[key] == pytest.approx(trained[key], abs=1e-12)
    _assert_same(metrics, _by_hand(gt_file, tmp_path / "eval" / "predictions.json"))

    glob = str(coco_root / "val2017" / "**" / "*.jpg")
    run_prediction(
        _cfg(
            "predict",
            tmp_path,
            coco_root,
            f"model.weights={weights}",
            f"input={glob}",
            "predict.score_threshold=0",
            "model.box_score_thresh=0.0",
            out="predict",
        )
    )
    again = run_evaluation(
        _cfg(
            "evaluate",
            tmp_path,
            coco_root,
            f"model.weights={weights}",
            "model.box_score_thresh=0.0",
            f"eval.predictions={tmp_path / 'predict' / 'predictions.json'}",
            out="eval2",
        )
    )
    keys = [f"{t}_{s}" for t in ("segm", "bbox") for s in STAT_NAMES] + ["mean_iou", "num_predictions"]
    assert {k: again[k] for k in keys} == {k: metrics[k] for k in keys}
    _assert_same(again, _by_hand(gt_file, tmp_path / "eval2" / "predictions.json"))
