"""CocoEvaluator: ground truth from instance maps, predictions by class name, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from insseg.data.annotations import InstanceAnnotation
from insseg.data.readers import VOCReader
from insseg.data.synthetic import generate_voc
from insseg.evaluation.coco import CocoEvaluator, tight_boxes_xywh
from insseg.predictions import ImagePrediction

CLASSES = ("cat", "dog")


def annotation(instance_map: np.ndarray, labels: list[int], name: str = "a.png") -> InstanceAnnotation:
    ids = np.unique(instance_map)
    ids = ids[(ids != 0) & (ids != 255)].astype(np.int64)
    return InstanceAnnotation(name, instance_map.shape[0], instance_map.shape[1], instance_map, ids, np.array(labels, np.int64))


def perfect(ann: InstanceAnnotation, scores: list[float] | None = None) -> ImagePrediction:
    masks = ann.masks()
    boxes = masks_to_boxes(torch.from_numpy(masks)).numpy() if len(ann) else np.zeros((0, 4), np.float32)
    return ImagePrediction(
        boxes=boxes.astype(np.float32),
        scores=np.array(scores if scores is not None else [0.9] * len(ann), np.float32),
        labels=ann.labels.copy(),
        masks=masks,
    )


def scene() -> list[InstanceAnnotation]:
    """Three images: non-contiguous ids with a void band, one object, no object at all."""
    a = np.zeros((40, 50), np.uint8)
    a[5:20, 5:25] = 3
    a[22:38, 10:45] = 7
    a[4, 4:26] = 255  # void band above object 3
    b = np.zeros((30, 30), np.uint8)
    b[10:25, 3:12] = 1
    c = np.zeros((20, 20), np.uint8)
    return [annotation(a, [1, 2], "a.png"), annotation(b, [2], "b.png"), annotation(c, [], "c.png")]


def test_perfect_predictions_give_ap_one_exactly():
    ev = CocoEvaluator(CLASSES)
    for ann in scene():
        ev.add(ann, perfect(ann), CLASSES)
    m = ev.summarize()
    for key in ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75"):
        assert m[key] == 1.0, key
    assert m["segm_AR100"] == 1.0
    assert set(ev.tables) == {"segm", "bbox"} and "Average Precision" in ev.tables["segm"]
    assert ev.per_class_ap()["segm"] == {"cat": 1.0, "dog": 1.0}


def test_ground_truth_follows_masks_to_boxes_and_pixel_area():
    ann = scene()[0]
    ev = CocoEvaluator(CLASSES)
    ev.add(ann, ImagePrediction.empty(ann.height, ann.width), CLASSES)
    tv = masks_to_boxes(torch.from_numpy(ann.masks())).numpy()
    for gt, box in zip(ev.gt, tv):
        x1, y1, x2, y2 = box.tolist()
        assert gt["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert gt["iscrowd"] == 0
    assert [g["area"] for g in ev.gt] == [15 * 20, 16 * 35]
    # The void row above object 3 is in no mask.
    assert ev.gt[0]["bbox"][1] == 5.0
    np.testing.assert_array_equal(tight_boxes_xywh(ann.masks()), np.array([g["bbox"] for g in ev.gt]))


def test_no_predictions_at_all_give_zero_and_are_quiet(capsys):
    ev = CocoEvaluator(CLASSES)
    for ann in scene():
        ev.add(ann, ImagePrediction.empty(ann.height, ann.width), CLASSES)
    m = ev.summarize()
    assert m["segm_AP"] == 0.0 and m["bbox_AP"] == 0.0 and m["segm_AP50"] == 0.0
    assert capsys.readouterr().out == ""


def test_only_images_without_objects_leave_ap_undefined():
    ev = CocoEvaluator(CLASSES)
    c = scene()[2]
    ev.add(c, ImagePrediction.empty(c.height, c.width), CLASSES)
    assert math.isnan(ev.summarize()["segm_AP"])
    assert math.isnan(CocoEvaluator(CLASSES).summarize()["bbox_AP"])


def test_half_the_objects_found_hand_computed():
    # Two objects, one found perfectly: precision 1 up to recall 0.5, i.e. 51 of pycocotools' 101 recall points.
    m = np.zeros((20, 20), np.uint8)
    m[2:8, 2:8] = 1
    m[10:18, 10:18] = 2
    ann = annotation(m, [1, 1])
    ev = CocoEvaluator(CLASSES)
    ev.add(ann, perfect(ann).keep(np.array([0])), CLASSES)
    assert ev.summarize()["segm_AP"] == pytest.approx(51 / 101)


def test_predictions_meet_ground_truth_by_class_name():
    ann = scene()[0]
    pred = perfect(ann)
    # The model's label 1 is "dog" and 2 is "cat": the same masks with swapped names are all wrong.
    ev = CocoEvaluator(CLASSES)
    ev.add(ann, pred, ("dog", "cat"))
    assert ev.summarize()["segm_AP"] == 0.0
    # A model with more classes: names that the dataset lacks are dropped, not counted as false positives.
    model_names = ("person", "cat", "car", "dog")
    pred = perfect(ann)
    pred.labels = np.array([2, 4], np.int64)
    extra = ImagePrediction(
        boxes=np.array([[0, 0, 10, 10]], np.float32), scores=np.array([0.99], np.float32),
        labels=np.array([3], np.int64), masks=np.ones((1, ann.height, ann.width), bool),
    )
    both = ImagePrediction(
        boxes=np.concatenate([pred.boxes, extra.boxes]), scores=np.concatenate([pred.scores, extra.scores]),
        labels=np.concatenate([pred.labels, extra.labels]), masks=np.concatenate([pred.masks, extra.masks]),
    )
    ev = CocoEvaluator(CLASSES)
    ev.add(ann, both, model_names)
    assert len(ev.dt) == 2
    assert ev.summarize()["segm_AP"] == 1.0


def test_rle_backed_predictions_and_generated_voc(tmp_path):
    root = generate_voc(tmp_path / "voc", num_images=6, height=48, width=64, max_objects=3, seed=1)
    reader = VOCReader(root, "trainval")
    ev = CocoEvaluator(reader.class_names)
    for i in range(len(reader)):
        ann = reader.annotation(i)
        p = perfect(ann)
        ev.add(ann, ImagePrediction(p.boxes, p.scores, p.labels, rles=p.get_rles()), reader.class_names)
    m = ev.summarize()
    assert m["segm_AP"] == 1.0 and m["bbox_AP"] == 1.0
