"""COCO-format ground truth in the evaluators: the user's file as it is (COCO AP equals COCOeval run by hand on
that file and our predictions.json), crowd regions as pycocotools handles them, crowd pixels left out of the
matching metrics like void."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from coco_fixtures import H, W, polygon_of, rect_mask, rle_list, rle_str, write_image, write_json
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from insseg.data.annotations import InstanceAnnotation, RleAnnotation
from insseg.data.coco import CocoReader
from insseg.evaluation.coco import STAT_NAMES, CocoEvaluator
from insseg.evaluation.matching import match_image
from insseg.evaluation.reports.per_class import per_class_metrics
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

CLASSES, CATEGORY_IDS = ["person", "dog"], [5, 12]


def _user_file(root: Path) -> Path:
    """Image 42: persons 901, 18 (overlapping) and a two-part dog 17; image 7: dog 5 and a dog crowd region 6;
    image 1000: a negative."""
    images = [
        {"id": 42, "file_name": "a.png", "height": H, "width": W},
        {"id": 7, "file_name": "b.png", "height": H, "width": W},
        {"id": 1000, "file_name": "neg.png", "height": H, "width": W},
    ]
    for im in images:
        write_image(root / "images" / im["file_name"])
    anns = [
        {
            "id": 901,
            "image_id": 42,
            "category_id": 5,
            "segmentation": [polygon_of(2, 2, 12, 10)],
            "area": 80.0,
            "bbox": [2.0, 2.0, 10.0, 8.0],
            "iscrowd": 0,
        },
        {
            "id": 17,
            "image_id": 42,
            "category_id": 12,
            "segmentation": [polygon_of(20, 5, 25, 15), polygon_of(30, 5, 35, 15)],
            "area": 100.0,
            "bbox": [20.0, 5.0, 15.0, 10.0],
            "iscrowd": 0,
        },
        {
            "id": 18,
            "image_id": 42,
            "category_id": 5,
            "segmentation": rle_str(rect_mask(8, 6, 16, 14)),
            "area": 64.0,
            "bbox": [8.0, 6.0, 8.0, 8.0],
            "iscrowd": 0,
        },
        {
            "id": 5,
            "image_id": 7,
            "category_id": 12,
            "segmentation": rle_list(rect_mask(0, 0, 10, 10)),
            "area": 100.0,
            "bbox": [0.0, 0.0, 10.0, 10.0],
            "iscrowd": 0,
        },
        {
            "id": 6,
            "image_id": 7,
            "category_id": 12,
            "segmentation": rle_list(rect_mask(30, 20, 50, 35)),
            "area": 300.0,
            "bbox": [30.0, 20.0, 20.0, 15.0],
            "iscrowd": 1,
        },
    ]
    return write_json(
        root / "instances.json",
        {"images": images, "annotations": anns, "categories": [{"id": 12, "name": "dog"}, {"id": 5, "name": "person"}]},
    )


def _prediction(file_name: str, image_id: int, dets: list[tuple[np.ndarray, float, int]]) -> ImagePrediction:
    dets = sorted(dets, key=lambda d: -d[1])
    masks = np.stack([d[0] for d in dets]) if dets else np.zeros((0, H, W), bool)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return ImagePrediction(
        file_name,
        H,
        W,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray([d[1] for d in dets], np.float32),
        np.asarray([d[2] for d in dets], np.int64),
        encode_masks(masks),
        class_names=CLASSES,
        image_id=image_id,
    )


def _predictions() -> list[ImagePrediction]:
    person, dog = 1, 2
    return [
        _prediction(
            "a.png",
            42,
            [
                (rect_mask(2, 2, 12, 10), 0.9, person),
                (rect_mask(8, 6, 16, 14), 0.8, person),
                (rect_mask(20, 5, 25, 15) | rect_mask(30, 5, 35, 15), 0.7, dog),
                (rect_mask(40, 0, 50, 10), 0.85, person),
            ],
        ),  # a false positive between the two
        _prediction(
            "b.png", 7, [(rect_mask(0, 0, 10, 10), 0.9, dog), (rect_mask(32, 22, 42, 30), 0.95, dog)]
        ),  # inside the crowd region: ignored
        _prediction("neg.png", 1000, []),
    ]


def _by_hand(gt_path: Path, predictions_json: dict, iou_type: str) -> np.ndarray:
    """COCOeval as a user runs it on their file and our predictions.json (segm without boxes, as detectron2)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        anns = [dict(a) for a in predictions_json["annotations"]]
        if iou_type == "segm":
            for a in anns:
                a.pop("bbox")
        ev = COCOeval(gt, gt.loadRes(anns), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_ap_equals_cocoeval_by_hand_on_the_users_file(tmp_path: Path) -> None:
    gt_path = _user_file(tmp_path)
    reader = CocoReader(gt_path, tmp_path / "images")
    assert reader.category_ids == tuple(CATEGORY_IDS) and reader.class_names == tuple(CLASSES)
    evaluator = CocoEvaluator(reader.class_names)
    preds = _predictions()
    for i, pred in enumerate(preds):
        evaluator.process(reader.annotation(i), pred)
    ours = evaluator.evaluate()

    # Hand-computed: person ranks TP 0.9, FP 0.85, TP 0.8 at every IoU threshold: 101-point precision is 1 up
    # to recall 0.5 (51 points) and 2/3 after (50 points). Dog: the 0.95 detection lies in the crowd region
    # (crowd IoU = intersection / detection area = 1), so it is ignored, and the two dogs are found: AP 1.
    person_ap = (51 * 1.0 + 50 * 2 / 3) / 101
    assert ours["segm_AP"] == pytest.approx((person_ap + 1.0) / 2, abs=1e-12)
    assert ours["bbox_AP"] == pytest.approx((person_ap + 1.0) / 2, abs=1e-12)
    assert math.isnan(ours["segm_APm"])  # every object is small
    per_class = per_class_metrics(evaluator)  # the file's category ids (5, 12) found by name
    assert per_class["person"]["segm_AP"] == pytest.approx(person_ap, abs=1e-12)
    assert per_class["dog"]["segm_AP"] == pytest.approx(1.0, abs=1e-12) and per_class["dog"]["num_gt"] == 2

    written = PredictionSet(CLASSES, preds, category_ids=list(reader.category_ids)).to_dict()
    assert [im["id"] for im in written["images"]] == [42, 7, 1000]
    assert sorted({a["category_id"] for a in written["annotations"]}) == [5, 12]
    for iou_type in ("segm", "bbox"):
        by_hand = _by_hand(gt_path, json.loads(json.dumps(written)), iou_type)
        for name, value in zip(STAT_NAMES, by_hand.tolist()):
            mine = ours[f"{iou_type}_{name}"]
            assert (math.isnan(mine) and value == -1) or mine == pytest.approx(value, abs=1e-12), (iou_type, name)


def test_crowd_pixels_are_left_out_of_the_matching_metrics_like_void() -> None:
    ann = RleAnnotation(
        "x.png",
        H,
        W,
        encode_masks(rect_mask(0, 0, 10, 10)[None]),
        np.array([1]),
        encode_masks(rect_mask(10, 0, 20, 10)[None]),
    )
    covering = rect_mask(0, 0, 20, 10)[None]  # the instance and the crowd region next to it
    match = match_image(ann, covering, np.array([1]))
    assert match.iou.tolist() == [1.0] and match.bg_iou == 1.0
    old = match_image(ann, covering, np.array([1]), void_as_background=True)
    assert old.iou.tolist() == [0.5]
    # background: H*W - 100 instance - 100 crowd pixels, all predicted background except none
    assert old.bg_iou == pytest.approx((H * W - 200) / (H * W - 100))


def test_map_and_rle_forms_of_the_same_instances_score_the_same() -> None:
    instance_map = np.zeros((H, W), np.uint8)
    instance_map[rect_mask(2, 2, 12, 10)] = 1
    instance_map[rect_mask(20, 5, 35, 15)] = 2
    as_map = InstanceAnnotation("x.png", H, W, instance_map, np.array([1, 2]), np.array([1, 1]))
    as_rle = RleAnnotation("x.png", H, W, encode_masks(as_map.masks()), np.array([1, 1]))
    pred = _prediction(
        "x.png",
        None,
        [(rect_mask(2, 2, 10, 10), 0.9, 1), (rect_mask(20, 5, 30, 15), 0.8, 1), (rect_mask(40, 20, 50, 30), 0.7, 1)],
    )
    a, b = match_image(as_map, pred.mask_array(), pred.labels), match_image(as_rle, pred.mask_array(), pred.labels)
    assert a.iou.tolist() == b.iou.tolist() == [0.8, 10 / 15] and a.bg_iou == b.bg_iou
    results = []
    for gt in (as_map, as_rle):
        ev = CocoEvaluator(["person"])
        ev.process(gt, pred)
        results.append(ev.evaluate())
    assert results[0] == pytest.approx(results[1], nan_ok=True)
