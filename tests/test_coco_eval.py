"""CocoEvaluator: ground truth from instance maps (pycocotools' box convention), void handling, predictions
by class name through the bridge, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from insseg.data.annotations import InstanceAnnotation
from insseg.data.readers import VOCReader
from insseg.data.synthetic import generate_voc
from insseg.evaluation.class_mapping import bridge_classes
from insseg.evaluation.coco import CocoEvaluator
from insseg.evaluation.reports.per_class import per_class_metrics
from insseg.predictions import ImagePrediction, encode_masks

CLASSES = ("cat", "dog")


def annotation(instance_map: np.ndarray, labels: list[int], name: str = "a.png") -> InstanceAnnotation:
    ids = np.unique(instance_map)
    ids = ids[(ids != 0) & (ids != 255)].astype(np.int64)
    return InstanceAnnotation(
        name, instance_map.shape[0], instance_map.shape[1], instance_map, ids, np.array(labels, np.int64)
    )


def prediction(masks: np.ndarray, labels, scores=None, name: str = "a.png") -> ImagePrediction:
    """Detections with the masks' pixel-extent boxes (x2 = last column + 1)."""
    h, w = masks.shape[1:]
    boxes = masks_to_boxes(torch.from_numpy(masks)).numpy() + [0, 0, 1, 1] if len(masks) else np.zeros((0, 4))
    scores = [0.9] * len(masks) if scores is None else scores
    return ImagePrediction(
        name,
        h,
        w,
        boxes.astype(np.float32),
        np.array(scores, np.float32),
        np.array(labels, np.int64).reshape(-1),
        encode_masks(masks),
    )


def perfect(ann: InstanceAnnotation, scores: list[float] | None = None) -> ImagePrediction:
    return prediction(ann.masks(), ann.labels, scores, ann.file_name)


def empty(ann: InstanceAnnotation) -> ImagePrediction:
    return prediction(np.zeros((0, ann.height, ann.width), bool), [], name=ann.file_name)


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
        ev.process(ann, perfect(ann))
    m = ev.evaluate()
    for key in ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75"):
        assert m[key] == 1.0, key
    assert m["segm_AR100"] == 1.0
    assert set(ev.tables) == {"segm", "bbox"} and "Average Precision" in ev.tables["segm"]
    per_class = per_class_metrics(ev)
    assert [per_class[c]["segm_AP"] for c in CLASSES] == [1.0, 1.0]


def test_ground_truth_boxes_are_the_pixel_extent_and_areas_pixel_counts():
    ann = scene()[0]
    ev = CocoEvaluator(CLASSES)
    ev.process(ann, empty(ann))
    # pycocotools' toBbox: object 3 spans columns 5..24 and rows 5..19 -> [5, 5, 20, 15].
    assert [g["bbox"] for g in ev.gt] == [[5.0, 5.0, 20.0, 15.0], [10.0, 22.0, 35.0, 16.0]]
    assert [g["area"] for g in ev.gt] == [15 * 20, 16 * 35]
    assert all(g["iscrowd"] == 0 for g in ev.gt)


def test_a_pixel_exact_box_of_a_small_object_scores_bbox_ap_one():
    """The review's case: a 10x10 object whose box is its pixel extent (a COCO-trained model's convention)."""
    m = np.zeros((40, 40), np.uint8)
    m[10:20, 10:20] = 1
    ann = annotation(m, [1])
    pred = prediction(ann.masks(), [1])
    assert pred.boxes.tolist() == [[10.0, 10.0, 20.0, 20.0]]
    ev = CocoEvaluator(CLASSES)
    ev.process(ann, pred)
    assert ev.evaluate()["bbox_AP"] == 1.0


def test_void_counts_for_neither_ground_truth_nor_predictions():
    """A prediction equal to the instance plus the void band around it is perfect; void_as_background keeps the
    old harness's behaviour (the void pixels count against the prediction)."""
    m = np.full((40, 40), 0, np.uint8)
    m[8:22, 8:22] = 255
    m[10:20, 10:20] = 1
    ann = annotation(m, [1])
    covering = prediction((m > 0)[None], [1])  # instance + its void band
    default = CocoEvaluator(CLASSES)
    default.process(ann, covering)
    assert default.evaluate()["segm_AP"] == 1.0
    old = CocoEvaluator(CLASSES, void_as_background=True)
    old.process(ann, covering)
    # IoU 100 / 196 = 0.51: a true positive at IoU 0.50 only, so AP = 1/10.
    assert old.evaluate()["segm_AP"] == pytest.approx(0.1)


def test_no_predictions_at_all_give_zero_and_are_quiet(capsys):
    ev = CocoEvaluator(CLASSES)
    for ann in scene():
        ev.process(ann, empty(ann))
    m = ev.evaluate()
    assert m["segm_AP"] == 0.0 and m["bbox_AP"] == 0.0 and m["segm_AP50"] == 0.0
    assert capsys.readouterr().out == ""


def test_only_images_without_objects_leave_ap_undefined():
    ev = CocoEvaluator(CLASSES)
    c = scene()[2]
    ev.process(c, empty(c))
    assert math.isnan(ev.evaluate()["segm_AP"])
    assert math.isnan(CocoEvaluator(CLASSES).evaluate()["bbox_AP"])


def test_half_the_objects_found_hand_computed():
    # Two objects, one found perfectly: precision 1 up to recall 0.5, i.e. 51 of pycocotools' 101 recall points.
    m = np.zeros((20, 20), np.uint8)
    m[2:8, 2:8] = 1
    m[10:18, 10:18] = 2
    ann = annotation(m, [1, 1])
    ev = CocoEvaluator(CLASSES)
    ev.process(ann, perfect(ann).keep(np.array([0])))
    assert ev.evaluate()["segm_AP"] == pytest.approx(51 / 101)


def test_predictions_meet_ground_truth_by_class_name():
    ann = scene()[0]
    # The model's label 1 is "dog" and 2 is "cat": the same masks with swapped names are all wrong.
    ev = CocoEvaluator(CLASSES)
    ev.process(ann, bridge_classes(["dog", "cat"], CLASSES).to_dataset(perfect(ann)))
    assert ev.evaluate()["segm_AP"] == 0.0
    # A model with more classes: names that the dataset lacks are dropped, not counted as false positives.
    model_names = ["person", "cat", "car", "dog"]
    masks = np.concatenate([ann.masks(), np.ones((1, ann.height, ann.width), bool)])
    pred = prediction(masks, [2, 4, 3], [0.9, 0.9, 0.99])
    ev = CocoEvaluator(CLASSES)
    ev.process(ann, bridge_classes(model_names, CLASSES).to_dataset(pred))
    assert len(ev.dt) == 2
    assert ev.evaluate()["segm_AP"] == 1.0


def test_generated_voc_ground_truth_scores_one(tmp_path):
    root = generate_voc(tmp_path / "voc", num_images=6, height=48, width=64, max_objects=3, seed=1)
    reader = VOCReader(root, "trainval")
    ev = CocoEvaluator(reader.class_names)
    for i in range(len(reader)):
        ann = reader.annotation(i)
        ev.process(ann, perfect(ann))
    m = ev.evaluate()
    assert m["segm_AP"] == 1.0 and m["bbox_AP"] == 1.0
